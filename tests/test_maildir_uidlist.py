"""dovecot-uidlist: round trip, UID permanence, Dovecot-written files, crashes."""

import os
import time

import pytest

from mailbox_appliance.maildir import uidlist
from mailbox_appliance.maildir.uidlist import RESERVATION, UidList, UidListError


def test_fresh_list(tmp_path):
    before = int(time.time())
    ul = UidList.load(tmp_path)
    assert before <= ul.uidvalidity <= int(time.time())
    assert ul.next_uid == 1
    assert len(ul) == 0
    assert len(ul.guid) == 32
    assert not (tmp_path / "dovecot-uidlist").exists()


def test_round_trip(tmp_path):
    ul = UidList.load(tmp_path)
    got = ul.assign(["a.M1P1.h,S=1,W=1", "b.M2P1.h", "c.M3P1.h"])
    assert got == {"a.M1P1.h,S=1,W=1": 1, "b.M2P1.h": 2, "c.M3P1.h": 3}
    ul.set_extension(2, "W", 2481)
    ul.save()
    text = (tmp_path / "dovecot-uidlist").read_text()
    assert text == ("3 V%d N4 G%s\n1 :a.M1P1.h,S=1,W=1\n2 W2481 :b.M2P1.h\n"
                    "3 :c.M3P1.h\n" % (ul.uidvalidity, ul.guid))
    again = UidList.load(tmp_path)
    assert (again.uidvalidity, again.next_uid, again.guid) == \
        (ul.uidvalidity, 4, ul.guid)
    assert again.items() == ul.items()
    assert again.get_extension(2, "W") == "2481"
    assert again.uid_for("b.M2P1.h:2,S") == 2
    assert again.base_for(3) == "c.M3P1.h"
    assert sorted(os.listdir(tmp_path)) == ["dovecot-uidlist", "dovecot-uidvalidity"]   # no temp files


def test_new_folders_of_one_maildir_never_share_a_uidvalidity(tmp_path):
    values = [UidList.load(tmp_path / ".Sub").uidvalidity for _ in range(5)]
    assert values == sorted(set(values)) and values[0] >= 1_700_000_000
    assert (tmp_path / "dovecot-uidvalidity").read_text() == "%08x\n" % values[-1]
    assert UidList.load(tmp_path).uidvalidity == values[-1] + 1      # INBOX: the root itself


def test_assign_keeps_existing_and_order(tmp_path):
    ul = UidList(tmp_path, uidvalidity=42)
    assert ul.assign(["x", "y"]) == {"x": 1, "y": 2}
    assert ul.assign(["z", "x", "w"]) == {"z": 3, "x": 1, "w": 4}
    assert [u for u, _ in ul.items()] == [1, 2, 3, 4]


def test_uids_never_reused_after_remove(tmp_path):
    ul = UidList.load(tmp_path)
    ul.assign(["a", "b", "c"])
    ul.remove(["c", "b", "not-there"])
    ul.save()
    ul = UidList.load(tmp_path)
    assert ul.items() == [(1, "a")]
    assert ul.next_uid == 4
    assert ul.assign(["b"]) == {"b": 4}
    assert ul.uid_for("c") is None


DOVECOT_FILE = (
    # Header and records as in doc.dovecot.org's Maildir page; the second
    # record carries a W extension and, as older Dovecots wrote, the :2, info.
    "3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1\n"
    "25006 :1276528487.M364837P9451.kurkku,S=1355,W=1394:2,\n"
    "25017 W2481 :1276533073.M242911P3632.kurkku:2,F\n"
    "25020 :1655390418.M100238P743770V0000000000000030I00000000081274AE_0"
    ".cp.example.ch,S=3734\n"
)


