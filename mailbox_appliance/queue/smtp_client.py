"""The outbound ESMTP client: one session carrying one message to one server.

Why not twisted.mail.smtp.ESMTPSender: as shipped (22.4 and 26.10) it does not dot-stuff a "." at
the start of the message or at a chunk boundary, and turns CRLF into CR CR LF, so the remote
server would not receive the bytes we accepted.  Its per-recipient results also do not tell a
connection failure from a refusal.  This client sends exactly the queued octets (RFC 5321
§4.5.2 transparency), asks for each recipient separately, and reports one result per recipient.
"""

import base64
import re
from dataclasses import dataclass

from twisted.internet import defer
from twisted.internet.protocol import Protocol

from mailbox_appliance.message import dot_stuff
from mailbox_appliance.tls import negotiated_version

# A reply longer than this is not an SMTP reply; the session is dropped.
MAX_REPLY_OCTETS = 65536


@dataclass(frozen=True)
class RemoteReply:
    code: int
    lines: tuple

    @property
    def text(self):
        """'250 2.0.0 OK' (multi-line replies joined with spaces)."""
        return f"{self.code} " + " ".join(self.lines)

    @property
    def positive(self):
        return 200 <= self.code < 400

    @property
    def permanent(self):
        return self.code >= 500


class SessionFailure(Exception):
    """The session failed before or outside a per-recipient answer: greeting, EHLO, MAIL, DATA,
    the connection itself.  *permanent* only for a 5xx reply."""

    def __init__(self, text, permanent=False):
        super().__init__(text)
        self.text, self.permanent = text, permanent


