"""Every client connection's transport, between the socket (or TLS) and the SMTP, IMAP or POP3 session.

Three things no session may be trusted to get right on every path:

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
* Compression (IMAP COMPRESS=DEFLATE, RFC 4978): once the session starts it, what the client
  sends is raw DEFLATE (RFC 1951) and so is everything written.  Input is inflated INFLATE_STEP
  octets at a time, and not further while the session or the output holds reading: one read of
  64 KB can inflate to 64 MB, which must not become 64 MB of commands run in one go.
"""

import zlib

from twisted.internet.interfaces import IPushProducer
from twisted.protocols.policies import ProtocolWrapper
from zope.interface import implementer

LINGER_SECONDS = 60
INFLATE_STEP = 64 * 1024
# Dovecot's default (imap_compress_deflate_level); each write ends with a sync flush, so that
# every response reaches the client whole (RFC 4978 §4).
DEFLATE_LEVEL = 6


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
        # What the client sent that the session has not been given yet, in order: while the
        # output is over the bound, and (compressed) while the session holds reading.
        self.held = []
        self.reading_paused = False
        self._delivering = False
        self._linger = None
        self._inflater = self._deflater = None
        self._inflating = False       # False until the octets behind COMPRESS may be inflated

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
        self._replay()

    def dataReceived(self, data):
        self.held.append(data)
        self._replay()

    def output_drained(self):
        """The client has read its output: what it sent meanwhile goes to the session."""
        self.output_full = False
        self._replay()

    def _replay(self):
        """Give the session what is held, in order, as long as it may take it.  Not from inside a
        delivery (a session resuming while it is being given octets): the outer loop goes on."""
        if not self._delivering:
            self._delivering = True
            try:
                while self.held and self.wrappedProtocol is not None and not self.output_full and not (
                        self._inflater is not None and (self.session_paused or not self._inflating)):
                    self._deliver(self.held.pop(0))
            finally:
                self._delivering = False
        self.update_reading()

    def _deliver(self, data):
        if self._inflater is None:
            self.wrappedProtocol.dataReceived(data)
            return
        while True:
            plain = self._inflater.decompress(data, INFLATE_STEP)
            data = self._inflater.unconsumed_tail
            if plain:
                self.wrappedProtocol.dataReceived(plain)
            # A full step may leave output inside the inflater with no input left: b"" gets it.
            more = data or len(plain) == INFLATE_STEP
            if not more or self.wrappedProtocol is None:
                return
            if self.output_full or self.session_paused:
                self.held.insert(0, data)
                return

    def update_reading(self):
        paused = self.session_paused or bool(self.held)
        if paused != self.reading_paused:
            self.reading_paused = paused
            if paused:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()

    @property
    def compressing(self):
        return self._deflater is not None

    def start_compression(self, pipelined):
        """RFC 4978 §3: from now on both directions are raw DEFLATE.  The session calls this
        right after writing its tagged OK; *pipelined* is what it had read past the command,
        compressed already.  That is inflated on the next turn of the reactor, not inside the
        session's own reading loop (which would take all of it at once)."""
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._deflater = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.held.insert(0, pipelined)
        self.update_reading()
        self.factory.clock.callLater(0, self._start_inflating)

    def _start_inflating(self):
        self._inflating = True
        self._replay()

    def write(self, data):
        if self._deflater is not None:
            data = self._deflater.compress(data) + self._deflater.flush(zlib.Z_SYNC_FLUSH)
        self.transport.write(data)

    def writeSequence(self, data):
        self.write(b"".join(data))

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
