"""The session rules SMTP, IMAP and POP3 share: STARTTLS that drops what was pipelined behind it,
no password before TLS, and login through the portal with the failed-login throttle.

Each protocol words its own replies (SMTP 538/454/535, IMAP NO [PRIVACYREQUIRED]/[UNAVAILABLE]/
[AUTHENTICATIONFAILED], POP3 -ERR [AUTH]/[SYS/TEMP]); what is decided, and logged, is decided here
once, so the three cannot drift apart.
"""

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, task
from twisted.logger import Logger

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

    def __init__(self, portal, throttle, clock):
        self.portal = portal
        self.throttle = throttle
        self.clock = clock

    def is_locked_out(self, client_address):
        return self.throttle.is_locked_out(client_address)

    def login(self, session, credentials, interface):
        """The avatar providing *interface* for *credentials*; a Deferred.

        Fails with LoginRefused: LOCKED_OUT at once, WRONG_CREDENTIALS only after the throttle's
        delay for this address (so guessing is slowed, RFC 4954 §4 and RFC 3501 §6.2.3 leave it
        to the server), UNAVAILABLE when the check broke.  *session* is the SecureSession asking.
        """
        client = session.client_address
        if self.throttle.is_locked_out(client):
            return defer.fail(LoginRefused(LOCKED_OUT))

        def succeeded(login):
            _interface, avatar, _logout = login
            self.throttle.succeeded(client)
            self.log.info("{protocol} session {session} from {client}: logged in as {user}",
                          protocol=session.protocol_name, session=session.session_id, client=client,
                          user=avatar.address)
            return avatar

        def failed(failure):
            if not failure.check(UnauthorizedLogin):
                self.log.failure("{protocol} session {session}: login error", failure,
                                 protocol=session.protocol_name, session=session.session_id)
                raise LoginRefused(UNAVAILABLE)
            delay = self.throttle.failed(client)
            self.log.info("{protocol} session {session} from {client}: login failed",
                          protocol=session.protocol_name, session=session.session_id, client=client)
            return task.deferLater(self.clock, delay, _refuse, WRONG_CREDENTIALS)

        return self.portal.login(credentials, None, interface).addCallbacks(succeeded, failed)


def _refuse(reason):
    raise LoginRefused(reason)


class SecureSession:
    """Mix-in for a client session of any protocol.

    The session sets ``protocol_name`` (a class attribute), ``session_id``, ``client_address``,
    ``secure`` (True once TLS is up) and ``gate`` (the LoginGate).
    """

    log = Logger()

    def password_refusal(self):
        """None when a password may be sent now, else LOCKED_OUT, or "tls" before TLS
        (RFC 3501 §6.2.3 LOGINDISABLED, RFC 4954 §4 538, RFC 2595 §4)."""
        if not self.secure:
            return "tls"
        if self.gate.is_locked_out(self.client_address):
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
        """LoginGate.login for this session."""
        return self.gate.login(self, credentials, interface)
