"""Who is who: the domains served here, their users, and where each address's mail goes."""

from dataclasses import dataclass

from zope.interface import implementer

from mailbox_appliance.accounts import files
from mailbox_appliance.accounts.addresses import normalize_address, split_address, without_subaddress
from mailbox_appliance.interfaces import IAccounts

# Aliases pointing at aliases are followed this deep; a loop or a longer chain stops there.
MAX_ALIAS_DEPTH = 10


# The folder mail judged unwanted is filed into (every Maildir has it: maildir/layout.py).
JUNK = "Junk"


@dataclass(frozen=True)
class Resolution:
    """Where mail for one address goes: user mailboxes here (into *folder*, "" for INBOX), and
    addresses elsewhere."""

    local: tuple
    remote: tuple
    folder: str = ""


@implementer(IAccounts)
class Accounts:
    """IAccounts over the users, aliases and domains files, re-read when they change."""

    def __init__(self, hostname, static_domains, users_file, aliases_file, domains_file):
        self.hostname = hostname
        self.primary_domain = static_domains[0] if static_domains else hostname
        self._static_domains = frozenset(static_domains)
        self._users = files.WatchedFile(users_file, files.USERS)
        self._aliases = files.WatchedFile(aliases_file, files.ALIASES)
        self._domains = files.WatchedFile(domains_file, files.DOMAINS)

    @classmethod
    def from_settings(cls, settings):
        accounts = settings.accounts
        return cls(settings.server.hostname, list(settings.server.domains),
                   accounts.users_file, accounts.aliases_file, accounts.domains_file)

    def reload(self):
        """Re-read every account file now (SIGHUP: ``systemctl reload``); a broken file keeps its
        previous version in force, as on any change."""
        for watched in (self._users, self._aliases, self._domains):
            watched.reload(strict=False)

    def domains(self):
        return self._static_domains | set(self._domains.entries())

    def is_local_domain(self, domain):
        domain = domain.lower().rstrip(".")
        return domain in self._static_domains or domain in self._domains.entries()

    def users(self):
        return sorted(self._users.entries())

    def aliases(self):
        return dict(self._aliases.entries())

    def password_hash(self, address):
        entry = self._users.entries().get(normalize_address(address))
        return None if entry is None else entry.password_hash

    def user_entry(self, address):
        """The users file's entry (files.UserEntry) for *address*, or None."""
        return self._users.entries().get(normalize_address(address))

    def resolve(self, address):
        local, remote = {}, {}
        if not self._expand(address.strip(), local, remote, 0, catch_all=True):
            return None
        return Resolution(tuple(local), tuple(remote))

    def may_send_as(self, user, address):
        user = normalize_address(user)
        address = normalize_address(address)
        if without_subaddress(address) == user:
            return True
        local = {}
        # A catch-all does not make every address of its domain the user's own.
        return self._expand(address, local, {}, 0, catch_all=False) and user in local

    def _expand(self, address, local, remote, depth, catch_all):
        """Add where *address* goes to *local* and *remote* (dicts used as ordered sets).

        Order of lookup: the exact user or alias, then without its +subaddress (RFC 5233), then the
        domain's catch-all.  Returns False when a local address matches nothing.
        """
        _, domain = split_address(address)
        if not self.is_local_domain(domain):
            # RFC 5321 §2.4: only the destination host may read its local parts case-insensitively,
            # so an address elsewhere is relayed exactly as it was given.
            remote[address] = None
            return True
        address = normalize_address(address)
        if depth > MAX_ALIAS_DEPTH:
            return False
        users = self._users.entries()
        aliases = self._aliases.entries()
        candidates = [address, without_subaddress(address)]
        if catch_all:
            candidates.append("@" + domain)
        for candidate in candidates:
            if candidate in users:
                local[candidate] = None
                return True
            if candidate in aliases:
                found = False
                for target in aliases[candidate]:
                    found |= self._expand(target, local, remote, depth + 1, catch_all=True)
                return found
        return False
