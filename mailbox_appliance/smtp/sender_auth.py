"""Who really sent a message arriving on port 25: the verdict of smtp/sender_checks.py (SPF,
DKIM, DMARC, ARC as one Authentication-Results field) and what it means for the message:
deliver, file into Junk, refuse, or ask the sender to come back.

The checks run in checker processes (sender_auth_worker.py), a few, started with the appliance
and started again if one dies; a message waits for a free one, and a checker that comes free
takes its share of the messages waiting, up to BATCH, in one request.  The reactor only hands
over the messages and reads the answers.  A checker that dies or takes longer than
CHECK_TIMEOUT costs that message a 451 (the sender tries again), never the message.
"""

import collections
import itertools
import json
import os
import pickle
import re
import struct
import sys

from twisted.application.service import Service
from twisted.internet import defer, protocol
from twisted.logger import Logger

from mailbox_appliance.smtp.reply import Reply
from mailbox_appliance.message import without_fields
from mailbox_appliance.smtp.verdict import Verdict

__all__ = ["SenderAuthentication"]

# Every lookup of a check has 5 s at most, and an SPF record may cause ten (RFC 7208 §4.6.4).
CHECK_TIMEOUT = 60
# A checker that exits is started again this long after (it may die at once, again and again:
# a broken installation must not become a busy loop).
RESTART_DELAY = 1
# Messages handed to a checker at once under load: each adds its ~0.6 ms of checks to the wait of
# the others in the request, and saves a pipe write and a wake-up in both processes.
BATCH = 8
_LENGTH = struct.Struct(">I")
_UNAVAILABLE = Reply(451, "4.7.0", "Cannot check the sender now; try again later")


class CheckerUnavailable(Exception):
    """No verdict: the checker died or took too long."""


