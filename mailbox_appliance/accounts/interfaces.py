"""The accounts seam: what the protocols and delivery ask of the account data."""

from zope.interface import Attribute, Interface


class IAccounts(Interface):
    """Domains, users and aliases of this appliance, always as currently on disk."""

    hostname = Attribute("This server's own host name (str).")
    primary_domain = Attribute("The first configured domain: where <Postmaster> goes (str).")

    def domains():
        """The set of domains this appliance delivers for (lower-case str)."""

    def is_local_domain(domain):
        """True when mail for *domain* is delivered here."""

    def password_hash(address):
        """The stored ``{SCHEME}hash`` of the user *address*, or None if there is no such user."""

    def resolve(address):
        """Expand *address* through aliases, subaddressing and catch-alls.

        Returns a Resolution (local mailbox addresses, remote addresses), or None when the address
        is in a local domain but matches no user or alias.
        """

    def may_send_as(user, address):
        """True when the authenticated *user* may use *address* as envelope or header sender."""
