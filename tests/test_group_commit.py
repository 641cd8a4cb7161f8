"""Group commit: a message is stored for all its recipients or for none; queue removals share
the fsyncs and take the message only once the envelope's removal is durable."""

import os
import queue
import shutil
import threading
import time

import pytest
from twisted.internet import defer

from mailbox_appliance import atomic, group_commit
from mailbox_appliance.accounts.directory import Resolution
from mailbox_appliance.delivery import Delivery, MaildirJob
from mailbox_appliance.group_commit import GroupCommitter
from mailbox_appliance.maildir.layout import create_user_maildir
from mailbox_appliance.queue.spool import Spool, UnknownEntry
from mailbox_appliance.quota import Quotas


class _InlineReactor:
    """Runs the writer's answers at once (the real reactor hops threads with callFromThread)."""

    def callFromThread(self, function, *args):
        function(*args)


def _outcome(result):
    box = []
    result.addBoth(box.append)
    return box[0]


def test_a_message_that_cannot_be_published_everywhere_is_taken_back(tmp_path):
    good, broken = str(tmp_path / "alice"), str(tmp_path / "bob")
    create_user_maildir(good)
    create_user_maildir(broken)
    shutil.rmtree(os.path.join(broken, "new"))          # bob's publish (rename into new/) fails
    committer = GroupCommitter(_InlineReactor())
    failing, fine = defer.Deferred(), defer.Deferred()
    committer._commit([([MaildirJob(good, b"one\r\n", "h"), MaildirJob(broken, b"one\r\n", "h")], failing),
                       ([MaildirJob(good, b"two\r\n", "h")], fine)])
    assert _outcome(failing).check(OSError)
    assert _outcome(fine) is None
    stored = [open(os.path.join(good, "new", name), "rb").read() for name in os.listdir(os.path.join(good, "new"))]
    assert stored == [b"two\r\n"]                       # alice's copy of "one" was taken back out
    assert os.listdir(os.path.join(good, "tmp")) == [] and os.listdir(os.path.join(broken, "tmp")) == []


def test_a_message_that_cannot_be_written_everywhere_leaves_nothing(tmp_path):
    good, broken = str(tmp_path / "alice"), str(tmp_path / "bob")
    create_user_maildir(good)
    create_user_maildir(broken)
    shutil.rmtree(os.path.join(broken, "tmp"))          # bob's write (into tmp/) fails
    failing = defer.Deferred()
    GroupCommitter(_InlineReactor())._commit(
        [([MaildirJob(good, b"one\r\n", "h"), MaildirJob(broken, b"one\r\n", "h")], failing)])
    assert _outcome(failing).check(OSError)
    assert os.listdir(os.path.join(good, "tmp")) == [] and os.listdir(os.path.join(good, "new")) == []


def test_queue_removals_share_one_commit_and_the_message_goes_only_once_that_is_durable(tmp_path, monkeypatch):
    spool = Spool(str(tmp_path / "queue"))
    first, second = (spool.add("a@example.test", ["b@example.org"], b"m") for _ in range(2))
    committer = GroupCommitter(_InlineReactor())
    synced = []

    def sync_dir(path):
        synced.append(path)
        # At the fsync the envelopes are gone and the messages still there (settle() comes after).
        assert not os.path.exists(spool.envelope_path(first)) and os.path.exists(spool.message_path(first))
    monkeypatch.setattr("mailbox_appliance.group_commit.sync_dir", sync_dir)
    one, two = defer.Deferred(), defer.Deferred()
    committer._commit([([spool.removal(first)], one), ([spool.removal(second)], two)])
    assert _outcome(one) is None and _outcome(two) is None
    assert synced == [spool.envelopes_dir]                  # one fsync for both removals
    assert os.listdir(spool.messages_dir) == [] and os.listdir(spool.envelopes_dir) == []


