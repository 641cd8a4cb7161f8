"""One IRealm handing out every protocol's avatar for an authenticated address."""

from dataclasses import dataclass

from twisted.cred.portal import IRealm
from twisted.mail import pop3
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
    """Avatars for SMTP AUTH (ISMTPSender), IMAP (IMailUser) and POP3 (IMailbox); the avatar id
    is the user's address.

    The IMAP server opens the user's Maildir itself (imap/account.py), through the folder state
    shared by every session.  Until the POP3 issue serves the Maildir, POP3 logs in to Twisted's
    empty mailbox.
    """

    def requestAvatar(self, avatarId, mind, *interfaces):
        for interface in interfaces:
            if interface is ISMTPSender:
                return interface, SMTPSender(avatarId), lambda: None
            if interface is IMailUser:
                return interface, MailUser(avatarId), lambda: None
            if interface is pop3.IMailbox:
                return interface, pop3.Mailbox(), lambda: None
        raise NotImplementedError("no avatar for " + ", ".join(map(str, interfaces)))
