"""The rest of the internet, on loopback: a DNS server with a test zone and SMTP peers behind it."""

import contextlib
import json
import os
import subprocess
import sys

from mailbox_appliance.tls import create_self_signed

PEERS = os.path.join(os.path.dirname(__file__), "peers")

# Loopback host -> how the SMTP peer there behaves (see peers/smtp_peer.py).
HOSTS = {
    "127.0.0.2": "accept",
    "127.0.0.3": "accept",
    "127.0.0.4": "greet421",
    "127.0.0.5": "drop-data",
    "127.0.0.6": "slow",
    "127.0.0.7": "plain",
    "127.0.0.8": "auth",
}
DOWN = "127.0.0.9"   # no peer listens here

ZONE = {
    "records": {
        "good.test": {"MX": [[10, "mx1.good.test"], [20, "mx2.good.test"]]},
        "mx1.good.test": {"A": ["127.0.0.2"]},
        "mx2.good.test": {"A": ["127.0.0.3"]},
        "backup.test": {"MX": [[10, "down.backup.test"], [20, "up.backup.test"]]},
        "down.backup.test": {"A": [DOWN]},
        "up.backup.test": {"A": ["127.0.0.3"]},
        "nomx.test": {"A": ["127.0.0.2"]},
        "nullmx.test": {"MX": [[0, ""]]},   # "0 ." (RFC 7505): the root name
        "greylist.test": {"MX": [[10, "mx.greylist.test"]]},
        "mx.greylist.test": {"A": ["127.0.0.4"]},
        "dropper.test": {"MX": [[10, "mx.dropper.test"]]},
        "mx.dropper.test": {"A": ["127.0.0.5"]},
        "slow.test": {"MX": [[10, "mx.slow.test"]]},
        "mx.slow.test": {"A": ["127.0.0.6"]},
        "plain.test": {"MX": [[10, "mx.plain.test"]]},
        "mx.plain.test": {"A": ["127.0.0.7"]},
        "relay.test": {"A": ["127.0.0.8"]},          # the smart host; the peers' certificate names it
        "wrongname.test": {"A": ["127.0.0.8"]},      # the same host under a name its certificate lacks
    },
    "servfail": ["servfail.test"],
}


def _start(command, prefix):
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = process.stdout.readline()
    if not line.startswith(prefix):
        process.kill()
        raise AssertionError(f"{command[1]} did not start: {line}{process.stdout.read()}")
    return process, line.strip().rsplit(":", 1)[-1].split()[-1]


def start_dns(directory, zone):
    """A dns_server.py process serving *zone* (written into *directory*): (process, "127.0.0.1:PORT")."""
    zone_path = os.path.join(directory, "zone.json")
    with open(zone_path, "w") as handle:
        json.dump(zone, handle)
    process, port = _start([sys.executable, os.path.join(PEERS, "dns_server.py"), zone_path], "dns listening")
    return process, f"127.0.0.1:{port}"


@contextlib.contextmanager
def serving_dns(directory, zone):
    """start_dns for a with block: yields "127.0.0.1:PORT", stops the server after."""
    process, address = start_dns(directory, zone)
    try:
        yield address
    finally:
        process.kill()
        process.wait()


class World:
    def __init__(self, directory):
        self.spool = os.path.join(directory, "peer-mail")
        os.makedirs(self.spool)
        certificate, key = os.path.join(directory, "peer.pem"), os.path.join(directory, "peer.key")
        create_self_signed(certificate, key, "relay.test")
        self.certificate = certificate
        self.dns, self.resolver = start_dns(directory, ZONE)
        self.smtp, smtp_port = _start([sys.executable, os.path.join(PEERS, "smtp_peer.py"), self.spool, certificate, key,
                                       *(f"{host}={behaviour}" for host, behaviour in HOSTS.items())], "smtp listening")
        self.smtp_port = int(smtp_port)

    def received(self):
        """Every message the peers accepted: (envelope dict, octets as sent on the wire)."""
        found = []
        for name in sorted(os.listdir(self.spool), key=lambda name: int(name.split(".")[0])):
            if name.endswith(".json"):
                with open(os.path.join(self.spool, name)) as handle:
                    envelope = json.load(handle)
                with open(os.path.join(self.spool, name[:-5] + ".eml"), "rb") as handle:
                    found.append((envelope, handle.read()))
        return found

    def stop(self):
        for process in (self.dns, self.smtp):
            process.kill()
            process.wait()
