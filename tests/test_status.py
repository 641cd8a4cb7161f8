"""The admin's view of the running appliance: status, who, kick, auth test (over the admin
channel, as root or the service user)."""

import re
import time

import pytest

from appliance import admin
from conftest import PASSWORD
from imapclient import Session


def _ok(result):
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_status_names_the_version_listeners_sessions_and_queue(office):
    from importlib import metadata
    text = _ok(admin(office.config_path, "status"))
    assert text.startswith(f"mailbox-appliance {metadata.version('mailbox-appliance')}, up 0d 0h ")
    assert f"listener smtp: 127.0.0.1:{office.ports['smtp']}" in text
    assert f"listener imaps: 127.0.0.1:{office.ports['imaps']}" in text
    assert "logged-in sessions: none" in text and "queue: empty" in text
    session = Session(office)
    try:
        assert "logged-in sessions: imap 1" in _ok(admin(office.config_path, "status"))
    finally:
        session.close()


def test_status_shows_the_last_delivery_problems(office):
    assert "last delivery problems: none" in _ok(admin(office.config_path, "status"))
    client = office.smtp("submission", login="alice@example.test")
    client.sendmail("alice@example.test", ["someone@remote.test"], b"From: alice@example.test\r\n\r\nhi\r\n")
    client.quit()
    office.appliance.wait_for_log(r"attempt 1: .*pending", timeout=30)
    lines = _ok(admin(office.config_path, "status")).splitlines()
    problems = lines[lines.index("last delivery problems:") + 1:]
    assert len(problems) == 1
    assert re.fullmatch(r"  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+ <someone@remote\.test>: 451 4\.4\.3 .*SERVFAIL",
                        problems[0]), problems


def _who(office):
    return _ok(admin(office.config_path, "who"))


def test_who_lists_the_sessions_and_kick_ends_a_users(office):
    alice, bob = Session(office, "alice"), Session(office, "bob")
    try:
        rows = _who(office).splitlines()
        assert [row.split()[:3] for row in rows] == [["alice@example.test", "imap", "127.0.0.1"],
                                                      ["bob@example.test", "imap", "127.0.0.1"]]
        assert _ok(admin(office.config_path, "kick", "Alice@example.test")).strip() == \
            "kick alice@example.test: 1 session ended"
        assert alice.reader.readline() == b"* BYE The administrator ended this session\r\n"
        assert alice.reader.readline() == b""                      # closed
        alice.reader.close()               # as clients do on BYE (TLS waits for the client's close)
        alice.close()
        deadline = time.monotonic() + 10
        while "alice@" in _who(office):                            # the server saw the close
            assert time.monotonic() < deadline
        assert _who(office).split()[0] == "bob@example.test"
        bob.ok(b"NOOP")                                            # bob's session goes on
    finally:
        alice.close()
        bob.close()
    assert _ok(admin(office.config_path, "kick", "carol@example.test")).strip() == \
        "kick carol@example.test: 0 sessions ended"


def test_auth_test_checks_a_password_without_locking_anyone_out(office):
    good = admin(office.config_path, "auth", "test", "alice@example.test", password=PASSWORD)
    assert good.returncode == 0 and "auth test alice@example.test: succeeded" in good.stdout, good.stderr
    for _ in range(12):                                            # past login_failures (10)
        bad = admin(office.config_path, "auth", "test", "alice@example.test", password="wrong password")
        assert bad.returncode == 1 and "failed (no such user, or a wrong password)" in bad.stderr
    Session(office).close()                                        # 127.0.0.1 may still log in


@pytest.mark.parametrize("command", [["status"], ["who"], ["kick", "alice@example.test"]])
def test_without_the_appliance_the_admin_says_so(config_path, command):
    result = admin(config_path, *command)
    assert result.returncode == 1 and "nothing was done" in result.stderr


def test_user_list_shows_the_last_login(office):
    session = Session(office)
    session.close()
    office.appliance.stop()              # the record is written at stop (else once a minute)
    listing = _ok(admin(office.config_path, "user", "list")).splitlines()
    alice = next(line for line in listing if line.startswith("alice@"))
    assert re.search(r"  last login \d{4}-\d\d-\d\d \d\d:\d\d imap from 127\.0\.0\.1$", alice), alice
    assert next(line for line in listing if line.startswith("bob@")).endswith("  never logged in")
