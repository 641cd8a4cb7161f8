"""One IRealm handing out every protocol's avatar for an authenticated address."""

from twisted.cred.portal import IRealm
from twisted.mail import imap4, pop3
from zope.interface import implementer

from mailbox_appliance.smtp.policy import ISMTPSender, SMTPSender


@implementer(IRealm)
class MailRealm:
    """Avatars for SMTP AUTH (ISMTPSender), IMAP (IAccount) and POP3 (IMailbox); the avatar id is
    the user's address.

    Until the Maildir store serves them (the IMAP and POP3 issues), a user logs in to an empty
    account: Twisted's in-memory IMAP account and its empty POP3 mailbox.
    """

    def requestAvatar(self, avatarId, mind, *interfaces):
        for interface in interfaces:
            if interface is ISMTPSender:
                return interface, SMTPSender(avatarId), lambda: None
            if interface is imap4.IAccount:
                return interface, imap4.MemoryAccount(avatarId), lambda: None
            if interface is pop3.IMailbox:
                return interface, pop3.Mailbox(), lambda: None
        raise NotImplementedError("no avatar for " + ", ".join(map(str, interfaces)))
