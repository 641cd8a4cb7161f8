"""The shared folder state (maildir/mailbox.py), driven with a fake clock: no sockets, no sleeps."""

import os

from twisted.internet import defer
from twisted.internet.task import Clock
from zope.interface import implementer

from mailbox_appliance.maildir import new_mail, layout
from mailbox_appliance.interfaces import IFolderListener
from mailbox_appliance.maildir.mailbox import POLL_INTERVAL_SECONDS, Folder
from mailbox_appliance.maildir.uidlist import RESERVATION, UidList

from commit_now import CommitNow


@implementer(IFolderListener)
class Recorder:
    def __init__(self):
        self.events = []

    def messages_added(self, uids, recent):
        self.events.append(("added", uids, sorted(recent)))

    def messages_expunged(self, uids):
        self.events.append(("expunged", uids))

    def flags_changed(self, uids):
        self.events.append(("flags", uids))


def maildir(tmp_path, count=0):
    path = str(tmp_path / "alice")
    layout.create_user_maildir(path)
    for number in range(count):
        new_mail.store(path, b"Subject: %d\n\nbody\n" % number)
    return path


def test_opening_moves_new_to_cur_and_saves_uids(tmp_path):
    path = maildir(tmp_path, 3)
    folder = Folder(path, Clock())
    assert list(folder.messages) == [1, 2, 3]
    assert os.listdir(os.path.join(path, "new")) == []
    assert all(name.endswith(":2,") for name in os.listdir(os.path.join(path, "cur")))
    assert UidList.load(path).uids() == [1, 2, 3]
    assert folder.add_listener(Recorder()) == {1, 2, 3}         # \Recent, to the first session


def test_new_mail_and_outside_changes_reach_listeners_on_the_next_poll(tmp_path):
    path = maildir(tmp_path, 1)
    clock = Clock()
    folder = Folder(path, clock)
    first, second = Recorder(), Recorder()
    folder.add_listener(first)
    folder.add_listener(second)
    new_mail.store(path, b"Subject: late\n\nbody\n")
    clock.advance(POLL_INTERVAL_SECONDS)
    assert first.events == [("added", [2], [2])] and second.events == [("added", [2], [])]
    cur = os.path.join(path, "cur")
    name = folder.messages[1].file_name
    os.rename(os.path.join(cur, name), os.path.join(cur, name + "S"))   # another program sets \Seen
    os.utime(cur, ns=(0, 0))                                            # even within one mtime tick
    clock.advance(POLL_INTERVAL_SECONDS)
    assert first.events[-1] == ("flags", [1]) and folder.messages[1].letters == "S"


def test_changes_tell_everyone_but_their_origin(tmp_path):
    path = maildir(tmp_path, 2)
    clock = Clock()
    folder = Folder(path, clock)
    actor, watcher = Recorder(), Recorder()
    folder.add_listener(actor)
    folder.add_listener(watcher)
    assert folder.set_letters([1, 2], {"T"}, 1, origin=actor) == [1, 2]
    assert folder.expunge([2], origin=actor) == [2]
    assert actor.events == [] and watcher.events == [("flags", [1, 2]), ("expunged", [2])]
    assert UidList.load(path).uids() == [1, 2]          # EXPUNGE writes nothing at once...
    clock.advance(POLL_INTERVAL_SECONDS)
    assert UidList.load(path).uids() == [1]             # ...the next poll saves the UID list


def test_an_expunge_whose_uid_list_was_not_saved_is_finished_at_the_next_open(tmp_path):
    path = maildir(tmp_path, 3)
    folder = Folder(path, Clock())
    folder.set_letters([2], {"T"}, 1)
    assert folder.expunge() == [2]
    # A crash now: the file is gone, the UID list on disk still lists it.
    assert UidList.load(path).uids() == [1, 2, 3]
    reopened = Folder(path, Clock())
    assert list(reopened.messages) == [1, 3]
    on_disk = UidList.load(path)
    assert on_disk.uids() == [1, 3] and on_disk.next_uid > 3      # UID 2 is never given again


def test_a_name_without_w_is_measured_once_and_cached(tmp_path):
    path = maildir(tmp_path)
    with open(os.path.join(path, "new", "1700000000.foreign"), "wb") as handle:
        handle.write(b"Subject: x\n\nbody\n")
    folder = Folder(path, Clock())
    assert folder.rfc822_size(folder.messages[1]) == 20
    folder.save()
    assert UidList.load(path).get_extension(1, "W") == "20"


