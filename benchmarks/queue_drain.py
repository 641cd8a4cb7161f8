"""How fast the queue reloads and drains: N queued messages to a loopback SMTP sink.

    python benchmarks/queue_drain.py [--count 10000] [--size 2048]

Fills a spool with COUNT entries (one recipient each, an address literal at 127.0.0.2 so no DNS
is involved), times Spool.load() over it (what a restart does), then starts the appliance with
that spool and a counting SMTP sink on 127.0.0.2, and prints messages delivered per second from
start until the sink has them all.  Only loopback addresses are used.
"""

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

from mailbox_appliance.queue.spool import Spool

# The appliance is configured as the tests configure it (port 0, loopback, data in the directory).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from appliance import write_config  # noqa: E402

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


class Sink:
    """A minimal, fast SMTP server that counts the messages it accepts (no TLS offered)."""

    def __init__(self):
        self.count = 0
        self.done = threading.Event()
        self.expected = None
        self.port = None
        ready = threading.Event()
        threading.Thread(target=lambda: asyncio.run(self._serve(ready)), daemon=True).start()
        ready.wait(10)

    async def _serve(self, ready):
        server = await asyncio.start_server(self._session, "127.0.0.2", 0, limit=1 << 24)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await server.serve_forever()

    async def _session(self, reader, writer):
        writer.write(b"220 sink\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                writer.write(b"354 go\r\n")
                await reader.readuntil(b"\r\n.\r\n")
                self.count += 1
                if self.count == self.expected:
                    self.done.set()
                writer.write(b"250 ok\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            elif verb == b"EHLO":
                writer.write(b"250-sink\r\n250 8BITMIME\r\n")
            else:
                writer.write(b"250 ok\r\n")
        await writer.drain()
        writer.close()


def message(size):
    body = ("x" * 70 + "\r\n") * max(1, size // 72)
    return ("From: bench@example.test\r\nTo: sink@[127.0.0.2]\r\nSubject: drain\r\n\r\n" + body).encode()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--profile", metavar="FILE", help="run the appliance under cProfile, stats saved to FILE")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        spool = Spool(os.path.join(directory, "data", "queue"))
        data = message(arguments.size)
        started = time.perf_counter()
        for _ in range(arguments.count):
            spool.add("bench@example.test", ["sink@[127.0.0.2]"], data)
        print(f"filled the spool with {arguments.count} entries in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        loaded = spool.load(repair=False)
        print(f"reload of {len(loaded)} entries (Spool.load): {time.perf_counter() - started:.2f} s")

        sink = Sink()
        sink.expected = arguments.count
        config = write_config(directory, listeners=("smtp",),
                              extra=f"[outbound]\nresolver = 127.0.0.1:9\nsmtp_port = {sink.port}\n")
        started = time.perf_counter()
        profile = ["--profile", arguments.profile, "--profiler", "cprofile", "--savestats"] if arguments.profile else []
        appliance = subprocess.Popen([TWISTD, "-n", "--pidfile=", *profile, "mailbox-appliance", "--config", config],
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
            sys.exit(f"only {sink.count} of {arguments.count} delivered in {elapsed:.0f} s")
        print(f"appliance start log: {re.sub(r'^.*#info] ', '', loaded_line.strip())}")
        draining = done_at - loaded_at[0]
        print(f"drained {arguments.count} messages of {len(data)} bytes in {draining:.1f} s after the queue "
              f"loaded ({elapsed:.1f} s from process start): {arguments.count / draining:.0f} messages/s")


if __name__ == "__main__":
    main()
