"""Per-client-address limits, commands before login, deadlines a trickle cannot stretch (issue 20 #1).

199 connections from one address, each sending a byte a minute, held the global max_connections
and refused every other client for minutes.  Now an address may hold max_connections_per_address
connections that have not logged in and open max_connection_rate a minute; past either, it alone
is refused.  Clients connect from 127.0.0.1 (the "attacker") and 127.0.0.2 (everyone else).
"""

import smtplib
import socket

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.policies import WrappingFactory

import imapclient
from conftest import Office
from mailbox_appliance.connection_limit import client_key
from mailbox_appliance.flow_control import LOGIN_DEADLINE_SECONDS, TLS_HANDSHAKE_SECONDS, FlowControlledConnection
from mailbox_appliance.smtp.policy import Policy
from mailbox_appliance.smtp.protocol import SessionSettings, SMTPServer
from rawsmtp import RawSMTP

ATTACKER, OTHER = "127.0.0.1", "127.0.0.2"


def _office(tmp_path, limits):
    return Office(str(tmp_path), extra="[limits]\n" + limits).start()


@pytest.fixture
def limited_office(tmp_path):
    running = _office(tmp_path, "max_connections = 10\nmax_connections_per_address = 3\nmax_commands_before_login = 5\n")
    yield running
    running.appliance.stop()


def test_one_address_cannot_hold_every_connection(limited_office):
    office = limited_office
    held = [RawSMTP(office.ports["smtp"], source=ATTACKER) for _ in range(3)]
    assert all(raw.greeting[0] == 220 for raw in held)
    refused = RawSMTP(office.ports["smtp"], source=ATTACKER)
    assert refused.greeting[:2] == (421, "4.7.0 Too many connections from your address; try again later")
    assert refused.closed()
    # The refusal is logged once a minute per address, naming the setting.
    line = office.appliance.wait_for_log(r"smtp connection from 127\.0\.0\.1 refused")
    assert "max_connections_per_address = 3 not logged in" in line
    again = RawSMTP(office.ports["smtp"], source=ATTACKER)
    assert again.greeting[0] == 421
    # Everybody else is served, on every protocol.
    other = RawSMTP(office.ports["smtp"], source=OTHER)
    assert other.greeting[0] == 220
    imap = imapclient.Session(office, source=OTHER)
    imap.ok(b"NOOP")
    for raw in held + [other]:
        raw.close()
    imap.close()
    assert sum("connection from 127.0.0.1 refused" in line for line in office.appliance.lines) == 1


def test_logged_in_sessions_do_not_count_against_their_address(limited_office):
    """An office behind one NAT address: its logged-in sessions are not "from the attacker"."""
    office = limited_office
    sessions = [imapclient.Session(office, source=ATTACKER) for _ in range(5)]
    more = RawSMTP(office.ports["smtp"], source=ATTACKER)
    assert more.greeting[0] == 220
    more.close()
    for session in sessions:
        session.ok(b"NOOP")
        session.close()


def test_new_connections_a_minute_from_one_address_are_limited(tmp_path):
    office = _office(tmp_path, "max_connection_rate = 4\n")
    try:
        for _ in range(4):
            raw = RawSMTP(office.ports["smtp"], source=ATTACKER)
            assert raw.greeting[0] == 220
            raw.close()
        refused = RawSMTP(office.ports["smtp"], source=ATTACKER)
        assert refused.greeting[:2] == (421, "4.7.0 Too many new connections from your address; try again later")
        assert RawSMTP(office.ports["smtp"], source=OTHER).greeting[0] == 220
        assert "max_connection_rate = 4 a minute" in office.appliance.wait_for_log(r"connection from 127\.0\.0\.1 refused")
    finally:
        office.appliance.stop()


def test_imap_commands_before_login_are_limited(limited_office):
    session = imapclient.Session(limited_office, login=False)
    for _ in range(5):
        session.ok(b"CAPABILITY")
    session.sock.sendall(b"x CAPABILITY\r\n")
    assert session.reader.readline() == b"* BYE Too many commands without logging in\r\n"
    assert session.reader.read() == b""
    limited_office.appliance.wait_for_log(r"imap session \w+ from 127\.0\.0\.1: closed after 5 commands without logging in")


