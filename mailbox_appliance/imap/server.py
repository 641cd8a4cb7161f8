"""The IMAP4rev1 server for the imap (143, STARTTLS) and imaps (993, implicit TLS) listeners.

Built on twisted.mail.imap4.IMAP4Server, which serves for line and literal reading, argument
parsing (astring, flag lists, FETCH attributes) and the state-prefixed command tables.  Replaced
here, because Twisted's versions are wrong for our users:

* command sequencing: one command at a time, later pipelined ones wait in the line buffer
  (twisted#9282), and untagged updates go out only where RFC 3501 §7.4.1 allows;
* STARTTLS drops whatever was pipelined behind it in plaintext;
* LOGIN and AUTHENTICATE PLAIN only over TLS, failures throttled per client address;
* literals, with LITERAL+ and size caps (literals.py);
* ID (RFC 2971), COMPRESS=DEFLATE (RFC 4978; the connection, flow_control.py, inflates and deflates);
* FETCH items, parsed by fetch_items.py rather than Twisted's parser, which has no BINARY (RFC 3516)
  and reads a partial's bounds without limit;
* every folder and message command (folder_commands.py, message_commands.py).
"""

import secrets

from twisted.cred.credentials import UsernamePassword
from twisted.internet import defer
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.mail.imap4 import (IllegalClientResponse, IllegalMailboxEncoding, IllegalOperation, IMAP4Server,
                                MismatchedNesting, MismatchedQuoting)

from mailbox_appliance.accounts.sasl import MalformedResponse, plain_credentials
from mailbox_appliance.atomic import disk_full
from mailbox_appliance.interfaces import IMailUser
from mailbox_appliance.session_security import LOCKED_OUT, WRONG_CREDENTIALS, LoginRefused, SecureSession

from .account import MaildirAccount
from .condstore import Resync
from .notify import Notify
from .quota_commands import QuotaCommands
from .folder_commands import FolderCommands
from .identity import SERVER_IDENTITY, identity_fields
from .literals import LiteralArguments
from .message_commands import MessageCommands
from .response import encode
from .search import tokenize

__all__ = ["IMAPFactory", "IMAPServer"]

IDLE_TIMEOUT_SECONDS = 30 * 60     # RFC 3501 §5.4: at least 30 minutes once logged in
# BAD answers in one session before it is closed (Dovecot's "Too many invalid IMAP commands" is
# 10 too): garbage, or another protocol, is not answered line by line for ever.
MAX_BAD_COMMANDS = 10
PREAUTH_TIMEOUT_SECONDS = 60


