"""The session rules SMTP, IMAP, POP3 and ManageSieve share: STARTTLS that drops what was pipelined behind it,
no password before TLS, and login through the portal with the failed-login throttle.

Each protocol words its own replies (SMTP 538/454/535, IMAP NO [PRIVACYREQUIRED]/[UNAVAILABLE]/
[AUTHENTICATIONFAILED], POP3 -ERR [AUTH]/[SYS/TEMP]); what is decided, and logged, is decided here
once, so the three cannot drift apart.
"""

import secrets

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, task
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from mailbox_appliance.flow_control import LOGIN_DEADLINE_SECONDS

# Why a login did not succeed (LoginRefused.reason).
LOCKED_OUT = "locked out"          # too many failures from this client address (login_throttle.py)
WRONG_CREDENTIALS = "failed"       # answered only after the throttle's delay
UNAVAILABLE = "unavailable"        # the check itself broke (logged with its traceback)


class LoginRefused(Exception):
    """A login that did not succeed; ``reason`` is LOCKED_OUT, WRONG_CREDENTIALS or UNAVAILABLE."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class LoginGate:
    """The one way in for every protocol: twisted.cred's portal behind the per-address throttle."""

    log = Logger()

    def __init__(self, portal, throttle, clock, on_login=lambda user, protocol, client: None):
        """*on_login* hears of every successful login (accounts/last_login.py records them)."""
        self.portal = portal
        self.throttle = throttle
        self.clock = clock
        self.on_login = on_login
        self._refused_while_locked = {}   # client address -> logins refused during its lockout
        # Every logged-in session (SecureSession) -> (user, since): `who` and `kick` read it.
        self.sessions = {}

    def is_locked_out(self, client_address):
        return self.throttle.is_locked_out(client_address)

    def login(self, session, credentials, interface):
        """The avatar providing *interface* for *credentials*; a Deferred.

        Fails with LoginRefused: LOCKED_OUT at once, WRONG_CREDENTIALS only after the throttle's
        delay for this address (so guessing is slowed, RFC 4954 §4 and RFC 3501 §6.2.3 leave it
        to the server), UNAVAILABLE when the check broke.  *session* is the SecureSession asking.
        """
        client = session.client_address
        user = getattr(credentials, "username", b"")
        user = user.decode("utf-8", "replace") if isinstance(user, bytes) else str(user)
        if self.throttle.is_locked_out(client):
            self.refused_while_locked(session)
            return defer.fail(LoginRefused(LOCKED_OUT))

        def succeeded(login):
            _interface, avatar, _logout = login
            self.throttle.succeeded(client)
            self.sessions[session] = (avatar.address, self.clock.seconds())
            self.on_login(avatar.address, session.protocol_name, client)
            self.log.info("{protocol} session {session} from {client}: logged in as {user}",
                          protocol=session.protocol_name, session=session.session_id, client=client,
                          user=avatar.address)
            return avatar

        def failed(failure):
            if not failure.check(UnauthorizedLogin):
                self.log.failure("{protocol} session {session}: login error", failure,
                                 protocol=session.protocol_name, session=session.session_id)
                raise LoginRefused(UNAVAILABLE)
            was_locked = self.throttle.is_locked_out(client)
            delay = self.throttle.failed(client)
            # The line fail2ban's filter matches (packaging/fail2ban): the name tried, never the
            # password.
            self.log.info("{protocol} session {session} from {client}: login failed for {user}",
                          protocol=session.protocol_name, session=session.session_id, client=client,
                          user=printable(user, 100))
            if not was_locked and self.throttle.is_locked_out(client):
                self._locked(client)
            return task.deferLater(self.clock, delay, _refuse, WRONG_CREDENTIALS)

        return self.portal.login(credentials, None, interface).addCallbacks(succeeded, failed)


    def session_ended(self, session):
        """Called by every session when its connection is gone."""
        self.sessions.pop(session, None)

    def refused_while_locked(self, session):
        """A login refused (or a password refused before it was sent) because the client's
        address is locked out: counted, the first one logged."""
        client = session.client_address
        count = self._refused_while_locked.get(client, 0) + 1
        self._refused_while_locked[client] = count
        if count == 1:
            self.log.info("{protocol} session {session} from {client}: login refused, {client} is locked out",
                          protocol=session.protocol_name, session=session.session_id, client=client)

    def _locked(self, client):
        seconds = self.throttle.lockout_seconds
        self.log.warn("login lockout of {client} for {seconds}s after {count} failed logins",
                      client=client, seconds=seconds, count=self.throttle.max_failures)
        self._refused_while_locked[client] = 0
        self.clock.callLater(seconds, self._unlocked, client)

    def _unlocked(self, client):
        if self.throttle.is_locked_out(client):
            # Failures of logins already being checked when it began (the hash is verified in a
            # thread) moved its end: wait on.
            remaining = self.throttle.locked_until(client) - self.clock.seconds()
            self.clock.callLater(max(remaining, 1), self._unlocked, client)
            return
        refused = self._refused_while_locked.pop(client, 0)
        self.log.info("login lockout of {client} ended; {refused} logins refused during it",
                      client=client, refused=refused)


def printable(text, limit):
    """What a client sent (a user name, a command line), safe for one log line: at most *limit*
    characters, control characters shown as '?'."""
    return "".join(character if character.isprintable() else "?" for character in text[:limit])


