"""Hostile input to the IMAP server from a logged-in user: each case must get its answer (the
client's 30 s socket timeout is the bound), and the server must go on serving."""

import pytest

import imapclient


@pytest.fixture
def session(office):
    running = imapclient.Session(office)
    yield running
    running.close()


def test_list_wildcards_that_backtracked_are_answered(session):
    session.ok(b"CREATE " + b"a" * 200)
    for pattern in (b"*" * 60 + b"z", b"*a" * 100 + b"z", b"%*" * 500 + b"z"):
        lines = session.ok(b'LIST "" "' + pattern + b'"')
        assert len(lines) == 1, lines                    # nothing matches, and it says so at once
    assert len(session.ok(b'LIST "" "*"')) > 1
