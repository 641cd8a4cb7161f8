"""The one twisted.cred checker behind SMTP AUTH, IMAP LOGIN/AUTHENTICATE and POP3 USER/PASS/AUTH."""

import hashlib
import hmac
import os

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from zope.interface import implementer

from mailbox_appliance.accounts import passwords
from mailbox_appliance.accounts.addresses import normalize_address

# An Argon2id check takes 64 MiB and tens of milliseconds of CPU: more at once than there are
# cores only makes each wait longer while all hold their memory.
MAX_CONCURRENT_CHECKS = os.cpu_count() or 2
# Mail clients log in again every few minutes with the same password; a check that passed is
# remembered this long (as Dovecot's auth_cache), unless the stored hash changes meanwhile.
VERIFIED_FOR_SECONDS = 300


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


@implementer(ICredentialsChecker)
class PasswordChecker:
    """Checks a full address and password against the users file; the avatar id is the address.

    Hash verification runs in the reactor's thread pool, a few at a time, so a login never stalls
    the other sessions.  A password that verified is remembered only as a keyed SHA-256 digest
    (the key is random per process), never in clear.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, accounts, clock, run_in_thread=deferToThread):
        """*clock* (the reactor) times how long a verified password is remembered."""
        self._accounts = accounts
        self._run_in_thread = run_in_thread
        self._clock = clock
        self._checks = defer.DeferredSemaphore(MAX_CONCURRENT_CHECKS)
        self._key = os.urandom(32)
        self._verified = {}   # address -> (stored hash, password digest, valid until)

    def requestAvatarId(self, credentials):
        try:
            address = normalize_address(_text(credentials.username))
            password = _text(credentials.password)
        except UnicodeDecodeError:
            address, password = None, None
        stored = self._accounts.password_hash(address) if address else None
        digest = hmac.new(self._key, (password or "").encode("utf-8"), hashlib.sha256).digest()
        remembered = self._verified.get(address)
        if (stored is not None and remembered is not None and remembered[0] == stored
                and hmac.compare_digest(remembered[1], digest) and remembered[2] > self._clock.seconds()):
            return defer.succeed(address)
        result = self._checks.run(self._run_in_thread, passwords.verify, stored, password or "")

        def decide(matched):
            if not matched:
                raise UnauthorizedLogin("wrong user name or password")
            self._verified[address] = (stored, digest, self._clock.seconds() + VERIFIED_FOR_SECONDS)
            return address

        return result.addCallback(decide)
