"""Where to deliver a domain's mail: MX lookup with twisted.names (RFC 5321 §5.1).

MX hosts in preference order, shuffled among equal preferences (RFC 5321 §5.1: "randomize");
no MX: the domain itself as an implicit MX, through its A/AAAA records; the null MX ``0 .``
(RFC 7505): a permanent failure; an address literal ``[192.0.2.1]`` (RFC 5321 §4.1.3): that
address.  NXDOMAIN is permanent; SERVFAIL, time-outs and other DNS trouble are temporary.
"""

import ipaddress
import random
import socket
from dataclasses import dataclass

from twisted.internet import defer
from twisted.names import client, common, dns, error
from twisted.names.cache import CacheResolver


class DestinationError(Exception):
    """No mail host for a domain: *permanent* or not, an RFC 3463 *status*, and why."""

    def __init__(self, permanent, status, text):
        super().__init__(f"{status} {text}")
        self.permanent, self.status, self.text = permanent, status, text


@dataclass(frozen=True)
class MailHost:
    name: str
    addresses: tuple


def make_resolver(servers, reactor=None):
    """The system resolver (/etc/resolv.conf and /etc/hosts) for (), else the given servers;
    either way with answers cached for their TTL."""
    upstream = client.createResolver() if not servers else \
        client.Resolver(servers=list(servers), reactor=reactor)
    return CachingResolver(upstream, reactor)


class CachingResolver(common.ResolverBase):
    """A resolver that remembers answers for their TTL.  twisted.names' CacheResolver is filled
    only by its DNS server: in a client's ResolverChain it stays empty, and every SPF, DKIM and
    DMARC check of every message would ask again."""

    def __init__(self, upstream, reactor=None):
        super().__init__()
        self.upstream = upstream
        self.cache = CacheResolver(reactor=reactor)

    def _lookup(self, name, cls, type, timeout):
        query = dns.Query(name, type, cls)
        if query in self.cache.cache:
            return self.cache.query(query, timeout)
        asking = self.upstream.query(query, timeout)
        return asking.addCallback(self._remember, query)

    def _remember(self, result, query):
        self.cache.cacheResult(query, result)
        return result


@defer.inlineCallbacks
def mail_hosts(resolver, domain, rng=random):
    """The MailHosts to try for *domain*, best first; DestinationError if there are none."""
    literal = _address_literal(domain)
    if literal is not None:
        return [MailHost(domain, (literal,))]
    try:
        answers, _authority, additional = yield resolver.lookupMailExchange(domain)
    except error.DNSNameError:
        raise DestinationError(True, "5.1.2", f"Domain {domain} does not exist (NXDOMAIN)")
    except Exception as problem:
        raise DestinationError(False, "4.4.3", f"DNS lookup of MX for {domain} failed: {_describe(problem)}")
    records = [answer.payload for answer in answers if answer.type == dns.MX]
    if len(records) == 1 and str(records[0].name) in ("", "."):
        raise DestinationError(True, "5.1.10", f"Domain {domain} accepts no mail (null MX, RFC 7505)")
    if not records:
        addresses = yield host_addresses(resolver, domain)
        if not addresses:
            raise DestinationError(True, "5.1.2", f"Domain {domain} has no MX and no address records")
        return [MailHost(domain, addresses)]
    by_preference = {}
    for record in records:
        name = str(record.name).rstrip(".")
        if name:
            by_preference.setdefault(record.preference, []).append(name)
    hosts = []
    for preference in sorted(by_preference):
        names = by_preference[preference]
        rng.shuffle(names)
        for name in names:
            addresses = _from_additional(additional, name)
            if not addresses:
                try:
                    addresses = yield host_addresses(resolver, name)
                except DestinationError:
                    continue      # this host cannot be looked up now; the others may serve
            if addresses:
                hosts.append(MailHost(name, addresses))
    if not hosts:
        raise DestinationError(False, "4.4.3", f"No address found for the MX hosts of {domain}")
    return hosts


def _address_literal(domain):
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    text = domain[1:-1]
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise DestinationError(True, "5.1.2", f"Bad address literal {domain}") from None


def _from_additional(additional, name):
    found = [record.payload.dottedQuad() for record in additional
             if record.type == dns.A and str(record.name).rstrip(".").lower() == name.lower()]
    return tuple(found)


@defer.inlineCallbacks
def host_addresses(resolver, name):
    """A then AAAA addresses of *name* (itself if it is an IP address).  A name without records
    contributes nothing; when no address was found and a lookup failed (SERVFAIL, time-out),
    DestinationError says so, temporarily."""
    try:
        return (str(ipaddress.ip_address(name)),)
    except ValueError:
        pass
    found, trouble = [], None
    for lookup, record_type in ((resolver.lookupAddress, dns.A), (resolver.lookupIPV6Address, dns.AAAA)):
        try:
            answers, _authority, _additional = yield lookup(name)
        except error.DNSNameError:
            continue
        except Exception as problem:
            trouble = problem
            continue
        for answer in answers:
            if answer.type == record_type:
                found.append(answer.payload.dottedQuad() if record_type == dns.A
                             else socket.inet_ntop(socket.AF_INET6, answer.payload.address))
    if not found and trouble is not None:
        # No address, and not because there is none: that is no reason to give up on the mail.
        raise DestinationError(False, "4.4.3", f"DNS lookup of addresses for {name} failed: {_describe(trouble)}")
    return tuple(found)


def _describe(problem):
    names = {error.DNSServerError: "SERVFAIL", error.DNSQueryRefusedError: "REFUSED",
             error.DNSQueryTimeoutError: "time-out", defer.TimeoutError: "time-out"}
    return names.get(type(problem), type(problem).__name__)
