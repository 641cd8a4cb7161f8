"""Looking up what the DNS holds for dns_records.Records, through the configured resolver
([outbound] resolver, as the queue asks), for ``mailbox-appliance-admin dns DOMAIN --check``."""

from twisted.internet import defer
from twisted.names import dns, error

from mailbox_appliance.queue.mx import make_resolver

TIMEOUT = (2, 4)
_TYPES = {"MX": dns.MX, "A": dns.A, "TXT": dns.TXT, "CNAME": dns.CNAME, "SRV": dns.SRV}


def found_values(answers, kind):
    """The comparable values of the answers of *kind* (see dns_records.verdict)."""
    values = []
    for answer in answers:
        payload = answer.payload
        if answer.type != _TYPES[kind]:
            continue
        if kind == "TXT":
            values.append(b"".join(payload.data).decode("utf-8", "replace"))
        elif kind == "A":
            values.append(payload.dottedQuad())
        elif kind == "MX":
            values.append(payload.name.name.decode("ascii", "replace").rstrip("."))
        elif kind == "CNAME":
            values.append(payload.name.name.decode("ascii", "replace").rstrip("."))
        elif kind == "SRV":
            values.append((payload.target.name.decode("ascii", "replace").rstrip("."), payload.port))
    return values


def look_up(servers, records):
    """[(record, found values, or None when the lookup failed)], the reactor run until done (the
    admin command is a process of its own; a reactor runs once per process)."""
    from twisted.internet import reactor

    results = []

    async def ask(resolver, name, kind):
        try:
            answers, _, _ = await resolver.query(dns.Query(name, _TYPES[kind]), TIMEOUT)
        except (error.DomainError, error.AuthoritativeDomainError):
            return []
        return found_values(answers, kind)

    async def check():
        resolver = make_resolver(servers, reactor)
        for record in records:
            try:
                found = await ask(resolver, record.name, record.type)
                if record.type == "CNAME" and not found and await ask(resolver, record.name, "A"):
                    found = [record.expect[0]]      # an A record of its own serves as well
            except Exception:        # SERVFAIL, timeout, refused: the check cannot say
                found = None
            results.append((record, found))

    defer.ensureDeferred(check()).addBoth(lambda _: reactor.stop())
    reactor.run()
    return results
