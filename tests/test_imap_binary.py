"""FETCH BINARY (RFC 3516) and the FETCH attribute parser (imap/fetch_items.py) over a socket."""

import base64

import pytest

import imapclient

MESSAGE = (
    b"From: bob@remote.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"  aGVs    \r\n bG8g  \r\n   d29y  \t \r\n    bGQ= \r\n"
    b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"hello  \r\nbar=\r\n\r\nfoo\t \t= \r\n=62\r\ncaf=C3=A9=\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: Base64\r\n\r\n"
    + base64.b64encode(b"a\0b\r\nc\rd") + b"\r\n"
    b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
    b"begin 644 x\r\n`\r\nend\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nplain 7bit\r\n"
    b"--b--\r\n"
)


@pytest.fixture
def selected(office, session):
    office.smtp().sendmail("bob@example.test", ["alice@example.test"], MESSAGE)
    session.ok(b"SELECT INBOX")
    return session


def test_binary_is_advertised(session):
    assert b" BINARY" in b"".join(session.ok(b"CAPABILITY"))


def test_binary_sections_are_decoded(selected):
    lines = selected.ok(b"FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.PEEK[3] BINARY.PEEK[5] BINARY.SIZE[2])")
    assert lines[0] == (b"* 1 FETCH (BINARY[1] {11}\r\nhello world BINARY[2] {26}\r\nhello\r\nbar\r\nfoo\t \tb\r\n"
                        + "café".encode() + b" BINARY[3] ~{8}\r\na\0b\r\nc\rd BINARY[5] {10}\r\nplain 7bit"
                        b" BINARY.SIZE[2] 26)\r\n")


def test_binary_partial_counts_decoded_octets(selected):
    lines = selected.ok(b"FETCH 1 (BINARY.PEEK[1]<6.100> BINARY.PEEK[3]<1.3>)")
    assert lines[0] == b"* 1 FETCH (BINARY[1]<6> {5}\r\nworld BINARY[3]<1> ~{3}\r\n\0b\r)\r\n"


def test_binary_without_peek_sets_seen(selected):
    lines = selected.ok(b"FETCH 1 BINARY[1]")
    assert b"\\Seen" in b"".join(lines)
    assert b"\\Seen" in selected.ok(b"FETCH 1 FLAGS")[0]


def test_an_encoding_that_cannot_be_undone_is_no_unknown_cte(selected):
    assert selected.command(b"FETCH 1 BINARY.PEEK[4]")[-1].split()[1:3] == [b"NO", b"[UNKNOWN-CTE]"]
    selected.ok(b"NOOP")


@pytest.mark.parametrize("attributes", [
    b"BINARY[1.HEADER]", b"BINARY.SIZE[1]<0.5>", b"BINARY", b"BODY.PEEK", b"BODY[1.]", b"BODY[MIME]",
    b"(BODY[", b"(FLAGS))", b"((FLAGS))", b"BODY[HEADER.FIELDS (]", b"BODY[HEADER.FIELDS ()]",
    b"BODY[]<5.0>", b"BODY[]<x.1>", b"BODY[\xff]", b"(FLAGS\tUID)", b"FLAGZ", b"BODY[0]",
    b"BODY[99999999999]", b"(FLAGS UID", b"",
])
def test_malformed_fetch_attributes_are_bad_without_a_traceback(office, selected, attributes):
    """Issue 20 #2: Twisted's FETCH parser raised from inside its state machine."""
    assert selected.command(b"FETCH 1 " + attributes)[-1].split()[1] == b"BAD"
    selected.ok(b"NOOP")
    assert not [line for line in office.appliance.lines if "Traceback" in line]


def test_header_fields_by_atom_and_quoted_name(selected):
    lines = selected.ok(b'FETCH 1 (BODY.PEEK[HEADER.FIELDS (subject "From")])')
    assert lines[0] == (b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)] {41}\r\n"
                        b"From: bob@remote.test\r\nSubject: parts\r\n\r\n)\r\n")


@pytest.mark.parametrize("marker", [b"~{%d}", b"~{%d+}", b"{%d}"])
def test_appended_binary_content_is_kept_as_base64(session, marker):
    """RFC 3516 §4.4: a literal8 APPEND is read and its binary part stored base64-encoded, so
    BODY[1] is 7-bit text and BINARY[1] gives back the octets sent."""
    content = b"\0-\xe4\n\r\n\n"
    message = b"From: u@example.test\r\nContent-Transfer-Encoding: binary\r\n\r\n" + content
    session.sock.sendall(b"a APPEND INBOX " + marker % len(message) + b"\r\n")
    if b"+" not in marker:
        assert session.reader.readline().startswith(b"+ ")
    session.sock.sendall(message + b"\r\n")
    assert imapclient.read_until_tagged(session.reader, b"a")[-1].startswith(b"a OK [APPENDUID ")
    session.ok(b"SELECT INBOX")
    encoded = base64.b64encode(content) + b"\r\n"
    assert session.ok(b"FETCH 1 (BODY.PEEK[1] BINARY.SIZE[1] BINARY.PEEK[1])")[0] == (
        b"* 1 FETCH (BODY[1] {%d}\r\n%s BINARY.SIZE[1] 7 BINARY[1] ~{7}\r\n%s)\r\n" % (len(encoded), encoded, content))
    assert b"Content-Transfer-Encoding: base64\r\n" in session.ok(b"FETCH 1 BODY.PEEK[HEADER]")[0]


def test_binary_parts_of_a_multipart_are_encoded_and_the_rest_kept(session):
    message = (b"From: u@example.test\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\npreamble\r\n"
               b"--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
               b"--x\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: BINARY\r\n\r\n\x89PNG\0\0\r\n"
               b"--x--\r\nepilogue\r\n")
    session.ok(b"APPEND INBOX ~{%d+}\r\n" % len(message) + message)
    session.ok(b"SELECT INBOX")
    lines = session.ok(b"FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME] BINARY.PEEK[2] BODY.PEEK[TEXT])")
    assert lines[0].startswith(b"* 1 FETCH (BODY[1] {5}\r\nhello BODY[2.MIME] {62}\r\nContent-Type: image/png\r\n"
                               b"Content-Transfer-Encoding: base64\r\n\r\n BINARY[2] ~{6}\r\n\x89PNG\0\0 BODY[TEXT] ")
    assert b"preamble\r\n--x\r\n" in lines[0] and lines[0].endswith(b"--x--\r\nepilogue\r\n)\r\n")


def test_a_nul_in_a_header_is_refused_with_unknown_cte(session):
    message = b"From: u@example.test\r\nSubject: a\0b\r\n\r\nbody\r\n"
    lines = session.command(b"APPEND INBOX ~{%d+}\r\n" % len(message) + message)
    assert lines[-1].split()[1:3] == [b"NO", b"[UNKNOWN-CTE]"]
    assert b"* 0 EXISTS\r\n" in session.ok(b"SELECT INBOX")


def test_a_literal8_append_of_text_is_stored(session):
    message = b"From: u@example.test\r\nSubject: eight\r\n\r\nplain\r\n"
    session.sock.sendall(b"a APPEND INBOX ~{%d+}\r\n" % len(message) + message + b"\r\n")
    assert imapclient.read_until_tagged(session.reader, b"a")[-1].startswith(b"a OK [APPENDUID ")
    session.ok(b"SELECT INBOX")
    assert session.ok(b"FETCH 1 BODY.PEEK[TEXT]")[0] == b"* 1 FETCH (BODY[TEXT] {7}\r\nplain\r\n)\r\n"
