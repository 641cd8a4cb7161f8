"""maildir/modseq.py and its use by Folder: the file's clean and dirty states, what a load after
a crash, an outside change or a broken file starts from, and the expunge memory's bounds."""

import os
import time

from twisted.internet.task import Clock

from mailbox_appliance.maildir import layout, modseq
from mailbox_appliance.maildir.mailbox import Folder
from mailbox_appliance.maildir.modseq import MODSEQ_FILE, ModSeqs


def _folder(tmp_path, count=3):
    path = str(tmp_path / "INBOX")
    layout.make_maildir(path)
    for number in range(count):
        (tmp_path / "INBOX" / "new" / ("%d.M%dP1.test,S=5,W=6" % (1_700_000_000 + number, number))).write_bytes(b"x\n\nb\n")
    return path


def _file(path):
    with open(os.path.join(path, MODSEQ_FILE), "rb") as handle:
        return handle.read()


def test_a_clean_save_is_loaded_as_it_was(tmp_path):
    path = _folder(tmp_path)
    folder = Folder(path, Clock())
    folder.set_letters([2], {"S"}, 1)
    folder.expunge([])                # nothing flagged: no change
    before = {uid: m.modseq for uid, m in folder.messages.items()}
    folder.save_clean()
    assert _file(path).startswith(b"1 C H%d " % folder.highest_modseq)
    again = Folder(path, Clock())
    assert {uid: m.modseq for uid, m in again.messages.items()} == before
    assert again.highest_modseq == folder.highest_modseq


def test_the_first_change_after_a_clean_load_marks_the_file_dirty(tmp_path):
    path = _folder(tmp_path)
    Folder(path, Clock()).save_clean()
    folder = Folder(path, Clock())
    folder.set_letters([1], {"F"}, 1)
    assert _file(path) == b"1 R%d\n" % (folder.highest_modseq - 1 + modseq.RESERVATION + 1)
    seen = folder.highest_modseq
    # A crash now: the next load starts above the reservation, every message there.
    crashed = Folder(path, Clock())
    assert crashed.highest_modseq > seen
    assert {m.modseq for m in crashed.messages.values()} == {crashed.highest_modseq}
    assert crashed.modseqs.vanished_since(seen) is None       # expunges since then unknown


def test_an_outside_rename_while_stopped_counts_as_a_change(tmp_path):
    path = _folder(tmp_path)
    folder = Folder(path, Clock())
    folder.save_clean()
    seen = folder.highest_modseq
    cur = os.path.join(path, "cur")
    name = sorted(os.listdir(cur))[0]
    os.rename(os.path.join(cur, name), os.path.join(cur, name + "S"))
    # The rename moved cur/'s mtime; on a coarse clock it could still read the same: move it.
    saved = os.stat(cur)
    os.utime(cur, ns=(saved.st_atime_ns, saved.st_mtime_ns + 1_000_000))
    again = Folder(path, Clock())
    assert min(m.modseq for m in again.messages.values()) > seen


def test_a_broken_file_starts_from_the_time(tmp_path):
    path = _folder(tmp_path)
    with open(os.path.join(path, MODSEQ_FILE), "wb") as handle:
        handle.write(b"1 C Hx\ngarbage\n")
    started = time.time() * 1_000_000
    assert Folder(path, Clock()).highest_modseq >= started


def test_a_new_empty_folder_starts_at_one(tmp_path):
    assert Folder(_folder(tmp_path, count=0), Clock()).highest_modseq == 1


def test_expunge_memory_keeps_30_days_or_100000_whichever_more(tmp_path, monkeypatch):
    monkeypatch.setattr(modseq, "EXPUNGE_MEMORY_COUNT", 3)
    state = ModSeqs(str(tmp_path / MODSEQ_FILE), 100, 1, 1, {}, [], clean=False)
    old = time.time() - modseq.EXPUNGE_MEMORY_SECONDS - 10
    state.expunged = [(10, 1, old), (20, 2, old), (30, 3, old), (40, 4, old), (50, 5, time.time())]
    state.save_clean([], 0)
    # Five remembered, the limit three: the two oldest go (they are older than 30 days too).
    assert [uid for _m, uid, _t in state.expunged] == [3, 4, 5]
    assert state.vanished_since(20) == [3, 4, 5]
    assert state.vanished_since(19) is None
    recent = ModSeqs(str(tmp_path / MODSEQ_FILE), 100, 1, 1, {}, [(m, m, time.time()) for m in range(10, 60, 10)], clean=False)
    recent.save_clean([], 0)
    assert len(recent.expunged) == 5 and recent.vanished_since(1) == [10, 20, 30, 40, 50]
