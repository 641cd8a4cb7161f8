"""address_list.parse: RFC 5322 address lists as ENVELOPE, SEARCH and SORT read them."""

import time

import pytest

from mailbox_appliance.address_list import MAX_ADDRESSES, Address, parse

END = Address(None, None, None, None)


@pytest.mark.parametrize("text, entries", [
    ("From Real <fromuser@fromdomain.org>", [Address("From Real", None, "fromuser", "fromdomain.org")]),
    ("user@domain (Real Name)", [Address("Real Name", None, "user", "domain")]),
    ("<@route:user@domain>", [Address(None, "@route", "user", "domain")]),
    ("<@a,@b:user@domain>", [Address(None, "@a@b", "user", "domain")]),
    ("<user-from (comment)@ (comment) domain.org>", [Address(None, None, "user-from", "domain.org")]),
    ('"Doe, John" <j@d>, x', [Address("Doe, John", None, "j", "d"), Address(None, None, "x", "")]),
    ('"a\\"b" <x@y>', [Address('a"b', None, "x", "y")]),
    ("a@b (c (nested) e)", [Address("c (nested) e", None, "a", "b")]),
    ("group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;",
     [Address(None, None, "group", None), Address(None, None, "g1", "d1.org"), Address(None, None, "g2", "d2.org"),
      END, Address(None, None, "group2", None), Address(None, None, "g3", "d3.org"), END]),
    ("group:;, group2: (foo) ;", [Address(None, None, "group", None), END, Address(None, None, "group2", None), END]),
    ("undisclosed-recipients:", [Address(None, None, "undisclosed-recipients", None), END]),
    ("", []),
    (" , ,", []),
    ("x@[127.0.0.1]", [Address(None, None, "x", "[127.0.0.1]")]),
    ('"unclosed <a@b>', [Address(None, None, "unclosed <a@b>", "")]),
    ("(unclosed comment a@b", []),
])
def test_entries(text, entries):
    assert parse(text) == entries


def test_search_text_of_entries():
    assert [entry.text() for entry in parse("team: A <a@x>, b@y;, c")] == ["team:", "A <a@x>", "b@y", ";", "c"]


def test_cost_is_linear_and_bounded():
    many = ", ".join(f"u{n}@d{n}.example" for n in range(100_000))
    started = time.process_time()
    assert len(parse(many)) == MAX_ADDRESSES
    for hostile in ("(" * 200_000 + "x", '"' * 200_000, "<" * 200_000, "a:" * 100_000, "@" * 200_000):
        parse(hostile)
    assert time.process_time() - started < 5
