"""The ManageSieve server (RFC 5804) for the ``managesieve`` listener.

Why not a Twisted class: Twisted has no ManageSieve.  The session is a small protocol on
Twisted's transports like the POP3 server: STARTTLS (RFC 5804 §2.2), AUTHENTICATE PLAIN only
once TLS is up and through the same LoginGate (throttle, lock-out, log line) as every other
login, then the script commands over the user's ISieveScripts.  A script is checked before it is
stored (PUTSCRIPT, CHECKSCRIPT): the NO names the line and the reason.
"""

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin

from mailbox_appliance.accounts.sasl import MalformedResponse, plain_credentials
from mailbox_appliance.atomic import disk_full
from mailbox_appliance.interfaces import IMailUser
from mailbox_appliance.managesieve.syntax import CommandError, quoted, read_command
from mailbox_appliance.session_security import LOCKED_OUT, WRONG_CREDENTIALS, SecureSession, SessionFactory
from mailbox_appliance.sieve.commands import EXTENSIONS, check
from mailbox_appliance.sieve.grammar import MAX_SCRIPT_OCTETS, SieveError
from mailbox_appliance.sieve.scripts import MAX_SCRIPTS, NoSuchScript, ScriptError, check_name

# Before login a client gets LOGIN_DEADLINE_SECONDS (flow_control.py); after it, this.
IDLE_TIMEOUT_SECONDS = 30 * 60
MAX_ERRORS = 10
BEFORE_LOGIN = {"CAPABILITY", "STARTTLS", "AUTHENTICATE", "LOGOUT", "NOOP"}
AFTER_LOGIN = {"CAPABILITY", "LOGOUT", "NOOP", "HAVESPACE", "PUTSCRIPT", "LISTSCRIPTS", "SETACTIVE", "GETSCRIPT",
               "DELETESCRIPT", "RENAMESCRIPT", "CHECKSCRIPT", "UNAUTHENTICATE"}


class _No(Exception):
    """Answer NO, with an optional response code (RFC 5804 §1.3)."""

    def __init__(self, text, code=None):
        super().__init__(text)
        self.text, self.code = text, code