def test_a_removal_whose_fsync_fails_keeps_the_message(tmp_path, monkeypatch):
    spool = Spool(str(tmp_path / "queue"))
    queue_id = spool.add("a@example.test", ["b@example.org"], b"m")

    def sync_dir(path):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr("mailbox_appliance.group_commit.sync_dir", sync_dir)
    result = defer.Deferred()
    GroupCommitter(_InlineReactor())._commit([([spool.removal(queue_id)], result)])
    assert _outcome(result).check(OSError)
    # Not known to be durable: the message stays until a load() finds it orphaned, or the retry
    # of the attempt finds the entry gone.
    assert os.listdir(spool.messages_dir) == [queue_id]


def test_a_round_whose_files_cannot_be_made_durable_stores_none_of_them(tmp_path, monkeypatch):
    if _syncfs_here(str(tmp_path)):
        pytest.skip(_syncfs_here(str(tmp_path)))
    data_dir = str(tmp_path / "data")
    maildir = os.path.join(data_dir, "mail", "example.test", "alice")
    create_user_maildir(maildir)
    spool = Spool(os.path.join(data_dir, "queue"))

    def sync_filesystem(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(atomic, "sync_filesystem", sync_filesystem)
    local, remote = defer.Deferred(), defer.Deferred()
    GroupCommitter(_InlineReactor())._commit([([MaildirJob(maildir, b"m\r\n", "mail.example.test")], local),
                                             ([spool.stage("a@example.test", ["b@example.org"], b"m")], remote)])
    assert _outcome(local).check(OSError) and _outcome(remote).check(OSError)
    assert [os.listdir(os.path.join(maildir, part)) for part in ("tmp", "new")] == [[], []]
    assert os.listdir(spool.messages_dir) == [] and os.listdir(spool.envelopes_dir) == []


def test_syncfs_is_trusted_only_where_it_keeps_every_file():
    if atomic._SYNCFS is None:
        pytest.skip(_syncfs_here("/"))
    assert atomic._SYNCFS_KEEPS_FILES >= {0xEF53, 0x58465342}      # ext4, XFS
    fd = os.open("/proc", os.O_RDONLY)       # a file system not on the list
    try:
        assert not atomic._syncfs_keeps_files(fd)
    finally:
        os.close(fd)


def test_rewrite_and_removal_of_an_entry_that_is_gone(tmp_path):
    spool = Spool(str(tmp_path / "queue"))
    queue_id = spool.add("a@example.test", ["b@example.org"], b"m")
    envelope = spool.read_envelope(queue_id)
    spool.remove(queue_id)
    committer = GroupCommitter(_InlineReactor())
    rewrite, removal = defer.Deferred(), defer.Deferred()
    committer._commit([([spool.rewrite(envelope)], rewrite), ([spool.removal(queue_id)], removal)])
    assert _outcome(rewrite).check(UnknownEntry) and _outcome(removal).check(UnknownEntry)
    assert os.listdir(spool.envelopes_dir) == []             # the rewrite left no temporary file


def test_a_rewrite_after_a_removal_in_the_same_batch_does_not_bring_the_entry_back(tmp_path):
    spool = Spool(str(tmp_path / "queue"))
    queue_id = spool.add("a@example.test", ["b@example.org"], b"m")
    envelope = spool.read_envelope(queue_id)
    removal, rewrite = defer.Deferred(), defer.Deferred()
    # Every write() of a batch runs before any publish(): the rewrite's first check passes.
    GroupCommitter(_InlineReactor())._commit([([spool.removal(queue_id)], removal),
                                              ([spool.rewrite(envelope)], rewrite)])
    assert _outcome(removal) is None and _outcome(rewrite).check(UnknownEntry)
    assert os.listdir(spool.envelopes_dir) == [] and os.listdir(spool.messages_dir) == []


# -- durability ordering: the Deferred fires only once everything it acknowledges is on disk ----

class _ThreadHopReactor:
    """callFromThread queues the call for the test's thread (as the real reactor would run it in
    the reactor thread) and notes the moment it was asked: from then on the 250 may go out."""

    def __init__(self, events):
        self.events = events
        self.calls = queue.Queue()

    def callFromThread(self, function, *args):
        self.events.append(("callFromThread",))
        self.calls.put((function, args))

    def addSystemEventTrigger(self, *args, **kwargs):
        pass

    def run_until_fired(self, deferred, timeout=10):
        """Run the queued calls in this thread until *deferred* has fired; at most *timeout* s."""
        deadline = time.monotonic() + timeout
        while not deferred.called:
            function, args = self.calls.get(timeout=max(0.0, deadline - time.monotonic()))
            function(*args)


def _record_durability_calls(monkeypatch, events):
    """Wrap os.fsync, os.rename, atomic's write_all and sync_filesystem, and group_commit's
    sync_dir: each call goes through to the real function and is recorded, once it has
    returned, with the paths (or the file system) it concerned."""
    real_fsync, real_rename = os.fsync, os.rename
    real_sync_dir, real_write_all, real_sync_filesystem = group_commit.sync_dir, atomic.write_all, atomic.sync_filesystem

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd if isinstance(fd, int) else fd.fileno()}")
        result = real_fsync(fd)
        events.append(("fsync", path))
        return result

    def write_all(fd, data):
        result = real_write_all(fd, data)
        events.append(("written", os.readlink(f"/proc/self/fd/{fd}")))
        return result

    def sync_filesystem(fd):
        result = real_sync_filesystem(fd)
        events.append(("syncfs", os.fstat(fd).st_dev))
        return result

    def rename(source, target, *args, **kwargs):
        result = real_rename(source, target, *args, **kwargs)
        events.append(("rename", os.path.realpath(os.path.dirname(os.fspath(source))) + "/" + os.path.basename(source),
                       os.path.realpath(os.path.dirname(os.fspath(target))) + "/" + os.path.basename(target)))
        return result

    def sync_dir(path):
        result = real_sync_dir(path)
        events.append(("sync_dir", os.path.realpath(path)))
        return result

    # atomic.py and maildir/new_mail.py call os.fsync / os.rename through the os module, and
    # write_all and sync_filesystem through atomic's globals; group_commit.py imported sync_dir
    # by name.
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(atomic, "write_all", write_all)
    monkeypatch.setattr(atomic, "sync_filesystem", sync_filesystem)
    monkeypatch.setattr(group_commit, "sync_dir", sync_dir)


