"""SMTP accept rate: COUNT messages of SIZE octets to one local user, one SMTP session per message.

    python benchmarks/smtp_accept.py [--count 5000] [--size 2048] [--concurrency 20] [--runs 3]

Each run starts a fresh appliance (``twistd -n --pidfile= mailbox-appliance --config ...``, the
twistd beside sys.executable) on loopback port 0 with a data directory of its own, kept until
the last run ends (see work_directory), then CONCURRENCY parallel clients each open one session
per message, like independent MTAs: connect, 220, EHLO, MAIL/RCPT/DATA (pipelined when
PIPELINING is advertised, RFC 2920), the message, 250, QUIT, 221.  Printed per run and as the
median of the runs:

- msg/s from the first connect until every message is a file in the user's Maildir new/;
- p50 and p99 latency of one message: connect to the 250 after DATA;
- the server's peak RSS (VmHWM of the twistd process, read just before SIGTERM);
- CPU seconds used by the server (its reactor thread and its other threads), by this client and
  by the rest of the machine (other processes, the kernel threads; idle and iowait excluded),
  so a client-bound result would show.

Port 25 checks every message's sender (SPF, DKIM, DMARC, ARC): the appliance asks a DNS server
on loopback (tests/peers/dns_server.py, started here) whose zone makes each check do its work
and pass: SPF for remote.test lists 127.0.0.1, every message carries one DKIM signature (made
once by dkimpy over the fields and body all messages share) whose key the zone publishes, and
remote.test publishes a DMARC record.  ``--dns-fail`` answers SERVFAIL instead (every check a
temperror at once).

The client is Python on epoll and non-blocking sockets, a small state machine per session, the
body sent with sendmsg and never copied; its CPU time is printed beside the server's.
``--profile FILE`` runs the server under cProfile (reactor thread only) and writes FILE.<run>;
``--server-log FILE`` keeps each run's server log as FILE.<run>.  ``--against-postfix`` follows
each run with one against Postfix handing the messages to Dovecot's LMTP (postfix_server.py),
the pair an office would run instead, with the same client, and prints the ratio of the medians.
"""

import argparse
import errno
import math
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager

BIN = os.path.dirname(sys.executable)
TWISTD = os.path.join(BIN, "twistd")
LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s")
LISTENING = re.compile(r"\bsmtp listening on 127\.0\.0\.1:(\d+) ")
DOMAIN = "example.test"
USER = "bench"
RECIPIENT = f"{USER}@{DOMAIN}"
SENDER = "sender@remote.test"
START_TIMEOUT = 60
DELETIONS_SETTLE_SECONDS = 60


# twistd under cProfile; twistd ends itself with os.kill(SIGTERM) after a clean shutdown, so the
# profile is written just before that.
PROFILED_TWISTD = """
import cProfile, os, sys
from twisted.scripts.twistd import run
path, sys.argv = sys.argv[1], ["twistd"] + sys.argv[2:]
profile, real_kill = cProfile.Profile(), os.kill
def kill(pid, sig):
    if pid == os.getpid():
        profile.disable()
        profile.dump_stats(path)
    real_kill(pid, sig)
os.kill = kill
profile.enable()
try:
    run()
finally:
    profile.disable()
    profile.dump_stats(path)
"""


# -- the appliance ------------------------------------------------------------------------

def password_hash():
    from mailbox_appliance.accounts import passwords
    return passwords.hash_password("bench password")