class ManageSieveServer(SecureSession, Protocol, TimeoutMixin):
    log = Logger()
    protocol_name = "managesieve"

    def __init__(self, factory):
        self.take_factory(factory)
        self._buffer = b""
        self._state = "anonymous"          # anonymous | auth | busy | logged_in | closed
        self._errors = 0
        self.address = None

    # -- connection -----------------------------------------------------------------------

    def connectionMade(self):
        self.opened(IDLE_TIMEOUT_SECONDS)
        self._capabilities()
        self._ok(f"{self.factory.hostname} ManageSieve ready")

    def connectionLost(self, reason):
        self.closed()
        self._state = "closed"

    def timeoutConnection(self):
        self.goodbye("Idle for too long")

    def goodbye(self, text):
        self._answer(b"BYE", text)
        self._close()

    def _close(self):
        self._state = "closed"
        self.transport.loseConnection()

    def _answer(self, kind, text, code=None):
        line = kind + (b" (" + code.encode("ascii") + b")" if code else b"") + (b" " + quoted(text) if text else b"")
        self.transport.write(line + b"\r\n")

    def _ok(self, text="", code=None):
        self._answer(b"OK", text, code)

    def _capabilities(self):
        lines = [(b"IMPLEMENTATION", "mailbox-appliance"),
                 (b"SASL", "PLAIN" if self.secure else ""),
                 (b"SIEVE", " ".join(EXTENSIONS)),
                 (b"VERSION", "1.0")]
        if not self.secure and self.factory.tls_context is not None:
            lines.append((b"STARTTLS", None))
        if self.address is not None:
            lines.append((b"OWNER", self.address))
        self.transport.write(b"".join(quoted(name.decode("ascii")) + (b" " + quoted(value) if value is not None else b"")
                                      + b"\r\n" for name, value in lines))

    # -- input ----------------------------------------------------------------------------

    def dataReceived(self, data):
        # The idle timer is restarted by the connection (flow_control.py), on progress only.
        if self._state == "closed":
            return
        self._buffer += data
        self._process()

    def _process(self):
        while self._state not in ("busy", "closed"):
            if self._state == "auth":
                end = self._buffer.find(b"\n")
                if end < 0:
                    return
                line, self._buffer = self._buffer[:end].rstrip(b"\r"), self._buffer[end + 1:]
                self._auth_response(line)
                continue
            try:
                command = read_command(self._buffer, self.factory.max_line_length)
            except CommandError as problem:
                if problem.skip is None:
                    return self.goodbye(problem.text)
                self._buffer = self._buffer[problem.skip:]
                self._error(problem.text)
                continue
            if command is None:
                return
            verb, arguments, used = command
            self._buffer = self._buffer[used:]
            self._command(verb, arguments)

    def _error(self, text, code=None):
        self._errors += 1
        self._answer(b"NO", text, code)
        if self._errors >= MAX_ERRORS:
            self.goodbye("Too many errors")

    def _command(self, verb, arguments):
        if self._state == "anonymous" \
                and not self.may_run_before_login(self.factory.max_commands_before_login):
            return
        allowed = AFTER_LOGIN if self._state == "logged_in" else BEFORE_LOGIN
        if verb not in allowed:
            known = verb in AFTER_LOGIN | BEFORE_LOGIN
            return self._error(f"{verb} is not allowed now" if known else "Unknown command")
        try:
            getattr(self, "do_" + verb)(*_strings(arguments, _SHAPES[verb]))
        except _No as refusal:
            self._answer(b"NO", refusal.text, refusal.code)
        except _BadArguments as problem:
            self._error(str(problem))

    # -- before login ---------------------------------------------------------------------

    def do_CAPABILITY(self):
        self._capabilities()
        self._ok()

    def do_NOOP(self, tag=None):
        if tag is None:
            return self._ok("Done")
        self._ok("Done", "TAG " + quoted(tag).decode("utf-8"))

    def do_LOGOUT(self):
        self._ok("Logout")
        self._close()

    def do_STARTTLS(self):
        if self.secure:
            raise _No("TLS is already active")
        if self.factory.tls_context is None:
            raise _No("STARTTLS is not offered here")
        self._ok("Begin TLS negotiation")
        pipelined, self._buffer = self._buffer, b""
        self.start_tls(self.factory.tls_context, pipelined)
        # RFC 5804 §2.2: the capabilities again, now with SASL PLAIN.
        self._capabilities()
        self._ok("TLS is active")

    def do_AUTHENTICATE(self, mechanism, initial=None):
        if mechanism.upper() != "PLAIN":
            raise _No("Only PLAIN is offered")
        refusal = self.password_refusal()
        if refusal == "tls":
            raise _No("Authentication requires TLS: send STARTTLS first", "ENCRYPT-NEEDED")
        if refusal == LOCKED_OUT:
            raise _No("Too many failed logins from your address; try again later", "TRYLATER")
        if initial is None:
            # RFC 5804 §2.1: an empty challenge; the client answers with a string.
            self._state = "auth"
            self.transport.write(b'""\r\n')
            return
        self._login(initial.encode("ascii", "replace"))

    def _auth_response(self, line):
        self._state = "anonymous"
        response = line.strip()
        if response.startswith(b'"') and response.endswith(b'"') and len(response) >= 2:
            response = response[1:-1]
        if response == b"*":
            return self._answer(b"NO", "Authentication cancelled")
        self._login(response)

    def _login(self, encoded):
        try:
            credentials = plain_credentials(encoded)
        except MalformedResponse as problem:
            return self._error(str(problem))
        self._state = "busy"
        self.log_in_paused(credentials, IMailUser, self._logged_in, self._login_refused)

    def _logged_in(self, user):
        self.address = user.address
        self._resume("logged_in", "Logged in")

    def _login_refused(self, reason):
        if reason == WRONG_CREDENTIALS:
            self._resume("anonymous", None, "Authentication failed")
        elif reason == LOCKED_OUT:
            self._resume("anonymous", None, "Too many failed logins from your address; try again later", "TRYLATER")
        else:
            self._resume("anonymous", None, "Login is not possible right now; try again later", "TRYLATER")

    def _resume(self, state, ok, error=None, code=None):
        if self._state == "closed":
            return
        self.transport.resumeProducing()
        self._state = state
        if error is None:
            self._ok(ok)
        else:
            self._answer(b"NO", error, code)
        self._process()

    # -- after login ----------------------------------------------------------------------

    def do_UNAUTHENTICATE(self):
        self.gate.session_ended(self)
        self.address = None
        self._state = "anonymous"
        self._ok("Logged out; log in again")

    def do_HAVESPACE(self, name, size):
        self._scripts_call(lambda scripts: check_name(name))
        if size > MAX_SCRIPT_OCTETS:
            raise _No(f"A script may be at most {MAX_SCRIPT_OCTETS} octets", "QUOTA/MAXSIZE")
        listed = {script for script, _ in self.factory.scripts.list(self.address)}
        if name not in listed and len(listed) >= MAX_SCRIPTS:
            raise _No(f"At most {MAX_SCRIPTS} scripts", "QUOTA/MAXSCRIPTS")
        self._ok()

    def do_PUTSCRIPT(self, name, script):
        self._scripts_call(lambda scripts: scripts.put(self.address, name, script.encode("utf-8", "surrogateescape")))
        self.log.info("managesieve session {session}: {user} stored script {name}",
                      session=self.session_id, user=self.address, name=name)
        self._ok()

    def do_CHECKSCRIPT(self, script):
        try:
            check(script.encode("utf-8", "surrogateescape"))
        except SieveError as problem:
            raise _No(str(problem)) from None
        self._ok()

    def do_LISTSCRIPTS(self):
        listed = self.factory.scripts.list(self.address)
        self.transport.write(b"".join(quoted(name) + (b" ACTIVE" if active else b"") + b"\r\n" for name, active in listed))
        self._ok()

    def do_SETACTIVE(self, name):
        self._scripts_call(lambda scripts: scripts.activate(self.address, name or None))
        self.log.info("managesieve session {session}: {user} activated {name}", session=self.session_id,
                      user=self.address, name=name or "no script")
        self._ok()

    def do_GETSCRIPT(self, name):
        script = self._scripts_call(lambda scripts: scripts.get(self.address, name))
        self.transport.write(b"{%d}\r\n" % len(script) + script + b"\r\n")
        self._ok()

    def do_DELETESCRIPT(self, name):
        if self.factory.scripts.active_name(self.address) == name:
            raise _No(f"{name} is the active script", "ACTIVE")
        self._scripts_call(lambda scripts: scripts.delete(self.address, name))
        self._ok()

    def do_RENAMESCRIPT(self, old, new):
        names = {script for script, _ in self.factory.scripts.list(self.address)}
        if new in names:
            raise _No(f"A script {new} exists already", "ALREADYEXISTS")
        self._scripts_call(lambda scripts: scripts.rename(self.address, old, new))
        self._ok()

    def _scripts_call(self, operation):
        """*operation* on the user's scripts; its refusals become NO with RFC 5804's codes."""
        try:
            return operation(self.factory.scripts)
        except SieveError as problem:
            raise _No(str(problem)) from None
        except NoSuchScript as problem:
            raise _No(str(problem), "NONEXISTENT") from None
        except ScriptError as problem:
            raise _No(str(problem)) from None
        except OSError as problem:
            if disk_full(problem):
                raise _No("The disk is full; try again later", "QUOTA") from None
            raise


