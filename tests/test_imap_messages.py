"""IMAP message commands over a real socket: APPEND, FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE."""

import re

import pytest

import imapclient

UMLAUT_SUBJECT = "Grüße aus Köln".encode()


@pytest.fixture
def client(office):
    office.smtp().sendmail("bob@example.test", ["alice@example.test"], imapclient.message("first"))
    office.smtp().sendmail("bob@example.test", ["alice@example.test"],
                           b"From: bob@remote.test\r\nSubject: " + UMLAUT_SUBJECT + b"\r\n\r\nzweite\r\n")
    running = imapclient.login(office)
    running.select("INBOX")
    yield running
    running.logout()


def fetch(client, what, numbers="1"):
    typ, data = client.fetch(numbers, what)
    assert typ == "OK", data
    return data


def test_append_with_flags_and_date(client):
    typ, data = client.append("Drafts", r"(\Draft $Label1)", '"01-Feb-2020 10:00:00 +0100"',
                              imapclient.message("draft"))
    assert typ == "OK" and re.match(rb"\[APPENDUID \d+ 1\]", data[0])
    client.select("Drafts")
    [answer] = fetch(client, "(FLAGS INTERNALDATE UID)")
    assert b"\\Draft" in answer and b"$Label1" in answer and b'"01-Feb-2020 09:00:00 +0000"' in answer
    typ, data = client.append("Nowhere", None, None, imapclient.message("lost"))
    assert typ == "NO" and data[0].startswith(b"[TRYCREATE]")