class IMAPServer(SecureSession, Notify, Resync, QuotaCommands, FolderCommands, MessageCommands, LiteralArguments, IMAP4Server):
    log = Logger()
    protocol_name = "imap"
    IDENT = b"mailbox-appliance IMAP4rev1 ready"
    timeOut = PREAUTH_TIMEOUT_SECONDS
    POSTAUTH_TIMEOUT = IDLE_TIMEOUT_SECONDS

    def __init__(self, factory):
        super().__init__(contextFactory=factory.tls_context)
        self.factory = factory
        self.gate = factory.gate
        self.MAX_LENGTH = factory.max_line_length      # LineReceiver's limit: [limits] max_line_length
        self.secure = factory.implicit_tls
        self.session_id = secrets.token_hex(4)
        self.client_address = None
        self.selection = None
        self._tag = None
        self._command = None          # (name, uid) of the command being answered
        self._idling = False
        self._bad_commands = 0

    # -- connection ---------------------------------------------------------------------------

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.client_address = getattr(peer, "host", str(peer))
        super().connectionMade()

    def connectionLost(self, reason):
        self.gate.session_ended(self)
        self.stop_notify()
        self.deselect()
        super().connectionLost(reason)

    def kick(self):
        self.close_session(b"The administrator ended this session")

    def close_session(self, bye):
        """End the session: the folder let go first (nothing about it may follow the BYE), then
        BYE, then the close.  Every way a session ends comes here.  A paused transport is resumed:
        a paused TLS connection never reads the client's close, and would keep its connection
        slot for good; what the client still sends is dropped (lineReceived)."""
        self.deselect()
        self.state = "logout"
        if bye:
            self.sendLine(b"* BYE " + bye)
        if self.paused:
            self.resumeProducing()
        self.transport.loseConnection()

    def timeoutConnection(self):
        self.close_session(b"Autologout; idle for too long")

    def goodbye(self, text):
        self.close_session(text.encode("ascii"))

    def rawDataReceived(self, data):
        """A literal's octets.  Twisted's restarts the idle timer on every read, which let a
        client sending one octet a minute hold a session for ever; the connection restarts it,
        on progress only (flow_control.py)."""
        passon = self._pendingLiteral.write(data)
        if passon is not None:
            self.setLineMode(passon)

    def lineLengthExceeded(self, line):
        """A command line over [limits] max_line_length: say so before closing (LineReceiver
        would close without a word, and what follows could not be told from a new command)."""
        self.close_session(b"Command line too long (at most %d octets)" % self.MAX_LENGTH)

    def listCapabilities(self):
        caps = [b"IMAP4rev1"]                                   # RFC 3501
        if self.secure:
            caps += [b"AUTH=PLAIN",                             # RFC 3501 §6.2.2, RFC 4616
                     b"SASL-IR"]                                # RFC 4959
        else:
            caps += [b"STARTTLS", b"LOGINDISABLED"]             # RFC 3501 §6.2.1, §6.2.3
        caps += [
            b"IDLE",                                            # RFC 2177
            b"UIDPLUS",                                         # RFC 4315
            b"MULTIAPPEND",                                     # RFC 3502 (folder_commands.py)
            b"CATENATE",                                        # RFC 4469 (catenate.py)
            b"NAMESPACE",                                       # RFC 2342
            b"UNSELECT",                                        # RFC 3691
            b"CHILDREN",                                        # RFC 3348
            b"LIST-EXTENDED",                                   # RFC 5258 (folder_commands.py)
            b"SPECIAL-USE",                                     # RFC 6154
            b"MOVE",                                            # RFC 6851
            b"ENABLE",                                          # RFC 5161 (condstore.py)
            b"CONDSTORE",                                       # RFC 7162 (condstore.py, maildir/modseq.py)
            b"QRESYNC",                                         # RFC 7162 §3.2
            b"NOTIFY",                                          # RFC 5465 (notify.py)
            b"QUOTA",                                           # RFC 9208 (quota_commands.py)
            b"QUOTA=RES-STORAGE",
            b"STATUS=SIZE",                                     # RFC 8438
            b"LITERAL+",                                        # RFC 7888 (literals.py)
            b"ID",                                              # RFC 2971
            b"SORT",                                            # RFC 5256 (sort.py)
            b"SORT=DISPLAY",                                    # RFC 5957
            b"THREAD=ORDEREDSUBJECT",                           # RFC 5256 (thread.py)
            b"THREAD=REFERENCES",                               # RFC 5256
            b"ESEARCH",                                         # RFC 4731 (message_commands.py)
            b"ESORT",                                           # RFC 5267 §3.2
            b"CONTEXT=SEARCH",                                  # RFC 5267 §4 (search_context.py)
            b"BINARY",                                          # RFC 3516 (fetch_items.py)
            b"APPENDLIMIT=%d" % self.factory.max_message_size,  # RFC 7889
        ]
        if self.state in ("auth", "select"):
            caps.append(b"COMPRESS=DEFLATE")                    # RFC 4978 §3: once logged in
        return caps

    # -- one command at a time ----------------------------------------------------------------

    def lineReceived(self, line):
        """Run one line; while its command is unanswered, stop reading so pipelined commands
        wait in the buffer (twisted#9282: Twisted ran them in the wrong state)."""
        # The idle timer is restarted by the connection (flow_control.py), on progress only.
        if self.state == "logout":
            return
        if self.state == "unauth" and self.parseState == "command" \
                and not self.may_run_before_login(self.factory.max_commands_before_login):
            return
        try:
            getattr(self, "parse_" + self.parseState)(line)
        except Exception:
            self.parseState = "command"
            self.command_failed(Failure(), self._tag)
        if self._command is not None and self.parseState == "command" and not self.paused \
                and self.state != "logout":
            self.pauseProducing()

    def command_failed(self, failure, tag):
        """The answer to a command that raised, at once or later (a Deferred it waits on): NO,
        with one log line for a full disk, and the traceback logged for anything else."""
        if disk_full(failure.value):
            self._disk_full(tag, failure.value)
        else:
            self.log.failure("imap session {session}: error in command", failure, session=self.session_id)
            if self._command is not None:
                self.sendNegativeResponse(tag, b"[SERVERBUG] Internal error; see the server log")

    def _IMAP4Server__ebDispatch(self, failure, tag):
        """The answer to a command whose arguments failed to parse (Twisted's private
        __ebDispatch, replaced): Twisted encodes the reason as strict ASCII, so a reason quoting
        an 8-bit octet (``FETCH 1\\xff``) raised inside this handler, the command was never
        answered, the session hung with its transport paused and kept its connection slot."""
        reason = str(failure.value).encode("ascii", "backslashreplace")
        if failure.check(IllegalClientResponse):
            self.sendBadResponse(tag, b"Illegal syntax: " + reason)
        elif failure.check(MismatchedNesting, MismatchedQuoting):
            # Twisted's parenthesised-list parser (arg_plist, splitQuoted): a client's syntax
            # error, not ours, so BAD without a traceback in the log.
            what = b"parentheses" if failure.check(MismatchedNesting) else b"quotes"
            self.sendBadResponse(tag, b"Illegal syntax: unbalanced " + what)
        elif failure.check(IllegalOperation, IllegalMailboxEncoding):
            self.sendNegativeResponse(tag, reason)
        else:
            self.command_failed(failure, tag)

    def _disk_full(self, tag, error):
        """A command that needed room on a full disk: NO, with what happened, and one log line.
        Nothing was published half-written (atomic.py); the client may try again once there is
        room, in this session (RFC 5530 §3: OVERQUOTA for the commands that add mail, as
        Dovecot answers ENOSPC; UNAVAILABLE for the rest)."""
        name = (self._command or (b"", False))[0]
        self.log.error("imap session {session}: {command} failed: {error}", session=self.session_id,
                       command=name.decode("ascii", "replace"), error=error)
        code = b"[OVERQUOTA]" if name in (b"APPEND", b"COPY", b"MOVE") else b"[UNAVAILABLE]"
        if self._command is not None:
            self.sendNegativeResponse(tag, code + b" Not enough disk space on the server; try again later")

    def lookupCommand(self, cmd):
        """Twisted's lookup took any octets as a command name and raised (a traceback per line)
        on a non-ASCII one; a name that is no atom is simply no command."""
        if not (cmd.isascii() and cmd.isalpha()):
            return None
        return super().lookupCommand(cmd)

    def sendBadResponse(self, tag=None, message=b""):
        """BAD, counted: after MAX_BAD_COMMANDS the session is closed."""
        super().sendBadResponse(tag, message)
        self._bad_commands += 1
        if self._bad_commands >= MAX_BAD_COMMANDS and self.state != "logout":
            self.close_session(b"Too many invalid commands")

    def parse_command(self, line):
        words = line.split(None, 2)
        if not words:
            self.sendBadResponse(None, b"Empty command line")
            return
        self._tag = words[0]
        self._command = (words[1].upper() if len(words) > 1 else b"", False)
        super().parse_command(line)

    def dispatchCommand(self, tag, cmd, rest, uid=None):
        self._command = (cmd.upper(), bool(uid))
        # A command with nothing after its name has rest None (Twisted's parse_command), which
        # every argument parser then met as a line and raised on (``UID FETCH``): b"" is "no
        # arguments", which they answer with BAD "Missing argument".
        super().dispatchCommand(tag, cmd, rest if rest is not None else b"", uid)

    def _respond(self, state, tag, message):
        if not (tag and state in (b"OK", b"NO", b"BAD")):
            return super()._respond(state, tag, message)
        if self.selection is not None:
            name, by_uid = self._command or (b"", False)
            # RFC 3501 §7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH (UID forms may);
            # RFC 5256 §3: SORT and THREAD are like SEARCH.
            allow_expunge = by_uid or name not in (b"FETCH", b"STORE", b"SEARCH", b"SORT", b"THREAD")
            for update in self.selection.pending(allow_expunge):
                self.sendLine(update)
        super()._respond(state, tag, message)
        self._command = None
        if self.paused:
            self.resumeProducing()

    def send_untagged(self, data):
        """An untagged response whose *data* may hold literals (so it is not one sendLine)."""
        self.transport.write(b"* " + data + b"\r\n")

    def refuse(self, tag, reason, code=None):
        """NO with an RFC 5530 response code when there is one."""
        prefix = b"[%s] " % code.encode() if code else b""
        self.sendNegativeResponse(tag, prefix + reason.encode("utf-8", "replace"))

    # -- STARTTLS, LOGIN, AUTHENTICATE --------------------------------------------------------

    def do_STARTTLS(self, tag):
        if self.secure:
            self.sendBadResponse(tag, b"TLS is already active")
            return
        if self.ctx is None:
            self.sendNegativeResponse(tag, b"STARTTLS is not offered here")
            return
        self.sendPositiveResponse(tag, b"Begin TLS negotiation now")
        self.start_tls(self.ctx, self.clearLineBuffer())

    unauth_STARTTLS = (do_STARTTLS,)

    def do_LOGIN(self, tag, user, password):
        self._login(tag, UsernamePassword(user, password), b"LOGIN")

    unauth_LOGIN = (do_LOGIN, LiteralArguments.arg_astring, IMAP4Server.arg_finalastring)

    def do_AUTHENTICATE(self, tag, mechanism, initial):
        if mechanism.upper() != b"PLAIN":
            self.sendNegativeResponse(tag, b"[CANNOT] Only AUTHENTICATE PLAIN is offered")
        elif not self.secure:
            self._refuse_login(tag, "tls", b"AUTHENTICATE")
        elif initial is not None:
            # RFC 4959 SASL-IR: the response came with the command ("=" for an empty one).
            self._plain_response(b"" if initial == b"=" else initial, tag)
        else:
            # RFC 3501 §6.2.2: an empty challenge, then one base64 line (or "*" to cancel).
            self.parseState = "pending"
            self._pendingLiteral = defer.Deferred()
            self._pendingLiteral.addCallback(self._plain_response, tag)
            self.sendLine(b"+ ")

    def opt_initial_response(self, line):
        """AUTHENTICATE's optional initial response (RFC 4959): one base64 atom, or None."""
        if not line or not line.strip():
            return None, b""
        return IMAP4Server.arg_atom(self, line)

    unauth_AUTHENTICATE = (do_AUTHENTICATE, IMAP4Server.arg_atom, opt_initial_response)

    def _plain_response(self, line, tag):
        if line.strip() == b"*":
            self.sendBadResponse(tag, b"AUTHENTICATE cancelled")
            return
        try:
            credentials = plain_credentials(line.strip())
        except MalformedResponse as problem:
            self.sendBadResponse(tag, str(problem).encode("ascii"))
            return
        self._login(tag, credentials, b"AUTHENTICATE")

    def _login(self, tag, credentials, command):
        refusal = self.password_refusal()
        if refusal is not None:
            self._refuse_login(tag, refusal, command)
            return
        result = self.log_in(credentials, IMailUser)
        result.addCallbacks(self._logged_in, self._login_failed, (tag,), None, (tag,), None)

    def _refuse_login(self, tag, reason, command=b"LOGIN"):
        if reason == "tls":
            message = b"[PRIVACYREQUIRED] " + command + b" is disabled until STARTTLS"
        elif reason == LOCKED_OUT:
            message = b"[UNAVAILABLE] Too many failed logins; try again later"
        elif reason == WRONG_CREDENTIALS:
            message = b"[AUTHENTICATIONFAILED] Wrong user name or password"
        else:
            message = b"[UNAVAILABLE] Login is not possible right now"
        if self.transport is not None and not self.transport.disconnecting:
            self.sendNegativeResponse(tag, message)

    def _logged_in(self, user, tag):
        self.account = MaildirAccount(user.address, user.maildir, user.folders)
        self.state = "auth"
        self.setTimeout(self.POSTAUTH_TIMEOUT)
        self.sendPositiveResponse(tag, b"[CAPABILITY " + b" ".join(self.listCapabilities()) + b"] Logged in")

    def _login_failed(self, failure, tag):
        failure.trap(LoginRefused)
        self._refuse_login(tag, failure.value.reason)

    # -- arguments ----------------------------------------------------------------------------

    # -- commands of any state ----------------------------------------------------------------

    def do_ID(self, tag, pieces):
        """RFC 2971: log what the client says it is, and say what we are."""
        try:
            client = identity_fields(tokenize(pieces))
        except ValueError as problem:         # search.SearchError is one too
            self.sendBadResponse(tag, str(problem).encode("ascii", "replace"))
            return
        self.log.info("imap session {session} from {client}: client ID {fields}",
                      session=self.session_id, client=self.client_address, fields=client)
        self.send_untagged(b"ID " + encode(SERVER_IDENTITY))
        self.sendPositiveResponse(tag, b"ID completed")

    unauth_ID = auth_ID = select_ID = (do_ID, LiteralArguments.arg_text_with_literals)

    def do_LOGOUT(self, tag):
        """RFC 3501 §6.1.3: BYE, the tagged OK, and nothing else: the folder is let go first, so
        no EXPUNGE or FETCH about it can follow the BYE (§7.4.1)."""
        self.deselect()
        self.sendUntaggedResponse(b"BYE Logging out")
        self.sendPositiveResponse(tag, b"LOGOUT completed")
        self.close_session(None)

    unauth_LOGOUT = auth_LOGOUT = select_LOGOUT = (do_LOGOUT,)

    def do_NAMESPACE(self, tag):
        # RFC 2342: one personal namespace, no prefix, "." separator (account.py says why).
        self.sendUntaggedResponse(b'NAMESPACE (("" ".")) NIL NIL')
        self.sendPositiveResponse(tag, b"NAMESPACE completed")

    auth_NAMESPACE = select_NAMESPACE = (do_NAMESPACE,)

    def do_COMPRESS(self, tag, mechanism):
        """RFC 4978: compression starts right after the tagged OK's CRLF, in both directions;
        the connection (flow_control.py) inflates and deflates."""
        if mechanism.upper() != b"DEFLATE":
            self.sendBadResponse(tag, b"Only COMPRESS DEFLATE is offered")
        elif self.transport.compressing:
            self.sendNegativeResponse(tag, b"[COMPRESSIONACTIVE] DEFLATE is active already")
        else:
            self.sendPositiveResponse(tag, b"DEFLATE active")
            self.transport.start_compression(self.clearLineBuffer())

    auth_COMPRESS = select_COMPRESS = (do_COMPRESS, IMAP4Server.arg_atom)

    def do_NOOP(self, tag):
        if self.selection is not None:
            self.selection.folder.refresh()
        self.sendPositiveResponse(tag, b"NOOP completed")

    unauth_NOOP = auth_NOOP = select_NOOP = (do_NOOP,)
    select_CHECK = (do_NOOP,)

    def do_IDLE(self, tag):
        """RFC 2177: report changes as they happen until the client sends DONE."""
        self._idle_tag = tag
        self.parseState = "idle"
        self.sendLine(b"+ idling")
        self._idling = True
        if self.selection is not None:
            self.selection.folder.refresh()
            self.push_updates()

    auth_IDLE = select_IDLE = (do_IDLE,)

    def parse_idle(self, line):
        self._idling = False
        self.parseState = "command"
        if line.strip().upper() == b"DONE":
            self.sendPositiveResponse(self._idle_tag, b"IDLE terminated")
        else:
            self.sendBadResponse(self._idle_tag, b"Expected DONE to end IDLE")

    def push_updates(self):
        """Called by the selection when its folder changed: while idling, or between commands
        when NOTIFY asked for the selected folder's events (RFC 5465 §5), tell the client now."""
        if self.selection is not None and (self._idling or (self.notify_selected() and self._command is None)):
            for update in self.selection.pending(allow_expunge=True):
                self.sendLine(update)


class IMAPFactory(ServerFactory):
    """Builds the IMAPServer sessions of one listener (143 or 993)."""

    def __init__(self, settings, gate, quotas, learning, parsed_messages, tls_context, clock, implicit_tls=False):
        """*gate* is the session_security.LoginGate; the realm behind it hands each login its
        Maildir and the folder registry every session shares; *quotas* (IQuotas) the limits;
        *learning* (ISpamLearning, or None) takes what users move into or out of Junk;
        *parsed_messages* (parsed_messages.ParsedMessages) is shared by both IMAP listeners."""
        self.gate = gate
        self.parsed_messages = parsed_messages
        self.quotas = quotas
        self.learning = learning
        self.tls_context = None if implicit_tls else tls_context
        self.implicit_tls = implicit_tls
        self.clock = clock
        self.max_message_size = settings.limits.max_message_size
        self.max_line_length = settings.limits.max_line_length
        self.max_commands_before_login = settings.limits.max_commands_before_login

    def buildProtocol(self, addr):
        return IMAPServer(self)
