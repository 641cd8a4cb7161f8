"""QUOTA (RFC 9208) with the STORAGE resource: one quota root, "", holding all of a user's
folders; GETQUOTA, GETQUOTAROOT, and NO [OVERQUOTA] for APPEND and COPY that would pass it.

A mix-in for imap.server.IMAPServer over the process's quota.Quotas.  SETQUOTA is not offered
(QUOTASET is not advertised): limits are the admin's (``mailbox-appliance-admin user quota``).
MOVE is never refused: it adds nothing, and moving to Trash is how many clients delete.
"""

from twisted.mail.imap4 import IMAP4Server

from .literals import LiteralArguments
from .response import string

__all__ = ["QuotaCommands"]

ROOT = b""


def _kib(octets):
    """RFC 9208 §5.1: STORAGE is counted in units of 1024 octets (rounded up)."""
    return -(-octets // 1024)


class QuotaCommands:

    def quota_allows(self, tag, size):
        """True when *size* more octets fit the user's quota, else NO [OVERQUOTA] is answered."""
        if self.factory.quotas.fits(self.account.address, size):
            return True
        self.sendNegativeResponse(tag, b"[OVERQUOTA] Quota exceeded (mailbox full); delete some mail first")
        return False

    def quota_charge(self, size):
        self.factory.quotas.charge(self.account.address, size)

    def _quota_line(self, limit):
        used = self.factory.quotas.usage(self.account.address)
        return b"QUOTA " + string(ROOT) + b" (STORAGE %d %d)" % (_kib(used), _kib(limit))

    def do_GETQUOTAROOT(self, tag, raw_name):
        folder = self.open_folder(tag, raw_name)
        if folder is None:
            return
        limit = self.factory.quotas.limit(self.account.address)
        name = string(raw_name.decode("utf-8", "surrogateescape"))
        # A user without a limit has no quota root (RFC 9208 §4.3.2: the list may be empty).
        self.send_untagged(b"QUOTAROOT " + name + (b" " + string(ROOT) if limit else b""))
        if limit:
            self.send_untagged(self._quota_line(limit))
        self.sendPositiveResponse(tag, b"GETQUOTAROOT completed")

    def do_GETQUOTA(self, tag, root):
        limit = self.factory.quotas.limit(self.account.address)
        if bytes(root) != ROOT or not limit:
            self.sendNegativeResponse(tag, b"[NONEXISTENT] No such quota root")
            return
        self.send_untagged(self._quota_line(limit))
        self.sendPositiveResponse(tag, b"GETQUOTA completed")

    auth_GETQUOTAROOT = select_GETQUOTAROOT = (do_GETQUOTAROOT, LiteralArguments.arg_astring)
    auth_GETQUOTA = select_GETQUOTA = (do_GETQUOTA, IMAP4Server.arg_finalastring)
