"""SORT (RFC 5256): base subjects, sort order and its tie-breaks, the header key cache, over a real
Folder; and SORT, UID SORT, ID and LITERAL+ over a real socket."""

import imaplib
import os

import pytest
from twisted.internet.task import Clock

import imapclient
from mailbox_appliance.imap import sort
from mailbox_appliance.imap.base_subject import base_subject
from mailbox_appliance.imap.selection import Selection
from mailbox_appliance.maildir import layout
from mailbox_appliance.maildir.mailbox import Folder


@pytest.mark.parametrize("subject, base", [
    ("Hello", "Hello"),
    ("Re: Hello", "Hello"),
    ("RE: re:Fwd:  fw: Hello", "Hello"),
    ("Re[2]: Hello", "Hello"),
    ("Re : Hello", "Hello"),
    ("[list] Re: Hello", "Hello"),
    ("Re: [list] Hello (fwd)", "Hello"),
    ("Hello (fwd) (FWD)  ", "Hello"),
    ("[Fwd: Re: Hello]", "Hello"),
    ("Re: [Fwd: [list] Hello (fwd)]", "Hello"),
    ("[list]", "[list]"),                   # §2.1 (4): a blob stays when nothing would be left
    ("Re: [list] ", "[list]"),
    ("Ref: Hello", "Ref: Hello"),           # "re" must be followed by ":" (subj-refwd)
    ("Hello\r\n\tworld", "Hello world"),    # (1) continuations and tabs become one space
    ("=?utf-8?q?Re=3A_Gr=C3=BC=C3=9Fe?=", "Grüße"),
    (b"Re: Gr\xc3\xbc\xc3\x9fe", "Grüße"),
    ("", ""),
])
def test_base_subject(subject, base):
    assert base_subject(subject) == base


def _folder(tmp_path, messages):
    path = str(tmp_path / "INBOX")
    layout.make_maildir(path)
    for number, (header, arrival) in enumerate(messages):
        name = "%d.M%dP1.test,S=1,W=1" % (1_700_000_000 + number, number)
        file_path = tmp_path / "INBOX" / "new" / name
        file_path.write_bytes(header.encode() + b"\r\n\r\nbody\r\n")
        os.utime(file_path, (arrival, arrival))
    return Folder(path, Clock())


def _sorted(folder, criteria, cache=None):
    selection = Selection(folder, readonly=True, on_change=lambda: None)
    found = list(enumerate(selection.uids, 1))
    keys = sort.parse_criteria([atom.encode() for atom in criteria.split()])
    return [number for number, _uid in sort.sort_messages(selection, found, keys, cache or sort.SortKeyCache())]


MESSAGES = [
    ("Subject: Re: beta\r\nFrom: Zed <zed@example.test>\r\nTo: b@x\r\nDate: Mon, 1 Jan 2024 12:00:00 +0200", 300),
    ("Subject: alpha\r\nFrom: amy@example.test\r\nCc: c@x\r\nDate: Mon, 1 Jan 2024 11:00:00 +0000", 100),
    ("Subject: [list] Beta\r\nFrom: Bob <BOB@example.test>\r\nTo: a@x", 200),
    ("Subject: Fwd: alpha\r\nFrom: amy@example.test\r\nDate: not a date", 50),
]


def test_sort_orders_and_ties_by_sequence_number(tmp_path):
    folder = _folder(tmp_path, MESSAGES)
    assert _sorted(folder, "ARRIVAL") == [4, 2, 3, 1]
    assert _sorted(folder, "REVERSE ARRIVAL") == [1, 3, 2, 4]
    # Sent dates in UTC: 1 is 10:00 UTC; 3 has no Date (its arrival, 200 s, is used), 4 an unparsable one.
    assert _sorted(folder, "DATE") == [4, 3, 1, 2]
    # Base subjects alpha, alpha, beta, Beta: i;ascii-casemap makes beta and Beta equal, ties
    # go by sequence number, also under REVERSE.
    assert _sorted(folder, "SUBJECT") == [2, 4, 1, 3]
    assert _sorted(folder, "REVERSE SUBJECT") == [1, 3, 2, 4]
    assert _sorted(folder, "SUBJECT ARRIVAL") == [4, 2, 3, 1]
    # Mailbox (local) parts: amy, amy, BOB, zed; missing To/Cc sort first as empty strings.
    assert _sorted(folder, "FROM") == [2, 4, 3, 1]
    assert _sorted(folder, "TO") == [2, 4, 3, 1]
    assert _sorted(folder, "CC") == [1, 3, 4, 2]
    assert _sorted(folder, "SIZE ARRIVAL") == [4, 2, 3, 1]


