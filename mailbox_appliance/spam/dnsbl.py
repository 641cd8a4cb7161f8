"""DNS blocklists (RFC 5782): is the client's address listed in any of the configured zones?

The baseline without rspamd, asked once per connection on port 25 and answered at RCPT.  A
lookup that fails or times out is "not listed": a blocklist's trouble must not refuse mail.
"""

import ipaddress

from twisted.internet import defer
from twisted.names import dns

__all__ = ["Blocklists"]

TIMEOUT = (2, 3)


class Blocklists:

    def __init__(self, resolver, zones):
        self.resolver = resolver
        self.zones = tuple(zones)

    def listed(self, ip):
        """A Deferred firing with the first zone (in the configured order) listing *ip*, or None."""
        try:
            name = query_name(ip)
        except ValueError:
            return defer.succeed(None)
        lookups = [self._lookup(f"{name}.{zone}") for zone in self.zones]
        gathering = defer.gatherResults(lookups)
        return gathering.addCallback(lambda found: next((zone for zone, hit in zip(self.zones, found) if hit), None))

    def _lookup(self, name):
        asking = self.resolver.lookupAddress(name, TIMEOUT)
        asking.addCallback(lambda result: any(_is_listing(answer) for answer in result[0]))
        return asking.addErrback(lambda _failure: False)


def query_name(ip):
    """RFC 5782 §2.1 and §2.4: the address's octets (IPv4) or nibbles (IPv6), reversed."""
    address = ipaddress.ip_address(ip)
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    labels = address.exploded.split(".") if address.version == 4 else list(address.exploded.replace(":", ""))
    return ".".join(reversed(labels))


def _is_listing(answer):
    """RFC 5782 §2.3: a listing is an A record in 127.0.0.0/8; 127.255.255.0/24 is how Spamhaus
    says the query itself was refused (an open resolver, over quota), not that the client is listed."""
    if answer.type != dns.A:
        return False
    address = ipaddress.ip_address(answer.payload.dottedQuad())
    return address in ipaddress.ip_network("127.0.0.0/8") and address not in ipaddress.ip_network("127.255.255.0/24")
