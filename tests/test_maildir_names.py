"""Maildir file names: our unique names, S=/W=, flags, and names written by others."""

import re

import pytest

from mailbox_appliance.maildir import names
from mailbox_appliance.message import crlf_size


def test_new_base_name_shape_and_round_trip():
    base = names.new_base_name(1000, 1030, hostname="mx1.example.com")
    assert re.fullmatch(r"\d+\.M\d+P\d+Q\d+R[0-9a-f]{16}\.mx1\.example\.com"
                        r",S=1000,W=1030", base)
    parsed = names.parse(base)
    assert parsed == names.MaildirName(base, 1000, 1030, "")
    full = names.with_flags(base, "SFa")
    assert full == base + ":2,FSa"
    assert names.parse(full) == names.MaildirName(base, 1000, 1030, "FSa")


def test_names_are_unique():
    made = {names.new_base_name(1, 1, hostname="h") for _ in range(10000)}
    assert len(made) == 10000


def test_hostname_escaping():
    base = names.new_base_name(5, 5, hostname="we/ird:host")
    assert "we\\057ird\\072host" in base
    assert ":" not in base and "/" not in base
    assert names.parse(base).size == 5


def test_default_hostname_has_no_separators():
    base = names.new_base_name(3, 4)
    assert "/" not in base and ":" not in base


def test_with_flags_sorts_dedups_and_replaces_info():
    assert names.with_flags("b", "TSRPFD") == "b:2,DFPRST"
    assert names.with_flags("b:2,S", "SS") == "b:2,S"
    assert names.with_flags("b", "") == "b:2,"
    with pytest.raises(ValueError):
        names.with_flags("b", "S,")
    with pytest.raises(ValueError):
        names.with_flags("b", ":")


@pytest.mark.parametrize("name,expected", [
    # Dovecot's own examples (doc.dovecot.org Maildir format page).
    ("1276528487.M364837P9451.kurkku,S=1355,W=1394:2,",
     ("1276528487.M364837P9451.kurkku,S=1355,W=1394", 1355, 1394, "")),
    ("1035478339.27041_118.foo.org,S=1000,W=1030:2,S",
     ("1035478339.27041_118.foo.org,S=1000,W=1030", 1000, 1030, "S")),
    ("1491941793.M41850P8566V0000000000000015I0000000004F3030E_0."
     "mx1.example.com,S=10956:2,STln",
     ("1491941793.M41850P8566V0000000000000015I0000000004F3030E_0."
      "mx1.example.com,S=10956", 10956, None, "STln")),
    # Plain qmail name, no sizes, no info (as found in new/).
    ("1035478339.27041_118.foo.org", ("1035478339.27041_118.foo.org",
                                      None, None, "")),
    # Experimental :1, info carries no flags.
    ("123.456.host:1,whatever", ("123.456.host", None, None, "")),
    # Unknown extra fields, and Dovecot's ",<non-standard>" after flags.
    ("123.M1P2.host,X=abc,S=10,Z=1,W=12:2,RS,extra",
     ("123.M1P2.host,X=abc,S=10,Z=1,W=12", 10, 12, "RS")),
    # Unsorted flags from a careless MUA.
    ("1.2.h:2,TSa", ("1.2.h", None, None, "STa")),
    # Non-numeric size is ignored, not an error.
    ("1.2.h,S=big:2,", ("1.2.h,S=big", None, None, "")),
])
def test_parse_foreign_names(name, expected):
    assert tuple(names.parse(name)) == expected


@pytest.mark.parametrize("bad", ["", "a/b", "x\0y"])
def test_parse_rejects_impossible_names(bad):
    with pytest.raises(ValueError):
        names.parse(bad)


@pytest.mark.parametrize("data,w", [
    (b"", 0),
    (b"a\nb\n", 6),                       # bare LF counts two
    (b"a\r\nb\r\n", 6),                   # CRLF stays: W == S
    (b"a\r\nb\nc", 7),                    # mixed
    (b"\n\n\n", 6),
    (b"\r\r\n", 3),                       # bare CR untouched
])
def test_crlf_size(data, w):
    assert crlf_size(data) == w


def test_crlf_size_equals_size_for_crlf_message():
    msg = b"Subject: x\r\n\r\nbody\r\n" * 100
    assert crlf_size(msg) == len(msg)


def test_delivery_order_reads_seconds_and_microseconds_as_numbers():
    delivered = ["999.M5P1.h", "1000.M99999P1.h", "1000.M100000P1.h", "1000.M100000P2.h",
                 "10000.P1.h", "10000.M1P1.h:2,S"]
    assert sorted(reversed(delivered), key=names.delivery_order) == delivered
    # Names that do not start with a time (written by hand) sort first, by name.
    assert sorted(["5.x", "note", "abc"], key=names.delivery_order) == ["abc", "note", "5.x"]
