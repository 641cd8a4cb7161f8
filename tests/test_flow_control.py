"""Output back-pressure and bounded closes (flow_control.py).

Issue 21 #5: a client that pipelines commands and never reads the answers had the server keep
every answer in memory (20 MB of CAPA: +985 MB).  Now the server stops reading once its unsent
output is over the transport's buffer, so the client's sends stall and the server's memory stays
flat; other clients are served meanwhile.
"""

import socket
import ssl
import zlib

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.policies import WrappingFactory

import imapclient
from conftest import Office, unverified_tls
from mailbox_appliance.flow_control import INFLATE_STEP, LINGER_SECONDS, PROGRESS_OCTETS, FlowControlledConnection

CHUNK = 256 * 1024
# Far more than loopback's kernel buffers on both ends can hold (tcp_rmem's maximum is 32 MB on
# some machines), so a server that keeps reading is seen to keep reading.
FLOOD_LIMIT = 96 * 1024 * 1024
STALL_SECONDS = 3                      # the bound on waiting for the server to read more
RSS_GROWTH_LIMIT = 48 * 1024 * 1024


def rss(office, field="VmRSS"):
    """The appliance's resident memory in octets (VmHWM: its peak so far)."""
    with open(f"/proc/{office.appliance.process.pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no " + field)


def flood(sock, command):
    """Send *command* over and over without reading until the server stops taking it (or
    FLOOD_LIMIT octets went through); the octets sent."""
    sock.settimeout(STALL_SECONDS)
    chunk = command * (CHUNK // len(command))
    sent = 0
    try:
        while sent < FLOOD_LIMIT:
            sent += sock.send(chunk)
    except (socket.timeout, ssl.SSLWantWriteError):
        pass
    return sent


def connect(office, listener, tls=False):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    sock.connect(("127.0.0.1", office.ports[listener]))
    if tls:
        sock = unverified_tls().wrap_socket(sock)
    sock.recv(4096)                    # the greeting
    return sock


@pytest.fixture
def unlimited_office(tmp_path):
    """An appliance that answers commands before login for ever (max_commands_before_login,
    tested in test_client_limits.py, would close these sessions before their output fills)."""
    running = Office(str(tmp_path), extra="[limits]\nmax_commands_before_login = 1000000000\n").start()
    yield running
    running.appliance.stop()


@pytest.mark.parametrize("listener, tls, command", [
    ("smtp", False, b"EHLO x\r\n"),
    ("pop3", False, b"CAPA\r\n"),
    ("imap", False, b"a CAPABILITY\r\n"),
    ("imaps", True, b"a CAPABILITY\r\n"),
])
def test_a_client_that_never_reads_is_no_longer_read(unlimited_office, listener, tls, command):
    office = unlimited_office
    before = rss(office)
    flooding = connect(office, listener, tls)
    try:
        sent = flood(flooding, command)
        grown = rss(office) - before
        assert sent < FLOOD_LIMIT, "the server read everything the client sent"
        assert grown < RSS_GROWTH_LIMIT, f"{grown} octets more in memory after {sent} octets of {command!r}"
        other = imapclient.Session(office)               # another client is served meanwhile
        assert other.ok(b"NOOP")[-1].endswith(b"NOOP completed\r\n")
        other.close()
        # The flooding client reads at last: its session goes on where it was.
        flooding.settimeout(30)
        assert flooding.recv(4096)
    finally:
        flooding.close()


class _Session:
    def __init__(self):
        self.received = []
        self.restarts = 0               # of its idle timer

    def makeConnection(self, transport):
        self.transport = transport

    def dataReceived(self, data):
        self.received.append(data)

    def resetTimeout(self):
        self.restarts += 1

    def connectionLost(self, reason):
        self.lost = reason


class _Factory(WrappingFactory):
    protocol = FlowControlledConnection
    implicit_tls = False
    login_deadline = None

    def __init__(self, clock):
        super().__init__(None)
        self.clock = clock


def _connection(session=None):
    clock = Clock()
    transport = StringTransport()
    session = session or _Session()
    connection = FlowControlledConnection(_Factory(clock), session)
    connection.makeConnection(transport)
    return clock, transport, connection, session


def test_input_while_the_output_is_full_is_held_and_reading_stops_until_it_drains():
    _clock, transport, connection, session = _connection()
    output = transport.producer
    output.pauseProducing()                       # e.g. TLS buffering during its handshake:
    assert transport.producerState == "producing"         # reading goes on while nothing is held
    connection.dataReceived(b"a NOOP\r\n")
    connection.dataReceived(b"b NOOP\r\n")
    assert session.received == [] and transport.producerState == "paused"
    output.resumeProducing()
    assert session.received == [b"a NOOP\r\n", b"b NOOP\r\n"]
    assert transport.producerState == "producing"


def test_reading_resumes_only_when_neither_the_session_nor_the_output_holds_it():
    _clock, transport, connection, session = _connection()
    output = transport.producer
    connection.pauseProducing()                   # the session waits for a login check
    output.pauseProducing()                       # and the output is over the bound
    connection.dataReceived(b"a NOOP\r\n")
    connection.resumeProducing()
    assert transport.producerState == "paused" and session.received == []
    output.resumeProducing()
    assert transport.producerState == "producing" and session.received == [b"a NOOP\r\n"]
    connection.pauseProducing()
    output.pauseProducing()
    output.resumeProducing()
    assert transport.producerState == "paused"
    connection.resumeProducing()
    assert transport.producerState == "producing"


def test_a_close_the_client_never_lets_finish_is_aborted():
    clock, transport, connection, _session = _connection()
    aborted = []
    transport.abortConnection = lambda: aborted.append(True)
    connection.loseConnection()
    clock.advance(LINGER_SECONDS - 1)
    assert not aborted and transport.disconnecting
    clock.advance(1)
    assert aborted == [True]


class _PausingSession(_Session):
    """Stops reading after each delivery, as a session does while a command is answered."""

    def dataReceived(self, data):
        super().dataReceived(data)
        self.transport.pauseProducing()


def test_compressed_input_is_inflated_a_step_at_a_time_while_the_session_takes_it():
    clock, transport, connection, session = _connection(_PausingSession())
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    bomb = deflater.compress(b"x" * (64 * 1024 * 1024)) + deflater.flush(zlib.Z_SYNC_FLUSH)
    connection.start_compression(b"")
    clock.advance(0)
    connection.dataReceived(bomb)                  # 64 KB in, 64 MB once inflated
    assert sum(map(len, session.received)) == INFLATE_STEP
    assert transport.producerState == "paused"
    for _ in range(3):
        connection.resumeProducing()
    assert sum(map(len, session.received)) == 4 * INFLATE_STEP
    connection.write(b"* OK\r\n")
    assert zlib.decompressobj(-zlib.MAX_WBITS).decompress(transport.value()) == b"* OK\r\n"


def test_the_idle_timer_restarts_on_progress_only():
    """Issue 20 #1: a byte now and then kept SMTP and POP3 sessions open for ever.  A line's end
    is progress; so is PROGRESS_OCTETS of a literal or chunk; a trickle is not."""
    _clock, _transport, connection, session = _connection()
    for octet in b"NOOP":
        connection.dataReceived(bytes([octet]))
    assert session.restarts == 0
    connection.dataReceived(b"\r\n")
    assert session.restarts == 1
    connection.dataReceived(b"x" * (PROGRESS_OCTETS - 1))
    assert session.restarts == 1
    connection.dataReceived(b"x")
    assert session.restarts == 2
