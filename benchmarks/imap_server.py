"""What the IMAP benchmarks share: an appliance with one user, a Maildir filled directly, and a
small IMAP client that times one command at a time.

The appliance is ``twistd -n --pidfile= mailbox-appliance --config ...`` (the twistd beside
sys.executable, started by tests/appliance.py) with only the imaps listener, on loopback port 0,
in a temporary directory.  The
folder is filled by writing Maildir files straight into cur/ with the names delivery would give
them (``<secs>.M<usecs>P<pid>Q<n>R<hex>.<host>,S=<size>,W=<size>:2,<flags>``), so 100,000
messages take seconds rather than the hours SMTP would; the appliance assigns their UIDs when it
first opens the folder, as it would for a Maildir taken over from Dovecot.

The client speaks IMAP over TLS byte for byte (literals read, nothing parsed further), so its
own cost stays small beside the server's; each command's time is from sending it to reading its
tagged answer.
"""

import os
import random
import re
import socket
import ssl
import sys
import time

from mailbox_appliance.maildir.layout import create_user_maildir, ensure_user_maildir
from mailbox_appliance.tls import create_self_signed

# The tests' launcher (tests/appliance.py) starts and stops the appliance here too.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from appliance import Appliance as RunningAppliance, write_config  # noqa: E402
from dovecot_server import DOVECOT, Dovecot  # noqa: E402

DOMAIN = "example.test"
USER = f"bench@{DOMAIN}"
PASSWORD = "bench password"
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
WORDS = ("meeting report invoice lunch project budget review draft office printer holiday plan "
         "server backup quarterly update question answer schedule contract").split()
SENDERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")


class Appliance:
    """A running appliance with the user USER, its data in *base*, only imaps listening."""

    def __init__(self, base, max_connections=200):
        from mailbox_appliance.accounts import passwords

        config = write_config(base, extra=f"[limits]\nmax_connections = {max_connections}\n"
                              # Every client is on 127.0.0.1: no per-address limits.
                              f"max_connections_per_address = {max_connections}\nmax_connection_rate = 0\n",
                              listeners=("imaps",), domains=DOMAIN)
        self.data_dir = os.path.join(base, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        with open(os.path.join(self.data_dir, "users"), "w") as handle:
            handle.write(f"{USER}:{passwords.hash_password(PASSWORD)}\n")
        self.maildir = ensure_user_maildir(self.data_dir, USER)
        self._running = RunningAppliance(config, cwd=base, expected=("imaps",))
        self.port = self._running.ports["imaps"]
        self.pid = self._running.process.pid

    def peak_rss_mib(self):
        """The server's peak resident set (VmHWM), in MiB."""
        with open(f"/proc/{self.pid}/status") as handle:
            return int(re.search(r"VmHWM:\s+(\d+) kB", handle.read()).group(1)) / 1024

    def cpu_seconds(self):
        """CPU seconds the server has used (all its threads)."""
        with open(f"/proc/{self.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self._running.stop(timeout=60)


def message(number, rng):
    """A plausible office message (about 1-4 KB): varied sender, subject, date and body."""
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
    if rng.random() < 0.3:
        subject = rng.choice(("Re: ", "Fwd: ", "RE: Re: ", "[team] ")) + subject
    sent = 1_600_000_000 + rng.randrange(100_000_000)
    body = "\r\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(rng.randint(10, 50)))
    return (f"From: {rng.choice(SENDERS).title()} <{rng.choice(SENDERS)}@{DOMAIN}>\r\n"
            f"To: <{rng.choice(SENDERS)}@{DOMAIN}>\r\n"
            f"Subject: {subject}\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime(sent))}\r\n"
            f"Message-ID: <{number}.bench@{DOMAIN}>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n").encode()


def fill(folder_path, count, seed=1, seen_share=0.7):
    """Write *count* messages into the Maildir folder's cur/, as delivered over *count* seconds
    before now, about *seen_share* of them \\Seen."""
    rng = random.Random(seed)
    cur = os.path.join(folder_path, "cur")
    start = int(time.time()) - count
    for number in range(count):
        data = message(number, rng)
        flags = "S" if rng.random() < seen_share else ""
        name = "%d.M%dP%dQ%dR%016x.bench.%s,S=%d,W=%d:2,%s" % (
            start + number, number % 1_000_000, os.getpid(), number, rng.getrandbits(64), DOMAIN,
            len(data), len(data), flags)
        path = os.path.join(cur, name)
        with open(path, "wb") as handle:
            handle.write(data)
        os.utime(path, (start + number, start + number))


def start_dovecot(place, count):
    """Debian's Dovecot (dovecot-imapd; tests/dovecot_server.py) over IMAPS in the new directory
    *place*, serving USER's INBOX filled as fill() fills the appliance's (same seed, no
    dovecot-uidlist yet).  Its password is stored {PLAIN}: Dovecot's auth cache would verify a
    hash at every login (about a second each here), which would measure the hash, not IMAP."""
    if DOVECOT is None:
        raise SystemExit("comparing with Dovecot needs it: apt-get install dovecot-imapd")
    os.makedirs(place)
    os.chmod(os.path.dirname(place), 0o755)      # Dovecot's mail processes run as nobody
    os.chmod(place, 0o755)
    mail_root = os.path.join(place, "vmail")
    inbox = os.path.join(mail_root, DOMAIN, USER.split("@")[0])     # Dovecot's %d/%n
    create_user_maildir(inbox)
    fill(inbox, count)
    passwd = os.path.join(place, "users")
    with open(passwd, "w") as handle:
        handle.write(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    certificate, key = os.path.join(place, "cert.pem"), os.path.join(place, "key.pem")
    create_self_signed(certificate, key, "localhost")
    dovecot = Dovecot(place, mail_root, passwd, tls=(certificate, key))
    print("Dovecot", dovecot.process.args[0], "serving the same messages:")
    return dovecot


def _client_context():
    """One TLS context for every client: made per connection, loading the system's CA bundle
    cost the client about 90 % of its CPU.  Nothing is verified (a self-signed loopback server)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_CONTEXT = _client_context()


class Client:
    """One IMAP session over TLS to the appliance, logged in."""

    def __init__(self, port):
        self.sock = _CONTEXT.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=600))
        self.reader = self.sock.makefile("rb")
        self.reader.readline()
        self.count = 0

    def command(self, text):
        """(response lines, seconds) for one command; raises unless it ends OK."""
        self.count += 1
        tag = b"b%d" % self.count
        started = time.perf_counter()
        self.sock.sendall(tag + b" " + text + b"\r\n")
        lines = []
        while True:
            line = self.reader.readline()
            if not line:
                raise SystemExit(f"connection closed during {text[:60]!r}")
            while (match := _LITERAL.search(line)) is not None:
                line += self.reader.read(int(match.group(1))) + self.reader.readline()
            lines.append(line)
            if line.startswith(tag + b" "):
                break
        seconds = time.perf_counter() - started
        if lines[-1].split()[1] != b"OK":
            raise SystemExit(f"{text[:60]!r} failed: {lines[-1]!r}")
        return lines, seconds

    def close(self):
        self.sock.close()
