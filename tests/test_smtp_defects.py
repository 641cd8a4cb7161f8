"""Regression tests for the defects of twisted.mail's ESMTP server that must not reach our users."""

import base64
import re
import socket

import pytest

from conftest import PASSWORD, unverified_tls
from rawsmtp import RawSMTP, auth_plain


def test_commands_pipelined_after_starttls_are_discarded(office):
    """CVE-2011-0411: plaintext sent behind STARTTLS must not run inside the TLS session."""
    raw = RawSMTP(office.ports["smtp"])
    raw.command("EHLO client.example.test")
    raw.send(b"STARTTLS\r\nMAIL FROM:<injected@remote.test>\r\nRCPT TO:<alice@example.test>\r\n")
    assert raw.reply()[0] == 220
    raw.sock = unverified_tls().wrap_socket(raw.sock)
    # Had the injected MAIL been run, this would be 503 nested MAIL, and EHLO would not be needed.
    assert raw.command("MAIL FROM:<real@remote.test>")[:2] == (503, "5.5.1 Send EHLO or HELO first")
    raw.command("EHLO client.example.test")
    assert raw.command("MAIL FROM:<real@remote.test>")[0] == 250
    raw.close()
    assert office.appliance.wait_for_log("pipelined after STARTTLS discarded")


def test_starttls_forgets_helo_and_transaction(office):
    raw = RawSMTP(office.ports["smtp"])
    raw.command("EHLO client.example.test")
    raw.starttls(unverified_tls())
    assert raw.command("RCPT TO:<alice@example.test>")[0] == 503
    assert raw.command("AUTH PLAIN x")[:2] == (503, "5.5.1 Send EHLO first")
    raw.close()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_is_refused_in_cleartext(office, mechanism):
    """RFC 4954 §4: 538 before any challenge, for LOGIN (no initial response) as for PLAIN."""
    commands = [auth_plain("alice@example.test", PASSWORD)] if mechanism == "PLAIN" else \
        ["AUTH LOGIN", "AUTH LOGIN " + base64.b64encode(b"alice@example.test").decode()]
    for listener in ("smtp", "submission"):
        raw = RawSMTP(office.ports[listener])
        raw.command("EHLO client.example.test")
        for command in commands:
            assert raw.command(command)[:2] == (538, "5.7.11 Encryption required for requested authentication mechanism")
        # Still in command mode, not waiting for a password line.
        assert raw.command("NOOP")[:2] == (250, "2.0.0 OK")
        raw.close()


def test_starttls_resets_a_transaction_begun_in_cleartext(office):
    """RFC 3207 §4.2: after the handshake the server forgets the MAIL given before it."""
    raw = RawSMTP(office.ports["smtp"])
    raw.command("EHLO client.example.test")
    assert raw.command("MAIL FROM:<a@remote.test>")[:2] == (250, "2.1.0 Sender OK")
    raw.starttls(unverified_tls())
    assert raw.command("EHLO client.example.test")[0] == 250
    assert raw.command("RCPT TO:<alice@example.test>")[:2] == (503, "5.5.1 Send MAIL first")
    assert raw.command("MAIL FROM:<b@remote.test>")[:2] == (250, "2.1.0 Sender OK")
    raw.close()


def test_received_after_starttls_names_tls_and_no_authentication(office):
    raw = RawSMTP(office.ports["smtp"])
    raw.command("EHLO client.example.test")
    raw.starttls(unverified_tls())
    version = raw.sock.version()
    assert version in ("TLSv1.2", "TLSv1.3")
    raw.open_data()
    message = b"Subject: over TLS\r\n\r\nhello\r\n"
    raw.send(message + b".\r\n")
    code, text = raw.reply()
    assert code == 250 and text.startswith("2.0.0 OK: queued as "), text
    queue_id = text.rsplit(" ", 1)[1]
    raw.close()
    [stored] = office.inbox()
    received = stored[stored.index(b"Received: "):stored.index(b"Subject: ")]
    # ESMTPS: TLS, and no A: the session did not authenticate (RFC 3848); no user name either.
    assert b" with ESMTPS id " in received and b"ESMTPSA" not in received
    assert b"auth" not in received.lower() and b"user" not in received.lower()
    assert re.fullmatch(
        rb"Return-Path: <a@remote\.test>\r\n"
        rb"Received: from client\.example\.test \(\[127\.0\.0\.1\]\)\r\n"
        rb"\tby mail\.example\.test \(mailbox-appliance\) with ESMTPS id " + re.escape(queue_id.encode()) + rb"\r\n"
        rb"\t\(using " + re.escape(version.encode()) + rb"\)\r\n"
        rb"\tfor <alice@example\.test>;\r\n"
        rb"\t[^\r\n]+\r\n" + re.escape(message), stored), stored