class Server:
    def __init__(self, base, size, concurrency, users_line, resolver, profile=None):
        self.base = base
        data = os.path.join(base, "data")
        os.makedirs(data)
        with open(os.path.join(data, "users"), "w") as handle:
            handle.write(users_line + "\n")
        self.config = os.path.join(base, "appliance.conf")
        disabled = "\n".join(f"{name} =" for name in LISTENERS if name != "smtp")
        with open(self.config, "w") as handle:
            handle.write(textwrap.dedent(f"""\
                [server]
                hostname = mail.{DOMAIN}
                data_dir = {data}
                domains = {DOMAIN}
                [listen]
                smtp = tcp:0:interface=127.0.0.1
                """) + disabled + textwrap.dedent(f"""
                [limits]
                max_message_size = {max(size * 2, 1 << 20)}
                max_connections = {concurrency * 2 + 50}
                max_connections_per_address = {concurrency * 2 + 50}
                max_connection_rate = 0
                [outbound]
                resolver = {resolver}
                """))
        self.new_dir = os.path.join(data, "mail", DOMAIN, USER, "new")
        command = [TWISTD, "-n", "--pidfile=", "mailbox-appliance", "--config", self.config]
        if profile:
            command = [sys.executable, "-c", PROFILED_TWISTD, profile] + command[1:]
        self.log_path = os.path.join(base, "server.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=base)
        self.port = self._wait_for_port()

    def _wait_for_port(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.log_path) as handle:
                match = LISTENING.search(handle.read())
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise SystemExit("appliance did not start:\n" + open(self.log_path).read())

    def peak_rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as handle:
            return int(re.search(r"VmHWM:\s+(\d+) kB", handle.read()).group(1))

    def cpu_seconds(self):
        """(reactor thread, other threads) CPU seconds so far."""
        tick = os.sysconf("SC_CLK_TCK")
        main = other = 0.0
        task_dir = f"/proc/{self.process.pid}/task"
        for tid in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{tid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            seconds = (int(fields[11]) + int(fields[12])) / tick
            if int(tid) == self.process.pid:
                main += seconds
            else:
                other += seconds
        return main, other

    def count_new(self):
        return count_files(self.new_dir)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self.log.close()
        return status


# -- the messages -------------------------------------------------------------------------

WORDS = ("the quick brown fox jumps over lazy dog mail server appliance office delivery "
         "maildir group commit fsync durable message queue session reactor twisted python "
         "benchmark latency throughput header body line octet").split()


def message_parts(size, signature_length=0):
    """(header template with {n:010d}, body): together SIZE octets of RFC 5322 text (beside a
    DKIM-Signature field of *signature_length* put on top), CRLF lines of at most 78 octets, no
    line starting with '.' (so no dot-stuffing is needed)."""
    header = ("From: Bench Sender <" + SENDER + ">\r\n"
              "To: <" + RECIPIENT + ">\r\n"
              "Subject: smtp_accept benchmark message {n:010d}\r\n"
              "Date: Mon, 01 Jun 2026 12:00:00 +0000\r\n"
              "Message-ID: <{n:010d}.smtp-accept@remote.test>\r\n"
              "MIME-Version: 1.0\r\n"
              "Content-Type: text/plain; charset=us-ascii\r\n"
              "\r\n")
    header_length = len(header.format(n=0)) + signature_length
    remaining = size - header_length
    if remaining < 8:
        raise SystemExit(f"--size must be at least {header_length + 8}")
    rng = random.Random(size)
    lines = []
    while remaining > 0:
        take = min(78, remaining)
        if 0 < remaining - take < 3:
            take = remaining - 3
        text, width = [], 0
        while width < take - 2:
            word = rng.choice(WORDS)
            text.append(word)
            width += len(word) + 1
        lines.append(" ".join(text)[:take - 2].rstrip().ljust(take - 2, "x") + "\r\n")
        remaining -= take
    body = "".join(lines).encode("ascii")
    assert len(header_length * b"x" + body) == size and b"\r\n." not in body and not body.startswith(b".")
    return header, body


# Signed by every message's DKIM-Signature: the fields all messages share (not Subject or
# Message-ID, which carry the message's number), and the body, the same in all.
SIGNED_FIELDS = [b"from", b"to", b"date", b"mime-version", b"content-type"]
SELECTOR = "bench"


def signed_parts(size):
    """message_parts with one DKIM-Signature on top, valid for every message; and the zone
    that makes SPF, DKIM and DMARC pass for them."""
    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from mailbox_appliance.queue.dkim_keys import txt_record

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    domain = SENDER.partition("@")[2]

    def sign(header, body):
        message = header.format(n=0).encode("ascii") + body
        return dkim.sign(message, SELECTOR.encode(), domain.encode(), private, include_headers=SIGNED_FIELDS)

    header, body = message_parts(size, len(sign(*message_parts(size))))
    signature = sign(header, body).decode("ascii")
    zone = {"records": {
        domain: {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
        f"{SELECTOR}._domainkey.{domain}": {"TXT": [txt_record(key.public_key())]},
        f"_dmarc.{domain}": {"TXT": ["v=DMARC1; p=reject"]},
    }}
    return signature.replace("{", "{{").replace("}", "}}") + header, body, zone


@contextmanager
def dns_server(zone, workdir):
    """tests/peers/dns_server.py serving *zone* on loopback: yields "127.0.0.1:PORT"."""
    import json
    path = os.path.join(workdir, "zone.json")
    with open(path, "w") as handle:
        json.dump(zone, handle)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests", "peers", "dns_server.py")
    process = subprocess.Popen([sys.executable, script, path], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        if not line.startswith("dns listening on "):
            raise SystemExit(f"the DNS server did not start: {line}")
        yield line.split()[-1]
    finally:
        process.kill()
        process.wait()


# -- the client ---------------------------------------------------------------------------

class Session:
    """One SMTP session delivering one message: a socket and where its dialogue stands."""

    __slots__ = ("sock", "index", "started", "state", "buffer", "extensions", "pipelining", "outbox")

    def __init__(self, sock, index, started):
        self.sock, self.index, self.started = sock, index, started
        self.state = "banner"
        self.buffer = b""
        self.extensions = []
        self.pipelining = False
        self.outbox = None  # a memoryview still to send, when the socket buffer was full


class Client:
    """CONCURRENCY sessions at a time on one epoll loop; each session ends with the next one's
    connect.  Written against the socket API directly: asyncio's transports cost about three
    times the CPU per session, which on 2 cores is taken from the server."""

    def __init__(self, port, count, concurrency, parts):
        self.port, self.count, self.concurrency = port, count, concurrency
        self.header, self.body = parts
        size = len(self.header.format(n=0)) + len(self.body)
        self.envelope_lines = [f"MAIL FROM:<{SENDER}> SIZE={size}\r\n".encode(),
                               f"RCPT TO:<{RECIPIENT}>\r\n".encode(), b"DATA\r\n"]
        self.envelope = b"".join(self.envelope_lines)
        self.latencies = []
        self.errors = []
        self.started = 0
        self.first_connect = None
        self.epoll = select.epoll()
        self.sessions = {}

    def run(self):
        for _ in range(min(self.concurrency, self.count)):
            self.connect()
        poll, sessions = self.epoll.poll, self.sessions
        while sessions:
            for fd, events in poll():
                session = sessions.get(fd)
                if session is None:
                    continue
                if events & select.EPOLLOUT:
                    self.flush(session)
                if events & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                    self.readable(session)
        self.epoll.close()

    def connect(self):
        if self.started >= self.count:
            return
        index = self.started
        self.started += 1
        started = time.perf_counter()
        if self.first_connect is None:
            self.first_connect = started
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        error = sock.connect_ex(("127.0.0.1", self.port))
        if error not in (0, errno.EINPROGRESS):
            sock.close()
            self.errors.append(f"connect: {os.strerror(error)}")
            return self.connect()
        session = Session(sock, index, started)
        self.sessions[sock.fileno()] = session
        # The banner arriving says the connection is up; a failed connect shows as EPOLLERR.
        self.epoll.register(sock.fileno(), select.EPOLLIN)

    def end(self, session, error=None):
        if error:
            self.errors.append(f"message {session.index}, {session.state}: {error}")
        fd = session.sock.fileno()
        del self.sessions[fd]
        self.epoll.unregister(fd)
        session.sock.close()
        session.state = "closed"
        self.connect()

    def send(self, session, *parts):
        """Send *parts* in one sendmsg (no joining); what the socket does not take waits for EPOLLOUT."""
        if session.outbox is not None:
            session.outbox = memoryview(bytes(session.outbox) + b"".join(parts))
            return
        try:
            sent = session.sock.sendmsg(parts)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            return self.end(session, str(error))
        if sent < sum(map(len, parts)):
            session.outbox = memoryview(b"".join(parts))[sent:]
            self.epoll.modify(session.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)

    def flush(self, session):
        if session.outbox is None:
            return
        try:
            sent = session.sock.send(session.outbox)
        except BlockingIOError:
            return
        except OSError as error:
            return self.end(session, str(error))
        session.outbox = session.outbox[sent:]
        if not session.outbox:
            session.outbox = None
            self.epoll.modify(session.sock.fileno(), select.EPOLLIN)

    def readable(self, session):
        try:
            data = session.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as error:
            return self.end(session, str(error))
        if not data:
            return self.end(session, None if session.state == "quit" else "connection closed")
        buffer = session.buffer + data
        start = 0
        while session.state != "closed":
            end = buffer.find(b"\r\n", start)
            if end < 0:
                session.buffer = buffer[start:]
                return
            line = buffer[start:end]
            start = end + 2
            if line[3:4] == b"-":
                if session.state == "ehlo":
                    session.extensions.append(line[4:].upper())
                continue
            self.reply(session, line)

    def reply(self, session, line):
        state, code = session.state, line[:3]
        if state == "banner" and code == b"220":
            self.send(session, b"EHLO client.remote.test\r\n")
            session.state = "ehlo"
        elif state == "ehlo" and code == b"250":
            session.pipelining = b"PIPELINING" in session.extensions
            self.send(session, self.envelope if session.pipelining else self.envelope_lines[0])
            session.state = "mail"
        elif state == "mail" and code == b"250":
            if not session.pipelining:
                self.send(session, self.envelope_lines[1])
            session.state = "rcpt"
        elif state == "rcpt" and code == b"250":
            if not session.pipelining:
                self.send(session, self.envelope_lines[2])
            session.state = "data"
        elif state == "data" and code == b"354":
            # The body is not copied: this message's header, the shared body, the end marker.
            self.send(session, self.header.format(n=session.index).encode("ascii"), self.body, b".\r\n")
            session.state = "sent"
        elif state == "sent" and code == b"250":
            self.latencies.append(time.perf_counter() - session.started)
            self.send(session, b"QUIT\r\n")
            session.state = "quit"
        elif state == "quit":
            self.end(session)  # 221 (or anything: the message is stored either way)
        else:
            self.end(session, line.decode("ascii", "replace"))


def machine_busy_seconds():
    """CPU seconds used by everything on the machine so far (all cores), from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(limit):
    """Wait (at most *limit* seconds) for three seconds in a row in which the machine is nearly
    idle: on a shared 2-core box another process's load halves what is measured.  Returns the
    seconds waited, or None if the machine stayed busy."""
    began, quiet = time.monotonic(), 0
    while True:
        before = machine_busy_seconds()
        time.sleep(1)
        quiet = quiet + 1 if machine_busy_seconds() - before < 0.15 else 0
        if quiet >= 3:
            return time.monotonic() - began
        if time.monotonic() - began >= limit:
            return None


# -- one run ------------------------------------------------------------------------------

@contextmanager
def work_directory(parent):
    """A directory for every run's data, removed only after the last run.

    ext4 without a journal (this machine's root file system) does not reuse an inode freed in
    the last 30 seconds: allocation looks up each candidate's deletion time (recently_deleted()
    in fs/ext4/ialloc.c), and beside thousands of fresh deletions each new file costs about
    0.6 ms more kernel time in the writer thread.  Removing one run's 5000 messages before the
    next run measured that, not the appliance: 100 KB, 1414 msg/s after 40 s without deletions,
    818-893 msg/s right after one.  So nothing is deleted between runs; leave a minute between
    two invocations for the same reason (30 s after removing 25,000 messages, runs were still
    slowed).
    """
    path = tempfile.mkdtemp(prefix="smtp-accept-", dir=parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def percentile(sorted_values, fraction):
    """Nearest-rank percentile."""
    if not sorted_values:
        return float("nan")
    rank = math.ceil(fraction * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def count_files(directory):
    """How many files *directory* holds (0 while it does not exist)."""
    try:
        return sum(1 for _ in os.scandir(directory))
    except FileNotFoundError:
        return 0


def send_all(args, port, parts, count_stored, settle):
    """The client's COUNT messages to *port*, then a wait (at most *settle* s) until
    count_stored() has every message that got its 250.  A dict of what every run reports."""
    bench = Client(port, args.count, args.concurrency, parts)
    client_cpu_before, machine_before = time.process_time(), machine_busy_seconds()
    bench.run()
    expected = args.count - len(bench.errors)
    deadline = time.monotonic() + settle
    while count_stored() < expected and time.monotonic() < deadline:
        time.sleep(0.001)
    elapsed = time.perf_counter() - bench.first_connect
    stored = count_stored()
    latencies = sorted(bench.latencies)
    return {"rate": stored / elapsed, "stored": stored, "elapsed": elapsed, "errors": bench.errors,
            "p50": percentile(latencies, 0.50) * 1e3, "p99": percentile(latencies, 0.99) * 1e3,
            "client_cpu": time.process_time() - client_cpu_before,
            "others_cpu": machine_busy_seconds() - machine_before}


def report(name, result, cpu):
    """One run's line (*cpu*: its CPU figures, said as they were measured) and its first errors."""
    print(f"{name}: {result['rate']:.0f} msg/s ({result['stored']} stored in {result['elapsed']:.2f} s, "
          f"{len(result['errors'])} errors), latency p50 {result['p50']:.1f} ms p99 {result['p99']:.1f} ms, "
          f"{cpu}", flush=True)
    for error in result["errors"][:5]:
        print("  error:", error)


def one_run(args, users_line, run, workdir, resolver, parts):
    """One appliance, COUNT messages; its data stays in *workdir* (see work_directory)."""
    wait_before(args)
    base = tempfile.mkdtemp(prefix=f"run-{run}-", dir=workdir)
    profile = f"{args.profile}.{run}" if args.profile else None
    server = Server(base, args.size, args.concurrency, users_line, resolver, profile)
    try:
        server_cpu_before = server.cpu_seconds()
        result = send_all(args, server.port, parts, server.count_new, 60)
        server_cpu = [after - before for after, before in zip(server.cpu_seconds(), server_cpu_before)]
        result["others_cpu"] -= result["client_cpu"] + sum(server_cpu)
        result["rss"] = server.peak_rss_kib() / 1024
    finally:
        status = server.stop()
    if status not in (0, -signal.SIGTERM):  # twistd re-raises SIGTERM after a clean shutdown
        print(f"  warning: appliance exited with status {status}; log tail:\n"
              + "".join(open(server.log_path).readlines()[-20:]), file=sys.stderr)
    if args.server_log:
        shutil.copyfile(server.log_path, f"{args.server_log}.{run}")
    stored = max(result["stored"], 1)
    result["reactor_ms"] = server_cpu[0] / stored * 1e3
    report(f"run {run}", result,
           f"server peak RSS {result['rss']:.1f} MiB, CPU s: server reactor {server_cpu[0]:.1f} "
           f"+ other threads {server_cpu[1]:.1f}, client {result['client_cpu']:.1f}, rest of machine "
           f"{result['others_cpu']:.1f} (server CPU per message: reactor {result['reactor_ms']:.2f} ms, "
           f"other threads {server_cpu[1] / stored * 1e3:.2f} ms)")
    return result


def wait_before(args):
    if args.wait_idle > 0:
        waited = wait_for_quiet(args.wait_idle)
        if waited is None:
            print(f"  note: the machine stayed busy for {args.wait_idle} s; measuring anyway", flush=True)


def postfix_run(args, run, workdir, parts):
    """The same COUNT messages to Postfix + Dovecot LMTP (postfix_server.py): msg/s until all
    are in the Maildir, as for the appliance."""
    from postfix_server import PostfixDovecot

    wait_before(args)
    peer = PostfixDovecot(os.path.join(workdir, f"postfix-{run}"), DOMAIN, USER)
    try:
        result = send_all(args, peer.port, parts, lambda: count_files(peer.new_dir), 120)
    finally:
        peer.stop()
    report(f"Postfix + Dovecot run {run}", result,
           f"CPU s: client {result['client_cpu']:.1f}, Postfix, Dovecot and the rest of the machine "
           f"{result['others_cpu'] - result['client_cpu']:.1f}")
    return result["rate"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--size", type=int, default=2048, help="octets per message (headers + body)")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tmpdir", default=tempfile.gettempdir(), help="where the data dirs go (default %(default)s)")
    parser.add_argument("--wait-idle", type=float, default=300,
                        help="before each run wait up to this many seconds for an idle machine (0: do not)")
    parser.add_argument("--profile", help="run the server under cProfile, writing PROFILE.<run>")
    parser.add_argument("--server-log", help="keep each run's server log as SERVER_LOG.<run>")
    parser.add_argument("--dns-fail", action="store_true", help="the DNS server answers SERVFAIL to everything")
    parser.add_argument("--against-postfix", action="store_true",
                        help="then as many runs against Postfix + Dovecot LMTP (postfix_server.py), one ratio")
    args = parser.parse_args()

    located = subprocess.run([sys.executable, "-c", "import mailbox_appliance; print(mailbox_appliance.__file__)"],
                             capture_output=True, text=True).stdout.strip()
    print(f"smtp_accept: {args.count} messages of {args.size} octets, {args.concurrency} concurrent sessions, "
          f"one session per message, {args.runs} runs")
    print(f"client: Python epoll state machine (EHLO, MAIL/RCPT/DATA pipelined per RFC 2920, QUIT); "
          f"server: {TWISTD} importing {located}")
    users_line = f"{RECIPIENT}:{password_hash()}"
    header, body, zone = signed_parts(args.size)
    if args.dns_fail:
        zone = {"servfail_all": True}
    print(f"DNS: a loopback server, {'SERVFAIL to everything' if args.dns_fail else 'SPF, DKIM and DMARC passing'}")
    with work_directory(args.tmpdir) as workdir, dns_server(zone, workdir) as resolver:
        results, theirs = [], []
        for run in range(1, args.runs + 1):      # alternated: the machine's speed drifts
            results.append(one_run(args, users_line, run, workdir, resolver, (header, body)))
            if args.against_postfix:
                theirs.append(postfix_run(args, run, workdir, (header, body)))
                if run < args.runs:
                    # Postfix deletes each queue file once delivered: the next run's new files
                    # would pay for those fresh deletions (see work_directory), not for our code.
                    time.sleep(DELETIONS_SETTLE_SECONDS)
    median = {key: statistics.median(result[key] for result in results)
              for key in ("rate", "p50", "p99", "rss", "reactor_ms")}
    print(f"median of {args.runs}: {median['rate']:.0f} msg/s, latency p50 {median['p50']:.1f} ms "
          f"p99 {median['p99']:.1f} ms, server peak RSS {median['rss']:.1f} MiB, "
          f"reactor CPU {median['reactor_ms']:.2f} ms per message")
    if theirs:
        print(f"Postfix + Dovecot median of {args.runs}: {statistics.median(theirs):.0f} msg/s; the appliance "
              f"(its sender checks on) accepts {median['rate'] / statistics.median(theirs):.2f}x as many")


if __name__ == "__main__":
    main()
