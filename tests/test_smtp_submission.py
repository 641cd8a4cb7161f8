"""Ports 587 and 465: TLS, then AUTH, then the user sends as their own addresses."""

import base64
import smtplib
import time

import pytest

from conftest import PASSWORD, Office, unverified_tls
from rawsmtp import RawSMTP, auth_plain

MESSAGE = b"From: alice@example.test\r\nTo: friend@remote.test\r\nSubject: report\r\n\r\nSee attached.\r\n"


def test_587_requires_starttls_then_auth(office):
    raw = RawSMTP(office.ports["submission"])
    ehlo = raw.command("EHLO client.example.test")[1]
    assert "STARTTLS" in ehlo and "AUTH" not in ehlo
    assert raw.command("MAIL FROM:<alice@example.test>")[:1] == (530,)
    assert raw.command(auth_plain("alice@example.test", PASSWORD))[:2] == \
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
        assert office.appliance.wait_for_log("login failed")
    finally:
        office.appliance.stop()


# -- what EHLO offers, per listener and per session state -----------------------------------

SMALL_LIMITS = "[limits]\nmax_message_size = 2k\n"
# SIZE shows the configured limit (2k = 2048 octets), not the built-in default.
BASE_KEYWORDS = ["PIPELINING", "SIZE 2048", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING"]


def _ehlo_keywords(raw):
    """The extension keywords of an EHLO reply, sorted; the greeting line is checked apart."""
    code, text = raw.command("EHLO client.example.test")
    assert code == 250, text
    greeting, *keywords = text.split("\n")
    assert greeting == "mail.example.test greets client.example.test"
    return sorted(keywords)


@pytest.fixture
def small_office(tmp_path):
    running = Office(str(tmp_path), extra=SMALL_LIMITS).start()
    yield running
    running.appliance.stop()


@pytest.mark.parametrize("listener", ["smtp", "submission"])
def test_ehlo_keywords_before_and_after_starttls_and_auth(small_office, listener):
    raw = RawSMTP(small_office.ports[listener])
    # Cleartext: STARTTLS, and no AUTH at all (RFC 4954 §4: no cleartext AUTH on offer).
    assert _ehlo_keywords(raw) == sorted(BASE_KEYWORDS + ["STARTTLS"])
    raw.starttls(unverified_tls())
    # RFC 3207 §4.2: no STARTTLS inside TLS; AUTH now.
    assert _ehlo_keywords(raw) == sorted(BASE_KEYWORDS + ["AUTH PLAIN LOGIN"])
    assert raw.command(auth_plain("alice@example.test", PASSWORD))[:2] == (235, "2.7.0 Authentication successful")
    # Authenticated: AUTH is no longer offered (a second AUTH would get 503).
    assert _ehlo_keywords(raw) == sorted(BASE_KEYWORDS)
    raw.close()


def test_ehlo_keywords_on_465_before_and_after_auth(small_office):
    raw = RawSMTP(small_office.ports["submissions"], tls_context=unverified_tls())
    # RFC 8314 §3.3: implicit TLS offers no STARTTLS, and AUTH from the start.
    assert _ehlo_keywords(raw) == sorted(BASE_KEYWORDS + ["AUTH PLAIN LOGIN"])
    assert raw.command(auth_plain("alice@example.test", PASSWORD))[:2] == (235, "2.7.0 Authentication successful")
    assert _ehlo_keywords(raw) == sorted(BASE_KEYWORDS)
    raw.close()


def test_465_requires_auth_before_mail(office):
    raw = RawSMTP(office.ports["submissions"], tls_context=unverified_tls())
    raw.command("EHLO client.example.test")
    assert raw.command("MAIL FROM:<alice@example.test>")[:2] == (530, "5.7.0 Authentication required")
    assert raw.command(auth_plain("alice@example.test", PASSWORD))[0] == 235
    assert raw.command("MAIL FROM:<alice@example.test>")[:2] == (250, "2.1.0 Sender OK")
    raw.close()


def test_failed_logins_are_answered_later_and_then_a_new_connection_is_locked_out(tmp_path):
    """login_throttle.py: the first FREE_FAILURES (2) failures are answered at once, the 3rd after
    1 s, the 4th after 2 s; with login_failures = 4 the 4th also locks the address out.  (The
    lock-out inside the same connection is test_repeated_failures_slow_down_then_refuse_the_address.)"""
    office = Office(str(tmp_path), extra="[limits]\nlogin_failures = 4\nlogin_lockout = 1h\n").start()
    try:
        raw = RawSMTP(office.ports["submissions"], tls_context=unverified_tls())
        raw.command("EHLO client.example.test")
        elapsed = []
        for _ in range(4):
            started = time.monotonic()
            reply = raw.command(auth_plain("alice@example.test", "wrong"))
            elapsed.append(time.monotonic() - started)
            assert reply == (535, "5.7.8 Authentication credentials invalid")
        assert elapsed[0] < 1.0 and elapsed[1] < 1.0, elapsed
        assert elapsed[2] >= 1.0 - 0.1, elapsed
        assert elapsed[3] >= 2.0 - 0.1, elapsed
        raw.close()
        # A new connection from the same address, even with the right password, on any listener.
        again = RawSMTP(office.ports["submissions"], tls_context=unverified_tls())
        again.command("EHLO client.example.test")
        assert again.command(auth_plain("alice@example.test", PASSWORD))[:2] == (454, "4.7.0 Too many failed logins from your address; try again later")
        again.close()
        other = RawSMTP(office.ports["submission"])
        other.command("EHLO client.example.test")
        other.starttls(unverified_tls())
        other.command("EHLO client.example.test")
        assert other.command("AUTH LOGIN")[:2] == (454, "4.7.0 Too many failed logins from your address; try again later")
        other.close()
    finally:
        office.appliance.stop()


@pytest.mark.parametrize("header, allowed", [
    (b"From: Alice <alice@example.test>", True),
    (b"From: alice+news@example.test (Alice)", True),
    (b"From: Sales <sales@example.test>", True),                     # an alias that points to alice
    (b"From: Bob <bob@example.test>", False),                        # another user
    (b"From: ceo@catchall.test", False),                             # a hosted domain's catch-all
    (b"From: alice@example.test\r\nFrom: bob@example.test", False),  # two From: fields
    (b"From: alice@example.test, bob@example.test", False),          # two authors
    (b"From: team: alice@example.test;", False),                     # a group
    (b"Sender: alice@example.test", False),                          # no From: at all
])
def test_submitted_mail_is_from_the_user_or_refused(office, header, allowed):
    """Issue 21 #13: a forged From: was accepted and DKIM-signed with our key."""
    client = office.smtp("submission", login="alice@example.test")
    message = header + b"\r\nTo: friend@remote.test\r\nSubject: s\r\n\r\nbody\r\n"
    if allowed:
        assert client.sendmail("", ["friend@remote.test"], message) == {}
    else:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("alice@example.test", ["friend@remote.test"], message)
        assert (refused.value.smtp_code, refused.value.smtp_error.split()[0]) == (550, b"5.7.1")
    client.quit()
