"""Port 25: mail for our addresses is delivered, nothing else is relayed without AUTH."""

import smtplib

import pytest

from conftest import PASSWORD, _password_hash, unverified_tls
from mailbox_appliance.queue.spool import Spool
from rawsmtp import RawSMTP, auth_plain

MESSAGE = b"From: someone@remote.test\r\nTo: alice@example.test\r\nSubject: hello\r\n\r\nHello Alice.\r\n"


def _body(stored):
    """The message as the client sent it: what follows our Return-Path and Received fields."""
    assert stored.startswith(b"Return-Path: <")
    received = stored.index(b"Received: ")
    end = stored.index(b"\r\n", received)
    while stored[end + 2:end + 3] == b"\t":
        end = stored.index(b"\r\n", end + 2)
    return stored[end + 2:]


def test_ehlo_advertises_extensions_and_no_auth_before_tls(office):
    client = office.smtp()
    features = client.esmtp_features
    for extension in ("pipelining", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking", "starttls"):
        assert extension in features
    assert features["size"] == str(25 * 1024 * 1024)
    assert "auth" not in features
    client.starttls(context=unverified_tls())
    client.ehlo("client.example.test")
    assert "starttls" not in client.esmtp_features
    assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
    client.quit()


@pytest.mark.parametrize("recipient, mailbox", [
    ("alice@example.test", "alice"),
    ("Alice@EXAMPLE.test", "alice"),
    ("alice+newsletters@example.test", "alice"),
    ("sales@example.test", "bob"),
    ("anyone@catchall.test", "bob"),
])
def test_local_addresses_are_delivered_to_the_inbox(office, recipient, mailbox):
    client = office.smtp()
    assert client.sendmail("someone@remote.test", [recipient], MESSAGE) == {}
    client.quit()
    [stored] = office.inbox(mailbox)
    assert stored.startswith(b"Return-Path: <someone@remote.test>\r\nReceived: from client.example.test ([127.0.0.1])\r\n")
    assert b"by mail.example.test (mailbox-appliance) with ESMTP id " in stored
    assert _body(stored) == MESSAGE


def test_one_copy_per_mailbox_and_a_remote_alias_target_is_queued(office):
    client = office.smtp()
    client.sendmail("someone@remote.test", ["alice@example.test", "sales@example.test", "partners@example.test"], MESSAGE)
    client.quit()
    assert len(office.inbox("alice")) == 1 and len(office.inbox("bob")) == 1
    [entry] = office.queued()
    assert [recipient.address for recipient in entry.recipients] == ["someone@remote.test"]


def test_unknown_local_recipient_is_550_5_1_1(office):
    client = office.smtp()
    client.mail("someone@remote.test")
    assert client.rcpt("nobody@example.test") == (550, b"5.1.1 No such user here: <nobody@example.test>")
    assert client.rcpt("alice@example.test")[0] == 250
    client.quit()


@pytest.mark.parametrize("helo, sender", [
    ("client.example.test", "someone@remote.test"),
    ("localhost", "alice@example.test"),
    ("mail.example.test", "postmaster@example.test"),
    ("[127.0.0.1]", ""),
])
def test_never_an_open_relay_whatever_the_client_claims(office, helo, sender):
    """Loopback, our own name in HELO, our own domain in MAIL FROM: none of it opens relaying."""
    raw = RawSMTP(office.ports["smtp"])
    assert raw.command(f"EHLO {helo}")[0] == 250
    assert raw.command(f"MAIL FROM:<{sender}>")[0] == 250
    code, text = raw.command("RCPT TO:<victim@remote.test>")
    assert (code, text.split()[0]) == (554, "5.7.1")
    assert raw.command("RCPT TO:<victim@[127.0.0.1]>")[0] == 554
    raw.close()
    assert office.queued() == []


def test_auth_on_25_after_starttls_relays(office):
    client = office.smtp("smtp", login="alice@example.test")
    assert client.sendmail("alice@example.test", ["friend@remote.test"], MESSAGE) == {}
    client.quit()
    [entry] = office.queued()
    assert entry.sender == "alice@example.test"
    assert office.appliance.wait_for_log(r"smtp inbound session .* user=alice@example.test .*result=250")


def test_eight_bit_and_utf8_arrive_byte_for_byte(office):
    message = ("Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln — ☃\r\n\xa0\r\n").encode("utf-8") + b"\xff\xfe raw\r\n"
    client = office.smtp()
    client.sendmail("jürgen@remote.test", ["alice@example.test"], message, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    client.quit()
    [stored] = office.inbox()
    assert _body(stored) == message
    assert stored.startswith("Return-Path: <jürgen@remote.test>".encode("utf-8"))
    assert b" with UTF8SMTP id " in stored


def test_non_ascii_address_needs_smtputf8(office):
    raw = RawSMTP(office.ports["smtp"])
    raw.command("EHLO client.example.test")
    code, text = raw.command("MAIL FROM:<jürgen@remote.test>")
    assert (code, text.split()[0]) == (553, "5.6.7")
    assert raw.command("MAIL FROM:<jürgen@remote.test> SMTPUTF8")[0] == 250
    raw.close()


def test_postmaster_without_domain_is_accepted(office):
    with open(f"{office.data_dir}/aliases", "a") as handle:
        handle.write("postmaster@example.test: alice@example.test\n")
    client = office.smtp()
    client.mail("someone@remote.test")
    assert client.rcpt("<Postmaster>")[0] == 250
    client.quit()


def test_vrfy_does_not_reveal_users(office):
    client = office.smtp()
    assert client.verify("alice@example.test")[0] == 252
    assert client.verify("nobody@example.test")[0] == 252
    client.quit()


def test_wrong_password_is_535_5_7_8(office):
    client = office.smtp()
    client.starttls(context=unverified_tls())
    client.ehlo("client.example.test")
    with pytest.raises(smtplib.SMTPAuthenticationError) as raised:
        client.login("alice@example.test", PASSWORD + "x")
    assert raised.value.smtp_code == 535 and raised.value.smtp_error.startswith(b"5.7.8")
    client.quit()


# -- SMTPUTF8 recipients (RFC 6531) ------------------------------------------------------------

UTF8_MESSAGE = ("From: someone@remote.test\r\nTo: jürgen@example.test\r\nSubject: Grüße\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n\r\nHallo Jürgen, schöne Grüße.\r\n").encode("utf-8")


def _add_utf8_alias(office):
    """jürgen@example.test: an alias for alice (the aliases file is UTF-8; re-read on change)."""
    with open(f"{office.data_dir}/aliases", "a", encoding="utf-8") as handle:
        handle.write("jürgen@example.test: alice@example.test\n")


def _send_raw(raw, sender, recipient, message, mail_parameters):
    """EHLO, MAIL, RCPT, DATA and *message* over *raw*; the final reply."""
    raw.open_data(sender, recipient, mail_parameters)
    raw.send(message + b".\r\n")
    return raw.reply()


def test_utf8_recipient_without_smtputf8_is_553_5_6_7(office):
    _add_utf8_alias(office)                     # the address exists: refused for its form alone
    raw = RawSMTP(office.ports["smtp"])
    assert raw.command("EHLO client.example.test")[0] == 250
    assert raw.command("MAIL FROM:<someone@remote.test>")[0] == 250
    code, text = raw.command("RCPT TO:<jürgen@example.test>")
    assert (code, text.split()[0]) == (553, "5.6.7")
    assert raw.command("DATA")[0] in (503, 554)  # no recipient was accepted
    raw.close()
    assert office.inbox() == []


@pytest.mark.parametrize("kind", ["alias", "user"])
def test_utf8_local_recipient_with_smtputf8_arrives_byte_for_byte(office, kind):
    if kind == "alias":
        _add_utf8_alias(office)
        mailbox = "alice"
    else:
        with open(f"{office.data_dir}/users", "a", encoding="utf-8") as handle:
            handle.write(f"jürgen@example.test:{_password_hash()}\n")
        mailbox = "jürgen"
    raw = RawSMTP(office.ports["smtp"])
    code, text = _send_raw(raw, "someone@remote.test", "jürgen@example.test", UTF8_MESSAGE, " SMTPUTF8")
    assert code == 250, text
    assert raw.command("QUIT")[0] == 221
    raw.close()
    [stored] = office.inbox(mailbox)
    assert _body(stored) == UTF8_MESSAGE
    assert stored.startswith(b"Return-Path: <someone@remote.test>\r\nReceived: from client.example.test ([127.0.0.1])\r\n")
    assert b" with UTF8SMTP id " in stored
    header = stored[:len(stored) - len(UTF8_MESSAGE)]
    assert b"\tfor <" in header                 # one recipient: the Received field names it
    assert "\tfor <jürgen@example.test>;\r\n".encode("utf-8") in header


def test_submission_to_a_utf8_remote_recipient_queues_it_as_sent(office):
    raw = RawSMTP(office.ports["submission"])
    assert raw.command("EHLO client.example.test")[0] == 250
    raw.starttls(unverified_tls())
    assert raw.command("EHLO client.example.test")[0] == 250
    assert raw.command(auth_plain("alice@example.test", PASSWORD))[0] == 235
    message = ("From: alice@example.test\r\nTo: josé@remote.test\r\nSubject: olá\r\n"
               "Message-ID: <utf8-1@example.test>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\nOlá José.\r\n").encode("utf-8")
    # Mixed case: only the remote host may fold it (RFC 5321 §2.4).
    code, text = _send_raw(raw, "alice@example.test", "José@Remote.test", message, " SMTPUTF8")
    assert code == 250, text
    raw.close()
    [entry] = office.queued()
    assert entry.sender == "alice@example.test"
    assert [recipient.address for recipient in entry.recipients] == ["José@Remote.test"]
    queued_message = Spool(f"{office.data_dir}/queue").read_message(entry.id)
    assert queued_message.endswith(message)
    assert "\tfor <José@Remote.test>;\r\n".encode("utf-8") in queued_message[:-len(message)]
