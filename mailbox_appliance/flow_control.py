"""Every client connection's transport, between the socket (or TLS) and the SMTP, IMAP or POP3 session.

Four things no session may be trusted to get right on every path:

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
* Deadlines a client cannot stretch by sending a byte now and then.  A session's idle timer
  (TimeoutMixin's, which every session uses) is restarted here, and only when the client has
  made progress: sent the end of a line (a command, a line of DATA, the line after a literal), or
  PROGRESS_OCTETS since the last restart (a long literal or BDAT chunk).  A client trickling one
  byte a minute into a command line is cut off when the session's idle time is up, as Postfix's
  smtpd_per_request_deadline does.  On an implicit-TLS listener
  (465, 993, 995) the TLS handshake must be done within TLS_HANDSHAKE_SECONDS, or the connection
  is aborted (there is nothing to say to a client that speaks no TLS).  Where sessions log in
  (IMAP, POP3, submission), one that has not within LOGIN_DEADLINE_SECONDS is ended
  (session_security.SecureSession.login_deadline_passed), however busy it keeps the connection:
  Dovecot's login processes give up after three minutes too.  The session tells the
  connection when it logs in (``logged_in``), which also takes it out of connection_limit's count of
  connections not logged in.
* Compression (IMAP COMPRESS=DEFLATE, RFC 4978): once the session starts it, what the client
  sends is raw DEFLATE (RFC 1951) and so is everything written.  Input is inflated INFLATE_STEP
  octets at a time, and not further while the session or the output holds reading: one read of
  64 KB can inflate to 64 MB, which must not become 64 MB of commands run in one go.
"""

import zlib

from twisted.internet.interfaces import IHandshakeListener, IPushProducer
from twisted.protocols.policies import ProtocolWrapper
from zope.interface import implementer

LINGER_SECONDS = 60
PROGRESS_OCTETS = 64 * 1024
TLS_HANDSHAKE_SECONDS = 30
LOGIN_DEADLINE_SECONDS = 180
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


@implementer(IHandshakeListener)
class FlowControlledConnection(ProtocolWrapper):
    """The session's transport: reads only while the session wants input and the client reads
    its output; closes within LINGER_SECONDS of being told to.  The factory gives ``clock``,
    ``implicit_tls`` and ``login_deadline`` (seconds, or None where nobody logs in)."""

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
        self.is_logged_in = False
        self._deadlines = []
        self._lost = False
        self._since_progress = 0      # octets given to the session since its idle timer restarted

    def makeConnection(self, transport):
        transport.registerProducer(_OutputFull(self), True)
        clock = self.factory.clock
        if self.factory.implicit_tls:
            self._handshake = clock.callLater(TLS_HANDSHAKE_SECONDS, transport.abortConnection)
            self._deadlines.append(self._handshake)
        if self.factory.login_deadline is not None:
            self._login = clock.callLater(self.factory.login_deadline, self._login_too_late)
            self._deadlines.append(self._login)
        super().makeConnection(transport)

    def handshakeCompleted(self):
        """TLSMemoryBIOProtocol's word that the handshake is done (IHandshakeListener)."""
        if self.factory.implicit_tls and self._handshake.active():
            self._handshake.cancel()

    def logged_in(self):
        """The session has logged in: no login deadline any more, and it stops counting as one
        of its address's connections not logged in (connection_limit.py)."""
        if not self.is_logged_in and not self._lost:    # a login checked while the client left
            self.is_logged_in = True
            if self.factory.login_deadline is not None and self._login.active():
                self._login.cancel()
            self.factory.logged_in(self)

    def _login_too_late(self):
        self.wrappedProtocol.login_deadline_passed()

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

    def _give(self, data):
        """The session gets *data*; its idle timer restarts if that is progress."""
        self._since_progress += len(data)
        if b"\n" in data or self._since_progress >= PROGRESS_OCTETS:
            self._since_progress = 0
            self.wrappedProtocol.resetTimeout()
        self.wrappedProtocol.dataReceived(data)

    def _deliver(self, data):
        if self._inflater is None:
            self._give(data)
            return
        while True:
            plain = self._inflater.decompress(data, INFLATE_STEP)
            data = self._inflater.unconsumed_tail
            if plain:
                self._give(plain)
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
        self._lost = True
        for call in [self._linger, *self._deadlines]:
            if call is not None and call.active():
                call.cancel()
        super().connectionLost(reason)
