"""What a mail client needs to know to connect, from the listeners actually bound: host name,
and for each protocol the port and its security (implicit TLS or STARTTLS).

Every document here (Thunderbird's autoconfig, Outlook's autodiscover, Apple's profile) is
written from these, so none can advertise a port the appliance does not listen on.
"""

from dataclasses import dataclass

# listener name -> (protocol as the documents name it, security)
LISTENERS = {
    "imaps": ("imap", "SSL"), "imap": ("imap", "STARTTLS"),
    "pop3s": ("pop3", "SSL"), "pop3": ("pop3", "STARTTLS"),
    "submissions": ("smtp", "SSL"), "submission": ("smtp", "STARTTLS"),
}


@dataclass(frozen=True)
class Server:
    protocol: str        # imap, pop3, smtp
    port: int
    security: str        # SSL (implicit TLS) or STARTTLS


def client_servers(bound):
    """The Servers a client may use, best first (implicit TLS before STARTTLS, RFC 8314 §3), from
    *bound*: [(listener name, "address:port")] as service.py reports them."""
    ports = {name: int(address.rpartition(":")[2]) for name, address in bound}
    return [Server(protocol, ports[name], security) for name, (protocol, security) in LISTENERS.items()
            if name in ports]
