"""Whole dialogues with swaks, the tool an admin uses to test a mail server by hand."""

import os
import shutil
import subprocess

import pytest

from conftest import PASSWORD

SWAKS = shutil.which("swaks")
# CI installs swaks (.ci/run), so there a missing swaks fails the tests instead of skipping them.
pytestmark = pytest.mark.skipif(SWAKS is None and not os.environ.get("CI"), reason="swaks is not installed")


def swaks(port, *arguments):
    result = subprocess.run(
        [SWAKS or "swaks", "--server", "127.0.0.1", "--port", str(port), "--helo", "client.example.test",
         "--timeout", "30", *arguments],
        capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout + result.stderr


def test_inbound_delivery(office):
    code, output = swaks(office.ports["smtp"], "--from", "someone@remote.test", "--to", "alice@example.test",
                         "--header", "Subject: swaks inbound", "--body", "hello from swaks")
    assert code == 0, output
    assert "<-  250 2.0.0 OK: queued as" in output
    [stored] = office.inbox()
    assert b"Subject: swaks inbound" in stored and b"hello from swaks" in stored


def test_relay_is_denied_without_auth(office):
    code, output = swaks(office.ports["smtp"], "--from", "alice@example.test", "--to", "victim@remote.test")
    assert code != 0
    assert "<** 554 5.7.1 Relay access denied" in output


def test_starttls_and_auth_on_submission(office):
    code, output = swaks(office.ports["submission"], "--tls", "--auth", "PLAIN",
                         "--auth-user", "alice@example.test", "--auth-password", PASSWORD,
                         "--from", "alice@example.test", "--to", "friend@remote.test",
                         "--header", "Subject: swaks submission")
    assert code == 0, output
    assert "<~  235 2.7.0 Authentication successful" in output
    assert "~> AUTH PLAIN" in output
    [entry] = office.queued()
    assert entry.recipients[0].address == "friend@remote.test"


def test_implicit_tls_and_auth_login_on_465(office):
    code, output = swaks(office.ports["submissions"], "--tls-on-connect", "--auth", "LOGIN",
                         "--auth-user", "alice@example.test", "--auth-password", PASSWORD,
                         "--from", "alice@example.test", "--to", "bob@example.test")
    assert code == 0, output
    assert len(office.inbox("bob")) == 1


def test_wrong_password(office):
    code, output = swaks(office.ports["submission"], "--tls", "--auth", "PLAIN",
                         "--auth-user", "alice@example.test", "--auth-password", "wrong",
                         "--from", "alice@example.test", "--to", "bob@example.test")
    assert code != 0
    assert "<~* 535 5.7.8 Authentication credentials invalid" in output


def test_pipelining_to_two_recipients(office):
    code, output = swaks(office.ports["smtp"], "--pipeline", "--from", "someone@remote.test",
                         "--to", "alice@example.test,bob@example.test")
    assert code == 0, output
    assert len(office.inbox("alice")) == 1 and len(office.inbox("bob")) == 1


def test_starttls_and_auth_on_port_25_relays(office):
    """Port 25 relays for an authenticated user only: STARTTLS, AUTH, then a remote recipient."""
    code, output = swaks(office.ports["smtp"], "--tls", "--auth", "PLAIN",
                         "--auth-user", "alice@example.test", "--auth-password", PASSWORD,
                         "--from", "alice@example.test", "--to", "someone@remote.test",
                         "--header", "Subject: swaks relay on 25")
    assert code == 0, output
    assert "<-  220 2.0.0 Ready to start TLS" in output
    assert "<~  235 2.7.0 Authentication successful" in output
    assert "<~  250 2.1.5 Recipient OK" in output
    assert "<~  250 2.0.0 OK: queued as" in output
    [entry] = office.queued()
    assert entry.sender == "alice@example.test"
    assert [recipient.address for recipient in entry.recipients] == ["someone@remote.test"]
    assert entry.received_from["user"] == "alice@example.test"
    assert entry.received_from["tls"] in ("TLSv1.2", "TLSv1.3")
