"""Group commit: a message is stored for all its recipients or for none."""

import os
import shutil

from twisted.internet import defer

from mailbox_appliance.delivery import MaildirJob
from mailbox_appliance.group_commit import GroupCommitter
from mailbox_appliance.maildir.layout import create_user_maildir


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
