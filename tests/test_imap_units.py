"""Pure logic of the IMAP server: MIME sections, sequence sets, search parsing, names, COPYUID sets."""

import time

import pytest

from mailbox_appliance.imap import search
from mailbox_appliance.imap.account import FolderError, check_name, pattern_matcher
from mailbox_appliance.imap.literals import Literal
from mailbox_appliance.imap.response import uid_set
from mailbox_appliance.imap.response import encode
from mailbox_appliance.imap.selection import BadSequence, parse_sequence_set
from mailbox_appliance.imap.structure import Part, SectionError
from mailbox_appliance.message import to_crlf

MULTIPART = to_crlf(b"""From: a@example.test
Content-Type: multipart/mixed; boundary="b1"

preamble
--b1
Content-Type: text/plain

first
--b1
Content-Type: message/rfc822

Subject: inner

inner body
--b1--
""")


def test_sections_of_a_multipart_message():
    message = Part(MULTIPART)
    assert message.content([1]) == b"first"
    assert message.part([2]).header == b"Content-Type: message/rfc822\r\n\r\n"
    assert message.message_at([2]).header == b"Subject: inner\r\n\r\n"
    assert message.content([2, 1]) == b"inner body"
    with pytest.raises(SectionError):
        message.content([3])
    with pytest.raises(SectionError):
        message.message_at([1])


def test_bodystructure_counts_the_octets_sent():
    structure = encode(Part(MULTIPART).structure(extended=False))
    assert structure.startswith(b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 ')
    assert b'"MIXED")' in structure


def test_bare_lf_becomes_crlf():
    assert to_crlf(b"a\nb\r\nc\n") == b"a\r\nb\r\nc\r\n"


def test_sequence_sets():
    assert parse_sequence_set(b"1:3,5,7:*") == [(1, 3), (5, 5), (7, None)]
    for bad in (b"0", b"1:", b"-1", b"1:2:3", b"a", b"4294967296"):
        with pytest.raises(BadSequence):
            parse_sequence_set(bad)


def test_uid_sets_are_compact():
    assert uid_set([1, 2, 3, 5, 7, 8]) == b"1:3,5,7:8"


def test_search_tokens_and_errors():
    tokens = search.tokenize([b'OR (SEEN FLAGGED) SUBJECT "a \\"b\\""', Literal(b"lit")])
    assert tokens == [b"OR", "(", b"SEEN", b"FLAGGED", ")", b"SUBJECT", b'a "b"', b"lit"]
    for bad in ([b"SUBJECT {-1}"], [b"(SEEN"], [b"SEEN)"], [b"FROBNICATE"], [b"SINCE 2024-01-01"], [b""]):
        with pytest.raises(search.SearchError):
            search.parse_search(bad)


def test_folder_name_checks():
    assert check_name("inbox") == "INBOX"
    assert check_name("Entw&APw-rfe") == "Entw&APw-rfe"
    for bad in ("Entwürfe", "a&", "&Jjo", "INBOX.child"):
        with pytest.raises(FolderError):
            check_name(bad)


@pytest.mark.parametrize("pattern, name, expected", [
    ("Work.%", "Work.A", True), ("Work.%", "Work.A.B", False), ("*", "Work.A.B", True), ("%", "Work", True),
    ("%", "Work.A", False), ("Work*", "Work", True), ("W%k", "Work", True), ("W%%k", "Work", True),
    ("*%", "a.b", True), ("%*", "a.b", True), ("%*%", "", True), ("a%b", "a.b", False), ("", "", True),
    ("", "a", False), ("*x", "ab", False), ("a*b*c", "a.x.b.y.c", True), ("a*b*c", "a.x.b.y.cd", False),
    ("Wo", "Work", False), ("*.Sent", "Archive.Sent", True), ("*.Sent", "Archive.Sent.x", False),
])
def test_list_wildcards(pattern, name, expected):
    assert pattern_matcher(pattern)(name) is expected


def test_list_wildcards_cost_no_backtracking():
    """Issue 21 #2: "**...**x" and "*a*a*...b" took seconds to minutes as regular expressions."""
    started = time.process_time()
    for pattern in ("*" * 60 + "x", "*a" * 300 + "b", "%*" * 2000 + "x"):
        assert not pattern_matcher(pattern)("a" * 240)
    assert time.process_time() - started < 2