def test_fetch_sizes_sections_and_partial(client):
    [(label, body), _] = fetch(client, "(RFC822.SIZE BODY.PEEK[])")
    assert int(re.search(rb"RFC822.SIZE (\d+)", label).group(1)) == len(body)
    [(label, part), _] = fetch(client, "(BODY.PEEK[]<0.10>)")
    assert label.endswith(b"BODY[]<0> {10}") and part == body[:10]
    [(label, part), _] = fetch(client, "(BODY.PEEK[TEXT]<2.4>)")
    assert part == b"dy t"
    [(label, part), _] = fetch(client, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert part == b"Subject: first\r\n\r\n"
    assert b"\\Seen" not in fetch(client, "(FLAGS)")[0]


def test_body_without_peek_sets_seen(client):
    fetch(client, "(BODY[])")
    assert b"\\Seen" in fetch(client, "(FLAGS)")[0]
    assert b"\\Seen" not in fetch(client, "(FLAGS)", "2")[0]
    client.select("INBOX", readonly=True)
    fetch(client, "(BODY[])", "2")
    assert b"\\Seen" not in fetch(client, "(FLAGS)", "2")[0]


def test_non_ascii_headers_are_sent_as_they_are(client):
    [(label, envelope), _] = fetch(client, "(ENVELOPE BODYSTRUCTURE)", "2")
    assert envelope == UMLAUT_SUBJECT
    [(label, header), _] = fetch(client, "(BODY.PEEK[HEADER])", "2")
    assert UMLAUT_SUBJECT in header


def test_store_flags_and_keywords(client):
    typ, data = client.store("1", "+FLAGS", r"(\Flagged $Important)")
    assert typ == "OK" and b"\\Flagged" in data[0] and b"$Important" in data[0]
    typ, data = client.store("1", "-FLAGS", r"(\Flagged)")
    assert b"\\Flagged" not in data[0] and b"$Important" in data[0]
    typ, data = client.store("1:2", "FLAGS.SILENT", r"(\Answered)")
    assert typ == "OK" and data == [None]
    assert b"(FLAGS (\\Answered \\Recent))" in fetch(client, "(FLAGS)", "2")[0]
    typ, data = client.uid("STORE", "2", "+FLAGS", r"(\Seen)")
    assert re.search(rb"UID 2\)", data[0])
    client.select("INBOX")
    assert b"$Important" in client.untagged_responses["FLAGS"][0]


def test_search_keys(client):
    client.store("2", "+FLAGS", r"(\Seen $Later)")
    expected = {
        ("ALL",): b"1 2", ("SUBJECT", "first"): b"1", ("SUBJECT", "nothing"): b"",
        ("FROM", "bob"): b"1 2", ("UNSEEN",): b"1", ("SEEN",): b"2", ("KEYWORD", "$Later"): b"2",
        ("UNKEYWORD", "$Later"): b"1", ("NOT", "SEEN"): b"1", ("OR", "SEEN", "SUBJECT", "first"): b"1 2",
        ("LARGER", "10000"): b"", ("SMALLER", "10000"): b"1 2", ("UID", "2:*"): b"2",
        ("SINCE", "1-Jan-2000"): b"1 2", ("BEFORE", "1-Jan-2000"): b"", ("SENTON", "1-Jan-2024"): b"1",
        ("BODY", "zweite"): b"2", ("TEXT", "message-id"): b"1", ("HEADER", "Message-ID", "first"): b"1",
        ("2",): b"2", ("1:*", "DELETED"): b"", ("(", "SEEN", "KEYWORD", "$Later", ")"): b"2",
    }
    for keys, answer in expected.items():
        typ, data = client.search(None, *keys)
        assert (typ, data) == ("OK", [answer]), keys
    typ, data = client.uid("SEARCH", "SUBJECT", "first")
    assert data == [b"1"]
    typ, data = client.search("UTF-8", "SUBJECT", '"Grüße"'.encode())
    assert data == [b"2"]
    typ, data = client.search("KOI8-R", "ALL")
    assert typ == "NO" and data[0].startswith(b"[BADCHARSET")


def test_no_match_still_sends_a_search_line(office, client):
    session = imapclient.Session(office)
    session.ok(b"SELECT INBOX")
    assert session.ok(b"SEARCH SUBJECT nothing")[0] == b"* SEARCH\r\n"
    session.close()


def test_search_literal(office):
    session = imapclient.Session(office)
    session.ok(b"SELECT INBOX")
    session.count += 1
    session.sock.sendall(b"s1 SEARCH SUBJECT {5}\r\n")
    assert session.reader.readline().startswith(b"+")
    session.sock.sendall(b"first\r\n")
    assert imapclient.read_until_tagged(session.reader, b"s1")[-1].startswith(b"s1 OK")


def test_copy_and_move_with_copyuid(office, client):
    session = imapclient.Session(office)
    session.ok(b"SELECT INBOX")
    assert re.search(rb"\[COPYUID \d+ 1:2 1:2\]", session.ok(b"COPY 1:2 Trash")[-1])
    lines = session.ok(b"UID MOVE 1 Archive")
    assert re.match(rb"\* OK \[COPYUID \d+ 1 1\]", lines[0]) and b"* 1 EXPUNGE\r\n" in lines
    assert session.ok(b"STATUS Trash (MESSAGES UIDNEXT)")[0] == b'* STATUS "Trash" (MESSAGES 2 UIDNEXT 3)\r\n'
    assert session.ok(b"STATUS INBOX (MESSAGES)")[0] == b'* STATUS "INBOX" (MESSAGES 1)\r\n'
    assert session.command(b"COPY 1 Nowhere")[-1].split()[2] == b"[TRYCREATE]"
    session.close()


def test_expunge_and_uid_expunge(office, client):
    client.append("INBOX", None, None, imapclient.message("third"))
    client.store("1:3", "+FLAGS", r"(\Deleted)")
    session = imapclient.Session(office)
    session.ok(b"SELECT INBOX")
    lines = session.ok(b"UID EXPUNGE 2")
    assert b"* 2 EXPUNGE\r\n" in lines and len([line for line in lines if b"EXPUNGE\r\n" in line]) == 1
    lines = session.ok(b"EXPUNGE")
    assert [line for line in lines if line.endswith(b"EXPUNGE\r\n")] == [b"* 2 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"]
    assert session.ok(b"STATUS INBOX (MESSAGES)")[0].endswith(b"(MESSAGES 0)\r\n")
    session.close()


def test_oversized_literal_is_refused_before_it_is_read(office):
    session = imapclient.Session(office)
    session.count += 1
    session.sock.sendall(b"big APPEND INBOX {100000000}\r\n")
    answer = session.reader.readline()
    assert answer.startswith(b"big NO [TOOBIG]"), answer
    session.ok(b"NOOP")
    session.close()
