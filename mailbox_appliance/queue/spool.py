"""The durable on-disk outbound queue (spool).

The SMTP server writes every message bound for a remote domain here before it
answers 250; the queue runner loads it at start, and rewrites the envelope
after each delivery attempt.

On-disk layout (under DATA/queue/)::

    messages/<id>            the message bytes exactly as received, never rewritten
    envelopes/<id>.json      the envelope (see envelope.py), rewritten atomically
    messages/<id>.tmp        being written (stage/write), not yet published
    envelopes/<id>.json.tmp  being written (stage/write), not yet published
    envelopes/<id>.json.tmp.<hex>  an update() in progress (EnvelopeRewrite)
    corrupt/<id>, corrupt/<id>.json, corrupt/<id>.reason
                             entries moved aside: kept for the admin, never retried

Queue ids are 18 characters of base32hex (0-9a-v): 11 for the microseconds
since the epoch, 7 random.  They sort by arrival, are safe in file names and
URLs on case-insensitive file systems too, and are short enough for log lines.

Commit point: an entry exists once envelopes/<id>.json exists.  The message is
renamed into place first, so a committed envelope always has its message (a
crash between the two renames leaves a message without envelope, which load()
removes).  A message is acknowledged (250) only after the caller has fsynced
every directory of StagedEntry.directories().

Concurrency: the writer thread (stage/write/publish) and the runner
(update/remove) may work at the same time on different ids.  load() with
repair=True must run before either starts (at service start-up): it removes
temporary and orphan files, which may be in-flight work of a live writer.  A
live process (e.g. the admin command listing the queue) uses repair=False.

Only the standard library and mailbox_appliance.atomic are used; nothing is
logged here, load() returns what it cleaned and moved aside for the caller to log.
"""

import os
import re
import secrets
import threading
import time

from zope.interface import implementer

from mailbox_appliance.atomic import atomic_replace, create_synced, sync_dir, unlink_quietly
from mailbox_appliance.interfaces import ICommitJob, ISpool, IStagedEntry
from .envelope import CorruptEntry, Envelope, RecipientState

__all__ = ["Spool", "StagedEntry", "EnvelopeRewrite", "EntryRemoval", "LoadResult", "UnknownEntry", "new_queue_id",
           "is_queue_id", "Envelope", "RecipientState", "CorruptEntry"]

_ALPHABET = "0123456789abcdefghijklmnopqrstuv"   # base32hex: ASCII order = value order
_TIME_CHARS = 11      # 55 bits of microseconds: good until the year 3111
_RANDOM_CHARS = 7     # 35 random bits separate ids of concurrent processes
_ID_RE = re.compile(r"\A[0-9a-v]{%d}\Z" % (_TIME_CHARS + _RANDOM_CHARS))
# Temporary names: <id>.tmp in messages/, <id>.json.tmp[.<hex>] in envelopes/.
_MESSAGE_TMP_RE = re.compile(r"\A([0-9a-v]{18})\.tmp\Z")
_ENVELOPE_TMP_RE = re.compile(r"\A([0-9a-v]{18})\.json\.tmp(\.[0-9a-f]+)?\Z")

_id_lock = threading.Lock()
_last_micros = 0


