"""How fast the queue reloads and drains: N queued messages to a loopback SMTP sink.

    python benchmarks/queue_drain.py [--count 10000] [--size 2048] [--runs 3] [--against-smtp]

Fills a spool with COUNT entries (one recipient each, an address literal at 127.0.0.2 so no DNS
is involved), times Spool.load() over it (what a restart does), then starts the appliance with
that spool and a counting SMTP sink on 127.0.0.2, and prints messages delivered per second from
the queue's start until the sink has them all.  Only loopback addresses are used.

``--against-smtp`` puts a run of benchmarks/smtp_accept.py (5000 messages of the same size, 20
sessions) before each drain run and prints the median rates and their ratio: the queue must
drain at least as fast as the SMTP side accepts.
"""

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import smtp_accept  # beside this file
from mailbox_appliance.queue.spool import Spool

# The appliance is configured as the tests configure it (port 0, loopback, data in the directory).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from appliance import write_config  # noqa: E402

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


class Sink:
    """A minimal, fast SMTP server that counts the messages it accepts (no TLS offered).

    Like Postfix and Exim it answers pipelined commands in one write once it has read all that
    the client sent (RFC 2920 §3.2 asks servers to batch their replies)."""

    def __init__(self):
        self.count = 0
        self.done = threading.Event()
        self.expected = None
        self.port = None
        ready = threading.Event()
        threading.Thread(target=lambda: asyncio.run(self._serve(ready)), daemon=True).start()
        ready.wait(10)

    async def _serve(self, ready):
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SinkSession(self), "127.0.0.2", 0)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await server.serve_forever()

    def accepted(self):
        self.count += 1
        if self.count == self.expected:
            self.done.set()


class SinkSession(asyncio.Protocol):
    def __init__(self, sink):
        self.sink = sink
        self.buffer = b""
        self.in_data = False

    def connection_made(self, transport):
        self.transport = transport
        transport.write(b"220 sink\r\n")

    def data_received(self, data):
        self.buffer += data
        replies = []
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    break
                self.buffer = self.buffer[end + 5:]
                self.in_data = False
                self.sink.accepted()
                replies.append(b"250 ok\r\n")
                continue
            line, found, rest = self.buffer.partition(b"\r\n")
            if not found:
                break
            self.buffer = rest
            verb = line[:4].upper()
            if verb == b"DATA":
                self.in_data = True
                replies.append(b"354 go\r\n")
            elif verb == b"QUIT":
                replies.append(b"221 bye\r\n")
                self.transport.write(b"".join(replies))
                self.transport.close()
                return
            elif verb == b"EHLO":
                replies.append(b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            else:
                replies.append(b"250 ok\r\n")
        if replies:
            self.transport.write(b"".join(replies))


def message(size):
    body = ("x" * 70 + "\r\n") * max(1, size // 72)
    return ("From: bench@example.test\r\nTo: sink@[127.0.0.2]\r\nSubject: drain\r\n\r\n" + body).encode()


def drain_once(count, size, workdir, profile=None):
    """One fill, reload and drain in a new directory under *workdir* (kept: see
    smtp_accept.work_directory); returns (messages delivered per second, reload seconds)."""
    directory = tempfile.mkdtemp(prefix="drain-", dir=workdir)
    spool = Spool(os.path.join(directory, "data", "queue"))
    data = message(size)
    started = time.perf_counter()
    for _ in range(count):
        spool.add("bench@example.test", ["sink@[127.0.0.2]"], data)
    print(f"filled the spool with {count} entries in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    loaded = spool.load(repair=False)
    reload_seconds = time.perf_counter() - started
    print(f"reload of {len(loaded)} entries (Spool.load): {reload_seconds:.2f} s")

    sink = Sink()
    sink.expected = count
    config = write_config(directory, listeners=("smtp",),
                          extra=f"[outbound]\nresolver = 127.0.0.1:9\nsmtp_port = {sink.port}\n")
    started = time.perf_counter()
    profiling = ["--profile", profile, "--profiler", "cprofile", "--savestats"] if profile else []
    appliance = subprocess.Popen([TWISTD, "-n", "--pidfile=", *profiling, "mailbox-appliance", "--config", config],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = []
    loaded_at = []

    def read_log():
        for line in appliance.stdout:
            log.append(line)
            if "queue loaded" in line:
                loaded_at.append(time.perf_counter())

    threading.Thread(target=read_log, daemon=True).start()
    finished = sink.done.wait(600)
    done_at = time.perf_counter()
    elapsed = done_at - started
    loaded_line = next((line for line in log if "queue loaded" in line), "")
    appliance.terminate()
    appliance.wait(30)
    if not finished:
        sys.exit(f"only {sink.count} of {count} delivered in {elapsed:.0f} s")
    print(f"appliance start log: {re.sub(r'^.*#info] ', '', loaded_line.strip())}")
    draining = done_at - loaded_at[0]
    print(f"drained {count} messages of {len(data)} bytes in {draining:.1f} s after the queue "
          f"loaded ({elapsed:.1f} s from process start): {count / draining:.0f} messages/s", flush=True)
    return count / draining, reload_seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--against-smtp", action="store_true",
                        help="before each run, measure the SMTP accept rate (benchmarks/smtp_accept.py)")
    parser.add_argument("--profile", metavar="FILE", help="run the appliance under cProfile, stats saved to FILE")
    arguments = parser.parse_args()
    drained, reloads, accepted = [], [], []
    with smtp_accept.work_directory(tempfile.gettempdir()) as workdir:
        for run in range(1, arguments.runs + 1):
            if arguments.against_smtp:
                accepting = argparse.Namespace(count=5000, size=arguments.size, concurrency=20,
                                               wait_idle=0, profile=None, server_log=None)
                users_line = f"{smtp_accept.RECIPIENT}:{smtp_accept.password_hash()}"
                accepted.append(smtp_accept.one_run(accepting, users_line, run, workdir)["rate"])
            rate, reload_seconds = drain_once(arguments.count, arguments.size, workdir, arguments.profile)
            drained.append(rate)
            reloads.append(reload_seconds)
    if arguments.runs > 1 or accepted:
        print(f"median of {arguments.runs}: drain {statistics.median(drained):.0f} messages/s, "
              f"reload of {arguments.count} entries {statistics.median(reloads):.2f} s")
    if accepted:
        print(f"median SMTP accept rate {statistics.median(accepted):.0f} msg/s: the queue drains at "
              f"{statistics.median(drained) / statistics.median(accepted):.2f}x the accept rate")


if __name__ == "__main__":
    main()
