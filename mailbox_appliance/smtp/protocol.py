"""The ESMTP server protocol (RFC 5321) with PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
ENHANCEDSTATUSCODES, CHUNKING, STARTTLS and AUTH PLAIN/LOGIN.

Why not twisted.mail.smtp.ESMTP: as shipped (22.4 and 26.10) it executes commands pipelined
behind STARTTLS inside the TLS session (the CVE-2011-0411 class) and keeps HELO and AUTH state
across the handshake; after one over-long line in DATA it reads the rest of the body as commands
and it ends DATA on a bare-LF dot line (SMTP smuggling); it accepts AUTH PLAIN/LOGIN in cleartext,
offers STARTTLS on an implicit-TLS connection, and parses MAIL/RCPT parameters (SIZE, BODY,
SMTPUTF8) only to ignore them.  Fixing that means overriding its line reader, its DATA reader,
STARTTLS, AUTH and MAIL/RCPT: nothing of it would be left, so this module replaces the protocol
and keeps Twisted's transports, TLS (startTLS), twisted.cred portal and TimeoutMixin.

The protocol parses and sequences; every decision about senders, recipients and relaying is the
policy's (smtp/policy.py), and storing an accepted message is the delivery's.
"""

import base64
import binascii
import secrets
from dataclasses import dataclass, replace

from twisted.cred.credentials import UsernamePassword
from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin

from mailbox_appliance.accounts.directory import JUNK
from mailbox_appliance.atomic import disk_full
from mailbox_appliance.accounts.sasl import MalformedResponse, plain_credentials
from mailbox_appliance.interfaces import ISender
from mailbox_appliance.message import unstuff
from mailbox_appliance.smtp import content
from mailbox_appliance.smtp.message_buffer import IN_MEMORY_OCTETS, MessageBuffer
from mailbox_appliance.session_security import (LOCKED_OUT, WRONG_CREDENTIALS, LoginRefused, SecureSession,
                                                printable)
from mailbox_appliance.smtp.reply import Reply
from mailbox_appliance.smtp.syntax import SyntaxProblem, parse_path
from mailbox_appliance.tls import negotiated_version

# RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF.
MAX_COMMAND_LINE_OCTETS = 512
# RFC 4954 §4: an AUTH command with an initial response, or a response line, may be 12288 octets.
MAX_AUTH_LINE_OCTETS = 12288
# RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for the next command.
IDLE_TIMEOUT_SECONDS = 300
# Syntax errors and unknown commands tolerated in one session before it is closed (a client
# speaking another protocol, or garbage, is not kept busy forever).
MAX_ERRORS = 10
# Commands that move no mail: on port 25 they count towards [limits] max_commands_before_login.
JUNK_COMMANDS = {b"NOOP", b"RSET", b"VRFY", b"EXPN", b"HELP"}
# Recipients refused (unknown user, relay denied) in one session before it is closed: enough for
# a mailing list with stale addresses, too few to probe which addresses exist (Postfix's
# smtpd_hard_error_limit is 20 too).
MAX_REFUSED_RECIPIENTS = 20
# A message that could not be kept while it arrived, or stored once it had (RFC 3463 X.3.1).
_NO_SPACE = Reply(452, "4.3.1", "Insufficient system storage; try again later")
# One log line per transaction (the admin follows a message by its id).
TRANSACTION_LINE = ("smtp {role} session {session} from {client} helo={helo} user={user} tls={tls}: "
                    "from=<{sender}> to={recipients} refused={refused} size={size} result={result} id={queue_id} "
                    "mailboxes={mailboxes} remote={remote}")


class Transaction:
    """One mail transaction: MAIL FROM, the accepted recipients, and the message's flags."""

    def __init__(self, sender, smtputf8, declared_size):
        self.sender = sender
        self.smtputf8 = smtputf8
        self.declared_size = declared_size
        self.recipients = []  # (address, Resolution)
        self.refused = 0
        self.body = None  # a MessageBuffer once DATA or the first BDAT has begun
        self.filed = ""   # why it goes to Junk, for the log line