def _base32hex(number, width):
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_queue_id():
    """A new unique queue id, e.g. '1hc2f0k8q3b5e9mf2a'.

    The time part strictly increases within this process (two calls in the same
    microsecond get consecutive values), so ids here never repeat; the random
    part makes a clash with another process (admin command) negligible.
    """
    global _last_micros
    with _id_lock:
        micros = max(time.time_ns() // 1000, _last_micros + 1)
        _last_micros = micros
    return (_base32hex(micros, _TIME_CHARS)
            + _base32hex(secrets.randbits(5 * _RANDOM_CHARS), _RANDOM_CHARS))


def is_queue_id(value):
    """True when *value* is shaped like a queue id (so it is a safe file name)."""
    return isinstance(value, str) and _ID_RE.match(value) is not None


def _is_envelope_name(name):
    """A committed envelope's file name: ID.json."""
    return name.endswith(".json") and is_queue_id(name[:-5])


class UnknownEntry(KeyError):
    """No committed queue entry has this id."""


class LoadResult(list):
    """load()'s answer: a list of Envelope, oldest first, plus what was repaired.

    cleaned:   paths of temporary and orphan files removed (or, with
               repair=False, that a repairing load would remove)
    corrupt:   (name, reason) of entries and stray files moved into corrupt/
    recovered: ids whose message was still under its temporary name behind a
               committed envelope and was renamed into place
    """

    def __init__(self, envelopes=()):
        super().__init__(envelopes)
        self.cleaned = []
        self.corrupt = []
        self.recovered = []


@implementer(IStagedEntry)
class StagedEntry:
    """One message on its way into the spool: stage -> write -> publish -> sync dirs.

    The steps are separate so one writer thread can group-commit a batch:
    write() every entry (its files made durable with the round's), publish() every entry,
    then sync_dir() each directory of directories() once for the whole batch.
    """

    def __init__(self, spool, envelope, data):
        self.spool = spool
        self.envelope = envelope
        self.id = envelope.id
        self._data = data
        self._state = "staged"   # -> written -> published | discarded
        self._message_tmp = os.path.join(spool.messages_dir, self.id + ".tmp")
        self._envelope_tmp = os.path.join(spool.envelopes_dir, self.id + ".json.tmp")

    def write(self):
        """Write the message and the envelope under temporary names, durably
        (atomic.create_synced)."""
        if self._state != "staged":
            raise RuntimeError("entry %s is %s, cannot write" % (self.id, self._state))
        envelope_bytes = self.envelope.to_json().encode("utf-8")
        try:
            create_synced(self._message_tmp, self._data)
            create_synced(self._envelope_tmp, envelope_bytes)
        except BaseException:
            unlink_quietly(self._message_tmp)
            raise
        self._state = "written"

    def publish(self):
        """Rename the message, then the envelope, into place (no directory fsync).

        Order matters: the envelope's rename is the commit point, so the message
        must already be in place when it happens.  On failure both files are
        taken back out and the error re-raised: the entry is then not queued.
        """
        if self._state != "written":
            raise RuntimeError("entry %s is %s, cannot publish" % (self.id, self._state))
        message_path = self.spool.message_path(self.id)
        try:
            os.rename(self._message_tmp, message_path)       # 1. message
            os.rename(self._envelope_tmp, self.spool.envelope_path(self.id))  # 2. commit
        except BaseException:
            unlink_quietly(message_path)
            unlink_quietly(self._message_tmp)
            unlink_quietly(self._envelope_tmp)
            self._state = "discarded"
            raise
        self._state = "published"

    def directories(self):
        """Directories to fsync (once per batch, in this order) before acknowledging."""
        return (self.spool.messages_dir, self.spool.envelopes_dir)

    def settle(self):
        """Nothing waits for the fsyncs but the 250."""

    def discard(self):
        """Remove the temporary files; after publish(), take the entry back out.

        A writer whose batch directory fsync failed calls this before answering
        4xx, so the client's retry does not produce a second copy.  The envelope
        goes first so a crash midway leaves only an orphan message (cleaned).
        """
        if self._state == "published":
            unlink_quietly(self.spool.envelope_path(self.id))
            unlink_quietly(self.spool.message_path(self.id))
        unlink_quietly(self._envelope_tmp)
        unlink_quietly(self._message_tmp)
        self._state = "discarded"


@implementer(ICommitJob)
class EnvelopeRewrite:
    """A new version of a committed envelope: temporary file (durable), renamed over the old.

    A crash leaves either the old or the new envelope, so at worst the last attempt's outcome
    is lost and that delivery is repeated.
    """

    def __init__(self, spool, envelope):
        self.path = spool.envelope_path(envelope.id)
        self.id = envelope.id
        self._data = envelope.to_json().encode("utf-8")
        self._directory = spool.envelopes_dir
        self._tmp = "%s.tmp.%s" % (self.path, secrets.token_hex(8))

    def write(self):
        if not os.path.exists(self.path):
            raise UnknownEntry(self.id)
        create_synced(self._tmp, self._data)

    def publish(self):
        # Checked again: a removal in the same batch may have come after write().
        if not os.path.exists(self.path):
            raise UnknownEntry(self.id)
        os.rename(self._tmp, self.path)

    def directories(self):
        return (self._directory,)

    def settle(self):
        """Nothing waits for the fsync but the runner."""

    def discard(self):
        """Only the temporary file can be taken back; a published version stays (it is whole)."""
        unlink_quietly(self._tmp)


@implementer(ICommitJob)
class EntryRemoval:
    """An entry leaving the spool: its envelope is unlinked and that made durable, then its
    message.  A crash in between leaves an orphan message, which load() removes; the reverse
    order could leave an envelope without message, which load() would move aside."""

    def __init__(self, spool, queue_id):
        self.id = queue_id
        self._envelope_path = spool.envelope_path(queue_id)
        self._message_path = spool.message_path(queue_id)
        self._directory = spool.envelopes_dir

    def write(self):
        """Nothing new to write; only checks the entry is there."""
        if not os.path.exists(self._envelope_path):
            raise UnknownEntry(self.id)

    def publish(self):
        try:
            os.unlink(self._envelope_path)
        except FileNotFoundError:
            raise UnknownEntry(self.id) from None

    def directories(self):
        return (self._directory,)

    def settle(self):
        unlink_quietly(self._message_path)

    def discard(self):
        """An unlink cannot be taken back; the entry is gone or (unlink failed) still there."""


@implementer(ISpool)
class Spool:
    """The queue directory DATA/queue (see the module docstring for its layout)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.messages_dir = os.path.join(self.path, "messages")
        self.envelopes_dir = os.path.join(self.path, "envelopes")
        self.corrupt_dir = os.path.join(self.path, "corrupt")
        self._watchers = []
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        created = False
        for directory in (self.messages_dir, self.envelopes_dir, self.corrupt_dir):
            if not os.path.isdir(directory):
                os.mkdir(directory, 0o700)
                created = True
        if created:
            sync_dir(self.path)

    # -- paths ---------------------------------------------------------------

    def _check_id(self, queue_id):
        if not is_queue_id(queue_id):
            raise ValueError("not a queue id: %r" % (queue_id,))
        return queue_id

    def message_path(self, queue_id):
        """Path of the message file of *queue_id* (whether or not it exists)."""
        return os.path.join(self.messages_dir, self._check_id(queue_id))

    def envelope_path(self, queue_id):
        """Path of the envelope file of *queue_id* (whether or not it exists)."""
        return os.path.join(self.envelopes_dir, self._check_id(queue_id) + ".json")

    # -- hearing of new entries ----------------------------------------------

    def watch(self, callback):
        """Call *callback(envelope)* for each entry announce()d from now on (the runner does)."""
        self._watchers.append(callback)

    def announce(self, envelope):
        """The entry of *envelope* is committed: tell the watchers (in the reactor thread)."""
        for callback in self._watchers:
            callback(envelope)

    # -- writing new entries -------------------------------------------------

    def new_id(self):
        """A fresh queue id, for a caller that names the message before staging it."""
        return new_queue_id()

    def stage(self, sender, recipients, data, received_from=None, arrival=None,
              entry_id=None):
        """Prepare an entry in memory and return its StagedEntry.

        *entry_id* (from new_id()) lets the SMTP server use the id in its
        Received header and log lines before the entry exists; by default a
        new one is made.  The only I/O is checking that a given id is unused.
        """
        if isinstance(recipients, (str, bytes)):
            raise TypeError("recipients must be a list of addresses, not one str")
        recipients = list(recipients)
        if not recipients:
            raise ValueError("a queue entry needs at least one recipient")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("message data must be bytes")
        if entry_id is None:
            entry_id = new_queue_id()
        elif os.path.lexists(self.envelope_path(entry_id)):   # also checks its shape
            raise ValueError("queue id %s is already in use" % (entry_id,))
        envelope = Envelope(
            id=entry_id, sender=sender,
            recipients=[RecipientState(address) for address in recipients],
            arrival=time.time() if arrival is None else arrival,
            received_from=dict(received_from) if received_from is not None else None)
        envelope.validate()
        return StagedEntry(self, envelope, data)

    def add(self, sender, recipients, data, received_from=None, arrival=None):
        """Queue one message durably (stage, write, publish, fsync dirs); return its id."""
        staged = self.stage(sender, recipients, data, received_from, arrival)
        self._commit_now(staged)
        return staged.id

    @staticmethod
    def _commit_now(job):
        """Commit one ICommitJob in this thread, as a group committer would a batch of one."""
        job.write()
        job.publish()
        try:
            for directory in job.directories():
                sync_dir(directory)
        except BaseException:
            job.discard()
            raise
        job.settle()

    # -- reading ---------------------------------------------------------------

    def read_message(self, queue_id):
        """The message bytes of *queue_id*; UnknownEntry if there is none."""
        try:
            with open(self.message_path(queue_id), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise UnknownEntry(queue_id) from None

    def read_envelope(self, queue_id):
        """The Envelope of *queue_id*; UnknownEntry if absent, CorruptEntry if damaged."""
        path = self.envelope_path(queue_id)
        try:
            with open(path, "rb") as f:
                text = f.read()
        except FileNotFoundError:
            raise UnknownEntry(queue_id) from None
        envelope = Envelope.from_json(text, path)
        if envelope.id != queue_id:
            raise CorruptEntry(path, "envelope id %r does not match its file name"
                               % (envelope.id,))
        return envelope

    def committed_ids(self):
        """The ids of the committed entries, oldest first (a queue id begins with its time);
        nothing read but the directory."""
        return sorted(name[:-5] for name in os.listdir(self.envelopes_dir) if _is_envelope_name(name))

    def load(self, repair=True):
        """Every committed entry as a LoadResult (a list of Envelope, oldest first).

        Survives a crash at any instant of stage/publish/update/remove/move_aside:
        temporary files and messages without envelope are removed, an envelope
        whose message is missing or that does not parse is moved into corrupt/.
        Never raises for a bad entry.  With repair=False nothing on disk changes
        (for use while a writer is live); the result reports what would be done.
        """
        result = LoadResult()
        envelope_ids, message_ids, message_tmps = [], set(), set()
        touched = set()   # directories whose entries we changed: fsync at the end

        def clean(path):
            result.cleaned.append(path)
            if repair:
                unlink_quietly(path)
                touched.add(os.path.dirname(path))

        def stray(directory, name, reason):
            if repair:
                try:
                    self._move_stray(directory, name)
                except OSError as e:
                    reason += " (could not move it aside: %s)" % (e,)
                touched.update((directory, self.corrupt_dir))
            result.corrupt.append((name, reason))

        for name in sorted(os.listdir(self.envelopes_dir)):
            if _is_envelope_name(name):
                envelope_ids.append(name[:-5])
            elif _ENVELOPE_TMP_RE.match(name):
                # An unpublished write or an interrupted update: the committed
                # envelope (if any) is still the previous complete version.
                clean(os.path.join(self.envelopes_dir, name))
            else:
                stray(self.envelopes_dir, name, "unexpected file in envelopes/")
        for name in sorted(os.listdir(self.messages_dir)):
            if is_queue_id(name):
                message_ids.add(name)
            elif _MESSAGE_TMP_RE.match(name):
                message_tmps.add(name[:-4])
            else:
                stray(self.messages_dir, name, "unexpected file in messages/")

        for queue_id in envelope_ids:
            try:
                envelope = self.read_envelope(queue_id)
            except UnknownEntry:
                continue          # removed meanwhile by a live runner (repair=False)
            except (CorruptEntry, OSError, ValueError) as e:
                reason = e.reason if isinstance(e, CorruptEntry) else str(e)
                self._report_aside(result, queue_id, reason, repair)
                message_ids.discard(queue_id)
                continue
            if queue_id not in message_ids:
                if queue_id in message_tmps:
                    # Committed envelope, but the message's rename did not reach
                    # the disk (its directory was not yet fsynced): its temp was
                    # fsynced before publish began, so finish the rename.
                    result.recovered.append(queue_id)
                    message_tmps.discard(queue_id)
                    if repair:
                        os.rename(os.path.join(self.messages_dir, queue_id + ".tmp"),
                                  self.message_path(queue_id))
                        touched.add(self.messages_dir)
                else:
                    self._report_aside(result, queue_id, "message file missing", repair)
                    continue
            message_ids.discard(queue_id)
            result.append(envelope)

        # Messages with no envelope never committed (crash between the renames)
        # or were being removed (remove() deletes the envelope first).
        for queue_id in sorted(message_ids):
            clean(self.message_path(queue_id))
        for queue_id in sorted(message_tmps):
            clean(os.path.join(self.messages_dir, queue_id + ".tmp"))
        for directory in sorted(touched):
            sync_dir(directory)
        result.sort(key=lambda envelope: (envelope.arrival, envelope.id))
        return result

    def _report_aside(self, result, queue_id, reason, repair):
        if repair:
            try:
                self.move_aside(queue_id, reason)   # fsyncs its own directories
            except OSError as e:
                # Leave it where it is (still not loaded); the next load retries.
                reason += " (could not move it aside: %s)" % (e,)
        result.corrupt.append((queue_id, reason))

    # -- updating --------------------------------------------------------------

    def update(self, envelope):
        """Rewrite *envelope* atomically and durably (see EnvelopeRewrite)."""
        self._commit_now(self.rewrite(envelope))

    def rewrite(self, envelope):
        """The rewrite of *envelope* as a job for a group committer."""
        return EnvelopeRewrite(self, envelope)

    def remove(self, queue_id):
        """Delete an entry, envelope first (durably), then the message (see EntryRemoval)."""
        self._commit_now(self.removal(queue_id))

    def removal(self, queue_id):
        """The removal of *queue_id* as a job for a group committer."""
        return EntryRemoval(self, queue_id)

    def move_aside(self, queue_id, reason):
        """Move an entry into corrupt/ with a <id>.reason file; it is never retried.

        Order: the reason, then the message, then the envelope, each durable
        before the next, so a crash midway never leaves a message without its
        envelope in messages/ (load() would delete it as an orphan).
        """
        message_path = self.message_path(queue_id)
        envelope_path = self.envelope_path(queue_id)
        if not (os.path.lexists(message_path) or os.path.lexists(envelope_path)):
            raise UnknownEntry(queue_id)
        reason_path = os.path.join(self.corrupt_dir, queue_id + ".reason")
        try:
            with open(reason_path, "rb") as f:
                previous = f.read()
        except FileNotFoundError:
            previous = b""
        line = ("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             " ".join(str(reason).split()))).encode("utf-8", "replace")
        atomic_replace(reason_path, previous + line)
        for source, directory, target in (
                (message_path, self.messages_dir, queue_id),
                (envelope_path, self.envelopes_dir, queue_id + ".json")):
            if os.path.lexists(source):
                os.rename(source, os.path.join(self.corrupt_dir, target))
                sync_dir(self.corrupt_dir)
                sync_dir(directory)

    def _move_stray(self, directory, name):
        """Move an unexpected file into corrupt/ under a name not yet taken."""
        target = os.path.join(self.corrupt_dir, name)
        while os.path.lexists(target):
            target = os.path.join(self.corrupt_dir, "%s.%s" % (name, secrets.token_hex(4)))
        os.rename(os.path.join(directory, name), target)
