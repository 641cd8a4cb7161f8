"""The POP3 server (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595), AUTH PLAIN (RFC 5034) and
the response codes of RFC 2449 and RFC 3206, for the pop3 (110) and pop3s (995) listeners.

Why not twisted.mail.pop3.POP3: as shipped (22.4 and 26.10) its STAT and LIST count messages
already marked deleted (RFC 1939 §5 says they are not listed), DELE of a deleted or unknown
message ends in a logged traceback, every unknown command logs a traceback, its greeting offers
APOP (which needs plaintext passwords we do not keep), its AUTH speaks CRAM-style
"user response" lines rather than SASL PLAIN, and it has no STLS.  Overriding all of that leaves
nothing of it, so this module is its own small protocol on Twisted's transports, TLS, cred
portal and TimeoutMixin, like the SMTP server.
"""

from twisted.cred.credentials import UsernamePassword
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin

from mailbox_appliance.accounts.sasl import MalformedResponse, plain_credentials
from mailbox_appliance.interfaces import IMailUser
from mailbox_appliance.message import dot_stuff
from mailbox_appliance.pop3.mailbox import Gone, NoSuchMessage, POP3Mailbox
from mailbox_appliance.session_security import LOCKED_OUT, WRONG_CREDENTIALS, SecureSession, SessionFactory

# RFC 1939 §3: an inactivity timer of at least 10 minutes.
IDLE_TIMEOUT_SECONDS = 600
MAX_ERRORS = 10


