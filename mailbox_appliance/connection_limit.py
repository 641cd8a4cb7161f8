"""Who may open a connection: [limits] max_connections over every listener, and per client address.

One address must never be able to lock the others out (as Postfix's anvil and Dovecot's login
limits see to): besides the global count, a client address may hold at most
``max_connections_per_address`` connections that have not logged in (every port 25 session, and
IMAP, POP3 and submission sessions until they authenticate: an office behind one NAT address
logs in, and its sessions then stop counting), and open at most ``max_connection_rate`` new ones a
minute.  IPv6 clients are counted per /64, the block one subscriber gets.

A connection over a limit gets its protocol's own "busy" line (SMTP 421, IMAP BYE, POP3 -ERR)
and is closed, instead of being silently dropped or queued; the refusal is logged once per address,
reason and minute.  Every connection under the limits runs through
flow_control.FlowControlledConnection, which tells this count when its session has logged in.
"""

import ipaddress
from collections import Counter

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from mailbox_appliance.flow_control import TLS_HANDSHAKE_SECONDS, FlowControlledConnection

BUSY_LINES = {
    "smtp": b"421 4.7.0 %s; try again later\r\n",
    "imap": b"* BYE %s; try again later\r\n",
    "pop3": b"-ERR [SYS/TEMP] %s; try again later\r\n",
    "managesieve": b'BYE (TRYLATER) "%s; try again later"\r\n',
    "http": b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
            b"%s; try again later\r\n",
}

TOO_MANY = "Too many connections"
TOO_MANY_FROM_ADDRESS = "Too many connections from your address"
TOO_FAST_FROM_ADDRESS = "Too many new connections from your address"

RATE_WINDOW_SECONDS = 60
# Above this many addresses remembered, the ones whose minute is over are forgotten.
SWEEP_ABOVE = 4096


def client_key(address):
    """The address a client is counted under: itself, or its /64 for IPv6."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address                      # a UNIX socket's peer, say
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))


class ConnectionLimit:
    """The counts every listener shares."""

    log = Logger()

    def __init__(self, maximum, per_address, rate, clock):
        """*rate* 0: no limit on new connections a minute."""
        self.maximum = maximum
        self.per_address = per_address
        self.rate = rate
        self.clock = clock
        self.open = 0
        self.not_logged_in = Counter()       # client key -> its connections not logged in
        self._minutes = {}                   # client key -> (its minute's start, connections in it)
        self._refusals_logged = {}           # (client key, reason) -> when last logged

    def refusal(self, key):
        """Why a new connection from *key* is refused, or None; counts it towards the rate."""
        now = self.clock.seconds()
        start, count = self._minutes.get(key, (now, 0))
        if now - start >= RATE_WINDOW_SECONDS:
            start, count = now, 0
        self._minutes[key] = (start, count + 1)
        if len(self._minutes) > SWEEP_ABOVE:
            self._sweep(now)
        if self.open >= self.maximum:
            return TOO_MANY
        if self.not_logged_in[key] >= self.per_address:
            return TOO_MANY_FROM_ADDRESS
        if self.rate and count >= self.rate:
            return TOO_FAST_FROM_ADDRESS
        return None

    def _sweep(self, now):
        for key, (start, _count) in list(self._minutes.items()):
            if now - start >= RATE_WINDOW_SECONDS:
                del self._minutes[key]
        for logged, when in list(self._refusals_logged.items()):
            if now - when >= RATE_WINDOW_SECONDS:
                del self._refusals_logged[logged]

    def log_refusal(self, key, reason, listener):
        now = self.clock.seconds()
        if now - self._refusals_logged.get((key, reason), -RATE_WINDOW_SECONDS) < RATE_WINDOW_SECONDS:
            return
        self._refusals_logged[(key, reason)] = now
        limits = {TOO_MANY: f"max_connections = {self.maximum} open",
                  TOO_MANY_FROM_ADDRESS: f"max_connections_per_address = {self.per_address} not logged in",
                  TOO_FAST_FROM_ADDRESS: f"max_connection_rate = {self.rate} a minute"}
        self.log.warn("{listener} connection from {client} refused: {reason} ({limit}); "
                      "further refusals of {client} for this reason are not logged for a minute",
                      listener=listener, client=key, reason=reason.lower(), limit=limits[reason])

    def opened(self, key):
        self.open += 1
        self.not_logged_in[key] += 1

    def logged_in(self, key):
        self._forget(key)

    def closed(self, key, logged_in):
        self.open -= 1
        if not logged_in:
            self._forget(key)

    def _forget(self, key):
        self.not_logged_in[key] -= 1
        if not self.not_logged_in[key]:
            del self.not_logged_in[key]


class _Busy(Protocol):
    """Says the busy line and closes; aborts a connection that will not close (a client that
    never reads, or never finishes the TLS handshake the line waits for)."""

    def __init__(self, line, clock):
        self.line = line
        self.clock = clock
        self._abort = None

    def connectionMade(self):
        self.transport.write(self.line)
        self.transport.loseConnection()
        self._abort = self.clock.callLater(TLS_HANDSHAKE_SECONDS, self.transport.abortConnection)

    def connectionLost(self, reason):
        if self._abort is not None and self._abort.active():
            self._abort.cancel()


class CountedConnection(ProtocolWrapper):
    """Around a session that does its own flow control and timeouts (twisted.web's HTTPChannel
    is its transport's producer and has its idle timer): counted against the limits, no more."""

    is_logged_in = False


class LimitedFactory(WrappingFactory):
    """Wraps a session factory: each connection under the limits gets a FlowControlledConnection
    around its session (a CountedConnection without *flow_control*).  *implicit_tls*: the
    listener's TLS starts at once (flow_control's handshake deadline); *login_deadline*: seconds
    a session has to log in, None where nobody logs in (port 25, the web)."""

    noisy = False
    protocol = FlowControlledConnection

    def __init__(self, wrapped_factory, limit, listener, busy_line, clock, implicit_tls=False, login_deadline=None,
                 flow_control=True):
        super().__init__(wrapped_factory)
        if not flow_control:
            self.protocol = CountedConnection
        self.limit = limit
        self.listener = listener
        self.busy_line = busy_line
        self.clock = clock
        self.implicit_tls = implicit_tls
        self.login_deadline = login_deadline

    def buildProtocol(self, addr):
        key = client_key(getattr(addr, "host", None) or "local")
        reason = self.limit.refusal(key)
        if reason is not None:
            self.limit.log_refusal(key, reason, self.listener)
            return _Busy(self.busy_line % reason.encode("ascii"), self.clock)
        connection = super().buildProtocol(addr)
        connection.client_key = key
        return connection

    def registerProtocol(self, protocol):
        super().registerProtocol(protocol)
        self.limit.opened(protocol.client_key)

    def logged_in(self, protocol):
        self.limit.logged_in(protocol.client_key)

    def unregisterProtocol(self, protocol):
        super().unregisterProtocol(protocol)
        self.limit.closed(protocol.client_key, protocol.is_logged_in)