def _at(events, event, after=0):
    """Index of *event* in *events* (the first time it happened, from *after* on); fails naming
    what happened."""
    assert event in events[after:], f"{event} never happened (after event {after}); events: {events}"
    return events.index(event, after)


def _syncfs_here(directory):
    """Why a round cannot syncfs in *directory*, or None when it can."""
    if atomic._SYNCFS is None:
        return "syncfs(2) reports every error from Linux 5.17 on; the writer fsyncs each file here"
    fd = os.open(directory, os.O_RDONLY)
    try:
        if not atomic._syncfs_keeps_files(fd):
            return f"{directory} is on a file system whose files the writer fsyncs one by one"
    finally:
        os.close(fd)
    return None


@pytest.fixture(params=["syncfs", "fsync, a round of one", "fsync, no syncfs"])
def durability(request, monkeypatch, tmp_path):
    """How the writer makes a round's files durable: one syncfs per file system for a round of
    several jobs; an fsync per file for a round of one, or where syncfs would not do."""
    if request.param == "fsync, no syncfs":
        monkeypatch.setattr(atomic, "_SYNCFS", None)
    elif _syncfs_here(str(tmp_path)):
        pytest.skip(_syncfs_here(str(tmp_path)))
    return request.param


def _durable(events, path, durability):
    """Index of the event after which the file *path* (still in its temporary place) is durable."""
    if durability != "syncfs":
        assert not any(event[0] == "syncfs" for event in events), events
        return _at(events, ("fsync", path))
    assert ("fsync", path) not in events, events
    return _at(events, ("syncfs", os.stat(os.path.dirname(path)).st_dev), after=_at(events, ("written", path)))


