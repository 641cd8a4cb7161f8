"""One IRealm handing out every protocol's avatar for an authenticated address.

The avatar id is the user's address (accounts/checker.py).  SMTP AUTH gets an ISender, the
identity its mail is sent as; IMAP and POP3 get an IMailUser: the user's Maildir, created on the
first login if the admin's ``user add`` did not, and the folder registry every session shares.
"""

from dataclasses import dataclass

from twisted.cred.portal import IRealm
from zope.interface import implementer

from mailbox_appliance.interfaces import IMailUser, ISender
from mailbox_appliance.maildir.layout import ensure_user_maildir


@implementer(ISender)
@dataclass(frozen=True)
class Sender:
    address: str


@implementer(IMailUser)
@dataclass(frozen=True)
class MailUser:
    address: str
    maildir: str
    folders: object


@implementer(IRealm)
class MailRealm:
    def __init__(self, data_dir, folders):
        """*folders* is the process's one maildir.mailbox.FolderRegistry."""
        self.data_dir = data_dir
        self.folders = folders

    def requestAvatar(self, avatarId, mind, *interfaces):
        for interface in interfaces:
            if interface is ISender:
                return interface, Sender(avatarId), lambda: None
            if interface is IMailUser:
                maildir = ensure_user_maildir(self.data_dir, avatarId)
                return interface, MailUser(avatarId, maildir, self.folders), lambda: None
        raise NotImplementedError("no avatar for " + ", ".join(map(str, interfaces)))
