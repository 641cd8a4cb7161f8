"""The one twisted.cred checker behind SMTP AUTH, IMAP LOGIN/AUTHENTICATE and POP3 USER/PASS/AUTH."""

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.threads import deferToThread
from zope.interface import implementer

from mailbox_appliance.accounts import passwords
from mailbox_appliance.accounts.addresses import normalize_address


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


@implementer(ICredentialsChecker)
class PasswordChecker:
    """Checks a full address and password against the users file; the avatar id is the address.

    Hash verification (Argon2, tens of milliseconds of CPU) runs in the reactor's thread pool so a
    login never stalls the other sessions.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, accounts, run_in_thread=deferToThread):
        self._accounts = accounts
        self._run_in_thread = run_in_thread

    def requestAvatarId(self, credentials):
        try:
            address = normalize_address(_text(credentials.username))
            password = _text(credentials.password)
        except UnicodeDecodeError:
            address, password = None, None
        stored = self._accounts.password_hash(address) if address else None
        result = self._run_in_thread(passwords.verify, stored, password or "")

        def decide(matched):
            if not matched:
                raise UnauthorizedLogin("wrong user name or password")
            return address

        return result.addCallback(decide)