@pytest.mark.parametrize("where", ["local", "remote", "local and remote"])
def test_the_deferred_fires_only_after_files_renames_and_directories_are_durable(tmp_path, monkeypatch, where,
                                                                                  durability):
    data_dir = os.path.realpath(tmp_path / "data")
    spool = Spool(os.path.join(data_dir, "queue"))
    events = []
    reactor = _ThreadHopReactor(events)
    committer = GroupCommitter(reactor)
    delivery = Delivery(data_dir, "mail.example.test", None, spool, committer, Quotas(data_dir, None, None, reactor))
    spool.watch(lambda envelope: events.append(("on_queued", envelope.id)))
    if durability == "fsync, a round of one" and where == "local and remote":
        durability = "syncfs"           # the local copy and the spool entry: a round of two jobs
    local = ("alice@example.test",) if "local" in where else ()
    # A round of one job is fsynced file by file: with syncfs, bob's copy makes it two.
    local += ("bob@example.test",) if durability == "syncfs" else ()
    remote = ("friend@remote.test",) if "remote" in where else ()
    maildir = os.path.join(data_dir, "mail", "example.test", "alice")
    for user in local:                  # as delivery would on first use; not what is under test
        create_user_maildir(os.path.join(data_dir, "mail", "example.test", user.partition("@")[0]))
    message = b"Subject: durable\r\n\r\nHello.\r\n"
    _record_durability_calls(monkeypatch, events)
    queue_id = delivery.new_id()
    fired_in = []
    try:
        result = delivery.deliver(queue_id, "someone@remote.test",
                                  [("x@example.test", Resolution(local, remote))], message,
                                  {"client": "127.0.0.1"}, crlf_only=True)
        result.addBoth(lambda outcome: (events.append(("fired", outcome)), fired_in.append(threading.get_ident())))
        reactor.run_until_fired(result)
    finally:
        committer.stop()
    fired = _at(events, ("fired", None))       # fired, and with success
    assert fired_in == [threading.get_ident()]  # in the reactor's thread, not the writer's
    # The writer asked for the callback only after every durable step: callFromThread is the
    # moment the 250 may go out, whichever thread then runs it.
    scheduled = _at(events, ("callFromThread",))
    assert scheduled < fired

    if "local" in where:
        [name] = os.listdir(os.path.join(maildir, "new"))
        tmp_file, new_file = os.path.join(maildir, "tmp", name), os.path.join(maildir, "new", name)
        with open(new_file, "rb") as handle:
            assert handle.read() == b"Return-Path: <someone@remote.test>\r\n" + message
        new_dir = os.path.join(maildir, "new")
        synced_file = _durable(events, tmp_file, durability)
        renamed = _at(events, ("rename", tmp_file, new_file))
        synced_dir = _at(events, ("sync_dir", new_dir))
        assert ("fsync", new_dir) in events[renamed:synced_dir]  # sync_dir really fsynced new/
        assert synced_file < renamed < synced_dir < scheduled < fired, events

    if remote:
        message_tmp = os.path.join(spool.messages_dir, queue_id + ".tmp")
        envelope_tmp = os.path.join(spool.envelopes_dir, queue_id + ".json.tmp")
        message_file, envelope_file = spool.message_path(queue_id), spool.envelope_path(queue_id)
        assert spool.read_message(queue_id) == message
        assert [r.address for r in spool.read_envelope(queue_id).recipients] == ["friend@remote.test"]
        synced_message = _durable(events, message_tmp, durability)
        synced_envelope = _durable(events, envelope_tmp, durability)
        renamed_message = _at(events, ("rename", message_tmp, message_file))
        renamed_envelope = _at(events, ("rename", envelope_tmp, envelope_file))   # the commit point
        synced_messages_dir = _at(events, ("sync_dir", spool.messages_dir))
        synced_envelopes_dir = _at(events, ("sync_dir", spool.envelopes_dir))
        assert max(synced_message, synced_envelope) < renamed_message < renamed_envelope, events
        assert renamed_envelope < min(synced_messages_dir, synced_envelopes_dir), events
        assert max(synced_messages_dir, synced_envelopes_dir) < scheduled < fired, events
        # The queue runner hears of the entry only once it is durable.
        assert max(synced_messages_dir, synced_envelopes_dir) < _at(events, ("on_queued", queue_id)), events