def _data(office, body):
    """Send *body* (the octets after DATA's 354, with its end) in one packet; return the replies."""
    raw = RawSMTP(office.ports["smtp"])
    raw.open_data()
    raw.send(body)
    return raw


@pytest.mark.parametrize("smuggled", [
    b"\n.\n",        # <LF>.<LF>
    b"\r\n.\n",      # <CRLF>.<LF>
    b"\n.\r\n",      # <LF>.<CRLF>
    b"\r.\r",        # <CR>.<CR>
    b"\r.\r\n",
])
def test_smuggled_end_of_data_never_splits_a_message(office, smuggled):
    body = (b"Subject: first\r\n\r\nhello" + smuggled +
            b"MAIL FROM:<spoof@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nowned\r\n.\r\n")
    raw = _data(office, body)
    code, text = raw.reply()
    assert code == 554 and "bare CR or LF" in text
    # The next reply is to NOOP: nothing of the smuggled text was taken as a command.
    assert raw.command("NOOP")[0] == 250
    raw.close()
    assert office.inbox("alice") == [] and office.inbox("bob") == []


def test_text_after_an_over_long_data_line_is_not_read_as_commands(office):
    body = (b"Subject: long\r\n\r\n" + b"z" * 5000 + b"\r\n"
            b"RSET\r\nMAIL FROM:<spoof@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nowned\r\n.\r\n")
    raw = _data(office, body)
    code, text = raw.reply()
    assert code == 554 and "998 octets" in text
    assert raw.command("NOOP")[0] == 250
    raw.close()
    assert office.inbox("bob") == []


def test_dot_stuffing_is_undone_exactly(office):
    raw = _data(office, b".leading dot on the first line\r\n..\r\n...two\r\nplain\r\n.\r\n")
    assert raw.reply()[0] == 250
    raw.close()
    [stored] = office.inbox()
    assert stored.endswith(b"\r\nleading dot on the first line\r\n.\r\n..two\r\nplain\r\n")


def test_dot_lines_and_the_end_marker_arriving_an_octet_at_a_time(office):
    raw = RawSMTP(office.ports["smtp"])
    raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw.open_data()
    for octet in b"..first\r\nplain\r\n...\r\n..x\r\n.\r\n":
        raw.send(bytes([octet]))
    assert raw.reply()[0] == 250
    raw.close()
    [stored] = office.inbox()
    assert stored.endswith(b"\r\n.first\r\nplain\r\n..\r\n.x\r\n")


def test_empty_message(office):
    raw = _data(office, b".\r\n")
    assert raw.reply()[0] == 250
    raw.close()


def test_data_end_split_across_packets_and_pipelined_quit(office):
    raw = _data(office, b"Subject: split\r\n\r\nbody\r")
    raw.send(b"\n.")
    raw.send(b"\r\nQUIT\r\n")
    assert raw.reply()[0] == 250
    assert raw.reply()[0] == 221
    raw.close()
    assert len(office.inbox()) == 1


def test_mail_parameters_are_honoured_not_ignored(office):
    raw = RawSMTP(office.ports["smtp"])
    raw.command("EHLO client.example.test")
    assert raw.command("MAIL FROM:<a@remote.test> SIZE=999999999999")[0] == 552
    assert raw.command("MAIL FROM:<a@remote.test> BODY=9BIT")[0] == 555
    assert raw.command("MAIL FROM:<a@remote.test> SMTPUTF8=yes")[0] == 501
    assert raw.command("MAIL FROM:<a@remote.test> SIZE=10 BODY=8BITMIME SMTPUTF8")[0] == 250
    assert raw.command("RCPT TO:<alice@example.test> NOTIFY=NEVER")[0] == 555
    raw.close()


def test_bdat_chunks_are_taken_raw(office):
    raw = RawSMTP(office.ports["smtp"])
    raw.command("EHLO client.example.test")
    raw.command("MAIL FROM:<a@remote.test>")
    raw.command("RCPT TO:<alice@example.test>")
    first = b"Subject: chunks\r\n\r\n.not stuffed\r\n"
    raw.send(b"BDAT %d\r\n" % len(first) + first)
    assert raw.reply()[:2] == (250, f"2.0.0 {len(first)} octets received")
    last = b"MAIL FROM:<looks@like.a.command>\r\n.\r\n"
    raw.send(b"BDAT %d LAST\r\n" % len(last) + last + b"NOOP\r\n")
    assert raw.reply()[0] == 250
    assert raw.reply()[0] == 250
    raw.close()
    [stored] = office.inbox()
    assert stored.endswith(first + last)
