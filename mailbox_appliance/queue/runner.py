"""The queue runner: tries each queued message when its time comes, records what happened, and
tells the sender when a message fails or is delayed.

At start the spool is reloaded (repairing crash leftovers) and every entry gets a timer at its
next attempt.  An attempt groups the message's pending recipients by domain and delivers to each
domain once (queue/outbound.py); the envelope is rewritten with each recipient's new state before
anything else happens, so a crash repeats at most the attempt in flight (a duplicate, never a
loss).  A message leaves the queue when no recipient is pending; if some failed, one bounce
lists them all (never for the null sender), stored through the IDelivery the runner is given.

The admin's commands (queue/control.py) call flush(), retry() and give_up().
"""

import collections

from twisted.application.service import Service
from twisted.internet import defer, threads
from twisted.logger import Logger

from mailbox_appliance.atomic import disk_full
from mailbox_appliance.queue import dsn
from mailbox_appliance.queue.outbound import Outcome
from mailbox_appliance.queue.spool import UnknownEntry

# Messages being delivered at once, and sessions at once per destination (Postfix's
# default_destination_concurrency_limit is 20 too).
MAX_ACTIVE_DELIVERIES = 100
MAX_ACTIVE_PER_DOMAIN = 20
# The delivery problems `status` shows (status.py): the last few, newest last.
RECENT_PROBLEMS = 5


class Unsignable(Exception):
    """A message of ours that dkimpy could not sign; the text says why."""


def _nothing():
    """No report to announce."""


