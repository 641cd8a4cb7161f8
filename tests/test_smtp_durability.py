"""A 250 after DATA (or an OK after IMAP APPEND) means the message is on disk for every recipient:
a crash test.

Client threads send messages without pause (one SMTP session per message, or one IMAP APPEND
session, each with a unique token) while the main thread SIGKILLs the appliance at random moments
and starts it again on the same data directory.  After every kill, while the server is down, and again after a clean stop at
the end, the test checks what a restarted server would find:

- every message that got 250 (or OK) is in the Maildir of each of its local recipients exactly once, and
  in the spool exactly once for each of its remote recipients (the spool loaded with repair=True,
  as the server loads it at start);
- a message that got no 250 is there at most once per recipient (it may have been stored just
  before the kill);
- every file in new/ and cur/ is complete: its size is the S= of its name, it parses, it carries
  the headers and ends with the whole body that was sent.

The kill delays and message contents come from a seed, printed and named in every failure; set
DURABILITY_SEED to replay one.  DURABILITY_CYCLES and DURABILITY_ACKS scale the run up
(benchmarks/kill_durability.py: 50 kills, 10,000 messages).  (Thread timing still varies from run to run, so a replay repeats
the schedule, not necessarily the exact interleaving.)

Note on what a SIGKILL can show: the kernel keeps written data of a killed process, so this test
catches a 250 sent before the message is written and renamed into new/ (or into the spool), not
a missing fsync, which only a power loss would reveal.
"""

import email.parser
import email.policy
import imaplib
import os
import random
import re
import smtplib
import socket
import threading
import time

from appliance import Appliance
from conftest import PASSWORD, Office, unverified_tls
from mailbox_appliance.queue.spool import Spool

CLIENTS = 8
# kill/restart cycles; then a last run ended by a clean stop
CYCLES = int(os.environ.get("DURABILITY_CYCLES", "5"))
# each server generation first accepts this many messages ...
ACKS_BEFORE_KILL = int(os.environ.get("DURABILITY_ACKS", "12"))
KILL_DELAY = (0.0, 0.6)          # ... then dies after a random delay (seconds) in this range
ACKS_AT_END = ACKS_BEFORE_KILL   # the last generation accepts this many before the clean stop
WAIT_BOUND = 30                  # upper bound for any wait on an event
SMTP_TIMEOUT = 15

REMOTE = "someone@remote.test"   # via the alias partners@example.test (conftest.ALIASES)
# kind -> (RCPT TO addresses, local users that must get a copy, remote addresses queued); the
# "append" kind is an IMAP APPEND to alice's INBOX.
KINDS = {
    "append": (["alice@example.test"], {"alice"}, set()),
    "alice": (["alice@example.test"], {"alice"}, set()),
    "alice+bob": (["alice@example.test", "bob@example.test"], {"alice", "bob"}, set()),
    "partners": (["partners@example.test"], {"alice"}, {REMOTE}),
    "bob+partners": (["bob@example.test", "partners@example.test"], {"alice", "bob"}, {REMOTE}),
}
LOCAL_USERS = ("alice", "bob")
SIZE_IN_NAME = re.compile(r",S=(\d+)")


class Sent:
    """One message: its token, recipients, exact body, and what the server answered."""

    def __init__(self, token, kind, generation, message, body):
        self.token, self.kind, self.generation = token, kind, generation
        self.message, self.body = message, body
        self.state = "sending"        # -> acked (250 after DATA) | refused (a 4xx/5xx) | unknown
        self.reply = None

    @property
    def local(self):
        return KINDS[self.kind][1]

    @property
    def remote(self):
        return KINDS[self.kind][2]


