"""Regression tests for the defects of twisted.mail's ESMTP server that must not reach our users."""

import socket
import ssl

import pytest

from conftest import PASSWORD, unverified_tls
from rawsmtp import RawSMTP


def _plain_auth():
    import base64

    return "AUTH PLAIN " + base64.b64encode(b"\0alice@example.test\0" + PASSWORD.encode()).decode()


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


def test_auth_is_refused_in_cleartext(office):
    for listener in ("smtp", "submission"):
        raw = RawSMTP(office.ports[listener])
        raw.command("EHLO client.example.test")
        assert raw.command(_plain_auth())[0] == 538
        raw.close()


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
