"""Pure logic of the SMTP side: argument syntax, content checks, headers, throttling, timeouts."""

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from mailbox_appliance.login_throttle import LoginThrottle
from mailbox_appliance import message as wire
from mailbox_appliance.smtp import content, headers
from mailbox_appliance.smtp.policy import Policy
from mailbox_appliance.smtp.protocol import SessionSettings, SMTPServer
from mailbox_appliance.smtp.syntax import SyntaxProblem, parse_path


@pytest.mark.parametrize("argument, keyword, expected", [
    (b"FROM:<a@b.example>", "FROM", ("a@b.example", {})),
    (b"FROM: <a@b.example> SIZE=100 BODY=8BITMIME", "FROM", ("a@b.example", {"SIZE": "100", "BODY": "8BITMIME"})),
    (b"from:<>", "FROM", ("", {})),
    (b"TO:<@relay.example,@other.example:a@b.example>", "TO", ("a@b.example", {})),
    (b'TO:<"john smith"@b.example>', "TO", ('"john smith"@b.example', {})),
    ("FROM:<jürgen@bücher.example> SMTPUTF8".encode(), "FROM", ("jürgen@bücher.example", {"SMTPUTF8": None})),
    (b"TO:<a@[127.0.0.1]>", "TO", ("a@[127.0.0.1]", {})),
    (b"TO:<Postmaster>", "TO", ("Postmaster", {})),
])
def test_paths(argument, keyword, expected):
    assert parse_path(argument, keyword, allow_null=True) == expected


@pytest.mark.parametrize("argument, keyword", [
    (b"FROM:a@b.example", "FROM"),
    (b"FROM:<a@b.example", "FROM"),
    (b"FROM:<a b@c.example>", "FROM"),
    (b"FROM:<a@b.example>SIZE=1", "FROM"),
    (b"FROM:<a@-b.example>", "FROM"),
    (b"FROM:<a@b.example> SIZE==1", "FROM"),
    (b"TO:<>", "TO"),
    (b"TO:<a@b.example>", "FROM"),
    (b"FROM:<\xff@b.example>", "FROM"),
    (b"FROM:<" + b"a" * 300 + b"@b.example>", "FROM"),
])
def test_bad_paths(argument, keyword):
    with pytest.raises(SyntaxProblem):
        parse_path(argument, keyword, allow_null=keyword == "FROM")


def test_unstuff():
    assert wire.unstuff(b".a\r\n..\r\nb.\r\n") == b"a\r\n.\r\nb.\r\n"


@pytest.mark.parametrize("message, code", [
    (b"a\r\nb\r\n", None),
    (b"a\nb\r\n", 554),
    (b"a\rb\r\n", 554),
    (b"x" * 998 + b"\r\n", None),
    (b"x" * 999 + b"\r\n", 554),
    (b"x" * 2000, 552),
    (b"a\0b\r\n", 554),
    (b"\xc3\xa9t\xe9 \xff\r\n", None),
])
def test_content_problems(message, code):
    problem = content.problem(message, max_size=1500)
    assert (problem[0] if problem else None) == code


def test_protocol_types():
    assert headers.protocol_type(True, True, True, False) == "ESMTPSA"
    assert headers.protocol_type(True, False, False, True) == "UTF8SMTP"
    assert headers.protocol_type(False, False, False, False) == "SMTP"


def test_received_field_is_folded_and_safe():
    field = headers.received("mx.example", "evil\r\nX-Injected: 1", "127.0.0.1", "ESMTPS", "abc", "TLSv1.3", ["a@b"])
    text = field.decode()
    assert text.startswith("Received: from evil??X-Injected:?1 ([127.0.0.1])\r\n\tby mx.example")
    assert "\tfor <a@b>;\r\n" in text and text.endswith("\r\n")


def test_date_and_message_id_added_only_when_missing():
    added = headers.add_missing_date_and_message_id(b"Subject: x\r\n\r\nbody\r\n", "mx.example")
    assert added.startswith(b"Date: ") and b"\r\nMessage-ID: <" in added and added.endswith(b"Subject: x\r\n\r\nbody\r\n")
    kept = b"date: x\r\nMESSAGE-ID: <y>\r\n\r\nDate: in body\r\n"
    assert headers.add_missing_date_and_message_id(kept, "mx.example") == kept
    body_only = headers.add_missing_date_and_message_id(b"\r\nDate: not a header\r\n", "mx.example")
    assert body_only.startswith(b"Date: ")


def test_throttle_delays_then_locks_out_then_forgets():
    clock = Clock()
    throttle = LoginThrottle(clock, max_failures=5, window_seconds=600, lockout_seconds=900)
    delays = [throttle.failed("127.0.0.1") for _ in range(4)]
    assert delays == [0.0, 0.0, 1.0, 2.0]
    assert not throttle.is_locked_out("127.0.0.1")
    throttle.failed("127.0.0.1")
    assert throttle.is_locked_out("127.0.0.1")
    assert not throttle.is_locked_out("127.0.0.2")
    clock.advance(901)
    assert not throttle.is_locked_out("127.0.0.1")
    throttle.failed("127.0.0.3")
    throttle.succeeded("127.0.0.3")
    assert throttle.failed("127.0.0.3") == 0.0


def test_idle_session_is_closed_with_421():
    """RFC 5321 §4.5.3.2: the server may close an idle session, with 421."""
    clock = Clock()
    settings = SessionSettings("inbound", "mx.example", 1000, 10, None, False, message_dir="unused", idle_timeout=300)
    server = SMTPServer(settings, Policy("inbound", accounts=None, quotas=None), delivery=None, gate=None, clock=clock)
    transport = StringTransport()
    server.makeConnection(transport)
    server.dataReceived(b"NOOP\r\n")
    clock.advance(299)
    assert not transport.disconnecting
    clock.advance(2)
    assert transport.value().endswith(b"421 4.4.2 mx.example Idle for too long; closing connection\r\n")
    assert transport.disconnecting


@pytest.mark.parametrize("message", [b"a\r", b"a\n", b"\r", b"\n", b"a\r\n\r", b"a\r\n\n", b"a\r\r\n", b"a\n\r\n"])
def test_a_bare_line_end_anywhere_is_refused(message):
    assert content.problem(message, max_size=1500)[0] == 554


@pytest.mark.parametrize("message", [b"", b"a", b"a\r\nb", b"\r\n\r\n", b"x" * 998])
def test_clean_messages_pass(message):
    assert content.problem(message, max_size=1500) is None
