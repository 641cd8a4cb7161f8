"""The retry schedule: when a queued message is tried next, warned about, or given up.

``[outbound] retry_schedule`` is a list of delays between attempts; once it runs out, its last
delay repeats.  The default, 5m 10m 20m 40m 1h 2h 4h, backs off from a brief outage to hourly and
then four-hourly tries, as RFC 5321 §4.5.4.1 asks ("at least 30 minutes" between later retries,
giving up after "at least 4-5 days": ``max_lifetime``, default 5 days).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    retry_delays: tuple   # seconds
    max_lifetime: int     # seconds after arrival
    warn_after: int       # seconds after arrival

    @classmethod
    def from_settings(cls, outbound):
        return cls(tuple(outbound.retry_schedule), outbound.max_lifetime, outbound.warn_after)

    def next_attempt(self, attempts, now):
        """When to try again after *attempts* tries (the latest at *now*)."""
        delay = self.retry_delays[min(attempts, len(self.retry_delays)) - 1] if attempts else 0
        return now + delay

    def expired(self, arrival, now):
        return now - arrival >= self.max_lifetime

    def should_warn(self, arrival, warned, now):
        """Time to send the one 'delayed' notice (RFC 3464 Action: delayed)?"""
        return not warned and now - arrival >= self.warn_after