def _refuse(reason):
    raise LoginRefused(reason)


class SecureSession:
    """Mix-in for a client session of any protocol.

    The session sets ``protocol_name`` (a class attribute), ``session_id``, ``client_address``,
    ``secure`` (True once TLS is up) and ``gate`` (the LoginGate), and provides
    ``goodbye(text)``: its protocol's last words (SMTP 421, IMAP BYE, POP3 -ERR), then the close.
    """

    log = Logger()
    commands_before_login = 0

    def take_factory(self, factory):
        """For a session whose factory carries ``gate``, ``clock`` and ``implicit_tls`` (POP3,
        ManageSieve): the attributes this mix-in and TimeoutMixin use."""
        self.factory = factory
        self.gate = factory.gate
        self.callLater = factory.clock.callLater
        self.secure = factory.implicit_tls
        self.session_id = secrets.token_hex(4)

    def opened(self, idle_timeout):
        """At connectionMade: the client's address, and the idle timer started."""
        peer = self.transport.getPeer()
        self.client_address = getattr(peer, "host", str(peer))
        self.setTimeout(idle_timeout)

    def closed(self):
        """At connectionLost: the gate forgets the session, the idle timer stops."""
        self.gate.session_ended(self)
        self.setTimeout(None)

    def log_in_paused(self, credentials, interface, logged_in, refused):
        """log_in with reading paused while the password is checked (pipelined commands wait in
        the kernel; the session resumes reading once it has answered, unless it has closed).
        Then ``logged_in(avatar)``, or ``refused(reason)`` with the LoginRefused reason; an
        unexpected error, in the check or in *logged_in*, is logged and refused as UNAVAILABLE."""
        self.transport.pauseProducing()

        def failed(failure):
            if not failure.check(LoginRefused):
                self.log.failure("{protocol} session {session}: unexpected error", failure,
                                 protocol=self.protocol_name, session=self.session_id)
            refused(failure.value.reason if failure.check(LoginRefused) else UNAVAILABLE)
        self.log_in(credentials, interface).addCallback(logged_in).addErrback(failed)

    def may_run_before_login(self, limit, what="commands without logging in"):
        """Count one more command sent before login; once there have been more than *limit*
        ([limits] max_commands_before_login) the session is ended and False returned: a client
        probing, or a script talking to the wrong port, is not answered for ever."""
        self.commands_before_login += 1
        if self.commands_before_login <= limit:
            return True
        self.log.info("{protocol} session {session} from {client}: closed after {limit} {what}",
                      protocol=self.protocol_name, session=self.session_id, client=self.client_address,
                      limit=limit, what=what)
        self.goodbye(f"Too many {what}")
        return False

    def login_deadline_passed(self):
        """flow_control's login deadline: the session has not logged in in time, however busy."""
        self.log.info("{protocol} session {session} from {client}: closed, no login within {seconds}s",
                      protocol=self.protocol_name, session=self.session_id, client=self.client_address,
                      seconds=LOGIN_DEADLINE_SECONDS)
        self.goodbye("Too long without logging in")

    def kick(self):
        """End the session at the admin's request (`mailbox-appliance-admin kick`)."""
        self.transport.loseConnection()

    def password_refusal(self):
        """None when a password may be sent now, else LOCKED_OUT, or "tls" before TLS
        (RFC 3501 §6.2.3 LOGINDISABLED, RFC 4954 §4 538, RFC 2595 §4)."""
        if not self.secure:
            return "tls"
        if self.gate.is_locked_out(self.client_address):
            self.gate.refused_while_locked(self)
            return LOCKED_OUT
        return None

    def start_tls(self, context, pipelined, command="STARTTLS"):
        """Start TLS with *context*.  *pipelined* is what the client sent after the STARTTLS
        command in cleartext, already taken out of the caller's buffer: it is dropped, never run as
        if it had come through TLS (CVE-2011-0411)."""
        if pipelined:
            self.log.warn("{protocol} session {session} from {client}: {count} octets pipelined after "
                          "{command} discarded", protocol=self.protocol_name, session=self.session_id,
                          client=self.client_address, count=len(pipelined), command=command)
        self.transport.startTLS(context)
        self.secure = True

    def log_in(self, credentials, interface):
        """LoginGate.login for this session; a success is told to the connection
        (flow_control.FlowControlledConnection.logged_in: no login deadline any more)."""
        return self.gate.login(self, credentials, interface).addCallback(self._tell_connection)

    def _tell_connection(self, avatar):
        self.transport.logged_in()
        return avatar


class SessionFactory(ServerFactory):
    """Builds sessions of ``protocol`` (a SecureSession taking its factory, as POP3 and
    ManageSieve do) with what they share: the host name, the limits, the LoginGate, TLS."""

    protocol = None

    def __init__(self, settings, gate, tls_context, clock, implicit_tls=False):
        """*gate* is the LoginGate; *tls_context* offered by STARTTLS unless *implicit_tls*."""
        self.hostname = settings.server.hostname
        self.max_line_length = settings.limits.max_line_length
        self.max_commands_before_login = settings.limits.max_commands_before_login
        self.gate = gate
        self.tls_context = None if implicit_tls else tls_context
        self.implicit_tls = implicit_tls
        self.clock = clock

    def buildProtocol(self, addr):
        return self.protocol(self)
