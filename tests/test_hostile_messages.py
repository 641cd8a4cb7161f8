"""Messages built to make the parsers work hard are stored and served, and every command on them
is answered without a traceback (issue 20: 100,000 addresses, 5,000-deep MIME, 100,000 parts,
100,000 parameters, a 20 MB folded header; issue 21 #7, #8: deep MIME ended in a recursion error
and a 193 KB traceback, 100,000 parts cost 3.4 s and 91 MB per FETCH).  What each command costs
is printed by benchmarks/hostile_messages.py."""

import pytest

import hostile_messages
from fuzzing import tracebacks


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    office, session = hostile_messages.stored_office(str(tmp_path_factory.mktemp("hostile")))
    yield office, session
    session.close()
    office.appliance.stop()


@pytest.mark.parametrize("number, name", list(enumerate(hostile_messages.MESSAGES, 1)))
@pytest.mark.parametrize("command", hostile_messages.COMMANDS)
def test_every_command_on_a_hostile_message_is_answered(stored, number, name, command):
    office, session = stored
    answer = session.command(command % number)
    assert answer[-1].split()[1] == b"OK", answer[-1]
    assert tracebacks(office.appliance.lines) == []


def test_a_hostile_message_is_served_whole(stored):
    """Where a limit stops a parse, the message is still the message: its octets, unchanged."""
    _office, session = stored
    whole = hostile_messages.folded_header()
    number = list(hostile_messages.MESSAGES.values()).index(hostile_messages.folded_header) + 1
    answer = b"".join(session.ok(b"FETCH %d BODY.PEEK[]" % number))
    assert b"{%d}\r\n" % len(whole) + whole in answer