class SenderAuthentication(Service):
    log = Logger()

    def __init__(self, servers, hostname, reactor, own_domain, dmarc_reject="reject", checkers=None):
        """*servers*: ``[outbound] resolver`` (() for the system's); *own_domain(domain)*: whether
        mail for *domain* is ours (outside mail From: our own domains must pass DMARC);
        *dmarc_reject*: what a DMARC fail under p=reject gets, "reject" or "junk"; *checkers*:
        how many checker processes (default: one per CPU, two to four)."""
        self.servers = servers
        self.hostname = hostname
        # An Authentication-Results value whose authserv-id is our host name (RFC 8601 §2.2).
        self._claims_our_name = re.compile(rb"[ \t]*" + re.escape(hostname.encode("ascii")) + rb"[ \t]*(;|$)",
                                           re.IGNORECASE).match
        self.reactor = reactor
        self.own_domain = own_domain
        self.dmarc_reject = dmarc_reject
        self.checkers = checkers or min(4, max(2, os.cpu_count() or 1))
        self._ids = itertools.count(1)
        self._idle = []
        self._waiting = collections.deque()  # (request, Deferred)
        self._workers = set()

    def startService(self):
        super().startService()
        for _ in range(self.checkers):
            self._start_checker()

    def stopService(self):
        """Idle checkers are told to stop (their stdin closes); one still checking is killed,
        since its session is ending with the appliance anyway."""
        super().stopService()
        ended = [worker.ended for worker in self._workers]
        for worker in list(self._workers):
            worker.stop()
        return defer.DeferredList(ended)

    def check(self, ip, helo, mail_from, message):
        """A Deferred firing with the smtp.verdict.Verdict for *message* (bytes, CRLF) as received."""
        result = defer.Deferred()
        request = (next(self._ids), ip, helo or "", mail_from, message)
        entry = (request, result)
        self._waiting.append(entry)
        timer = self.reactor.callLater(CHECK_TIMEOUT, self._too_slow, entry)
        result.addBoth(lambda outcome: (timer.cancel() if timer.active() else None, outcome)[1])
        self._dispatch()
        return result.addCallbacks(self._verdict, self._no_verdict)

    # -- the checker processes ----------------------------------------------------------------

    def _start_checker(self):
        if not self.running:
            return
        worker = _Checker(self)
        command = [sys.executable, "-m", "mailbox_appliance.smtp.sender_auth_worker", self.hostname,
                   json.dumps([list(server) for server in self.servers])]
        self.reactor.spawnProcess(worker, sys.executable, command, env=os.environ)
        self._workers.add(worker)

    def _ready(self, worker):
        self._idle.append(worker)
        self._dispatch()

    def _dispatch(self):
        while self._idle and self._waiting:
            share = min(BATCH, -(-len(self._waiting) // len(self._idle)))
            self._idle.pop().take([self._waiting.popleft() for _ in range(share)])

    def _ended(self, worker, reason):
        self._workers.discard(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        if self.running:
            self.log.warn("sender checks: a checker process ended ({reason}); starting another",
                          reason=reason.getErrorMessage())
            self.reactor.callLater(RESTART_DELAY, self._start_checker)

    def _too_slow(self, entry):
        if entry in self._waiting:
            self._waiting.remove(entry)
            entry[1].errback(CheckerUnavailable(f"no checker free within {CHECK_TIMEOUT}s"))
            return
        for worker in self._workers:
            if entry in worker.current:
                worker.kill()         # its end fails its requests

    # -- the verdict ----------------------------------------------------------------------------

    def _verdict(self, evaluated):
        """The disposition, decided in the reactor thread (the accounts are read here)."""
        field, result, policy, author_domain = evaluated
        disposition, reason = "deliver", f"dmarc={result}"
        if author_domain is None:
            if result == "fail":
                # RFC 7489 §6.6.1: several authors, no one domain to pass for them (and a second
                # From: must not carry a forged one past the checks).
                disposition, reason = "junk", "more than one From: address"
        elif result != "pass":
            if self.own_domain(author_domain):
                # No outside mail may claim one of our own domains as its author.
                disposition = "defer" if result == "temperror" else self.dmarc_reject
                reason = f"From: {author_domain} is ours but DMARC did not pass ({result})"
            elif result == "fail" and policy == "reject":
                disposition, reason = self.dmarc_reject, f"DMARC policy of {author_domain} is reject"
            elif result == "fail" and policy == "quarantine":
                disposition, reason = "junk", f"DMARC policy of {author_domain} is quarantine"
        reply = {"reject": Reply(550, "5.7.1", f"Message refused: {reason}"), "defer": _UNAVAILABLE}.get(disposition)
        return Verdict(field, disposition, reason, reply, self.strip_our_results)

    def _no_verdict(self, failure):
        failure.trap(CheckerUnavailable)
        self.log.warn("sender checks: no verdict ({error}); the sender is asked to try again",
                      error=failure.getErrorMessage())
        return Verdict(b"", "defer", f"no sender verdict: {failure.getErrorMessage()}", _UNAVAILABLE)

    def strip_our_results(self, message):
        """*message* without Authentication-Results fields claiming our host name (RFC 8601 §5:
        a forger may not pre-fill our verdict)."""
        return without_fields(message, (b"authentication-results",), self._claims_our_name)


class _Checker(protocol.ProcessProtocol):
    """One checker process, seen from the reactor: one request (of one or more messages) at a time."""

    def __init__(self, pool):
        self.pool = pool
        self.current = []             # [(request, Deferred)] being checked; [] when idle
        self.ended = defer.Deferred()
        self._buffer = b""

    def connectionMade(self):
        self.pool._ready(self)

    def take(self, entries):
        self.current = entries
        data = pickle.dumps([request for request, _result in entries], protocol=pickle.HIGHEST_PROTOCOL)
        self.transport.write(_LENGTH.pack(len(data)) + data)

    def outReceived(self, data):
        self._buffer += data
        while len(self._buffer) >= _LENGTH.size:
            length = _LENGTH.unpack_from(self._buffer)[0]
            if len(self._buffer) < _LENGTH.size + length:
                return
            answer, self._buffer = self._buffer[_LENGTH.size:_LENGTH.size + length], self._buffer[_LENGTH.size + length:]
            self._answered(pickle.loads(answer))

    def _answered(self, answers):
        if [request[0] for request, _result in self.current] != [request_id for request_id, _ in answers]:
            self.kill()               # out of step: nothing it says can be trusted now
            return
        entries, self.current = self.current, []
        self.pool._ready(self)
        for (_request, result), (_request_id, outcome) in zip(entries, answers):
            if outcome[0] == "ok":
                result.callback(outcome[1:])
            else:
                result.errback(CheckerUnavailable(outcome[1]))

    def errReceived(self, data):
        self.pool.log.warn("sender checks: checker says {text}", text=data.decode("utf-8", "replace").rstrip())

    def stop(self):
        if not self.current:
            self.transport.closeStdin()
        else:
            self.kill()

    def kill(self):
        try:
            self.transport.signalProcess("KILL")
        except Exception:             # already gone: processEnded comes anyway
            pass

    def processEnded(self, reason):
        entries, self.current = self.current, []
        for _request, result in entries:
            result.errback(CheckerUnavailable("the checker process ended"))
        self.pool._ended(self, reason)
        self.ended.callback(None)
