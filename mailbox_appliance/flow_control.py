"""Every client connection's transport, between the socket (or TLS) and the SMTP, IMAP or POP3 session.

Two things no session may be trusted to get right on every path:

* Output back-pressure.  A client that sends commands and never reads their answers would have
  the server buffer every answer in memory (20 MB of pipelined CAPA cost a GB).  The connection
  registers itself as the transport's streaming producer: when the unsent output passes the
  transport's buffer size (64 KB), Twisted calls ``pauseProducing``.  From then on what the client
  sends is held, not given to the session, and reading stops once something is held, until the
  client has read its output; so at most one read's worth of commands is answered past that bound.
  Input is held rather than reading stopped at once because TLS pauses its producer while it
  buffers what the session wrote during the handshake: reading must go on for the handshake to
  finish.  The sessions pause reading too (one command at a time, a login being checked); reading
  resumes only when neither the session nor the output wants it paused.
* A bounded close.  ``loseConnection`` waits for the unsent output to drain, which a client that
  never reads never lets happen: the connection, and its slot under ``[limits] max_connections``,
  would be held for good.  After LINGER_SECONDS the connection is aborted instead.
"""

from twisted.internet.interfaces import IPushProducer
from twisted.protocols.policies import ProtocolWrapper
from zope.interface import implementer

LINGER_SECONDS = 60


@implementer(IPushProducer)
class _OutputFull:
    """The transport's producer: told when the unsent output is over, and back under, the bound."""

    def __init__(self, connection):
        self.connection = connection

    def pauseProducing(self):
        self.connection.output_full = True

    def resumeProducing(self):
        self.connection.output_drained()

    def stopProducing(self):
        """The connection is gone; connectionLost tells the session."""


class FlowControlledConnection(ProtocolWrapper):
    """The session's transport: reads only while the session wants input and the client reads
    its output; closes within LINGER_SECONDS of being told to.  The factory gives ``clock``."""

    def __init__(self, factory, wrapped_protocol):
        super().__init__(factory, wrapped_protocol)
        self.session_paused = False
        self.output_full = False
        self.held = []                 # what the client sent while its output was over the bound
        self.reading_paused = False
        self._linger = None

    def makeConnection(self, transport):
        transport.registerProducer(_OutputFull(self), True)
        super().makeConnection(transport)

    def registerProducer(self, producer, streaming):
        raise NotImplementedError("the connection is its transport's producer; a session writes, it does not produce")

    def pauseProducing(self):
        """The session wants no input for now."""
        self.session_paused = True
        self.update_reading()

    def resumeProducing(self):
        self.session_paused = False
        self.update_reading()

    def dataReceived(self, data):
        if self.output_full or self.held:
            self.held.append(data)
            self.update_reading()
        else:
            super().dataReceived(data)

    def output_drained(self):
        """The client has read its output: what it sent meanwhile goes to the session, in order,
        as long as the output stays under the bound."""
        self.output_full = False
        while self.held and not self.output_full and self.wrappedProtocol is not None:
            super().dataReceived(self.held.pop(0))
        self.update_reading()

    def update_reading(self):
        paused = self.session_paused or bool(self.held)
        if paused != self.reading_paused:
            self.reading_paused = paused
            if paused:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()

    def loseConnection(self):
        # A transport closes only once its producer is unregistered (FileDescriptor and
        # TLSMemoryBIOProtocol alike); nothing more is read from a closing connection anyway.
        self.transport.unregisterProducer()
        super().loseConnection()
        if self._linger is None:
            self._linger = self.factory.clock.callLater(LINGER_SECONDS, self.transport.abortConnection)

    def connectionLost(self, reason):
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)