def test_reads_dovecot_file(tmp_path):
    (tmp_path / "dovecot-uidlist").write_text(DOVECOT_FILE)
    ul = UidList.load(tmp_path)
    assert ul.uidvalidity == 1275660208
    assert ul.next_uid == 25022
    assert ul.guid == "3085f01b7f11094c501100008c4a11c1"
    assert ul.uids() == [25006, 25017, 25020]
    assert ul.uid_for("1276528487.M364837P9451.kurkku,S=1355,W=1394") == 25006
    assert ul.uid_for("1276533073.M242911P3632.kurkku:2,FS") == 25017
    assert ul.get_extension(25017, "W") == "2481"
    assert ul.assign(["new.M1P1.h"]) == {"new.M1P1.h": 25022}
    ul.save()
    text = (tmp_path / "dovecot-uidlist").read_text()
    assert text.splitlines()[:3] == [
        "3 V1275660208 N25023 G3085f01b7f11094c501100008c4a11c1",
        "25006 :1276528487.M364837P9451.kurkku,S=1355,W=1394",
        "25017 W2481 :1276533073.M242911P3632.kurkku",
    ]


def test_reads_header_extras_and_unknown_order(tmp_path):
    (tmp_path / "dovecot-uidlist").write_text(
        "3 N7 Pmyformat V99 G0123456789ABCDEF0123456789abcdef\n"
        "5  O3 X9 :five\n")
    ul = UidList.load(tmp_path)
    assert (ul.uidvalidity, ul.next_uid) == (99, 7)
    assert ul.guid == "0123456789abcdef0123456789abcdef"
    assert ul.header_extra == ["Pmyformat"]
    assert ul.get_extension(5, "O") == "3"
    ul.save()
    assert (tmp_path / "dovecot-uidlist").read_text().startswith(
        "3 V99 N7 G0123456789abcdef0123456789abcdef Pmyformat\n5 O3 X9 :five\n")


def test_missing_guid_is_generated(tmp_path):
    (tmp_path / "dovecot-uidlist").write_text("3 V5 N2\n1 :one\n")
    ul = UidList.load(tmp_path)
    assert len(ul.guid) == 32 and ul.items() == [(1, "one")]


def test_next_uid_repaired_like_dovecot(tmp_path):
    (tmp_path / "dovecot-uidlist").write_text("3 V5 N2 G" + "0" * 32 +
                                              "\n1 :a\n9 :b\n")
    assert UidList.load(tmp_path).next_uid == 10


def test_reads_version1(tmp_path):
    (tmp_path / "dovecot-uidlist").write_text(
        "1 1100000000 12\n3 1100000001.1234_1.host:2,S\n10 1100000002.99.h\n")
    ul = UidList.load(tmp_path)
    assert (ul.uidvalidity, ul.next_uid) == (1100000000, 12)
    assert ul.items() == [(3, "1100000001.1234_1.host"),
                          (10, "1100000002.99.h")]
    ul.save()
    assert (tmp_path / "dovecot-uidlist").read_text().startswith(
        "3 V1100000000 N12 G")


def test_duplicate_file_later_uid_wins(tmp_path):
    (tmp_path / "dovecot-uidlist").write_text("3 V5 N9\n1 :a\n2 :b\n3 :a:2,S\n")
    ul = UidList.load(tmp_path)
    assert ul.items() == [(2, "b"), (3, "a")]


@pytest.mark.parametrize("content,needle", [
    ("", "empty"),
    ("garbage\n", "version"),
    ("2 V1 N1\n", "unsupported"),
    ("3 V0 N1\n", "header"),
    ("3 Vx N1\n", "V"),
    ("3 V1 N5 Gnothex\n", "GUID"),
    ("3 V1 N5\n2 :a\n1 :b\n", "not ordered"),
    ("3 V1 N5\nx :a\n", "invalid"),
    ("3 V1 N5\n1 W5\n", "extended"),
    ("3 V1 N5\n1 :a/b\n", "file name"),
    ("3 V1 N5\n4294967295 :a\n", "too high"),
    ("1 10 3\n5 a\n", "next uid"),
])
def test_unparseable_files_raise_naming_file(tmp_path, content, needle):
    path = tmp_path / "dovecot-uidlist"
    path.write_text(content)
    with pytest.raises(UidListError) as info:
        UidList.load(tmp_path)
    assert str(path) in str(info.value)
    assert needle in str(info.value)


def test_leftover_temp_from_crash_is_ignored(tmp_path):
    ul = UidList.load(tmp_path)
    ul.assign(["a", "b"])
    ul.save()
    # A writer died mid-save: a torn temp file is left beside the real one.
    (tmp_path / "dovecot-uidlist.tmp").write_text("3 V1 N99\n1 :tor")
    (tmp_path / "dovecot-uidlist.tmp.0123456789abcdef").write_text("3 V")
    again = UidList.load(tmp_path)
    assert again.items() == [(1, "a"), (2, "b")]
    assert again.uidvalidity == ul.uidvalidity
    again.assign(["c"])
    again.save()
    assert UidList.load(tmp_path).uid_for("c") == 3


