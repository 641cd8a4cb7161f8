"""A checker process: runs smtp/sender_checks.py for the appliance, one message after another.

    python -m mailbox_appliance.smtp.sender_auth_worker HOSTNAME RESOLVER

RESOLVER is ``[outbound] resolver`` as JSON: [] for the system's (/etc/resolv.conf), else
[[host, port], ...].  Requests arrive on stdin and answers leave on stdout, each a 4-octet
big-endian length and a pickle: a list of requests (id, ip, helo, mail_from, message) in, the
list of their answers (id, outcome) out once all are checked, an outcome ("ok", field, dmarc
result, policy, author domain) or ("error", text).  Under load the appliance hands over the
messages waiting in one list: a pipe write and the wake-ups it causes, in both processes, per
message were a sixth of the reactor's time.  The parent process is the only peer: the pipes
are its own.

Why a process: the checks are Python (dkimpy, pyspf, authheaders), about a millisecond of CPU a
message; in the reactor's process they would hold the same interpreter lock as the reactor and
halve the rate SMTP accepts mail.  Here they run on another core.  DNS goes to the same servers as
the queue's, through dnspython (Debian's python3-dnspython, which authheaders needs anyway),
cached for each answer's TTL, 2 s per try and 5 s per question at most.  The answers the checks
use are kept beside dnspython's cache, for their TTL too: a question answered from dnspython's
cache still costs about 80 µs (a Name parsed, a resolution set up), and each message asks three
or more, the same few (its sender's SPF and DMARC records, its signer's key) as the mail before.
"""

import json
import pickle
import struct
import sys
import time

import dns.exception
import dns.resolver

from mailbox_appliance.smtp.sender_checks import DNSFailure, SenderChecks

LENGTH = struct.Struct(">I")
DOWN_SECONDS = 30
# Answers kept at most; past it, the kept ones are dropped all at once (dnspython's cache is
# still there behind them).
KEPT_ANSWERS = 10000
# The longest an answer is kept, whatever its TTL: Debian 12's dnspython gives an empty answer
# without an SOA record the largest TTL there is (2**32 - 1 s).
KEPT_SECONDS = 3600


def make_resolver(servers):
    resolver = dns.resolver.Resolver(configure=not servers)
    if servers:
        resolver.nameservers = [host for host, _port in servers]
        resolver.nameserver_ports = {host: port for host, port in servers}
    resolver.timeout, resolver.lifetime = 2, 5
    resolver.cache = dns.resolver.Cache()
    return resolver


def lookup_with(resolver, clock=time.monotonic):
    """The lookup function SenderChecks asks.  After a question that got no answer at all (the
    servers are down or unreachable), every question fails at once for DOWN_SECONDS: each would
    wait its 5 s too, and a checker that waits holds up every message queued behind it.  Mail
    checked meanwhile gets temperror verdicts, which deliver it (or ask its sender to retry)."""
    down_until = 0.0
    kept = {}                         # (name, kind): (until clock(), records)

    def lookup(name, kind):
        nonlocal down_until
        now = clock()
        found = kept.get((name, kind))
        if found is not None and now < found[0]:
            return list(found[1])
        if now < down_until:
            raise DNSFailure(f"{kind} {name}: no DNS server answered within the last {DOWN_SECONDS}s")
        try:
            answer = resolver.resolve(name, kind, search=False, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.exception.SyntaxError):
            return []                 # no such name (or none that could exist)
        except dns.exception.DNSException as failure:
            if isinstance(failure, dns.exception.Timeout):
                down_until = clock() + DOWN_SECONDS
            raise DNSFailure(f"{kind} {name}: {type(failure).__name__}") from None
        records = _records(kind, answer.rrset or [])
        if len(kept) >= KEPT_ANSWERS:
            kept.clear()
        # dnspython's expiration is on the wall clock; what is left of the TTL, on ours.
        kept[name, kind] = (now + min(answer.expiration - time.time(), KEPT_SECONDS), records)
        return list(records)
    return lookup


def _records(kind, records):
    """An answer's records as SenderChecks takes them (a tuple, never changed once kept)."""
    if kind == "TXT":
        return tuple(tuple(record.strings) for record in records)
    if kind in ("A", "AAAA"):
        return tuple(record.address for record in records)
    if kind == "MX":
        return tuple((record.preference, record.exchange.to_text(omit_final_dot=True)) for record in records)
    return tuple(record.target.to_text(omit_final_dot=True) for record in records)


def serve(checks, reader, writer):
    while True:
        header = reader.read(LENGTH.size)
        if len(header) < LENGTH.size:
            return                    # the appliance closed the pipe: its way of saying stop
        answers = []
        for request_id, ip, helo, mail_from, message in pickle.loads(reader.read(LENGTH.unpack(header)[0])):
            try:
                outcome = ("ok", *checks.evaluate(ip, helo, mail_from, message))
            except Exception as failure:  # a library's bug must cost one verdict, not the process
                outcome = ("error", f"{type(failure).__name__}: {failure}")
            answers.append((request_id, outcome))
        answer = pickle.dumps(answers, protocol=pickle.HIGHEST_PROTOCOL)
        writer.write(LENGTH.pack(len(answer)) + answer)
        writer.flush()


def main():
    hostname, servers = sys.argv[1], [tuple(server) for server in json.loads(sys.argv[2])]
    serve(SenderChecks(hostname, lookup_with(make_resolver(servers))), sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
