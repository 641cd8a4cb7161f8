"""Hostile input to the IMAP server from a logged-in user: each case must get its answer (the
client's 30 s socket timeout is the bound), and the server must go on serving."""

import pytest

import imapclient


def test_list_wildcards_that_backtracked_are_answered(session):
    session.ok(b"CREATE " + b"a" * 200)
    for pattern in (b"*" * 60 + b"z", b"*a" * 100 + b"z", b"%*" * 500 + b"z"):
        lines = session.ok(b'LIST "" "' + pattern + b'"')
        assert len(lines) == 1, lines                    # nothing matches, and it says so at once
    assert len(session.ok(b'LIST "" "*"')) > 1


@pytest.mark.parametrize("command", [b"FETCH 1\xff FLAGS", b"STORE 1\xff +FLAGS (\\Seen)", b"COPY 1\xff Trash",
                                     b"UID FETCH 1:\xff FLAGS", b"SEARCH UID 1\xff"])
def test_an_8_bit_octet_in_a_sequence_set_gets_bad_and_the_session_goes_on(office, session, command):
    office.smtp().sendmail("bob@example.test", ["alice@example.test"], imapclient.message("one"))
    session.ok(b"SELECT INBOX")
    assert session.command(command)[-1].split()[1] == b"BAD"
    assert session.ok(b"NOOP")[-1].endswith(b"NOOP completed\r\n")


@pytest.mark.parametrize("marker", [b"{+400000000}", b"{ 40}", b"{40 }", b"{4_000}", b"{-1}", b"{0x10}"])
def test_a_literal_spelled_otherwise_than_the_rfcs_say_is_bad(session, marker):
    """Issue 21 #6: Twisted read these with int(), so APPEND took 400 MB past max_message_size."""
    assert session.command(b"APPEND INBOX " + marker)[-1].split()[1] == b"BAD"
    assert session.command(b"SELECT " + marker)[-1].split()[1] == b"BAD"
    assert session.ok(b"NOOP")[-1].endswith(b"NOOP completed\r\n")


def test_garbage_before_login_gets_bad_without_tracebacks_then_bye(office):
    """Issue 21 #10: "a \\xff" repeated made one traceback per line in the log and never closed."""
    sock, reader = imapclient.raw(office)
    try:
        sock.sendall(b"a \xff\r\n" * 50)
        lines = reader.read().splitlines()
    finally:
        sock.close()
    assert all(line.startswith(b"a BAD") for line in lines[:10]), lines
    assert lines[10:] == [b"* BYE Too many invalid commands"], lines
    assert not [line for line in office.appliance.lines if "Traceback" in line]


@pytest.mark.parametrize("plus", [b"+", b""])
def test_a_command_of_many_literals_before_login_is_bounded(office, plus):
    """Issue 21 #4: ID ({4096+} ... kept every literal: 200 MB per session, nothing logged."""
    sock, reader = imapclient.raw(office)
    try:
        sock.sendall(b'a ID ("f" {4096' + plus + b"}\r\n")
        for _ in range(100):                       # 400 KB of literals, far past the 64 KB
            if not plus:
                continuation = reader.readline()
                if not continuation.startswith(b"+"):
                    break
            sock.sendall(b"v" * 4096 + b' "f" {4096' + plus + b"}\r\n")
        answer = reader.readline() if plus else continuation
    except (BrokenPipeError, ConnectionResetError):
        answer = reader.readline()
    finally:
        sock.close()
    expected = b"* BYE [TOOBIG]" if plus else b"a BAD"
    assert answer.startswith(expected), answer


@pytest.mark.parametrize("subject", [b"=?utf-8?B?!!!notbase64?=", b"(fwd)" * 16_000 + b"X", b"=?utf-8?q?a?= " * 5_000])
def test_a_poison_subject_breaks_neither_search_nor_sort_nor_thread(office, session, subject):
    """Issue 21 #3, #7, #8: a bad encoded word failed SEARCH and SORT for the whole folder; an
    80 KB "(fwd)(fwd)...X" cost 6 s per SORT, a megabyte froze the process."""
    office.smtp().sendmail("bob@example.test", ["alice@example.test"], imapclient.message("fine"))
    folded = b"\r\n ".join(subject[i:i + 900] for i in range(0, len(subject), 900))   # SMTP: 998 per line
    office.smtp().sendmail("bob@example.test", ["alice@example.test"],
                           b"From: x@y.test\r\nSubject: " + folded + b"\r\n\r\nbody\r\n")
    session.ok(b"SELECT INBOX")
    assert session.ok(b"SEARCH SUBJECT fine")[0] == b"* SEARCH 1\r\n"
    assert session.ok(b"SORT (SUBJECT) UTF-8 ALL")[0].startswith(b"* SORT ")
    assert session.ok(b"THREAD REFERENCES UTF-8 ALL")[0].startswith(b"* THREAD ")


@pytest.mark.parametrize("criteria", [b"(" * 400 + b"ALL" + b")" * 400, b"NOT " * 400 + b"ALL",
                                      b"OR " * 400 + b"ALL " * 401, b"SUBJECT x " * 1500])
def test_a_search_too_deep_or_too_long_gets_bad_and_no_traceback(office, session, criteria):
    """Issue 21 #9: a recursion error and 130 KB of log per command, or half a minute of CPU."""
    session.ok(b"SELECT INBOX")
    assert session.command(b"SEARCH " + criteria)[-1].split()[1] == b"BAD"
    assert not [line for line in office.appliance.lines if "Traceback" in line]
    assert session.ok(b"SEARCH " + b"(" * 30 + b"ALL" + b")" * 30)[-1].endswith(b"SEARCH completed\r\n")