def make_message(rng, token, kind):
    lines = [f"token {token}"]
    for number in range(rng.randint(1, 400)):
        lines.append(f"{number:04d} " + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz ", k=rng.randint(0, 120))))
    lines.append(f"end of {token}")
    body = ("\r\n".join(lines) + "\r\n").encode("ascii")
    # No line starts with "." so the bytes sent are the bytes stored (no dot-stuffing involved).
    headers = (f"From: <sender@client.test>\r\nTo: {', '.join(KINDS[kind][0])}\r\n"
               f"Subject: durability {token}\r\nMessage-ID: <{token}@client.test>\r\n"
               f"X-Token: {token}\r\n\r\n").encode("ascii")
    return headers + body, body


class Traffic:
    """The client threads and what they sent; the main thread publishes each server's port."""

    def __init__(self, seed):
        self.seed = seed
        self.cond = threading.Condition()
        self.generation = 0
        self.ports = None              # ports of the live server; None while it is down
        self.acks = {}                 # generation -> messages acknowledged by that server
        self.sent = []
        self.problems = []             # unexpected things seen by the clients
        self.stopping = False
        self.threads = [threading.Thread(target=self._client, args=(index,), daemon=True,
                                         name=f"durability-client-{index}") for index in range(CLIENTS)]

    # -- main thread -------------------------------------------------------------------------

    def serve(self, appliance):
        """A new server is up: clients move to its port."""
        with self.cond:
            self.generation += 1
            self.ports = appliance.ports
            self.cond.notify_all()

    def down(self):
        with self.cond:
            self.ports = None

    def wait_acks(self, count):
        """Wait until the current server has acknowledged *count* messages."""
        deadline = time.monotonic() + WAIT_BOUND
        with self.cond:
            while self.acks.get(self.generation, 0) < count and not self.problems:
                remaining = deadline - time.monotonic()
                assert remaining > 0, (f"seed={self.seed}: server {self.generation} acknowledged only "
                                       f"{self.acks.get(self.generation, 0)} messages in {WAIT_BOUND}s")
                self.cond.wait(remaining)
            assert not self.problems, f"seed={self.seed}: {self.problems}"

    def snapshot(self):
        with self.cond:
            return list(self.sent)

    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        for thread in self.threads:
            thread.join(SMTP_TIMEOUT + 5)
            assert not thread.is_alive(), f"seed={self.seed}: {thread.name} did not stop"

    # -- client threads ----------------------------------------------------------------------

    def _client(self, index):
        rng = random.Random(f"{self.seed}/{index}")
        number = 0
        while True:
            with self.cond:
                deadline = time.monotonic() + WAIT_BOUND
                while self.ports is None and not self.stopping:
                    if not self.cond.wait(max(0, deadline - time.monotonic())):
                        self.problems.append(f"client {index}: no server for {WAIT_BOUND}s")
                        self.cond.notify_all()
                        return
                if self.stopping:
                    return
                generation, ports = self.generation, self.ports
                kind = list(KINDS)[(index + number) % len(KINDS)]
                token = f"t{self.seed}x{index}x{number}x{rng.getrandbits(32):08x}"
                message, body = make_message(rng, token, kind)
                sent = Sent(token, kind, generation, message, body)
                self.sent.append(sent)
            number += 1
            if (self._append(ports["imaps"], sent) if kind == "append" else self._send(ports["smtp"], sent)):
                continue
            # The server died under us (or its port is gone): wait for the next one.
            with self.cond:
                deadline = time.monotonic() + WAIT_BOUND
                while self.generation == generation and not self.stopping:
                    if not self.cond.wait(max(0, deadline - time.monotonic())):
                        self.problems.append(f"client {index}: no new server for {WAIT_BOUND}s")
                        self.cond.notify_all()
                        return

    def _send(self, port, sent):
        """One session for one message; False when the connection failed."""
        recipients = KINDS[sent.kind][0]
        try:
            client = smtplib.SMTP("127.0.0.1", port, timeout=SMTP_TIMEOUT)
        except (OSError, smtplib.SMTPException):
            sent.state = "unknown"
            return False
        try:
            steps = [lambda: client.ehlo("client.example.test"),
                     lambda: client.mail("sender@client.test")]
            steps += [lambda address=address: client.rcpt(address) for address in recipients]
            for step in steps:
                code, text = step()
                if code != 250:
                    return self._refused(sent, code, text)
            code, text = client.data(sent.message)
            if code != 250:
                return self._refused(sent, code, text)
            self._acked(sent)
        except (OSError, smtplib.SMTPException):
            if sent.state == "sending":
                sent.state = "unknown"
            return False
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            return False
        return True

    def _append(self, port, sent):
        """One IMAPS session for one APPEND to alice's INBOX; False when the connection failed."""
        try:
            client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=unverified_tls(), timeout=SMTP_TIMEOUT)
            client.login("alice@example.test", PASSWORD)
            code, text = client.append("INBOX", None, None, sent.message)
            if code != "OK":
                return self._refused(sent, code, text)
            self._acked(sent)
            client.logout()
        except (OSError, imaplib.IMAP4.abort):
            if sent.state == "sending":
                sent.state = "unknown"
            return False
        except imaplib.IMAP4.error as problem:     # a NO or BAD from a live server
            return self._refused(sent, "NO", str(problem))
        return True

    def _acked(self, sent):
        with self.cond:
            sent.state = "acked"
            self.acks[sent.generation] = self.acks.get(sent.generation, 0) + 1
            self.cond.notify_all()

    def _refused(self, sent, code, text):
        # No reply of this test's traffic should be refused by a live server: report it.
        sent.state, sent.reply = "refused", (code, text)
        with self.cond:
            self.problems.append(f"{sent.token}: refused {code} {text!r}")
            self.cond.notify_all()
        return True


