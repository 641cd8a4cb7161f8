"""What users teach the spam filter: a message moved into Junk is spam, one moved out of Junk
(anywhere but Trash: deleting spam is not calling it good) is ham.

The IMAP command that moves it must not wait for rspamd, nor fail when rspamd is down, and what
was taught must not be forgotten by a restart: each lesson is a hard link to the message's file
(or a copy, across file systems) in ``learning/``, named ``<sequence>.<spam|ham>``, handed to
rspamd's controller one at a time in the order given, removed once rspamd has answered, and
tried again later (30 s, doubling to 30 min) while it cannot be reached.
"""

import itertools
import os
import re
import shutil
import time

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mailbox_appliance.atomic import unlink_quietly
from mailbox_appliance.interfaces import ISpamLearning
from mailbox_appliance.spam.rspamd import RspamdUnavailable

__all__ = ["LearningQueue"]

FIRST_RETRY, LAST_RETRY = 30, 1800
_LESSON = re.compile(r"(\d+)\.(\d+)\.(spam|ham)")


@implementer(ISpamLearning)
class LearningQueue(Service):
    """A service: once the appliance runs, what was left from before a restart goes first."""

    log = Logger()

    def __init__(self, directory, rspamd, reactor):
        self.directory = directory
        self.rspamd = rspamd
        self.reactor = reactor
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._pending = sorted((name for name in os.listdir(directory) if _kind(name)), key=_sequence)
        self._counter = itertools.count(max((_sequence(name)[1] for name in self._pending), default=0) + 1)
        self._delay = FIRST_RETRY
        self._running = None
        self._retry = None
        self.learnt = 0

    def learn(self, kind, path):
        """Queue the message file at *path* as *kind* ("spam" or "ham"); returns at once."""
        name = f"{int(time.time())}.{next(self._counter)}.{kind}"
        target = os.path.join(self.directory, name)
        try:
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)
        except OSError as failure:        # the message was expunged meanwhile, or the disk is full
            self.log.warn("spam learning: {path} not queued as {kind}: {error}", path=path, kind=kind,
                          error=failure.strerror)
            return
        self._pending.append(name)
        self.start()

    def startService(self):
        super().startService()
        self.start()

    def stopService(self):
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        return super().stopService()

    def start(self):
        """Hand the queued lessons to rspamd, unless that is under way or waiting to retry."""
        if self.running and self._running is None and self._retry is None and self._pending:
            self._running = defer.ensureDeferred(self._drain())

    async def _drain(self):
        try:
            while self._pending:
                name = self._pending[0]
                path = os.path.join(self.directory, name)
                try:
                    with open(path, "rb") as handle:
                        message = handle.read()
                except OSError:
                    self._pending.pop(0)
                    continue
                try:
                    learnt = await self.rspamd.learn(_kind(name), message)
                except RspamdUnavailable as failure:
                    self.log.warn("spam learning: {count} waiting, trying again in {delay}s: {error}",
                                  count=len(self._pending), delay=self._delay, error=str(failure))
                    self._retry = self.reactor.callLater(self._delay, self._retried)
                    self._delay = min(self._delay * 2, LAST_RETRY)
                    return
                self._delay = FIRST_RETRY
                self._pending.pop(0)
                unlink_quietly(path)
                self.learnt += learnt
                self.log.info("spam learning: {kind} {outcome}", kind=_kind(name),
                              outcome="learnt" if learnt else "not learnt (rspamd declined it)")
        finally:
            self._running = None

    def _retried(self):
        self._retry = None
        self.start()


def _kind(name):
    """"spam" or "ham" for a lesson's file name, None for anything else found there."""
    match = _LESSON.fullmatch(name)
    return match.group(3) if match else None


def _sequence(name):
    match = _LESSON.fullmatch(name)
    return int(match.group(1)), int(match.group(2))
