"""One IRealm handing out every protocol's avatar for an authenticated address."""

from dataclasses import dataclass

from twisted.cred.portal import IRealm
from zope.interface import Attribute, Interface, implementer

from mailbox_appliance.smtp.policy import ISMTPSender, SMTPSender


class IMailUser(Interface):
    """A user of the mail store, as the IMAP server needs one: whose Maildir to open."""

    address = Attribute("The user's address, normalised (str).")


@implementer(IMailUser)
@dataclass(frozen=True)
class MailUser:
    address: str


@implementer(IRealm)
class MailRealm:
    """Avatars for SMTP AUTH (ISMTPSender) and the mail store (IMailUser, for IMAP and POP3); the
    avatar id is the user's address.

    The IMAP and POP3 servers open the user's Maildir themselves, through the folder state shared
    by every session (maildir/mailbox.py).
    """

    def requestAvatar(self, avatarId, mind, *interfaces):
        for interface in interfaces:
            if interface is ISMTPSender:
                return interface, SMTPSender(avatarId), lambda: None
            if interface is IMailUser:
                return interface, MailUser(avatarId), lambda: None
        raise NotImplementedError("no avatar for " + ", ".join(map(str, interfaces)))