class ReplyReader(Protocol):
    """Reads SMTP replies; ``next_reply()`` is a Deferred for the next complete one."""

    def __init__(self, clock, timeout):
        self._clock = clock
        self._timeout = timeout
        self._buffer = b""
        self._lines = []
        self._replies = []
        self._waiting = None
        self._timer = None
        self._lost = None
        self.connected_event = defer.Deferred()

    def connectionMade(self):
        self.connected_event.callback(self)

    def dataReceived(self, data):
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self._line(line.rstrip(b"\r"))
        if len(self._buffer) > MAX_REPLY_OCTETS:
            self._fail(SessionFailure("over-long reply line from the server"))

    def _line(self, line):
        match = re.match(rb"(\d{3})([ -]?)(.*)", line)
        if not match:
            return self._fail(SessionFailure(f"not an SMTP reply: {line[:80]!r}"))
        self._lines.append(match.group(3).decode("utf-8", "replace"))
        if sum(map(len, self._lines)) > MAX_REPLY_OCTETS:
            return self._fail(SessionFailure("over-long reply from the server"))
        if match.group(2) != b"-":
            reply, self._lines = RemoteReply(int(match.group(1)), tuple(self._lines)), []
            self._replies.append(reply)
            self._deliver()

    def _deliver(self):
        if self._waiting is not None and (self._replies or self._lost):
            waiting, self._waiting = self._waiting, None
            self._cancel_timer()
            if self._replies:
                waiting.callback(self._replies.pop(0))
            else:
                waiting.errback(self._lost)

    def next_reply(self):
        self._waiting = defer.Deferred()
        self._timer = self._clock.callLater(self._timeout, self._timed_out)
        result = self._waiting
        self._deliver()
        return result

    def has_unread_replies(self):
        return bool(self._replies)

    def command(self, line):
        self.transport.write(line + b"\r\n")
        return self.next_reply()

    def _timed_out(self):
        self._timer = None
        self._fail(SessionFailure(f"no answer from the server within {self._timeout} seconds"))

    def _cancel_timer(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _fail(self, failure):
        self._lost = self._lost or failure
        self.transport.abortConnection()
        self._deliver()

    def connectionLost(self, reason):
        if self._lost is None:
            self._lost = SessionFailure(f"connection lost: {reason.getErrorMessage()}")
        self._cancel_timer()
        self._deliver()


def _extensions(reply):
    """EHLO reply -> {KEYWORD: parameters}."""
    found = {}
    for line in reply.lines[1:]:
        keyword, _, parameters = line.partition(" ")
        found[keyword.upper()] = parameters
    return found


@dataclass
class Session:
    """A greeted session, ready for a mail transaction (RFC 5321 §3.3) and, after one ends with
    DATA, for the next: a connection to a busy destination carries many messages."""

    reader: ReplyReader
    extensions: dict
    tls_version: str = None


@defer.inlineCallbacks
def open_session(reader, hostname, tls_context=None, require_tls=False, credentials=None):
    """Greeting, EHLO, STARTTLS whenever offered and *tls_context* is given, AUTH PLAIN with
    *credentials* (user, password; only ever over TLS).  *require_tls* makes a server without
    STARTTLS a temporary failure (smart host).  Raises SessionFailure."""
    greeting = yield reader.next_reply()
    if greeting.code != 220:
        # Even a 554 greeting only means this host will not serve us: try the next one.
        raise SessionFailure(f"greeting: {greeting.text}")
    ehlo = yield _hello(reader, hostname)
    session = Session(reader, _extensions(ehlo) if ehlo else {})
    if tls_context is not None and "STARTTLS" in session.extensions:
        reply = yield reader.command(b"STARTTLS")
        if reply.code == 220:
            reader.transport.startTLS(tls_context)
            ehlo = yield _hello(reader, hostname)
            session = Session(reader, _extensions(ehlo) if ehlo else {}, negotiated_version(reader.transport))
    if require_tls and session.tls_version is None:
        yield close_session(session)
        raise SessionFailure("the server does not offer STARTTLS, which this route requires")
    if credentials is not None:
        yield _authenticate(reader, credentials, session.extensions, session.tls_version)
    return session


@defer.inlineCallbacks
def transact(session, sender, recipients, message, then_quit):
    """One mail transaction: per-recipient {address: RemoteReply}.

    Returns (replies, reusable): *reusable* is True when the session is left ready for another
    transaction (the message went through DATA and *then_quit* was false).  Raises
    SessionFailure when the transaction fails as a whole; the session is then closed.
    """
    reader, extensions = session.reader, session.extensions
    needs_utf8 = not sender.isascii() or any(not address.isascii() for address in recipients)
    parameters = b""
    if needs_utf8:
        if "SMTPUTF8" not in extensions:
            yield close_session(session)
            raise SessionFailure("550 5.6.7 the server does not support SMTPUTF8, which the addresses need "
                                 "(RFC 6531 §3.2)", permanent=True)
        parameters += b" SMTPUTF8"
    if "8BITMIME" in extensions and not message.isascii():
        parameters += b" BODY=8BITMIME"
    if "SIZE" in extensions:
        parameters += b" SIZE=%d" % len(message)
    # RFC 2920: with PIPELINING, MAIL, every RCPT and DATA go in one write and their replies are
    # read in order; the message (and QUIT) in another.  Two round trips instead of 3 + RCPTs.
    pipelining = "PIPELINING" in extensions
    commands = [b"MAIL FROM:<" + sender.encode("utf-8") + b">" + parameters]
    commands += [b"RCPT TO:<" + address.encode("utf-8") + b">" for address in recipients]
    replies = []
    if pipelining:
        reader.transport.write(b"".join(command + b"\r\n" for command in commands + [b"DATA"]))
        for _ in range(len(commands) + 1):
            replies.append((yield reader.next_reply()))
    else:
        replies.append((yield reader.command(commands[0])))
    mail = replies[0]
    if not mail.positive:
        yield close_session(session)
        raise SessionFailure(mail.text, mail.permanent)
    if not pipelining:
        for command in commands[1:]:
            replies.append((yield reader.command(command)))
    results = dict(zip(recipients, replies[1:len(commands)]))
    accepted = [address for address, reply in results.items() if reply.positive]
    if not accepted:
        if pipelining and replies[-1].code == 354:
            # A server that said 354 with no recipient: give it an empty message to refuse.
            yield reader.command(b".")
        yield close_session(session)
        return results, False
    data = replies[-1] if pipelining else (yield reader.command(b"DATA"))
    if data.code != 354:
        yield close_session(session)
        raise SessionFailure(data.text, data.permanent)
    pipelined_quit = then_quit and pipelining
    reader.transport.write(dot_stuff(message) + (b"QUIT\r\n" if pipelined_quit else b""))
    final = yield reader.next_reply()
    for address in accepted:
        results[address] = final
    if pipelined_quit:
        yield _read_quit(reader)
    elif then_quit:
        yield close_session(session)
    return results, not then_quit


@defer.inlineCallbacks
def _hello(reader, hostname):
    """EHLO, falling back to HELO (RFC 5321 §3.2); the EHLO reply, or None after HELO."""
    reply = yield reader.command(b"EHLO " + hostname.encode("ascii"))
    if reply.code == 250:
        return reply
    reply = yield reader.command(b"HELO " + hostname.encode("ascii"))
    if reply.code != 250:
        raise SessionFailure(f"HELO: {reply.text}", reply.permanent)
    return None


@defer.inlineCallbacks
def _authenticate(reader, credentials, extensions, tls_version):
    if tls_version is None:
        raise SessionFailure("refusing to send the relay password without TLS")
    if "PLAIN" not in extensions.get("AUTH", "").upper().split():
        raise SessionFailure("the relay host does not offer AUTH PLAIN")
    user, password = credentials
    token = base64.b64encode(b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8"))
    reply = yield reader.command(b"AUTH PLAIN " + token)
    if reply.code != 235:
        raise SessionFailure(f"AUTH: {reply.text}", permanent=False)


@defer.inlineCallbacks
def close_session(session):
    session.reader.transport.write(b"QUIT\r\n")
    yield _read_quit(session.reader)


@defer.inlineCallbacks
def _read_quit(reader):
    """The answer to QUIT matters to no one; only the connection is closed after it."""
    try:
        yield reader.next_reply()
    except SessionFailure:
        pass
    reader.transport.loseConnection()
