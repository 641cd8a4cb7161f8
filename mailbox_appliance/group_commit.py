"""Group commit: the durable writes of concurrent messages share one writer thread and their
directory fsyncs.

A message may be acknowledged (250) only when its files are written, fsynced and renamed into
place, and the directories holding them fsynced.  Done one message at a time in the reactor
thread, every fsync would stall every session.  Here each message's writes are a batch of jobs;
the writer thread takes all batches waiting, writes their files, makes them all durable at once
(atomic.SyncRound: one syncfs per file system), renames them into place, fsyncs each directory
once for all of them, and only then answers each batch in the reactor thread.  Under load many
messages share one round of syncs; when idle a single message is committed at once.

A job (ICommitJob) has five steps: write() (temporary files, made durable with the round's),
publish() (rename into place), directories() (to fsync after publish), settle() (what may happen
only once that is durable), discard() (remove what write() or publish() made).  If any job of a
batch fails to write, the whole batch is discarded and fails, so a message is stored for all its
recipients or for none of them; if the round's files cannot be made durable, every batch written
in the round is discarded and fails.  The queue's envelope rewrites and removals are jobs too:
under load they share the same syncs as the messages arriving.
"""

import queue
import threading
import time

from twisted.internet import defer
from twisted.python.failure import Failure

from mailbox_appliance.atomic import SyncRound, sync_dir

_STOP = object()


class GroupCommitter:
    def __init__(self, reactor):
        self._reactor = reactor
        self._pending = queue.SimpleQueue()
        self._thread = None
        # For the metrics (metrics.py): rounds of fsyncs, batches they made durable, and the
        # seconds spent; written by the writer thread only, read at a scrape.
        self.rounds = self.batches = 0
        self.seconds = 0.0

    def commit(self, jobs):
        """Write *jobs* durably; the Deferred fires (in the reactor) when all are, or with the error."""
        result = defer.Deferred()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
            self._thread.start()
            self._reactor.addSystemEventTrigger("after", "shutdown", self.stop)
        self._pending.put((list(jobs), result))
        return result

    def stop(self):
        """Finish what was submitted, then end the writer thread."""
        if self._thread is not None:
            self._pending.put(_STOP)
            self._thread.join()
            self._thread = None

    def _run(self):
        while True:
            batches = [self._pending.get()]
            while not self._pending.empty():
                batches.append(self._pending.get())
            stopping = _STOP in batches
            started = time.monotonic()
            self._commit([batch for batch in batches if batch is not _STOP])
            self.rounds += 1
            self.batches += len(batches) - stopping
            self.seconds += time.monotonic() - started
            if stopping:
                return

    def _commit(self, batches):
        # A message whose files cannot all be made durable is taken back out wholly before the
        # client hears 451, so its retry does not leave a second copy behind.
        outcomes, directories = [], set()

        def publish(job):
            job.publish()
            directories.update(job.directories())

        syncing = SyncRound(together=sum(len(jobs) for jobs, _result in batches) > 1)
        with syncing:
            written = _each_job(batches, lambda job: job.write(), outcomes)
        try:
            syncing.sync()
        except OSError:
            failure = Failure()
            for jobs, result in written:
                _discard(jobs)
                outcomes.append((result, failure))
            written = []
        published = _each_job(written, publish, outcomes)
        failed_sync = None
        for directory in directories:
            try:
                sync_dir(directory)
            except OSError:
                failed_sync = Failure()
        if failed_sync is None:
            published = _each_job(published, lambda job: job.settle(), outcomes)
        for jobs, result in published:
            if failed_sync is not None:
                _discard(jobs)
            outcomes.append((result, failed_sync))
        for result, failure in outcomes:
            self._reactor.callFromThread(_fire, result, failure)


def _each_job(batches, step, outcomes):
    """step(job) for every job of every batch.  A batch where it fails is discarded whole (a
    message is stored for all its recipients or for none) and its Failure added to *outcomes*;
    the batches that went through are returned."""
    passed = []
    for jobs, result in batches:
        try:
            for job in jobs:
                step(job)
        except BaseException:
            failure = Failure()
            _discard(jobs)
            outcomes.append((result, failure))
        else:
            passed.append((jobs, result))
    return passed


def _discard(jobs):
    for job in jobs:
        try:
            job.discard()
        except OSError:
            pass


def _fire(result, failure):
    if failure is None:
        result.callback(None)
    else:
        result.errback(failure)