class POP3Server(SecureSession, Protocol, TimeoutMixin):
    log = Logger()
    protocol_name = "pop3"

    def __init__(self, factory):
        self.take_factory(factory)
        self._buffer = b""
        self._state = "authorization"      # authorization | auth | transaction | busy | closed
        self._user = None
        self._errors = 0
        self._discarding_line = False
        self.mailbox = None
        self.address = None

    # -- connection -----------------------------------------------------------------------

    def connectionMade(self):
        self.opened(IDLE_TIMEOUT_SECONDS)
        self._ok(f"{self.factory.hostname} POP3 mailbox-appliance ready")

    def connectionLost(self, reason):
        # A session that ends without QUIT never enters the UPDATE state: nothing is deleted.
        self.closed()
        self._state = "closed"

    def timeoutConnection(self):
        self._err("Idle for too long; closing connection")
        self._close()

    def goodbye(self, text):
        self._err(f"{text}; closing connection")
        self._close()

    def _close(self):
        self._state = "closed"
        self.transport.loseConnection()

    def _ok(self, text=""):
        self.transport.write(("+OK " + text).rstrip().encode("utf-8") + b"\r\n")

    def _err(self, text):
        self.transport.write(b"-ERR " + text.encode("utf-8") + b"\r\n")

    def _multiline(self, first, lines):
        self.transport.write(("+OK " + first + "\r\n" + "".join(line + "\r\n" for line in lines) + ".\r\n")
                             .encode("utf-8"))

    # -- input ----------------------------------------------------------------------------

    def dataReceived(self, data):
        # The idle timer is restarted by the connection (flow_control.py), on progress only.
        if self._state == "closed":
            return
        self._buffer += data
        self._process()

    def _process(self):
        # RFC 2449 §4 has clients send at most 255 octets (AUTH responses more, RFC 5034 §4);
        # we accept up to [limits] max_line_length.
        limit = self.factory.max_line_length
        while self._state not in ("busy", "closed"):
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > limit:
                    # The rest of the over-long line is dropped as it comes; the error at its end.
                    self._discarding_line = True
                    self._buffer = b""
                return
            line, self._buffer = self._buffer[:end].rstrip(b"\r"), self._buffer[end + 1:]
            if self._discarding_line or len(line) + 2 > limit:
                self._discarding_line = False
                if self._state == "auth":
                    self._state = "authorization"
                self._error("Line too long")
            elif self._state == "auth":
                self._auth_response(line)
            else:
                self._command(line)

    def _error(self, text):
        self._errors += 1
        self._err(text)
        if self._errors >= MAX_ERRORS:
            self._err("Too many errors; closing connection")
            self._close()

    def _command(self, line):
        if self._state == "authorization" \
                and not self.may_run_before_login(self.factory.max_commands_before_login):
            return
        verb, _, argument = line.partition(b" ")
        verb = verb.decode("ascii", "replace").upper()
        handler = getattr(self, f"{self._state}_{verb}", None)
        if handler is None:
            other = "transaction" if self._state == "authorization" else "authorization"
            known = hasattr(self, f"{other}_{verb}")
            return self._error(f"{verb} is not allowed now" if known else "Unknown command")
        handler(argument.strip())

    # -- AUTHORIZATION state --------------------------------------------------------------

    def authorization_CAPA(self, argument):
        capabilities = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
                        "IMPLEMENTATION mailbox-appliance"]
        if self.secure:
            capabilities += ["USER", "SASL PLAIN"]
        elif self.factory.tls_context is not None:
            capabilities.append("STLS")
        self._multiline("Capability list follows", capabilities)

    transaction_CAPA = authorization_CAPA

    def authorization_STLS(self, argument):
        if self.secure:
            return self._err("TLS is already active")
        if self.factory.tls_context is None:
            return self._err("STLS is not offered here")
        self._ok("Begin TLS negotiation")
        pipelined, self._buffer = self._buffer, b""
        self.start_tls(self.factory.tls_context, pipelined, "STLS")

    def _tls_required(self):
        """True (and the client told why) when no password may be sent now."""
        refusal = self.password_refusal()
        if refusal == "tls":
            self._err("[AUTH] Plaintext authentication is not allowed; use STLS first")
        elif refusal == LOCKED_OUT:
            self._err("[SYS/TEMP] Too many failed logins from your address; try again later")
        return refusal is not None

    def authorization_USER(self, argument):
        if self._tls_required():
            return
        if not argument:
            return self._error("Syntax: USER name")
        self._user = argument
        self._ok("Send PASS")

    def authorization_PASS(self, argument):
        if self._tls_required():
            return
        if self._user is None:
            return self._err("Send USER first")
        user, self._user = self._user, None
        self._login(UsernamePassword(user, argument))

    def authorization_AUTH(self, argument):
        if not argument:
            return self._multiline("Mechanisms follow", ["PLAIN"] if self.secure else [])
        if self._tls_required():
            return
        mechanism, _, initial = argument.partition(b" ")
        if mechanism.upper() != b"PLAIN":
            return self._err("Unrecognized authentication mechanism; use PLAIN")
        if initial:
            return self._auth_response(initial)
        self._state = "auth"
        self.transport.write(b"+ \r\n")

    def _auth_response(self, line):
        self._state = "authorization"
        if line == b"*":
            return self._err("Authentication cancelled")
        try:
            credentials = plain_credentials(line)
        except MalformedResponse as problem:
            return self._error(str(problem))
        self._login(credentials)

    def _login(self, credentials):
        self._state = "busy"
        self.log_in_paused(credentials, IMailUser, self._logged_in, self._login_refused)

    def _logged_in(self, user):
        self.mailbox = POP3Mailbox(user.folders.open(user.maildir))
        self.address = user.address
        numbers = self.mailbox.numbers()
        self._resume("transaction", f"Logged in, {len(numbers)} messages")

    def _login_refused(self, reason):
        if reason == WRONG_CREDENTIALS:
            self._resume("authorization", None, "[AUTH] Authentication failed")
        elif reason == LOCKED_OUT:
            self._resume("authorization", None, "[SYS/TEMP] Too many failed logins from your address; try again later")
        else:
            self._resume("authorization", None, "[SYS/TEMP] Login is not possible right now; try again later")

    def _resume(self, state, ok, error=None):
        if self._state == "closed":
            return
        self.transport.resumeProducing()
        self._state = state
        if error is None:
            self._ok(ok)
        else:
            self._err(error)
        self._process()

    def authorization_QUIT(self, argument):
        self._ok("Bye")
        self._close()

    # -- TRANSACTION state ----------------------------------------------------------------

    def _number(self, argument):
        text = argument.decode("ascii", "replace")
        if not text.isdigit():
            raise NoSuchMessage("a message number is required")
        return int(text)

    def _each(self, argument, describe, header):
        """LIST and UIDL: one message's line, or every undeleted message's (RFC 1939 §5, §7)."""
        try:
            if argument:
                number = self._number(argument)
                return self._ok(f"{number} {describe(number)}")
        except NoSuchMessage as problem:
            return self._err(str(problem))
        self._multiline(header, [f"{number} {describe(number)}" for number in self.mailbox.numbers()])

    def transaction_STAT(self, argument):
        numbers = self.mailbox.numbers()
        self._ok(f"{len(numbers)} {sum(map(self.mailbox.size, numbers))}")

    def transaction_LIST(self, argument):
        self._each(argument, self.mailbox.size, "Scan listing follows")

    def transaction_UIDL(self, argument):
        self._each(argument, self.mailbox.uidl, "Unique-ID listing follows")

    def transaction_RETR(self, argument):
        self._send_message(argument, None)

    def transaction_TOP(self, argument):
        number, _, lines = argument.partition(b" ")
        if not lines.strip().isdigit():
            return self._error("Syntax: TOP message lines")
        self._send_message(number, int(lines))

    def _send_message(self, argument, body_lines):
        try:
            number = self._number(argument)
            data = self.mailbox.content(number)
        except NoSuchMessage as problem:
            return self._err(str(problem))
        except Gone as problem:
            return self._err(f"[SYS/TEMP] {problem}")
        if body_lines is None:
            self.mailbox.mark_retrieved(number)
        else:
            data = _top(data, body_lines)
        # RFC 1939 §3 byte-stuffs a multi-line response exactly as SMTP's DATA does.
        self.transport.write(b"+OK %d octets\r\n" % len(data) + dot_stuff(data))

    def transaction_DELE(self, argument):
        try:
            number = self._number(argument)
            self.mailbox.delete(number)
        except NoSuchMessage as problem:
            return self._err(str(problem))
        self._ok(f"Message {number} deleted")

    def transaction_RSET(self, argument):
        self.mailbox.reset()
        self._ok(f"{len(self.mailbox.numbers())} messages")

    def transaction_NOOP(self, argument):
        self._ok()

    def transaction_QUIT(self, argument):
        """The UPDATE state (RFC 1939 §6): deletions take effect only now."""
        complete = self.mailbox.commit()
        self.log.info("pop3 session {session}: {user} quit, {count} deleted",
                      session=self.session_id, user=self.address, count=len(self.mailbox.deleted))
        if complete:
            self._ok("Bye")
        else:
            self._err("[SYS/TEMP] Some deleted messages were already removed by another session")
        self._close()


def _top(data, body_lines):
    """The header section, the blank line, and the first *body_lines* lines of the body."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return data
    lines = data[end + 4:].split(b"\r\n")
    if lines[-1] == b"":
        lines.pop()
    return data[:end + 4] + b"".join(line + b"\r\n" for line in lines[:body_lines])


class POP3Factory(SessionFactory):
    """Builds POP3 sessions; INBOX state is shared with the IMAP server through the registry
    (the realm behind the gate hands each login its Maildir and the folder registry)."""

    protocol = POP3Server