class QueueRunner(Service):
    log = Logger()

    def __init__(self, spool, committer, schedule, outbound, delivery, hostname, clock, signer=None):
        """*spool* (ISpool) is watched for new entries; *committer* (group_commit.GroupCommitter)
        makes the spool's rewrites and removals durable; *delivery* (IDelivery) stores bounces and
        delay notices; *signer* (queue/dkim_signing.Signer) DKIM-signs each message as it leaves."""
        self.spool = spool
        self.committer = committer
        self.signer = signer
        self.schedule = schedule
        self.outbound = outbound
        self.delivery = delivery
        self.hostname = hostname
        self.clock = clock
        self._timers = {}
        self._active = set()
        self._after_attempt = {}      # queue id -> (bounce?, Deferred) of an admin's give_up waiting for it
        self._total = defer.DeferredSemaphore(MAX_ACTIVE_DELIVERIES)
        self._per_domain = {}
        self.recent_problems = collections.deque(maxlen=RECENT_PROBLEMS)   # (time, queue id, address, reply)
        spool.watch(self.enqueued)

    # -- lifecycle ------------------------------------------------------------------------

    def startService(self):
        super().startService()
        loaded = self.spool.load(repair=True)
        for name, reason in loaded.corrupt:
            self.log.error("queue entry {name} moved aside to {path}/corrupt: {reason}",
                           name=name, path=self.spool.path, reason=reason)
        for envelope in loaded:
            self._schedule(envelope.id, envelope.next_attempt)
        self.log.info("queue loaded: {count} entries", count=len(loaded))

    def stopService(self):
        super().stopService()
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()

    def enqueued(self, envelope):
        """A new entry was committed to the spool: try it now."""
        self._schedule(envelope.id, self.clock.seconds())

    # -- scheduling -----------------------------------------------------------------------

    def _schedule(self, queue_id, when):
        self._unschedule(queue_id)
        delay = max(0.0, when - self.clock.seconds())
        self._timers[queue_id] = self.clock.callLater(delay, self._attempt, queue_id)

    def _unschedule(self, queue_id):
        timer = self._timers.pop(queue_id, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _attempt(self, queue_id):
        """Start an attempt; a Deferred firing when it has ended (None if one is in flight)."""
        self._timers.pop(queue_id, None)
        if queue_id in self._active:
            return None
        self._active.add(queue_id)
        result = defer.ensureDeferred(self._try(queue_id))
        result.addErrback(self._attempt_broke, queue_id)
        result.addBoth(self._attempt_ended, queue_id)
        return result

    def _attempt_ended(self, _, queue_id):
        self._active.discard(queue_id)
        waiting = self._after_attempt.pop(queue_id, None)
        if waiting is not None:
            bounce, result = waiting
            self._give_up_now(queue_id, bounce).chainDeferred(result)

    def _attempt_broke(self, failure, queue_id):
        """An attempt ended in an error of ours: log it, and try again after the first retry delay,
        so that no entry is ever left without a timer (it would never be sent, bounced or expired).
        A full disk is the admin's to fix, not a bug: one line, no traceback."""
        if disk_full(failure.value):
            self.log.error("queue {queue_id}: attempt not recorded: {error}; retrying later",
                           queue_id=queue_id, error=failure.value)
        else:
            self.log.failure("queue {queue_id}: attempt failed; retrying later", failure, queue_id=queue_id)
        self._schedule(queue_id, self.clock.seconds() + self.schedule.retry_delays[0])

    async def _try(self, queue_id):
        # The limit is taken before the message is read, so a queue of thousands coming due at
        # once (a restart, a flush) holds only MAX_ACTIVE_DELIVERIES messages in memory.
        await self._total.acquire()
        try:
            await self._try_now(queue_id)
        finally:
            self._total.release()

    async def _try_now(self, queue_id):
        try:
            envelope = self.spool.read_envelope(queue_id)
            message = self.spool.read_message(queue_id)
        except UnknownEntry:
            return
        try:
            outgoing = await self._signed(envelope, message)
        except Unsignable as problem:
            # A domain that publishes a key asks receivers to expect its signature: unsigned
            # mail from it may be rejected or filed as spam, so it is not sent (issue 20).
            reply = f"550 5.6.0 Not sent: the message could not be DKIM-signed ({problem})"
            outcomes = {recipient.address: Outcome(recipient.address, False, True, reply)
                        for recipient in envelope.pending()}
        else:
            outcomes = await self._delivered(queue_id, envelope, outgoing)
        tried = []
        for recipient in envelope.pending():
            outcome = outcomes.get(recipient.address)
            if outcome is None:
                continue
            recipient.last_reply, recipient.remote_mta = outcome.reply, outcome.remote_mta
            if not outcome.delivered:
                self.recent_problems.append((self.clock.seconds(), queue_id, outcome.address, outcome.reply))
            tried.append(f"<{outcome.address}> {outcome.route}: {outcome.reply}" if outcome.route
                         else f"<{outcome.address}>: {outcome.reply}")
            if outcome.delivered:
                recipient.state = "delivered"
            elif outcome.permanent:
                recipient.state = "failed"
        envelope.attempts += 1
        what = f"attempt {envelope.attempts}: " + "; ".join(tried)
        try:
            await self._conclude(envelope, message, what)
        except Exception:
            # The attempt's one line comes after its outcome is recorded; when that fails, say
            # what happened anyway: those recipients will be tried again.
            self.log.info("queue {queue_id}: {what}; not recorded, so tried again later",
                          queue_id=queue_id, what=what)
            raise

    async def _delivered(self, queue_id, envelope, message):
        """Deliver *message* once to each destination of the pending recipients; {address: Outcome}."""
        by_domain = {}
        for recipient in envelope.pending():
            by_domain.setdefault(self.outbound.destination(recipient.address), []).append(recipient.address)
        attempts = [defer.ensureDeferred(self._deliver_to_domain(queue_id, domain, envelope.sender, addresses, message))
                    for domain, addresses in by_domain.items()]
        outcomes = {}
        for result in await defer.gatherResults(attempts, consumeErrors=True):
            outcomes.update(result)
        return outcomes

    async def _signed(self, envelope, message):
        """The message DKIM-signed when the signer says it is ours to sign (Signer.signs).
        Raises Unsignable when dkimpy cannot sign it (a malformed header from a local program:
        submission refuses those at DATA)."""
        if self.signer is None or not self.signer.signs(envelope, message):
            return message
        try:
            # RSA signing and canonicalisation take milliseconds: not in the reactor thread.
            return await threads.deferToThread(self.signer.sign, message, envelope.sender)
        except Exception as problem:
            self.log.error("queue {queue_id}: could not DKIM-sign it: {problem}",
                           queue_id=envelope.id, problem=problem)
            raise Unsignable(problem) from problem

    async def _deliver_to_domain(self, queue_id, domain, sender, addresses, message):
        per_domain = self._per_domain.setdefault(domain, defer.DeferredSemaphore(MAX_ACTIVE_PER_DOMAIN))
        await per_domain.acquire()
        try:
            return await self.outbound.attempt(queue_id, domain, sender, addresses, message)
        finally:
            per_domain.release()
            if per_domain.tokens == per_domain.limit and not per_domain.waiting:
                # Idle: forget it, or one semaphore per destination ever seen would stay.
                self._per_domain.pop(domain, None)

    async def _conclude(self, envelope, message, what):
        """Record the attempt; then retry later, warn, expire, bounce or finish.  One log line
        says *what* happened (each recipient's route and reply) and what comes next.

        The spool's rewrites and removals fsync, so they go to the group committer's thread:
        the reactor goes on serving every other session, and concurrent attempts share fsyncs."""
        now = self.clock.seconds()
        pending = envelope.pending()
        if pending and self.schedule.expired(envelope.arrival, now):
            for recipient in pending:
                recipient.state = "failed"
                recipient.last_reply = ("451 4.4.7 Message expired: not delivered within the queue lifetime; "
                                        f"last reply: {recipient.last_reply}")
            pending = []
        announce = _nothing
        if pending:
            if self.schedule.should_warn(envelope.arrival, envelope.warned, now):
                announce = await self._report(envelope, message, pending, "delayed")
                envelope.warned = True
            envelope.next_attempt = self.schedule.next_attempt(envelope.attempts, now)
            # Scheduled before the rewrite: should the disk refuse it, the message is still retried.
            self._schedule(envelope.id, envelope.next_attempt)
            try:
                await self.committer.commit([self.spool.rewrite(envelope)])
            except UnknownEntry:
                self.log.info("queue {queue_id}: {what}; the entry was deleted meanwhile", queue_id=envelope.id,
                              what=what)
                self._unschedule(envelope.id)
            else:
                self.log.info("queue {queue_id}: {what}; {pending} pending, next attempt in {delay:.0f}s",
                              queue_id=envelope.id, what=what, pending=len(pending), delay=envelope.next_attempt - now)
            announce()
            return
        failed = [recipient for recipient in envelope.recipients if recipient.state == "failed"]
        if failed:
            # The entry goes only once its bounce is stored; if storing fails, the attempt
            # fails and is retried later (see _attempt_broke).
            announce = await self._report(envelope, message, failed, "failed")
        await self._remove(envelope.id)
        # Logged once done (`queue list` no longer shows the entry): the outcome first, then the
        # report it caused (the admin reads why, then what followed).
        self.log.info("queue {queue_id}: {what}; done, {delivered} delivered, {failed} failed", queue_id=envelope.id,
                      what=what, delivered=len(envelope.recipients) - len(failed), failed=len(failed))
        announce()

    async def _report(self, envelope, message, recipients, action):
        """Store a report to the sender (IDelivery.deliver_report); raises if it cannot be stored.
        Returns what logs its line, for the caller to call after the attempt's own line."""
        if envelope.sender == "":
            # RFC 3464 §2 / RFC 5321 §6.1: never report on a report; it would loop.
            return lambda: self.log.info("queue {queue_id}: {action} for the null sender, no report sent",
                                         queue_id=envelope.id, action=action)
        reports = [dsn.RecipientReport(recipient.address, action,
                                       dsn.status_of(recipient.last_reply, action == "failed"),
                                       recipient.last_reply or "no reply", recipient.remote_mta)
                   for recipient in recipients]
        report = dsn.build_report(self.hostname, envelope.sender, envelope.id, envelope.arrival, message,
                                  reports, retry_until=envelope.arrival + self.schedule.max_lifetime)
        await defer.maybeDeferred(self.delivery.deliver_report, envelope.sender, report)
        return lambda: self.log.info("queue {queue_id}: {action} report to <{sender}> for {recipients}",
                                     queue_id=envelope.id, action=action, sender=envelope.sender,
                                     recipients=",".join(f"<{r.address}>" for r in recipients))

    # -- the admin's commands (queue/control.py) ---------------------------------------------

    def flush(self):
        """Try every queued message now; returns how many there are.  The log says when every
        attempt has ended (the admin's answer comes at once)."""
        envelopes = self.spool.load(repair=False)
        attempts = []
        for envelope in envelopes:
            self._unschedule(envelope.id)
            attempts.append(self._attempt(envelope.id))
        defer.gatherResults([attempt for attempt in attempts if attempt is not None]).addCallback(
            lambda _: self.log.info("queue control: flush done: {count} entries tried", count=len(envelopes)))
        return len(envelopes)

    def retry(self, queue_id):
        """Try *queue_id* now (UnknownEntry when there is no such entry)."""
        self.spool.read_envelope(queue_id)
        self._schedule(queue_id, 0)
        self.log.info("queue control: retry {queue_id}", queue_id=queue_id)

    def in_flight(self, queue_id):
        return queue_id in self._active

    def give_up(self, queue_id, bounce):
        """Delete *queue_id*, first bouncing it to its sender when *bounce*; a Deferred firing
        when that is durable.  An entry in the middle of an attempt is dealt with when the attempt
        ends, so that its record of the outcome cannot bring the entry back."""
        command = "bounce" if bounce else "delete"
        if queue_id in self._active:
            result = defer.Deferred()
            self._after_attempt[queue_id] = (bounce, result)
            self.log.info("queue control: {command} {queue_id} after the attempt in flight",
                          command=command, queue_id=queue_id)
            return result
        return self._give_up_now(queue_id, bounce)

    def _give_up_now(self, queue_id, bounce):
        command = "bounce" if bounce else "delete"
        result = defer.ensureDeferred(self._give_up_entry(queue_id, bounce))
        result.addCallback(self._given_up, command, queue_id)
        result.addErrback(self._give_up_failed, queue_id)
        return result

    def _given_up(self, envelope, command, queue_id):
        if envelope is None:
            self.log.info("queue control: {command} {queue_id}: no such entry any more",
                          command=command, queue_id=queue_id)
            return
        dropped = [recipient.address for recipient in envelope.recipients if recipient.state != "delivered"]
        self.log.info("queue control: {command} {queue_id} done: the message from <{sender}> to {recipients} "
                      "{outcome}", command=command, queue_id=queue_id, sender=envelope.sender,
                      recipients=",".join(f"<{address}>" for address in dropped),
                      outcome="returned to its sender" if command == "bounce" else "deleted, not delivered")

    def _give_up_failed(self, failure, queue_id):
        self._attempt_broke(failure, queue_id)
        return failure

    async def _give_up_entry(self, queue_id, bounce):
        self._unschedule(queue_id)
        try:
            envelope = self.spool.read_envelope(queue_id)
            message = self.spool.read_message(queue_id)
        except UnknownEntry:
            return None
        if bounce:
            for recipient in envelope.pending():
                recipient.state = "failed"
                recipient.last_reply = f"550 5.3.0 Returned by the postmaster; last reply: {recipient.last_reply}"
            await self._conclude(envelope, message, "returned by the postmaster")
        else:
            await self._remove(queue_id)
        return envelope

    async def _remove(self, queue_id):
        """Take the entry out through the committer: only its thread ever removes or rewrites
        an entry.  One already gone is gone all the same."""
        try:
            await self.committer.commit([self.spool.removal(queue_id)])
        except UnknownEntry:
            pass
