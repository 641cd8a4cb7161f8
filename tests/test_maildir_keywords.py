"""dovecot-keywords: round trip, Dovecot-written files, and the 26-letter limit."""

import os

import pytest

from mailbox_appliance.maildir.keywords import Keywords


def test_round_trip(tmp_path):
    kw = Keywords.load(tmp_path)
    assert kw.letter_for("$Junk") == "a"
    assert kw.letter_for("$NonJunk") == "b"
    assert kw.letter_for("$junk") == "a"          # case-insensitive
    assert kw.letter_for("$Label1", create=False) is None
    kw.save()
    assert (tmp_path / "dovecot-keywords").read_bytes() == \
        b"0 $Junk\n1 $NonJunk\n"
    again = Keywords.load(tmp_path)
    assert again.keyword_for("a") == "$Junk"
    assert again.keyword_for("b") == "$NonJunk"
    assert again.keyword_for("c") is None
    assert again.keyword_for("A") is None
    assert again.items() == [("a", "$Junk"), ("b", "$NonJunk")]
    assert [n for n in os.listdir(tmp_path)] == ["dovecot-keywords"]


def test_reads_dovecot_file_with_gaps_and_junk(tmp_path):
    (tmp_path / "dovecot-keywords").write_bytes(
        b"0 $Junk\nnonsense\n11 $Label1\n99 toolarge\nx bad\n13 \n"
        b"13 $Label3\n")
    kw = Keywords.load(tmp_path)
    assert kw.items() == [("a", "$Junk"), ("l", "$Label1"), ("n", "$Label3")]
    assert kw.letter_for("$New") == "b"              # lowest free index
    kw.save()
    assert Keywords.load(tmp_path).keyword_for("b") == "$New"


def test_26_keyword_limit(tmp_path):
    kw = Keywords.load(tmp_path)
    letters = [kw.letter_for("k%d" % i) for i in range(26)]
    assert letters == list("abcdefghijklmnopqrstuvwxyz")
    assert kw.letter_for("one-too-many") is None
    assert kw.letter_for("k5") == "f"
    kw.save()
    again = Keywords.load(tmp_path)
    assert len(again) == 26
    assert again.letter_for("another") is None
    assert again.keyword_for("z") == "k25"


def test_rejects_unstorable_keyword(tmp_path):
    kw = Keywords.load(tmp_path)
    for bad in ["", "two words", "a\nb"]:
        with pytest.raises(ValueError):
            kw.letter_for(bad)


def test_mtime_grows_on_every_save(tmp_path):
    kw = Keywords.load(tmp_path)
    kw.letter_for("one")
    kw.save()
    m1 = int(os.stat(tmp_path / "dovecot-keywords").st_mtime)
    kw.letter_for("two")
    kw.save()
    m2 = int(os.stat(tmp_path / "dovecot-keywords").st_mtime)
    assert m2 > m1
