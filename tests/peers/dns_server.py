"""A real DNS server for tests: twisted.names serving a test zone on 127.0.0.1 (UDP and TCP).

    python dns_server.py ZONE.json

ZONE.json: {"records": {"name": {"MX": [[10, "mx1.name"]], "A": ["127.0.0.2"], "AAAA": ["::1"],
                                  "TXT": ["v=spf1 -all"], "CNAME": ["host.name"],
                                  "SRV": [[0, 1, 993, "host.name"]]}},
            "servfail": ["broken.test"], "servfail_all": false}
A name not in "records" is NXDOMAIN; a listed name without the asked type is NODATA; a name in
"servfail" (or any name, with "servfail_all") answers SERVFAIL: at once, where a DNS server that
does not answer would make each lookup wait for its timeout.  TXT strings longer than 255 octets
are split as DNS requires.  Prints "dns listening on 127.0.0.1:PORT" when ready.
"""

import json
import sys

from twisted.internet import defer, reactor
from twisted.internet.error import CannotListenError
from twisted.names import common, dns, error, server


class ZoneAuthority(common.ResolverBase):
    def __init__(self, zone):
        super().__init__()
        self.records = {name.lower().rstrip("."): types for name, types in zone.get("records", {}).items()}
        self.servfail = {name.lower() for name in zone.get("servfail", [])}
        self.servfail_all = zone.get("servfail_all", False)

    def _lookup(self, name, cls, type, timeout=None):
        key = name.decode("ascii").lower().rstrip(".") if isinstance(name, bytes) else name.lower().rstrip(".")
        if key in self.servfail or self.servfail_all:
            # Not a DomainError: DNSServerFactory answers anything else with SERVFAIL.
            return defer.fail(RuntimeError("configured to fail"))
        if key not in self.records:
            return defer.fail(error.AuthoritativeDomainError(name))
        types = self.records[key]
        answers = []
        if type == dns.MX:
            for preference, exchange in types.get("MX", []):
                answers.append(dns.RRHeader(key, dns.MX, ttl=60, payload=dns.Record_MX(preference, exchange, ttl=60),
                                            auth=True))
        elif type == dns.A:
            answers = [dns.RRHeader(key, dns.A, ttl=60, payload=dns.Record_A(address, ttl=60), auth=True)
                       for address in types.get("A", [])]
        elif type == dns.AAAA:
            answers = [dns.RRHeader(key, dns.AAAA, ttl=60, payload=dns.Record_AAAA(address, ttl=60), auth=True)
                       for address in types.get("AAAA", [])]
        elif type == dns.CNAME:
            answers = [dns.RRHeader(key, dns.CNAME, ttl=60, payload=dns.Record_CNAME(target, ttl=60), auth=True)
                       for target in types.get("CNAME", [])]
        elif type == dns.SRV:
            answers = [dns.RRHeader(key, dns.SRV, ttl=60, auth=True,
                                    payload=dns.Record_SRV(priority, weight, port, target, ttl=60))
                       for priority, weight, port, target in types.get("SRV", [])]
        elif type == dns.TXT:
            answers = [dns.RRHeader(key, dns.TXT, ttl=60, auth=True, payload=dns.Record_TXT(
                *[text.encode()[i:i + 255] for i in range(0, len(text.encode()), 255)], ttl=60))
                for text in types.get("TXT", [])]
        return defer.succeed((answers, [], []))


def main():
    with open(sys.argv[1]) as handle:
        zone = json.load(handle)
    factory = server.DNSServerFactory(authorities=[ZoneAuthority(zone)])
    for _ in range(50):
        # The kernel picks a free UDP port; the same TCP port may be taken (by any connection's
        # local end): then try another.
        udp = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
        port = udp.getHost().port
        try:
            reactor.listenTCP(port, factory, interface="127.0.0.1")
            break
        except CannotListenError:
            udp.stopListening()
    print(f"dns listening on 127.0.0.1:{port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