def test_sort_criteria_errors():
    for bad in ("", "REVERSE", "DATE REVERSE", "REVERSE REVERSE DATE", "COLOUR"):
        with pytest.raises(sort.SortError):
            sort.parse_criteria([atom.encode() for atom in bad.split()])


def test_header_keys_are_read_once_and_the_cache_is_bounded(tmp_path, monkeypatch):
    folder = _folder(tmp_path, MESSAGES)
    cache = sort.SortKeyCache(limit=3)
    reads = []
    real = sort.read_header
    monkeypatch.setattr(sort, "read_header", lambda path: reads.append(path) or real(path))
    assert _sorted(folder, "SUBJECT", cache) == [2, 4, 1, 3]
    assert len(reads) == 4
    assert _sorted(folder, "SUBJECT", cache) == [2, 4, 1, 3]
    assert len(reads) == 5                      # only the fourth, over the limit, is read again
    assert _sorted(folder, "ARRIVAL", cache) and len(reads) == 5


def test_expunged_messages_leave_the_cache(tmp_path):
    folder = _folder(tmp_path, MESSAGES)
    cache = sort.SortKeyCache()
    _sorted(folder, "FROM", cache)
    folder.set_letters(list(folder.messages)[:3], {"T"}, 1)
    folder.expunge()
    assert _sorted(folder, "FROM", cache) == [1]
    assert len(cache._folders[folder.path]) == 1


# -- over a socket ------------------------------------------------------------------------------


@pytest.fixture
def client(office):
    running = imapclient.login(office)
    for subject, sender, date in (("Re: beta", "zed", "Mon, 1 Jan 2024 10:00:00 +0000"),
                                  ("alpha", "amy", "Tue, 2 Jan 2024 10:00:00 +0000"),
                                  ("[list] Beta", "bob", "Sun, 31 Dec 2023 10:00:00 +0000")):
        running.append("INBOX", None, None, f"From: {sender}@example.test\r\nSubject: {subject}\r\n"
                                            f"Date: {date}\r\n\r\nbody\r\n".encode())
    running.select("INBOX")
    yield running
    running.logout()


def test_sort_and_uid_sort_with_search_criteria(client):
    assert "SORT" in client.capabilities
    assert client.sort("(REVERSE DATE)", "UTF-8", "ALL") == ("OK", [b"2 1 3"])
    assert client.sort("(SUBJECT)", "US-ASCII", "ALL") == ("OK", [b"2 1 3"])
    assert client.sort("(FROM)", "UTF-8", "NOT", "FROM", "amy") == ("OK", [b"3 1"])
    client.store("1", "+FLAGS", r"(\Deleted)")
    client.expunge()
    assert client.uid("SORT", "(REVERSE DATE)", "UTF-8", "ALL") == ("OK", [b"2 3"])
    assert client.sort("(DATE)", "UTF-8", "SUBJECT", "nothing") == ("OK", [b""])
    typ, data = client.sort("(DATE)", "KOI8-R", "ALL")
    assert typ == "NO" and data[0].startswith(b"[BADCHARSET")
    with pytest.raises(imaplib.IMAP4.error):
        client.sort("(COLOUR)", "UTF-8", "ALL")


