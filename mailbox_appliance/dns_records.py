"""The DNS records a domain of ours needs, and a check of what the DNS holds
(``mailbox-appliance-admin dns DOMAIN [--check]``).

Which records: MX to our host name and its address (RFC 5321 §5); SPF (RFC 7208), DKIM (RFC
6376) and DMARC (RFC 7489) so other servers accept our mail; MTA-STS (RFC 8461) and TLS-RPT (RFC
8460); the names clients and senders fetch our HTTPS documents under; SRV records for mail
clients (RFC 6186, RFC 8314 §5.1).  Only what the configuration serves is listed: no SRV for a
listener that is off, no HTTPS names without the https listener.
"""

import hashlib
import os
from dataclasses import dataclass

from mailbox_appliance.queue import dkim_keys

# RFC 6186 / RFC 8314 service names of our listeners, best first (priority 0 before 10).
SRV_SERVICES = (("submissions", "_submissions._tcp", 0), ("submission", "_submission._tcp", 10),
                ("imaps", "_imaps._tcp", 0), ("imap", "_imap._tcp", 10),
                ("pop3s", "_pop3s._tcp", 20), ("pop3", "_pop3._tcp", 30))


@dataclass(frozen=True)
class Record:
    name: str            # absolute, without the final dot
    type: str            # MX, A, TXT, CNAME, SRV
    value: str           # as written in a zone file
    why: str
    # What a check accepts: for TXT the start of the string ("v=spf1"), for MX/CNAME/SRV the
    # target host (and the SRV port); None: any record of the type.
    expect: tuple = None


def listen_port(endpoint):
    """The port of a tcp: endpoint string, or None (unix:, systemd:, or off)."""
    kind, _, rest = (endpoint or "").partition(":")
    port = rest.split(":", 1)[0]
    return int(port) if kind == "tcp" and port.isdigit() else None


def required(settings, domain):
    """The Records *domain* needs, for *settings*."""
    host = settings.server.hostname
    directory = os.path.join(dkim_keys.key_directory(settings.server.data_dir), domain)
    selector = dkim_keys.signing_selector(directory)
    key = None if selector is None else (selector, dkim_keys.public_record(settings.server.data_dir, domain, selector))
    records = [
        Record(domain, "MX", f"10 {host}.", "where other servers deliver the domain's mail", (host,)),
        Record(host, "A", "<this server's public IPv4 address>", "the address of the mail host"),
        *mail_authentication(domain, key),
        Record(f"_smtp._tls.{domain}", "TXT", f'"v=TLSRPTv1; rua=mailto:postmaster@{domain}"',
               "TLS-RPT: where other servers report TLS failures", ("v=TLSRPTv1",)),
    ]
    listen = settings.listen
    https = listen_port(listen.https)
    if listen.https:
        public = not settings.tls.create_self_signed or settings.tls.acme
        policy = f"mode={'enforce' if public else 'testing'} mx={host}"
        records += [
            Record(f"_mta-sts.{domain}", "TXT", f'"v=STSv1; id={hashlib.sha256(policy.encode()).hexdigest()[:20]}"',
                   "MTA-STS: senders fetch the policy", ("v=STSv1",)),
            *(Record(f"{name}.{domain}", "CNAME", f"{host}.", why, (host,)) for name, why in (
                ("mta-sts", "MTA-STS: the policy's host"), ("autoconfig", "Thunderbird's autoconfiguration"),
                ("autodiscover", "Outlook's autodiscover"))),
        ]
        if https is not None:
            records.append(Record(f"_autodiscover._tcp.{domain}", "SRV", f"0 1 {https} {host}.",
                                  "Outlook's autodiscover", (host, https)))
    for listener, service, priority in SRV_SERVICES:
        port = listen_port(getattr(listen, listener))
        if port is not None:
            records.append(Record(f"{service}.{domain}", "SRV", f"{priority} 1 {port} {host}.",
                                  f"RFC 6186: mail clients find {listener} here", (host, port)))
    return records


def mail_authentication(domain, key):
    """SPF, DMARC and, with *key* (selector, TXT record), DKIM: what makes other servers accept
    the domain's mail."""
    records = [
        Record(domain, "TXT", '"v=spf1 mx -all"', "SPF (RFC 7208): only the domain's MX hosts send its mail",
               ("v=spf1",)),
        Record(f"_dmarc.{domain}", "TXT", f'"v=DMARC1; p=none; rua=mailto:postmaster@{domain}"',
               "DMARC (RFC 7489): start with p=none to watch, then quarantine or reject", ("v=DMARC1",)),
    ]
    if key is not None:
        selector, record = key
        # A TXT string is at most 255 octets (RFC 1035 §3.3.14): the value is split into several.
        chunks = " ".join(f'"{record[i:i + 250]}"' for i in range(0, len(record), 250))
        records.insert(0, Record(f"{selector}._domainkey.{domain}", "TXT", f"( {chunks} )",
                                 "DKIM: the key the domain's mail is signed with", (record,)))
    return records


def zone_lines(records):
    lines = []
    for record in records:
        lines.append(f"; {record.why}")
        lines.append(f"{record.name}. IN {record.type} {record.value}")
    return lines


def verdict(record, found):
    """OK / MISSING / WRONG for *record*, given *found*: what the DNS answered for its name and
    type (texts for TXT and A, host names for MX and CNAME, (host, port) for SRV)."""
    if not found:
        return "MISSING"
    if record.expect is None:
        return "OK"
    if record.type == "TXT":
        return "OK" if any(text.startswith(record.expect[0]) for text in found) else "WRONG"
    if record.type == "SRV":
        return "OK" if (record.expect[0].lower(), record.expect[1]) in {(host.lower(), port) for host, port in found} \
            else "WRONG"
    return "OK" if record.expect[0].lower() in {host.lower() for host in found} else "WRONG"
