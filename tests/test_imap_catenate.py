"""CATENATE (RFC 4469): APPEND built from text and IMAP URLs (RFC 5092) over a real socket,
with MULTIAPPEND, bad URLs, the size limit and hostile part lists."""

import pytest

import imapclient
from conftest import Office

FIRST = b"From: foo@example.test\r\n\r\nHello world body"
SECOND = (b"From: foo2@example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
          b"--b\r\nContent-Type: text/plain\r\n\r\npart one\r\n--b\r\nContent-Type: text/plain\r\n\r\npart two\r\n--b--\r\n")


@pytest.fixture
def stored(session):
    """INBOX holds FIRST (uid 1) and SECOND (uid 2); Forwards exists and is empty."""
    for message in (FIRST, SECOND):
        session.ok(b"APPEND INBOX {%d+}\r\n" % len(message) + message)
    session.ok(b"CREATE Forwards")
    validity = [line for line in session.ok(b"STATUS INBOX (UIDVALIDITY)")][0].split()[-1].rstrip(b")")
    session.validity = int(validity)
    return session


def _bodies(session, folder=b"Forwards"):
    session.ok(b"SELECT " + folder)
    lines = session.ok(b"FETCH 1:* BODY.PEEK[]")
    return [line[line.index(b"}\r\n") + 3:-3] for line in lines[:-1] if b" FETCH " in line]


def _text(octets):
    return b"TEXT {%d+}\r\n" % len(octets) + octets


def test_catenate_is_advertised(session):
    assert b" CATENATE" in session.ok(b"CAPABILITY")[0]


def test_text_and_url_parts_are_joined(stored):
    v = stored.validity
    stored.ok(b'APPEND Forwards (\\Seen) CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER" ' + _text(b"body1") + b")")
    stored.ok(b'APPEND Forwards CATENATE (URL "/INBOX;UIDVALIDITY=%d/;uid=1/;section=TEXT" ' % v + _text(b"!") + b")")
    stored.ok(b'APPEND Forwards CATENATE (' + _text(b"Subject: fwd\r\n\r\n") + b' URL "/INBOX/;UID=2/;SECTION=2")')
    stored.ok(b'APPEND Forwards CATENATE (URL /INBOX/;UID=2/;SECTION=1.MIME URL "/INBOX/;UID=1/;PARTIAL=6.3")')
    stored.ok(b'APPEND Forwards CATENATE (URL "imap://alice%40example.test@mail.example.test/INBOX/;UID=1")')
    stored.ok(b'APPEND Forwards CATENATE (URL "/INBOX/;UID=1/;SECTION=1/;PARTIAL=100000.1" ' + _text(b"X: y\r\n\r\nz") + b")")
    assert _bodies(stored) == [
        b"From: foo@example.test\r\n\r\nbody1",
        b"Hello world body!",
        b"Subject: fwd\r\n\r\npart two",
        b"Content-Type: text/plain\r\n\r\nfoo",
        FIRST,
        b"X: y\r\n\r\nz",
    ]
    assert b"\\Seen" in stored.ok(b"FETCH 1 FLAGS")[0]


def test_catenate_with_multiappend_and_plain_literals(stored):
    lines = stored.ok(b'APPEND Forwards CATENATE (URL "/INBOX/;UID=1") CATENATE (' + _text(b"a: b\r\n\r\nc") + b")"
                      b" (\\Answered) {5+}\r\nd\r\n\r\n")
    assert b"[APPENDUID " in lines[-1] and b" 1:3]" in lines[-1]
    assert _bodies(stored) == [FIRST, b"a: b\r\n\r\nc", b"d\r\n\r\n"]


@pytest.mark.parametrize("url, why", [
    (b'"/INBOX;UIDVALIDITY=12345/;UID=1"', b"UIDVALIDITY"),
    (b'"/INBOX/;UID=99"', b"No message"),
    (b'"/Nothing/;UID=1"', b"no mailbox"),
    (b'"/INBOX/;UID=1/;SECTION=7"', b"no part"),
    (b'"/INBOX/;UID=1/;SECTION=BODY.PEEK"', b"no part"),
    (b'"/../../etc/;UID=1"', b"no mailbox"),
    (b'"imap://bob%40example.test@host/INBOX/;UID=1"', b"another user"),
    (b'"http://example.test/"', b"Not an IMAP URL"),
    (b'"/INBOX/;UID=0"', b"Not an IMAP URL"),
])
def test_a_bad_url_fails_the_whole_append(stored, url, why):
    lines = stored.command(b"APPEND Forwards CATENATE (" + _text(b"h: 1\r\n\r\n") + b" URL " + url + b")"
                           b" CATENATE (URL \"/INBOX/;UID=1\")")
    assert lines[-1].split()[1:3] == [b"NO", b"[BADURL"] and why in lines[-1], lines
    assert b"MESSAGES 0" in stored.ok(b"STATUS Forwards (MESSAGES)")[0]


def test_missing_target_is_trycreate(stored):
    lines = stored.command(b'APPEND Nowhere CATENATE (URL "/INBOX/;UID=1" ' + _text(b"x") + b")")
    assert lines[-1].split()[1:3] == [b"NO", b"[TRYCREATE]"]
    stored.ok(b"NOOP")


def test_the_joined_message_is_held_to_the_size_limit(tmp_path):
    office = Office(str(tmp_path), extra="[limits]\nmax_message_size = 100K\n").start()
    session = imapclient.Session(office)
    try:
        big = b"From: big@example.test\r\n\r\n" + b"x" * 30_000
        session.ok(b"APPEND INBOX {%d+}\r\n" % len(big) + big)
        # Four URLs to it make 120 KB: over the limit though each part is within it.
        lines = session.command(b"APPEND INBOX CATENATE (" + b" ".join([b'URL "/INBOX/;UID=1"'] * 4) + b")")
        assert lines[-1].split()[1:3] == [b"NO", b"[TOOBIG]"]
        # Text literals count as they come: the second is refused before its octets are sent.
        lines = session.command(b"APPEND INBOX CATENATE (" + _text(b"y" * 60_000) + b" TEXT {60000}")
        assert lines[-1].split()[1:3] == [b"NO", b"[TOOBIG]"]
        assert b"MESSAGES 1" in session.ok(b"STATUS INBOX (MESSAGES)")[0]
    finally:
        session.close()
        office.appliance.stop()


@pytest.mark.parametrize("command", [
    b"APPEND Forwards CATENATE ()",
    b"APPEND Forwards CATENATE (FOO bar)",
    b'APPEND Forwards CATENATE (URL "/INBOX/;UID=1"',
    b"APPEND Forwards CATENATE (URL)",
    b"APPEND Forwards CATENATE (" + b" ".join([b'URL "/INBOX/;UID=1"'] * 65) + b")",
])
def test_malformed_catenate_is_bad(stored, command):
    assert stored.command(command)[-1].split()[1] == b"BAD"
    stored.ok(b"NOOP")