@dataclass(frozen=True)
class SessionSettings:
    """What a listener fixes for all its sessions."""

    role: str
    hostname: str
    max_message_size: int
    max_recipients: int
    tls_context: object
    implicit_tls: bool
    message_dir: str                  # where a message being received spills (message_buffer.py)
    idle_timeout: int = IDLE_TIMEOUT_SECONDS
    max_commands_before_login: int = 30


class SMTPServer(SecureSession, Protocol, TimeoutMixin):
    log = Logger()
    protocol_name = "smtp"

    def __init__(self, settings, policy, delivery, gate, clock):
        """*delivery* is an IDelivery; *gate* the session_security.LoginGate."""
        self.settings = settings
        self.policy = policy
        self.delivery = delivery
        self.gate = gate
        self.clock = clock
        self.callLater = clock.callLater
        self.session_id = secrets.token_hex(4)
        self._buffer = bytearray()
        self._mode = "command"   # command | data | bdat | auth | busy | closed
        self._discarding_line = False
        self._errors = 0
        self._refused_recipients = 0
        self._data = None
        self._scan_from = 0
        self._too_big = False
        self._dotted = False
        self._bdat_remaining = 0
        self._bdat_last = False
        self._auth_step = None
        self.secure = settings.implicit_tls
        self.helo = None
        self.extended = False
        self.user = None
        self.transaction = None
        self._screening = None   # the blocklist lookup, until it has answered
        self._listed_by = None

    # -- connection -----------------------------------------------------------------------

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.client_address = getattr(peer, "host", str(peer))
        self.setTimeout(self.settings.idle_timeout)
        screening = self.policy.screen(self)
        if screening is not None:
            self._screening = screening.addCallback(self._screened)
        self._send(220, None, f"{self.settings.hostname} ESMTP mailbox-appliance ready")

    def connectionLost(self, reason):
        self.setTimeout(None)
        if self.gate is not None:
            self.gate.session_ended(self)
        if self.transaction is not None:
            if self._mode != "closed":
                self._log_transaction("disconnected")
            if self.transaction.body is not None:
                self.transaction.body.close()
        self._mode = "closed"

    def timeoutConnection(self):
        self._send(421, "4.4.2", f"{self.settings.hostname} Idle for too long; closing connection")
        self._close()

    def goodbye(self, text):
        self._send(421, "4.7.0", f"{text}; closing connection")
        self._close()

    @property
    def tls_version(self):
        """'TLSv1.3' once the handshake is done (implicit TLS, or after STARTTLS), else None."""
        return negotiated_version(self.transport) if self.secure else None

    def _close(self):
        self._mode = "closed"
        self.transport.loseConnection()

    def _send(self, code, status, text, more=()):
        """One reply; *more* are extra lines for a multi-line reply (RFC 5321 §4.2.1)."""
        lines = [*more, text] if not more else [text, *more]
        out = []
        for index, line in enumerate(lines):
            separator = " " if index == len(lines) - 1 else "-"
            out.append(f"{code}{separator}{status + ' ' if status else ''}{line}\r\n")
        self.transport.write("".join(out).encode("utf-8"))

    def _reply(self, reply):
        self._send(reply.code, reply.status, reply.text)

    # -- input ----------------------------------------------------------------------------

    def dataReceived(self, data):
        # The idle timer is restarted by the connection (flow_control.py), on progress only.
        if self._mode == "closed":
            return
        if self._mode == "data" and not self._buffer:
            # The common case inside DATA: straight into the message, not through the line buffer.
            self._data += data
            self._read_data()
        else:
            self._buffer += data
        self._process()

    def _process(self):
        while self._buffer and self._mode not in ("busy", "closed"):
            if self._mode == "data":
                self._read_data()
            elif self._mode == "bdat":
                self._read_chunk()
            elif not self._read_line():
                return

    def _read_line(self):
        """Take one line from the buffer and act on it; False when no whole line is there."""
        limit = MAX_AUTH_LINE_OCTETS if self._mode == "auth" or self._buffer[:5].upper() == b"AUTH " else MAX_COMMAND_LINE_OCTETS
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > limit:
                # The rest of an over-long line is dropped as it arrives; the reply comes at its end.
                self._discarding_line = True
                self._buffer.clear()
            return False
        line = bytes(self._buffer[:end]).rstrip(b"\r")
        del self._buffer[:end + 1]
        if self._discarding_line or len(line) + 2 > limit:
            self._discarding_line = False
            self._mode, self._auth_step = "command", None
            self._error(Reply(500, "5.5.2", f"Line too long (RFC 5321 §4.5.3.1.4: at most {limit} octets)"))
        elif self._mode == "auth":
            self._auth_response(line)
        else:
            self._command(line)
        return True

    def _error(self, reply):
        """A syntax error or unknown command; too many of them close the session."""
        self._errors += 1
        if self._errors >= MAX_ERRORS:
            self._send(421, "4.7.0", "Too many errors; closing connection")
            self._close()
        else:
            self._reply(reply)

    def _command(self, line):
        if b"\0" in line:
            return self._error(Reply(500, "5.5.2", "NUL character in command"))
        verb, _, argument = line.partition(b" ")
        if self.user is None and not self._may_run(verb.upper()):
            return
        handler = getattr(self, "smtp_" + verb.decode("ascii", "replace").upper(), None)
        if handler is None:
            return self._error(Reply(500, "5.5.1", "Command unrecognized"))
        try:
            handler(argument.strip(b" "))
        except Reply as reply:
            if verb.upper() in (b"MAIL", b"RCPT"):
                # The admin greps for the address: the transaction line shows only what was accepted.
                self.log.info("smtp {role} session {session} from {client}: {command} refused {code} {status} {text}",
                              role=self.settings.role, session=self.session_id, client=self.client_address,
                              command=printable(line.decode("utf-8", "replace"), 300), code=reply.code,
                              status=reply.status, text=reply.text)
            if reply.code in (500, 501):
                self._error(reply)
            else:
                self._reply(reply)

    def _may_run(self, verb):
        """[limits] max_commands_before_login: on submission every command before AUTH counts;
        on port 25, where nobody logs in, the commands that do no work (Postfix's
        smtpd_junk_command_limit)."""
        if self.settings.role != "inbound":
            return self.may_run_before_login(self.settings.max_commands_before_login)
        if verb in JUNK_COMMANDS:
            return self.may_run_before_login(self.settings.max_commands_before_login,
                                             "NOOP, RSET, VRFY, EXPN or HELP commands")
        return True

    # -- session commands -----------------------------------------------------------------

    def smtp_EHLO(self, argument):
        self._hello(argument, extended=True)

    def smtp_HELO(self, argument):
        self._hello(argument, extended=False)

    def _hello(self, argument, extended):
        if not argument or b" " in argument:
            raise Reply(501, "5.5.4", f"Syntax: {'EHLO' if extended else 'HELO'} hostname")
        self.helo = argument.decode("utf-8", "replace")
        self.extended = extended
        self.transaction = None  # RFC 5321 §4.1.4: EHLO resets the transaction.
        greeting = f"{self.settings.hostname} greets {self.helo}"
        if not extended:
            return self._send(250, None, greeting)
        self._send(250, None, greeting, self._extensions())

    def _extensions(self):
        extensions = [
            "PIPELINING",                                   # RFC 2920
            f"SIZE {self.settings.max_message_size}",       # RFC 1870
            "8BITMIME",                                     # RFC 6152
            "SMTPUTF8",                                     # RFC 6531
            "ENHANCEDSTATUSCODES",                          # RFC 2034
            "CHUNKING",                                     # RFC 3030
        ]
        if self.settings.tls_context is not None and not self.secure:
            extensions.append("STARTTLS")                   # RFC 3207
        if self.secure and self.user is None:
            extensions.append("AUTH PLAIN LOGIN")           # RFC 4954, RFC 4616
        return extensions

    def smtp_NOOP(self, argument):
        self._send(250, "2.0.0", "OK")

    def smtp_RSET(self, argument):
        if self.transaction is not None:
            self._log_transaction("reset")
        self.transaction = None
        self._send(250, "2.0.0", "OK")

    def smtp_QUIT(self, argument):
        if self.transaction is not None:
            self._log_transaction("quit")
            self.transaction = None
        self._send(221, "2.0.0", f"{self.settings.hostname} closing connection")
        self._close()

    def smtp_VRFY(self, argument):
        # RFC 5321 §3.5.3: 252 when the server will not say whether an address exists.
        self._send(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")

    def smtp_EXPN(self, argument):
        raise Reply(502, "5.5.1", "EXPN is not supported")

    def smtp_HELP(self, argument):
        self._send(214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT STARTTLS AUTH")

    # -- STARTTLS (RFC 3207) --------------------------------------------------------------

    def smtp_STARTTLS(self, argument):
        if self.secure:
            raise Reply(503, "5.5.1", "TLS is already active")
        if self.settings.tls_context is None:
            raise Reply(502, "5.5.1", "STARTTLS is not offered here")
        if argument:
            raise Reply(501, "5.5.4", "Syntax: STARTTLS (no parameters)")
        self._send(220, "2.0.0", "Ready to start TLS")
        pipelined = bytes(self._buffer)
        self._buffer.clear()
        self.start_tls(self.settings.tls_context, pipelined)
        # RFC 3207 §4.2: forget everything learned before the handshake.
        self.helo = None
        self.user = None
        self.transaction = None

    # -- AUTH (RFC 4954) ------------------------------------------------------------------

    def smtp_AUTH(self, argument):
        refusal = self.password_refusal()
        if refusal == "tls":
            raise Reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
        if self.helo is None:
            raise Reply(503, "5.5.1", "Send EHLO first")
        if self.user is not None:
            raise Reply(503, "5.5.1", "Already authenticated")
        if self.transaction is not None:
            raise Reply(503, "5.5.1", "AUTH is not allowed during a mail transaction")
        mechanism, _, initial = argument.partition(b" ")
        mechanism = mechanism.upper()
        if mechanism not in (b"PLAIN", b"LOGIN"):
            raise Reply(504, "5.5.4", "Unrecognized authentication mechanism; use PLAIN or LOGIN")
        if refusal == LOCKED_OUT:
            raise Reply(454, "4.7.0", "Too many failed logins from your address; try again later")
        self._auth_step = (mechanism, [])
        if initial:
            self._auth_response(initial.strip())
        else:
            self._auth_challenge(b"" if mechanism == b"PLAIN" else b"Username:")

    def _auth_challenge(self, challenge):
        self._mode = "auth"
        self.transport.write(b"334 " + base64.b64encode(challenge) + b"\r\n")

    def _auth_response(self, line):
        self._mode = "command"
        mechanism, answers = self._auth_step
        self._auth_step = None
        if line == b"*":
            return self._reply(Reply(501, "5.0.0", "Authentication cancelled"))
        try:
            if mechanism == b"PLAIN":
                credentials = plain_credentials(line)
            else:
                answers.append(b"" if line == b"=" else base64.b64decode(line, validate=True))
                if len(answers) == 1:
                    self._auth_step = (mechanism, answers)
                    return self._auth_challenge(b"Password:")
                credentials = UsernamePassword(*answers)
        except (MalformedResponse, binascii.Error, ValueError) as problem:
            text = str(problem) if isinstance(problem, MalformedResponse) else "Cannot decode the base64 response"
            return self._error(Reply(501, "5.5.2", text))
        self._wait()
        result = self.log_in(credentials, ISender)
        result.addCallbacks(self._auth_succeeded, self._auth_failed)
        result.addErrback(self._unexpected, "AUTH")

    def _auth_succeeded(self, sender):
        self.user = sender.address
        self._resume(235, "2.7.0", "Authentication successful")

    def _auth_failed(self, failure):
        failure.trap(LoginRefused)
        if failure.value.reason == WRONG_CREDENTIALS:
            self._resume(535, "5.7.8", "Authentication credentials invalid")
        elif failure.value.reason == LOCKED_OUT:
            self._resume(454, "4.7.0", "Too many failed logins from your address; try again later")
        else:
            self._resume(454, "4.7.0", "Temporary authentication failure; try again later")

    def _wait(self):
        """A command waits (login, delivery): stop reading meanwhile, so what a client pipelines
        behind it waits in the kernel, not in our memory."""
        self._mode = "busy"
        self.transport.pauseProducing()

    def _resume(self, code, status, text):
        """Answer a command that waited (login, delivery) and read on."""
        if self._mode == "closed":
            return
        self.transport.resumeProducing()
        self._send(code, status, text)
        self._mode = "command"
        self._process()

    def _after_wait(self, line):
        """Carry out *line*, which waited (for the blocklists), and read on."""
        if self._mode == "closed":
            return
        self.transport.resumeProducing()
        self._mode = "command"
        self._command(line)
        self._process()

    def _unexpected(self, failure, what):
        self.log.failure("smtp session {session}: unexpected error in {what}", failure,
                         session=self.session_id, what=what)
        self._resume(451, "4.3.0", "Local error in processing; try again later")

    # -- the mail transaction -------------------------------------------------------------

    def smtp_MAIL(self, argument):
        if self.helo is None:
            raise Reply(503, "5.5.1", "Send EHLO or HELO first")
        if self.transaction is not None:
            raise Reply(503, "5.5.1", "Nested MAIL command")
        self.policy.check_session(self)
        sender, parameters = self._parse(argument, "FROM", allow_null=True)
        smtputf8 = "SMTPUTF8" in parameters
        if parameters.pop("SMTPUTF8", None) is not None:
            raise Reply(501, "5.5.4", "SMTPUTF8 takes no value")
        if not smtputf8 and not sender.isascii():
            raise Reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8 (RFC 6531)")
        body = parameters.pop("BODY", "7BIT") or ""
        if body.upper() not in ("7BIT", "8BITMIME"):
            raise Reply(555, "5.5.4", "BODY must be 7BIT or 8BITMIME")
        declared_size = 0
        if "SIZE" in parameters:
            value = parameters.pop("SIZE") or ""
            if not value.isdigit():
                raise Reply(501, "5.5.4", "SIZE takes a number of octets")
            declared_size = int(value)
            if declared_size > self.settings.max_message_size:
                raise Reply(552, "5.3.4", f"Message size exceeds the limit of {self.settings.max_message_size} octets")
        parameters.pop("AUTH", None)  # RFC 4954 §5: accepted; we do not relay the identity.
        if parameters:
            raise Reply(555, "5.5.4", f"Unsupported MAIL parameter {next(iter(parameters))}")
        self.policy.check_sender(self, sender)
        self.transaction = Transaction(sender, smtputf8, declared_size)
        self._send(250, "2.1.0", "Sender OK")

    def _screened(self, listed_by):
        self._screening, self._listed_by = None, listed_by

    def smtp_RCPT(self, argument):
        if self._screening is not None:
            # The blocklists have not answered yet (their lookups have a time limit): this
            # RCPT waits for them, and what the client pipelined behind it waits in the kernel.
            self._wait()
            self._screening.addCallback(lambda _: self._after_wait(b"RCPT " + argument))
            return
        if self.transaction is None:
            raise Reply(503, "5.5.1", "Send MAIL first")
        if self.transaction.body is not None:
            raise Reply(503, "5.5.1", "RCPT is not allowed between BDAT chunks")
        address, parameters = self._parse(argument, "TO", allow_null=False)
        if parameters:
            raise Reply(555, "5.5.4", f"Unsupported RCPT parameter {next(iter(parameters))}")
        if not self.transaction.smtputf8 and not address.isascii():
            raise Reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8 (RFC 6531)")
        if len(self.transaction.recipients) >= self.settings.max_recipients:
            # RFC 5321 §4.5.3.1.10: 452 asks the client to send the rest in another transaction.
            raise Reply(452, "4.5.3", f"Too many recipients (at most {self.settings.max_recipients} per message)")
        try:
            self.policy.check_client(self, self._listed_by)
            resolution = self.policy.check_recipient(self, address)
        except Reply as refusal:
            self.transaction.refused += 1
            self._refused_recipients += 1
            if self._refused_recipients >= MAX_REFUSED_RECIPIENTS:
                self._log_transaction(f"closed after {MAX_REFUSED_RECIPIENTS} refused recipients")
                self._reply(refusal)
                self._send(421, "4.7.0", "Too many refused recipients; closing connection")
                self._close()
                return
            raise
        self.transaction.recipients.append((address, resolution))
        self._send(250, "2.1.5", "Recipient OK")

    def _parse(self, argument, keyword, allow_null):
        try:
            return parse_path(argument, keyword, allow_null)
        except SyntaxProblem as problem:
            raise Reply(501, "5.5.4" if "parameter" in str(problem) else "5.1.7" if keyword == "FROM" else "5.1.3",
                        str(problem)) from None

    def _check_ready_for_data(self):
        if self.transaction is None:
            raise Reply(503, "5.5.1", "Send MAIL first")
        if not self.transaction.recipients:
            if self.transaction.refused:
                raise Reply(554, "5.5.1", "No valid recipients")
            raise Reply(503, "5.5.1", "Send RCPT first")

    def smtp_DATA(self, argument):
        self._check_ready_for_data()
        if self.transaction.body is not None:
            raise Reply(503, "5.5.1", "DATA is not allowed after BDAT")
        self._send(354, None, "End data with <CR><LF>.<CR><LF>")
        self._mode = "data"
        self.transaction.body = MessageBuffer(self.settings.message_dir)
        # A virtual CRLF before the first line makes the end marker always "\r\n.\r\n", even
        # for an empty message, and lets dot-unstuffing treat the first line like any other.
        self._data = bytearray(b"\r\n")
        self._scan_from = 0
        self._too_big = False
        self._dotted = False

    def _read_data(self):
        """Consume DATA until <CRLF>.<CRLF> and only that (RFC 5321 §4.1.1.4).

        A bare LF or CR dot line never ends the message; the octets after the end marker stay in
        the buffer as the next commands.
        """
        if self._buffer:
            self._data += self._buffer
            self._buffer.clear()
        end = self._find_end()
        body = self.transaction.body
        if end < 0:
            if body.size + len(self._data) - 2 > self.settings.max_message_size:
                # Too big: stop keeping it, but keep reading to the end marker so the rest of
                # the body is never mistaken for commands.  Four octets may start the marker.
                self._too_big = True
                body.close()
                self._data = self._data[-4:]
                self._scan_from = 0
            elif len(self._data) > IN_MEMORY_OCTETS:
                # What has been scanned goes to the buffer (and past its size to disk); what
                # may start the end marker stays here.
                body.append(self._data[:self._scan_from])
                del self._data[:self._scan_from]
                self._scan_from = 0
            return
        self._buffer = self._data[end + 5:]
        if body.size:
            body.append(self._data[:end + 2])
            raw = body.getvalue()[2:]
        else:
            raw = bytes(self._data[2:end + 2])
        body.close()
        self._data = None
        self._mode = "command"
        if self._too_big:
            self._finish_refused(Reply(552, "5.3.4", f"Message exceeds the limit of {self.settings.max_message_size} octets"))
            return
        if body.failed is not None:
            self._finish_refused(_NO_SPACE)
            return
        # Most messages have no line starting with a dot: then there is nothing to unstuff, and
        # no second pass over a large body to find that out.
        self._message_complete(unstuff(raw) if self._dotted else raw)

    def _find_end(self):
        """Where the end marker CRLF "." CRLF starts in the DATA read so far, or -1.

        One pass finds every CRLF "." -- the end marker, or a dot-stuffed line, which is noted
        for unstuffing.  A CRLF "." too close to the end to tell which is looked at again when
        more octets arrive.
        """
        data, at = self._data, self._scan_from
        while True:
            hit = data.find(b"\r\n.", at)
            if hit < 0:
                self._scan_from = max(at, len(data) - 2)      # a CRLF "." may be arriving
                return -1
            if len(data) < hit + 5:
                self._scan_from = hit
                return -1
            if data[hit + 3:hit + 5] == b"\r\n":
                return hit
            self._dotted = True
            at = hit + 1

    def smtp_BDAT(self, argument):
        """RFC 3030 CHUNKING: BDAT <size> [LAST]; the chunk is read raw, whatever the reply."""
        words = argument.split()
        if not words or not words[0].isdigit() or len(words) > 2 or (len(words) == 2 and words[1].upper() != b"LAST"):
            raise Reply(501, "5.5.4", "Syntax: BDAT <size> [LAST]")
        self._bdat_remaining = int(words[0])
        self._bdat_last = len(words) == 2
        self._mode = "bdat"
        try:
            self._check_ready_for_data()
        except Reply as reply:
            self._bdat_refusal = reply
        else:
            self._bdat_refusal = None
            if self.transaction.body is None:
                self.transaction.body = MessageBuffer(self.settings.message_dir)
        if self._bdat_remaining == 0:
            self._chunk_complete()

    def _read_chunk(self):
        take = min(self._bdat_remaining, len(self._buffer))
        if self._bdat_refusal is None and self.transaction is not None:
            body = self.transaction.body
            if body.size + take <= self.settings.max_message_size:
                body.append(bytes(self._buffer[:take]))
            else:
                self._bdat_refusal = Reply(552, "5.3.4", f"Message exceeds the limit of {self.settings.max_message_size} octets")
        del self._buffer[:take]
        self._bdat_remaining -= take
        if self._bdat_remaining == 0:
            self._chunk_complete()

    def _chunk_complete(self):
        self._mode = "command"
        if self._bdat_refusal is not None:
            reply, self._bdat_refusal = self._bdat_refusal, None
            if self.transaction is not None and reply.code == 552:
                return self._finish_refused(reply)
            return self._reply(reply)
        body = self.transaction.body
        if not self._bdat_last:
            return self._send(250, "2.0.0", f"{body.size} octets received")
        message = body.getvalue()
        body.close()
        if body.failed is not None:
            return self._finish_refused(_NO_SPACE)
        self._message_complete(message)

    def _finish_refused(self, reply, why=None):
        self._log_transaction(f"refused {reply.code} {reply.status}" + (f" ({why})" if why else ""))
        self.transaction = None
        if self._mode == "busy":
            self._resume(reply.code, reply.status, reply.text)       # it waited for a check
        else:
            self._reply(reply)

    def _message_complete(self, message):
        """The whole message is here: check it, then hand it to delivery; reply when durable."""
        problem = content.problem(message, self.settings.max_message_size)
        if problem is not None:
            return self._finish_refused(Reply(*problem))
        try:
            self.policy.check_author(self, message)
        except Reply as refusal:
            return self._finish_refused(refusal)
        judging = self.policy.judge(self, message)
        if judging is None:
            return self._store(message, self.transaction.recipients)
        self._wait()
        judging.addCallback(self._judged, message)
        judging.addErrback(self._unexpected, "the checks of the message")

    def _judged(self, verdict, message):
        """Port 25's verdict (smtp/inbound_checks.py): refused, deferred, filed into Junk, or
        delivered, with the checks' fields on top."""
        if self.transaction is None:
            return                    # the client left meanwhile
        if verdict.reply is not None:
            return self._finish_refused(verdict.reply, verdict.reason)
        recipients = self.transaction.recipients
        if verdict.disposition == "junk":
            recipients = [(address, replace(resolution, folder=JUNK)) for address, resolution in recipients]
            self.transaction.filed = f" into {JUNK} ({verdict.reason})"
        self._store(message, recipients, verdict)

    def _store(self, message, recipients, verdict=None):
        transaction = self.transaction
        queue_id = self.delivery.new_id()
        message = self.policy.prepare_message(self, transaction, queue_id, message)
        if verdict is not None:
            message = verdict.applied(message)
        # Checked and charged in this one reactor turn: concurrent deliveries cannot both fit.
        recipients, full = self.policy.without_full_mailboxes(recipients, transaction.sender, len(message))
        if not recipients:
            return self._finish_refused(Reply(452, "4.2.2", "Mailbox full"))
        self._wait()
        # content.problem() let through only lines ending in CRLF, and our header lines end so too.
        result = self.delivery.deliver(queue_id, transaction.sender, recipients, message,
                                       self._received_from(), crlf_only=True)
        result.addCallbacks(self._delivered, self._not_delivered, (queue_id, transaction, len(message), recipients),
                            errbackArgs=(queue_id, transaction, len(message)))
        result.addErrback(self._unexpected, "delivery")
        if full:
            # Once the message is stored (the Deferred above has answered the client).
            result.addCallback(lambda stored: stored and self._report_full(queue_id, transaction, message, full))

    def _report_full(self, queue_id, transaction, message, full):
        """The message went to the others; its sender hears which mailboxes were full."""
        self.log.info("smtp session {session}: {queue_id} not delivered to full mailboxes {mailboxes}",
                      session=self.session_id, queue_id=queue_id, mailboxes=",".join(f"<{m}>" for m in full))
        report = self.policy.failure_report(transaction.sender, queue_id, message, full)
        return defer.maybeDeferred(self.delivery.deliver_report, transaction.sender, report).addErrback(
            lambda failure: self.log.failure("smtp session {session}: quota report for {queue_id} not stored",
                                             failure, session=self.session_id, queue_id=queue_id))

    def _received_from(self):
        return {"client": self.client_address, "helo": self.helo, "user": self.user,
                "tls": self.tls_version, "session": self.session_id}

    def _delivered(self, _ignored, queue_id, transaction, size, stored):
        self.transaction = None
        self._log_transaction("250 queued" + transaction.filed, queue_id, transaction, size, stored)
        self._resume(250, "2.0.0", f"OK: queued as {queue_id}")
        return True

    def _not_delivered(self, failure, queue_id, transaction, size):
        self.transaction = None
        if disk_full(failure.value):
            self.log.error("smtp session {session}: could not store message {queue_id}: {error}",
                           session=self.session_id, queue_id=queue_id, error=failure.value)
            self._log_transaction(f"{_NO_SPACE.code} not stored", queue_id, transaction, size)
            return self._resume(_NO_SPACE.code, _NO_SPACE.status, _NO_SPACE.text)
        self.log.failure("smtp session {session}: could not store message {queue_id}", failure,
                         session=self.session_id, queue_id=queue_id)
        self._log_transaction("451 not stored", queue_id, transaction, size)
        self._resume(451, "4.3.0", "Local error in processing; try again later")

    def _log_transaction(self, result, queue_id=None, transaction=None, size=None, stored=()):
        """One line per transaction; once delivered, with where it went after aliases (*stored*,
        the recipients delivery took, full mailboxes left out): the local mailboxes and the
        addresses the queue has it for."""
        transaction = transaction or self.transaction
        mailboxes = dict.fromkeys(mailbox for _address, resolution in stored for mailbox in resolution.local)
        remote = dict.fromkeys(address for _address, resolution in stored for address in resolution.remote)
        fields = dict(
            role=self.settings.role, session=self.session_id, client=self.client_address, helo=self.helo,
            user=self.user, tls=self.tls_version, sender=transaction.sender,
            recipients=",".join(f"<{address}>" for address, _ in transaction.recipients) or "-",
            refused=transaction.refused, size=size, result=result, queue_id=queue_id,
            mailboxes=",".join(f"<{mailbox}>" for mailbox in mailboxes) or "-",
            remote=",".join(f"<{address}>" for address in remote) or "-",
        )
        # The text is made here by str.format (in C) and the fields travel in the event as well:
        # twisted.logger's own formatting (string.Formatter, in Python) of these thirteen fields
        # cost a tenth of the reactor's time per message.
        self.log.info("{transaction}", transaction=TRANSACTION_LINE.format(**fields), **fields)