class _BadArguments(Exception):
    """Arguments of the wrong number or kind for the command."""


# Each command's arguments: "s" a string, "n" a number; a "?" suffix: optional.
_SHAPES = {"CAPABILITY": "", "NOOP": "s?", "LOGOUT": "", "STARTTLS": "", "AUTHENTICATE": "s s?",
           "UNAUTHENTICATE": "", "HAVESPACE": "s n", "PUTSCRIPT": "s s", "CHECKSCRIPT": "s", "LISTSCRIPTS": "",
           "SETACTIVE": "s", "GETSCRIPT": "s", "DELETESCRIPT": "s", "RENAMESCRIPT": "s s"}


def _strings(arguments, shape):
    """*arguments* checked against *shape*; strings decoded as UTF-8."""
    kinds = shape.split()
    required = [kind for kind in kinds if not kind.endswith("?")]
    if not len(required) <= len(arguments) <= len(kinds):
        raise _BadArguments(f"Expected {len(required)} arguments" if len(required) == len(kinds)
                            else f"Expected {len(required)} to {len(kinds)} arguments")
    decoded = []
    for kind, value in zip(kinds, arguments):
        if kind.startswith("n"):
            if not isinstance(value, int):
                raise _BadArguments("Expected a number")
            decoded.append(value)
        else:
            if isinstance(value, int):
                value = str(value).encode("ascii")
            try:
                decoded.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                raise _BadArguments("Strings must be UTF-8") from None
    return decoded


class ManageSieveFactory(SessionFactory):
    protocol = ManageSieveServer

    def __init__(self, settings, gate, scripts, tls_context, clock, implicit_tls=False):
        """*scripts* is the ISieveScripts the sessions edit."""
        super().__init__(settings, gate, tls_context, clock, implicit_tls)
        self.scripts = scripts
