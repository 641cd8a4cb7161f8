"""Hostile IMAP input gets BAD (or a BYE), never a traceback (issue 20 #2).

Five minutes of mutated commands gave 13 distinct exceptions from the command parsing, each
logged as a critical traceback.  The inputs that found them are kept below; a short seeded run of
the mutator (imap_fuzzing.py) looks for new ones; fuzz/sessions.py runs it for longer.
"""

import pytest

import fuzzing
import imap_fuzzing
import imapclient
from conftest import Office


@pytest.fixture(scope="module")
def fuzzed_office(tmp_path_factory):
    # Every fuzzing session is a new connection from 127.0.0.1.
    running = Office(str(tmp_path_factory.mktemp("fuzz")), extra="[limits]\nmax_connection_rate = 0\n").start()
    session = imapclient.Session(running)
    for number in range(3):
        session.ok(b"APPEND INBOX {%d+}\r\n" % len(imapclient.message(f"m{number}")) + imapclient.message(f"m{number}"))
    session.close()
    yield running
    running.appliance.stop()


@pytest.mark.parametrize("command", [
    b"\xffNOOP", b"NO\xffOP 1",                                  # lookupCommand
    b"FETCH 1\xff", b"SELECT INBOX\xff",                           # __ebDispatch's reason
    b"UID\tSTORE 1:* -FLAGS (\\Seen)", b"STORE 1 +FLAGS (\\Se\xc3\xa9n)", b"STORE 1 +FLAGS (a (b)",
    b"UID", b"UID FETCH", b"FETCH 1 (FLAGS", b"FETCH 1 (BODY[HEADER.FIELDS (A B]",
    b"FETCH 1 BODY[1.", b"FETCH 1 BODY[]<1.x>", b"FETCH 1 BODY[]<", b"FETCH 1 (ENVELOPE\tFLAGS)",
    b"FETCH 1 BODY[TEXT", b"FETCH 1 (BODY[]<0.-1>)", b"FETCH 1 (()", b"FETCH 1 )",
    b"STATUS INBOX (MESSAGES (UNSEEN))", b"STATUS INBOX (MESSAG(ES UNSEEN", b"STATUS INBOX MESSAGES)",
    b"SEARCH UID (", b"SEARCH SINCE (", b"SEARCH", b"UID SEARCH", b"SORT (DATE(", b"SEARCH HEADER ( x",
    b"LIST \"\" \"", b"LIST \"\" (()", b"UID EXPUNGE", b"RENAME \"a", b"RENAME a", b"COPY 1", b"SEARCH UID 1:\xff",
    b"STORE 1 +FLAGS", b"UID STORE 1 FLAGS", b"STORE 1 (UNCHANGEDSINCE 5) -FLAGS.SILENT",    # fuzz/sessions.py, seed 1005
])
def test_a_hostile_command_is_answered_and_nothing_raises(fuzzed_office, command):
    logged = len(fuzzed_office.appliance.lines)
    session = imapclient.Session(fuzzed_office)
    session.ok(b"SELECT INBOX")
    last = imap_fuzzing.answer(session, b"x1", command)
    assert last.split()[1:2] in ([b"OK"], [b"BAD"], [b"NO"]), last     # answered (a tab is taken as SP)
    session.ok(b"NOOP")                           # the session goes on
    session.close()
    assert fuzzing.tracebacks(fuzzed_office.appliance.lines[logged:]) == []


def test_a_seeded_run_of_mutated_commands_raises_nothing(fuzzed_office):
    logged = len(fuzzed_office.appliance.lines)
    imap_fuzzing.run(fuzzed_office, commands=1000, seed=20)
    assert fuzzing.tracebacks(fuzzed_office.appliance.lines[logged:]) == []