def test_exhausted_uids(tmp_path):
    ul = UidList(tmp_path, uidvalidity=1, next_uid=uidlist.MAX_UID)
    assert ul.assign(["last"]) == {"last": uidlist.MAX_UID}
    with pytest.raises(OverflowError):
        ul.assign(["one-too-many"])


def test_100k_entries_round_trip(tmp_path):
    """Scale is measured by benchmarks/uidlist_scale.py; here only correctness at that size."""
    ul = UidList.load(tmp_path)
    ul.assign(["%d.M1P1Q%d.host,S=2000,W=2050" % (1700000000 + i, i) for i in range(100_000)])
    ul.save()
    loaded = UidList.load(tmp_path)
    assert len(loaded) == 100_000 and loaded.next_uid == 100_001
    assert loaded.uid_for("1700099999.M1P1Q99999.host,S=2000,W=2050") == 100_000


def test_appended_records_are_read_back_under_the_reservation(tmp_path):
    ul = UidList.load(tmp_path)
    ul.assign(["a"])
    ul.append([1])                        # no file yet: written whole, with a reservation
    header = (tmp_path / "dovecot-uidlist").read_text().split("\n")[0]
    assert " N%d " % (2 + RESERVATION) in header + " "
    inode = os.stat(tmp_path / "dovecot-uidlist").st_ino
    ul.assign(["b", "c"])
    ul.append([2, 3])
    text = (tmp_path / "dovecot-uidlist").read_text()
    assert text.split("\n")[0] == header                               # header untouched
    assert text.endswith("1 :a\n2 :b\n3 :c\n") and os.stat(tmp_path / "dovecot-uidlist").st_ino == inode
    again = UidList.load(tmp_path)
    assert again.items() == [(1, "a"), (2, "b"), (3, "c")] and again.next_uid == 2 + RESERVATION


def test_a_record_above_the_headers_next_uid_raises_it(tmp_path):
    """As Dovecot appends records between rewrites without touching the header."""
    (tmp_path / "dovecot-uidlist").write_text("3 V1 N2 G%s\n1 :a\n2 :b\n3 :c\n" % ("0" * 32))
    assert UidList.load(tmp_path).next_uid == 4


def test_uids_past_the_reservation_are_reserved_again_durably(tmp_path):
    """Appends are not flushed; before a UID at or above the header's N is handed out the file
    is rewritten with a new N, so a crash that loses appended records never lets their UIDs
    be given again.  At shutdown (release) the exact next UID is written back."""
    ul = UidList.load(tmp_path)
    ul.assign(["m%d" % n for n in range(RESERVATION)])
    ul.append(range(1, RESERVATION + 1))
    first = os.stat(tmp_path / "dovecot-uidlist").st_ino
    assert UidList.load(tmp_path).next_uid == RESERVATION + 1 + RESERVATION
    ul.assign(["x"])
    ul.append([RESERVATION + 1])          # still under the reservation: appended
    assert os.stat(tmp_path / "dovecot-uidlist").st_ino == first
    ul.assign(["y%d" % n for n in range(RESERVATION)])
    ul.append(range(RESERVATION + 2, 2 * RESERVATION + 2))   # past it: rewritten, reserved again
    assert os.stat(tmp_path / "dovecot-uidlist").st_ino != first
    assert UidList.load(tmp_path).next_uid == 2 * RESERVATION + 2 + RESERVATION
    ul.save(release=True)
    assert UidList.load(tmp_path).next_uid == 2 * RESERVATION + 2


def test_an_append_cut_short_by_a_crash_is_ignored(tmp_path):
    path = tmp_path / "dovecot-uidlist"
    path.write_text("3 V1 N3 G%s\n1 :a\n2 :b\n3 :c-torn" % ("0" * 32))
    ul = UidList.load(tmp_path)
    assert ul.items() == [(1, "a"), (2, "b")] and ul.next_uid == 3