def check_store(office, sent, seed, when):
    """Check the Maildirs and the spool against *sent*; returns counts of outcomes for the log."""
    by_token = {message.token: message for message in sent}
    problems = []
    parser = email.parser.BytesParser(policy=email.policy.compat32)

    def complete(label, data, expected_size=None):
        """The token of a complete message file, or None after noting the problem."""
        if expected_size is not None and len(data) != expected_size:
            problems.append(f"{label}: {len(data)} octets but S={expected_size}")
            return None
        parsed = parser.parsebytes(data)
        token = parsed["X-Token"]
        message = by_token.get(token)
        if message is None:
            problems.append(f"{label}: no known X-Token ({token!r}), {len(data)} octets")
            return None
        if parsed["Message-ID"] != f"<{token}@client.test>" or parsed.defects:
            problems.append(f"{label}: headers damaged (defects {parsed.defects})")
            return None
        if not data.endswith(message.message):
            problems.append(f"{label}: does not end with the message sent for {token}")
            return None
        return token

    local_counts = {}        # (user, token) -> copies in new/ + cur/
    for user in LOCAL_USERS:
        base = os.path.join(office.data_dir, "mail", "example.test", user)
        for sub in ("new", "cur"):
            directory = os.path.join(base, sub)
            if not os.path.isdir(directory):
                continue
            for name in os.listdir(directory):
                with open(os.path.join(directory, name), "rb") as handle:
                    data = handle.read()
                size = SIZE_IN_NAME.search(name)
                if size is None:
                    problems.append(f"{user}/{sub}/{name}: no S= in the name")
                    continue
                token = complete(f"{user}/{sub}/{name}", data, int(size.group(1)))
                if token is not None:
                    local_counts[user, token] = local_counts.get((user, token), 0) + 1

    spool = Spool(os.path.join(office.data_dir, "queue"))
    loaded = spool.load(repair=True)
    if loaded.corrupt:
        problems.append(f"spool entries moved aside: {loaded.corrupt}")
    remote_counts = {}       # (address, token) -> spool entries
    for envelope in loaded:
        token = complete(f"queue/{envelope.id}", spool.read_message(envelope.id))
        if token is None:
            continue
        for recipient in envelope.recipients:
            key = (recipient.address, token)
            remote_counts[key] = remote_counts.get(key, 0) + 1

    states, stored_unacked = {}, set()
    for message in sent:
        states[message.state] = states.get(message.state, 0) + 1
        for counts, who in ((local_counts, message.local), (remote_counts, message.remote)):
            for recipient in who:
                copies = counts.pop((recipient, message.token), 0)
                if message.state == "acked" and copies != 1:
                    problems.append(f"{message.token} ({message.kind}, got 250 from server "
                                    f"{message.generation}): {copies} copies for {recipient}")
                elif copies == 1 and message.state != "acked":
                    stored_unacked.add(message.token)
                elif copies > 1:
                    problems.append(f"{message.token} ({message.kind}, {message.state}): "
                                    f"{copies} copies for {recipient}")
    for (recipient, token), copies in sorted(local_counts.items()) + sorted(remote_counts.items()):
        problems.append(f"{token}: {copies} copies for {recipient}, who is not one of its recipients")
    assert not problems, (f"seed={seed}, {when}: {len(problems)} problems, e.g.\n  "
                          + "\n  ".join(problems[:20]))
    states["stored without 250"] = len(stored_unacked)
    return states


def test_acknowledged_messages_survive_sigkill(tmp_path):
    seed = int(os.environ.get("DURABILITY_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"durability seed={seed} (replay: DURABILITY_SEED={seed})")
    rng = random.Random(seed)
    started = time.monotonic()
    # Remote mail must stay in the spool for the whole test: the queue runner asks a loopback DNS
    # "server" that never answers, so every MX lookup is still pending when the test ends.
    dns_blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns_blackhole.bind(("127.0.0.1", 0))
    try:
        # Every message is a new connection from 127.0.0.1: no rate limit.
        office = Office(str(tmp_path), resolver="127.0.0.1:%d" % dns_blackhole.getsockname()[1],
                        extra="[limits]\nmax_connection_rate = 0\n").start()
    except BaseException:
        dns_blackhole.close()
        raise
    traffic = Traffic(seed)
    try:
        traffic.serve(office.appliance)
        for thread in traffic.threads:
            thread.start()
        for cycle in range(1, CYCLES + 1):
            traffic.wait_acks(ACKS_BEFORE_KILL)
            delay = rng.uniform(*KILL_DELAY)
            time.sleep(delay)                      # the random kill moment is the point of the test
            process = office.appliance.process
            process.kill()
            status = process.wait(WAIT_BOUND)
            traffic.down()
            states = check_store(office, traffic.snapshot(), seed, f"after kill {cycle} (delay {delay:.3f}s)")
            print(f"kill {cycle} after {delay:.3f}s (exit {status}): {states}")
            office.appliance = Appliance(office.config_path)
            traffic.serve(office.appliance)
        traffic.wait_acks(ACKS_AT_END)
        traffic.stop()
        office.appliance.stop()                    # SIGTERM: a clean shutdown, then wait for exit
        assert not traffic.problems, f"seed={seed}: {traffic.problems}"
        states = check_store(office, traffic.sent, seed, "after the clean stop")
        print(f"final: {states} in {time.monotonic() - started:.1f}s")
        kinds_acked = {message.kind for message in traffic.sent if message.state == "acked"}
        assert kinds_acked == set(KINDS), f"seed={seed}: no 250 at all for {set(KINDS) - kinds_acked}"
    finally:
        with traffic.cond:
            traffic.stopping = True
            traffic.cond.notify_all()
        if office.appliance.process.poll() is None:
            office.appliance.process.kill()
            office.appliance.process.wait(WAIT_BOUND)
        dns_blackhole.close()
