"""Group commit: a message is stored for all its recipients or for none; queue removals share
the fsyncs and take the message only once the envelope's removal is durable."""

import os
import shutil

from twisted.internet import defer

from mailbox_appliance.delivery import MaildirJob
from mailbox_appliance.group_commit import GroupCommitter
from mailbox_appliance.maildir.layout import create_user_maildir
from mailbox_appliance.queue.spool import Spool, UnknownEntry


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