def test_append_and_copy_keep_flags_keywords_and_date(tmp_path):
    path = maildir(tmp_path)
    inbox = Folder(path, Clock(), committer=CommitNow())
    [uid] = inbox.append([(b"Subject: x\r\n\r\nbody\r\n", inbox.flag_letters(["\\Seen", "$Work"]), 1_000_000_000)]).result
    archive = Folder(os.path.join(path, ".Archive"), Clock())
    [copied] = archive.copy_in(inbox, [inbox.messages[uid]])
    message = archive.messages[copied]
    assert message.letters == "Sa" and archive.keywords.keyword_for("a") == "$Work"
    assert archive.internal_date(message) == 1_000_000_000


def test_append_adds_one_record_to_the_uid_list_without_rewriting_it(tmp_path):
    path = maildir(tmp_path, 1)
    folder = Folder(path, Clock(), committer=CommitNow())
    uidlist_path = os.path.join(path, "dovecot-uidlist")
    before = open(uidlist_path).read()
    inode = os.stat(uidlist_path).st_ino
    [uid] = folder.append([(b"Subject: appended\r\n\r\nbody\r\n", set(), None)]).result
    after = open(uidlist_path).read()
    assert os.stat(uidlist_path).st_ino == inode and after.startswith(before)
    assert after[len(before):] == "%d :%s\n" % (uid, folder.messages[uid].base)
    assert UidList.load(path).uids() == [1, uid]


def test_a_uid_whose_record_a_crash_lost_is_never_given_again(tmp_path):
    """APPEND's UID list records are not flushed (uidlist.py, the reservation): a crash may lose
    them, and then the files are numbered again from the reserved N, above any UID shown."""
    path = maildir(tmp_path, 1)
    folder = Folder(path, Clock(), committer=CommitNow())
    uidlist_path = os.path.join(path, "dovecot-uidlist")
    [first] = folder.append([(b"Subject: one\r\n\r\nbody\r\n", set(), None)]).result
    before = open(uidlist_path).read()
    [second] = folder.append([(b"Subject: two\r\n\r\nbody\r\n", set(), None)]).result
    assert open(uidlist_path).read().startswith(before) and (first, second) == (2, 3)
    with open(uidlist_path, "w") as handle:          # the crash: the second record is lost
        handle.write(before)
    reopened = Folder(path, Clock())
    assert list(reopened.messages)[:2] == [1, 2] and min(list(reopened.messages)[2:]) >= 2 + RESERVATION
    assert reopened.messages[next(reversed(reopened.messages))].base == folder.messages[second].base


def test_a_clean_stop_writes_the_exact_next_uid(tmp_path):
    path = maildir(tmp_path, 1)
    folder = Folder(path, Clock(), committer=CommitNow())
    folder.append([(b"Subject: one\r\n\r\nbody\r\n", set(), None)])
    assert UidList.load(path).next_uid > 3
    folder.save_clean()
    assert UidList.load(path).next_uid == 3 and UidList.load(path).uids() == [1, 2]


def test_new_mail_of_one_second_gets_uids_in_microsecond_order(tmp_path):
    """Unpadded microseconds ("M99999" before "M100000") are compared as numbers, as Dovecot
    does, so UIDs follow the delivery order, not the names' text order."""
    path = maildir(tmp_path)
    delivered = ["1700000000.M99999P7.host", "1700000000.M100000P7.host", "1700000000.M100001P7.host"]
    for base in reversed(delivered):
        with open(os.path.join(path, "new", base), "wb") as handle:
            handle.write(b"Subject: %s\r\n\r\n" % base.encode())
    folder = Folder(path, Clock())
    assert [folder.messages[uid].base for uid in (1, 2, 3)] == delivered


class _HeldCommit:
    """A group committer whose writer thread is slow: the files are written and in cur/, but
    the commit has not come back yet."""

    def __init__(self):
        self.pending = None

    def commit(self, jobs):
        for job in jobs:
            job.write()
            job.publish()
        self.pending = defer.Deferred()
        return self.pending


def test_a_poll_during_an_append_leaves_its_file_to_the_append(tmp_path):
    """The appended file is in cur/ before its commit comes back; a poll then must not give it
    a UID of its own (it would be told twice, or numbered twice)."""
    path = maildir(tmp_path, 1)
    clock = Clock()
    committer = _HeldCommit()
    folder = Folder(path, clock, committer=committer)
    watcher = Recorder()
    folder.add_listener(watcher)
    appending = folder.append([(b"Subject: appended\r\n\r\nbody\r\n", {"S"}, None)])
    new_mail.store(path, b"Subject: delivered meanwhile\n\nbody\n")
    clock.advance(POLL_INTERVAL_SECONDS)
    assert list(folder.messages) == [1, 2] and watcher.events == [("added", [2], [2])]
    committer.pending.callback(None)
    assert appending.result == [3]
    assert list(folder.messages) == [1, 2, 3] and watcher.events[1:] == [("added", [3], [3])]
    assert folder.messages[3].letters == "S"
    assert UidList.load(path).uids() == [1, 2, 3]