def test_pop3_commands_before_login_are_limited(limited_office):
    with socket.create_connection(("127.0.0.1", limited_office.ports["pop3"]), timeout=30) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"+OK")
        sock.sendall(b"CAPA\r\n" * 6)
        for _ in range(5):
            while reader.readline() != b".\r\n":
                pass
        assert reader.readline() == b"-ERR Too many commands without logging in; closing connection\r\n"
        assert reader.read() == b""


def test_submission_commands_before_auth_are_limited_and_not_after(limited_office):
    client = smtplib.SMTP(ATTACKER, limited_office.ports["submission"], timeout=30)
    for _ in range(5):
        assert client.noop()[0] == 250
    assert client.noop() == (421, b"4.7.0 Too many commands without logging in; closing connection")


def test_port_25_limits_only_the_commands_that_do_no_work(limited_office):
    raw = RawSMTP(limited_office.ports["smtp"], source=ATTACKER)
    raw.command("EHLO client.example.test")
    for number in range(8):                    # transactions are work: never counted
        assert raw.command(f"MAIL FROM:<a{number}@remote.test>")[0] == 250
        assert raw.command("RSET" if number < 5 else "HELO again.example.test")[0] == 250
    assert raw.command("NOOP")[:2] == (421, "4.7.0 Too many NOOP, RSET, VRFY, EXPN or HELP commands; closing connection")
    assert raw.closed()


# -- deadlines, on a clock ------------------------------------------------------------------------

class _Factory(WrappingFactory):
    protocol = FlowControlledConnection

    def __init__(self, clock, implicit_tls=False, login_deadline=None):
        super().__init__(None)
        self.clock = clock
        self.implicit_tls = implicit_tls
        self.login_deadline = login_deadline
        self.logins = 0

    def logged_in(self, connection):
        self.logins += 1


def _smtp(role, **factory):
    """An SMTP session behind its connection, on a clock; (clock, transport, connection)."""
    clock = Clock()
    settings = SessionSettings(role, "mx.example", 1000, 10, None, False, message_dir="unused")
    server = SMTPServer(settings, Policy(role, accounts=None, quotas=None), delivery=None, gate=None, clock=clock)
    connection = FlowControlledConnection(_Factory(clock, **factory), server)
    transport = StringTransport()
    connection.makeConnection(transport)
    return clock, transport, connection


def test_a_byte_every_ten_seconds_does_not_hold_an_smtp_session():
    """It kept a session 420 s: each byte restarted the 300 s idle timer."""
    clock, transport, connection = _smtp("inbound")
    for octet in b"EHLO " + b"x" * 100:
        connection.dataReceived(bytes([octet]))
        clock.advance(10)
        if transport.disconnecting:
            break
    assert transport.value().endswith(b"421 4.4.2 mx.example Idle for too long; closing connection\r\n")
    assert clock.seconds() == 300


def test_a_session_that_does_not_log_in_in_time_is_closed_however_busy():
    clock, transport, connection = _smtp("submission", login_deadline=LOGIN_DEADLINE_SECONDS)
    for _ in range(LOGIN_DEADLINE_SECONDS // 60):
        assert not transport.disconnecting
        connection.dataReceived(b"EHLO client.example\r\n")
        clock.advance(60)
    assert transport.value().endswith(b"421 4.7.0 Too long without logging in; closing connection\r\n")
    assert transport.disconnecting


def test_a_logged_in_connection_has_no_login_deadline():
    clock, transport, connection = _smtp("submission", login_deadline=LOGIN_DEADLINE_SECONDS)
    connection.logged_in()
    connection.logged_in()                      # told twice, counted once
    assert connection.factory.logins == 1
    clock.advance(LOGIN_DEADLINE_SECONDS)
    assert b"Too long" not in transport.value()


def test_an_implicit_tls_connection_must_finish_its_handshake_in_time():
    clock, transport, connection = _smtp("submissions", implicit_tls=True)
    clock.advance(TLS_HANDSHAKE_SECONDS)
    assert transport.disconnected                # aborted: StringTransport's word for it
    clock, transport, connection = _smtp("submissions", implicit_tls=True)
    connection.handshakeCompleted()
    clock.advance(TLS_HANDSHAKE_SECONDS)
    assert not transport.disconnected


@pytest.mark.parametrize("address, key", [
    ("127.0.0.9", "127.0.0.9"),
    ("::1", "::/64"),
    ("::2:0:0:1", "::/64"),                     # the same /64: one subscriber's block
    ("::ffff:127.0.0.9", "127.0.0.9"),
])
def test_clients_are_counted_per_address_and_ipv6_per_64(address, key):
    assert client_key(address) == key
