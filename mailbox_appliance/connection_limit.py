"""[limits] max_connections: one count of open client connections over every listener.

A connection over the limit gets its protocol's own "busy" line (SMTP 421, IMAP BYE, POP3 -ERR)
and is closed, instead of being silently dropped or queued.  Every connection under the limit
runs through flow_control.FlowControlledConnection.
"""

from twisted.internet.protocol import Protocol
from twisted.protocols.policies import WrappingFactory

from mailbox_appliance.flow_control import FlowControlledConnection

BUSY_LINES = {
    "smtp": b"421 4.7.0 Too many connections; try again later\r\n",
    "imap": b"* BYE Too many connections; try again later\r\n",
    "pop3": b"-ERR [SYS/TEMP] Too many connections; try again later\r\n",
}


class ConnectionLimit:
    def __init__(self, maximum):
        self.maximum = maximum
        self.open = 0


class _Busy(Protocol):
    def __init__(self, line):
        self.line = line

    def connectionMade(self):
        self.transport.write(self.line)
        self.transport.loseConnection()


class LimitedFactory(WrappingFactory):
    noisy = False
    protocol = FlowControlledConnection

    def __init__(self, wrapped_factory, limit, busy_line, clock):
        super().__init__(wrapped_factory)
        self.limit = limit
        self.busy_line = busy_line
        self.clock = clock

    def buildProtocol(self, addr):
        if self.limit.open >= self.limit.maximum:
            return _Busy(self.busy_line)
        return super().buildProtocol(addr)

    def registerProtocol(self, protocol):
        super().registerProtocol(protocol)
        self.limit.open += 1

    def unregisterProtocol(self, protocol):
        super().unregisterProtocol(protocol)
        self.limit.open -= 1
