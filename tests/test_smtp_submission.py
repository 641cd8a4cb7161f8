"""Ports 587 and 465: TLS, then AUTH, then the user sends as their own addresses."""

import base64
import smtplib

import pytest

from conftest import PASSWORD, Office, unverified_tls
from rawsmtp import RawSMTP

MESSAGE = b"From: alice@example.test\r\nTo: friend@remote.test\r\nSubject: report\r\n\r\nSee attached.\r\n"


def test_587_requires_starttls_then_auth(office):
    raw = RawSMTP(office.ports["submission"])
    ehlo = raw.command("EHLO client.example.test")[1]
    assert "STARTTLS" in ehlo and "AUTH" not in ehlo
    assert raw.command("MAIL FROM:<alice@example.test>")[:1] == (530,)
    assert raw.command("AUTH PLAIN " + base64.b64encode(b"\0alice@example.test\0" + PASSWORD.encode()).decode())[:2] == \
        (538, "5.7.11 Encryption required for requested authentication mechanism")
    raw.starttls(unverified_tls())
    raw.command("EHLO client.example.test")
    code, text = raw.command("MAIL FROM:<alice@example.test>")
    assert (code, text) == (530, "5.7.0 Authentication required")
    raw.close()


@pytest.mark.parametrize("listener", ["submission", "submissions"])
def test_authenticated_user_relays_and_gets_date_and_message_id(office, listener):
    client = office.smtp(listener, login="alice@example.test")
    assert client.sendmail("alice@example.test", ["friend@remote.test", "bob@example.test"], MESSAGE) == {}
    client.quit()
    [entry] = office.queued()
    assert [recipient.address for recipient in entry.recipients] == ["friend@remote.test"]
    assert entry.received_from["user"] == "alice@example.test"
    [stored] = office.inbox("bob")
    assert b" with ESMTPSA id " in stored and b"(using TLSv1." in stored
    assert PASSWORD.encode() not in stored
    assert b"\r\nDate: " in stored and b"\r\nMessage-ID: <" in stored
    assert stored.endswith(MESSAGE)


def test_existing_date_and_message_id_are_kept(office):
    message = b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <x@y>\r\n" + MESSAGE
    client = office.smtp("submission", login="alice@example.test")
    client.sendmail("alice@example.test", ["bob@example.test"], message)
    client.quit()
    [stored] = office.inbox("bob")
    assert stored.count(b"Date:") == 1 and stored.count(b"Message-ID:") == 1


def test_465_is_implicit_tls_without_starttls(office):
    raw = RawSMTP(office.ports["submissions"], tls_context=unverified_tls())
    ehlo = raw.command("EHLO client.example.test")[1]
    assert "STARTTLS" not in ehlo and "AUTH PLAIN LOGIN" in ehlo
    assert raw.command("STARTTLS")[0] == 503
    raw.close()


@pytest.mark.parametrize("sender, allowed", [
    ("alice@example.test", True),
    ("alice+lists@example.test", True),
    ("sales@example.test", True),           # an alias that points to alice
    ("", True),                              # null sender (MDNs)
    ("bob@example.test", False),
    ("ceo@catchall.test", False),            # a catch-all is not an address of one's own
    ("alice@remote.test", False),
])
def test_user_sends_only_as_own_addresses(office, sender, allowed):
    client = office.smtp("submission", login="alice@example.test")
    code, text = client.mail(sender)
    if allowed:
        assert code == 250
    else:
        assert (code, text.split()[0]) == (553, b"5.7.1")
    client.quit()


def test_auth_login_mechanism(office):
    raw = RawSMTP(office.ports["submissions"], tls_context=unverified_tls())
    raw.command("EHLO client.example.test")
    assert raw.command("AUTH LOGIN") == (334, base64.b64encode(b"Username:").decode())
    assert raw.command(base64.b64encode(b"alice@example.test"))[0] == 334
    assert raw.command(base64.b64encode(PASSWORD.encode()))[:2] == (235, "2.7.0 Authentication successful")
    assert raw.command("AUTH PLAIN")[0] == 503
    raw.close()


def test_malformed_auth_exchanges(office):
    raw = RawSMTP(office.ports["submissions"], tls_context=unverified_tls())
    raw.command("EHLO client.example.test")
    assert raw.command("AUTH CRAM-MD5")[0] == 504
    assert raw.command("AUTH PLAIN")[0] == 334
    assert raw.command("*")[0] == 501
    assert raw.command("AUTH PLAIN !!!notbase64")[0] == 501
    assert raw.command("AUTH PLAIN " + base64.b64encode(b"no-nuls").decode())[0] == 501
    assert raw.command("AUTH PLAIN " + base64.b64encode(b"bob@example.test\0alice@example.test\0" + PASSWORD.encode()).decode())[0] == 535
    assert raw.command("NOOP")[0] == 250
    raw.close()


def test_repeated_failures_slow_down_then_refuse_the_address(tmp_path):
    office = Office(str(tmp_path), extra="[limits]\nlogin_failures = 3\nlogin_lockout = 1h\n").start()
    try:
        client = office.smtp("submissions")
        for _ in range(3):
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("alice@example.test", "wrong")
        # Locked out now: even the right password is refused, with a temporary error.
        with pytest.raises(smtplib.SMTPAuthenticationError) as raised:
            client.login("alice@example.test", PASSWORD)
        assert raised.value.smtp_code == 454
        client.quit()
        assert office.appliance.wait_for_log("authentication failed")
    finally:
        office.appliance.stop()
