"""Per-user storage quotas: each user's limit and how much of it is used (RFC 9208's STORAGE).

The limit is the user's own (the users file's ``userdb_quota_rule=*:storage=SIZE``, as Dovecot
writes it; 0 for no limit), else ``[limits] default_quota``.  Use is counted from the Maildir's
file names (maildir/usage.py), never by reading messages, and kept as a running total: every
delivery and IMAP APPEND or COPY is charged at once, in the same reactor turn as its check, so
concurrent deliveries cannot together pass the limit; expunges and deletions make the total be
counted again at the next check, as does any total older than RESCAN_SECONDS (mail changed by
other programs).  Bounces and the user's own deletions are never refused (SMTP and IMAP say
where they check).
"""

import os

from zope.interface import implementer

from mailbox_appliance.accounts.addresses import normalize_address, split_address
from mailbox_appliance.interfaces import IQuotas
from mailbox_appliance.maildir.layout import user_maildir
from mailbox_appliance.maildir.usage import storage_used

__all__ = ["Quotas", "RESCAN_SECONDS"]

RESCAN_SECONDS = 60


@implementer(IQuotas)
class Quotas:

    def __init__(self, data_dir, accounts, default_quota, clock):
        """*accounts* (IAccounts) gives each user's own limit; *default_quota* (bytes or None)
        the rest; *clock* (IReactorTime) ages the running totals."""
        self.data_dir = data_dir
        self.accounts = accounts
        self.default_quota = default_quota
        self.clock = clock
        self._used = {}                   # address -> [octets, counted at]

    def limit(self, address):
        entry = self.accounts.user_entry(address)
        quota = entry.quota if entry is not None and entry.quota is not None else self.default_quota
        return quota or None

    def usage(self, address):
        address = normalize_address(address)
        known = self._used.get(address)
        if known is None or self.clock.seconds() - known[1] > RESCAN_SECONDS:
            local, domain = split_address(address)
            known = self._used[address] = [storage_used(user_maildir(self.data_dir, domain, local)), self.clock.seconds()]
        return known[0]

    def fits(self, address, size):
        limit = self.limit(address)
        return limit is None or self.usage(address) + size <= limit

    def full(self, address):
        limit = self.limit(address)
        return limit is not None and self.usage(address) >= limit

    def charge(self, address, size):
        address = normalize_address(address)
        if address in self._used:
            self._used[address][0] += size

    def forget(self, address):
        self._used.pop(normalize_address(address), None)

    def folder_emptied(self, path):
        """Messages left the folder at *path* (FolderRegistry's on_removed): count its user again."""
        relative = os.path.relpath(path, os.path.realpath(os.path.join(self.data_dir, "mail"))).split(os.sep)
        if len(relative) >= 2:
            self.forget("%s@%s" % (relative[1], relative[0]))
