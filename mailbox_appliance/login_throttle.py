"""Failed-login throttling per client address, shared by SMTP AUTH, IMAP and POP3.

Password guessing is slowed, then stopped: the first failures from an address are answered at
once (people mistype), later ones only after a growing delay, and once an address has failed
``max_failures`` times within ``window_seconds`` every login from it is refused until
``lockout_seconds`` have passed since its last failure.  A success forgets the address.
"""

import collections

FREE_FAILURES = 2
MAX_DELAY_SECONDS = 8.0
# Addresses remembered at once; the oldest is forgotten first, so a flood of addresses cannot
# grow memory without bound.
MAX_TRACKED_ADDRESSES = 100_000


class _Failures:
    __slots__ = ("times", "locked_until")

    def __init__(self):
        self.times = []
        self.locked_until = 0.0


class LoginThrottle:
    def __init__(self, clock, max_failures=10, window_seconds=900, lockout_seconds=900):
        self._clock = clock
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.lockout_seconds = lockout_seconds
        self._by_address = collections.OrderedDict()

    def is_locked_out(self, address):
        failures = self._by_address.get(address)
        return failures is not None and self._clock.seconds() < failures.locked_until

    def locked_until(self, address):
        """When the lockout of *address* ends (clock seconds); 0 if it is not locked out."""
        failures = self._by_address.get(address)
        return failures.locked_until if failures is not None else 0.0

    def failed(self, address):
        """Record a failure; returns how many seconds to wait before answering it."""
        now = self._clock.seconds()
        failures = self._by_address.pop(address, None) or _Failures()
        failures.times = [moment for moment in failures.times if now - moment < self.window_seconds]
        failures.times.append(now)
        if len(failures.times) >= self.max_failures:
            failures.locked_until = now + self.lockout_seconds
        self._by_address[address] = failures
        while len(self._by_address) > MAX_TRACKED_ADDRESSES:
            self._by_address.popitem(last=False)
        extra = len(failures.times) - FREE_FAILURES
        return 0.0 if extra <= 0 else min(2.0 ** (extra - 1), MAX_DELAY_SECONDS)

    def succeeded(self, address):
        self._by_address.pop(address, None)