def test_id_before_and_after_login(office):
    sock, reader = imapclient.raw(office, "imap")
    sock.sendall(b'i1 CAPABILITY\r\ni2 ID ("name" "test" "version" NIL)\r\n')
    lines = imapclient.read_until_tagged(reader, b"i2")
    assert b" ID " in lines[0] and lines[-1].startswith(b"i2 OK"), lines
    assert lines[-2] == b'* ID ("name" "mailbox-appliance" "version" "0.1.0")\r\n'
    sock.close()
    session = imapclient.Session(office)
    assert session.ok(b"ID NIL")[0].startswith(b"* ID (")
    session.ok(b'ID ("x-literal" {3+}\r\nabc)')
    # RFC 2971 §3.3 limits what a client sends; a pair past the limits is ignored, not refused.
    session.ok(b'ID ("a-field-name-longer-than-thirty-octets" "x")')
    for bad in (b'ID ("name")', b"ID (name x)", b"ID x"):
        assert session.command(bad)[-1].split()[1] == b"BAD", bad
    session.close()


def test_literal_plus_needs_no_continuation(office):
    session = imapclient.Session(office)
    assert b"LITERAL+" in session.ok(b"CAPABILITY")[0]
    message = imapclient.message("plus")
    # Everything in one write: with a continuation request expected this would hang or fail.
    session.sock.sendall(b"a1 APPEND INBOX (\\Seen) {%d+}\r\n%s\r\na2 SELECT {5+}\r\nINBOX\r\n"
                         b"a3 UID SEARCH SUBJECT {4+}\r\nplus\r\n" % (len(message), message))
    lines = imapclient.read_until_tagged(session.reader, b"a3")
    assert not any(line.startswith(b"+") for line in lines), lines
    assert [line.split()[1] for line in lines if line[:1] == b"a"] == [b"OK", b"OK", b"OK"], lines
    assert b"* SEARCH 1\r\n" in lines
    session.close()


@pytest.mark.parametrize("command", [b"APPEND INBOX {100000000+}", b"SELECT {5000+}"])
def test_a_too_large_non_synchronizing_literal_ends_the_session(office, command):
    session = imapclient.Session(office)
    session.sock.sendall(b"big " + command + b"\r\n" + b"x" * 8000)
    assert session.reader.readline().startswith(b"* BYE [TOOBIG]")
    try:
        rest = session.reader.read()
    except ConnectionResetError:         # closed with some of the x still unread: also the end
        rest = b""
    assert rest == b""
    session.close()


def test_a_too_large_synchronizing_string_literal_is_refused_unread(office):
    session = imapclient.Session(office)
    assert session.command(b"SELECT {5000}")[-1].split()[1] == b"BAD"
    session.ok(b"NOOP")
    session.close()


def test_sort_by_display_name(office):
    """RFC 5957: the first address's display name (MIME-decoded), else its addr-spec, else a
    group's name; ties by sequence number."""
    for sender, to in ((b"foo bar <a@b.c>", b"team: x@y.org;"), (b"b@c.d", b"Zed <z@y.org>"), (b"d", b"a@b.c"),
                       (b"=?iso-8859-1?q?foo_aar?= <e@f.g>", b"empty:;"), (b"=?iso-8859-1?q?foo_car?= <f@g.h>", b"b@c.d")):
        # Appended: "From: d" has no domain, which port 25's sender checks would file into Junk.
        session = imapclient.Session(office)
        message = b"From: " + sender + b"\r\nTo: " + to + b"\r\nSubject: s\r\n\r\nbody\r\n"
        session.ok(b"APPEND INBOX {%d+}\r\n" % len(message) + message)
        session.close()
    session = imapclient.Session(office)
    assert b"SORT=DISPLAY" in session.ok(b"CAPABILITY")[0]
    session.ok(b"SELECT INBOX")
    assert session.ok(b"SORT (DISPLAYFROM) US-ASCII ALL")[0] == b"* SORT 2 3 4 1 5\r\n"
    assert session.ok(b"SORT (REVERSE DISPLAYFROM) US-ASCII ALL")[0] == b"* SORT 5 1 4 3 2\r\n"
    assert session.ok(b"SORT (DISPLAYTO) US-ASCII ALL")[0] == b"* SORT 3 5 4 1 2\r\n"
    session.close()
