"""IMAP under a mixed load: CLIENTS concurrent sessions on one 200-message INBOX.

    python benchmarks/imap_load.py [--clients 10] [--seconds 20] [--messages 200] [--keep-open]
                                   [--against-dovecot] [--imaptest PATH [--imaptest-mbox MBOX]]

Each client loops, one command at a time over IMAPS: LOGIN, SELECT INBOX, ``FETCH 1:* (FLAGS)``,
``FETCH n (BODY.PEEK[])`` of three random messages, ``STORE n +FLAGS (\\Seen)``, APPEND of a new
message (a LITERAL+ literal), ``UID STORE <it> +FLAGS.SILENT (\\Deleted)``, EXPUNGE, LOGOUT; so the
folder stays at its size.  With ``--keep-open`` each client logs in and selects once and loops
over the rest.  Prints commands per second, loops per second, and p50/p99 latency per command,
with the load average; for reference, Dovecot on a 2-core machine: about 1,200
commands/s (135 loops/s) login to logout, about 8,500 commands/s with sessions kept open.

The clients are threads of this process (each waits on its socket most of the time); their CPU
time is printed beside the server's, so a client-bound figure would show.

``--against-dovecot`` then runs the same clients, for the same time, against Debian's Dovecot
(dovecot-imapd; tests/dovecot_server.py) serving a copy of the same folder over IMAPS, and
prints the ratio of the two command rates.  Dovecot keeps its defaults, but its password is
stored {PLAIN}: the appliance checks the Argon2 hash once and then keeps the verified password
for 5 minutes, while Dovecot's auth cache still verifies the hash at every login (about a second
each here), which would measure Argon2 rather than IMAP.

``--imaptest PATH`` drives the load with Dovecot's imaptest instead (a C client: the Python
clients above become the limit before a fast server does), its own command mix with *clients*
sessions for *seconds*, ``logout=0`` with ``--keep-open``, appending from *MBOX* (default:
``tests/default.mbox`` beside the binary, as in imaptest's source tree); it prints imaptest's
totals per command, and commands/s is their sum over the time.  imaptest is not packaged by
Debian: build it from its source (github.com/dovecot/imaptest, branch release-2.3) against
dovecot-dev, outside this repository; it runs with LD_LIBRARY_PATH=/usr/lib/dovecot.
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections import defaultdict

from imap_server import PASSWORD, USER, Appliance, Client, fill, message, start_dovecot

LOGIN = b'LOGIN %s "%s"' % (USER.encode(), PASSWORD.encode())


def _session(port, deadline, keep_open, seed, timings):
    rng = random.Random(seed)
    client = None
    loops = 0
    view = {"exists": 0}            # the session's message count, as the server told it

    def timed(name, text):
        lines, seconds = client.command(text)
        timings[name].append(seconds)
        for line in lines:
            if line.endswith(b" EXISTS\r\n"):
                view["exists"] = int(line.split()[1])
            elif line.endswith(b" EXPUNGE\r\n"):
                view["exists"] -= 1
        return lines

    while time.monotonic() < deadline:
        if client is None:
            client = Client(port)
            timed("LOGIN", LOGIN)
            timed("SELECT", b"SELECT INBOX")
        timed("FETCH flags", b"FETCH 1:* (FLAGS)")
        for _ in range(3):
            timed("FETCH message", b"FETCH %d (BODY.PEEK[])" % rng.randint(1, view["exists"]))
        timed("STORE", b"STORE %d +FLAGS (\\Seen)" % rng.randint(1, view["exists"]))
        data = message(seed, rng)
        lines = timed("APPEND", b"APPEND INBOX {%d+}\r\n%s" % (len(data), data))
        uid = lines[-1].split(b"[APPENDUID ", 1)[1].split(b"]")[0].split()[1]
        timed("UID STORE", b"UID STORE %s +FLAGS.SILENT (\\Deleted)" % uid)
        timed("EXPUNGE", b"EXPUNGE")
        if not keep_open:
            timed("LOGOUT", b"LOGOUT")
            client.close()
            client = None
        loops += 1
    if client is not None:
        client.close()
    return loops


def run_load(port, options):
    """CLIENTS sessions against *port* for SECONDS; prints and returns commands per second."""
    timings = defaultdict(list)
    loops = []
    deadline = time.monotonic() + options.seconds
    cpu_before, load_before = os.times(), os.getloadavg()[0]
    threads = [threading.Thread(target=lambda n=n: loops.append(
        _session(port, deadline, options.keep_open, n, timings))) for n in range(options.clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    cpu = os.times()
    commands = sum(len(values) for values in timings.values())
    mode = "sessions kept open" if options.keep_open else "login to logout"
    print(f"{options.clients} clients, {mode}, {options.messages} messages, {elapsed:.1f} s, "
          f"load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"{commands / elapsed:.0f} commands/s, {sum(loops) / elapsed:.1f} loops/s; client CPU "
          f"{cpu.user + cpu.system - cpu_before.user - cpu_before.system:.1f} s")
    for name, values in timings.items():
        values.sort()
        print(f"  {name:14s} {len(values):7d}  p50 {statistics.median(values) * 1e3:7.1f} ms  "
              f"p99 {values[min(len(values) - 1, int(len(values) * 0.99))] * 1e3:7.1f} ms")
    return commands / elapsed


def run_imaptest(port, options):
    """imaptest's load against *port*; prints its totals and returns commands per second."""
    mbox = options.imaptest_mbox or os.path.join(os.path.dirname(os.path.abspath(options.imaptest)),
                                                 "tests", "default.mbox")
    command = [options.imaptest, "host=127.0.0.1", f"port={port}", "ssl=any-cert", f"user={USER}",
               f"pass={PASSWORD}", f"mbox={mbox}", f"clients={options.clients}",
               f"secs={int(options.seconds)}"] + (["logout=0"] if options.keep_open else [])
    environment = {**os.environ, "LD_LIBRARY_PATH": "/usr/lib/dovecot"}
    result = subprocess.run(command, capture_output=True, text=True, env=environment,
                            timeout=options.seconds + 120)
    lines = result.stdout.splitlines()
    if result.returncode != 0 or "Totals:" not in lines:
        raise SystemExit(f"imaptest failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    names, counts = lines[lines.index("Totals:") + 1], lines[lines.index("Totals:") + 4]
    latency = [line for line in lines if line.endswith("ms/cmd avg")]
    errors = sum("Error:" in line for line in lines)
    total = sum(int(count) for count in counts.split())
    print(f"{options.clients} imaptest clients, {'kept open' if options.keep_open else 'login to logout'}, "
          f"{int(options.seconds)} s: {total / int(options.seconds):.0f} commands/s, {errors} errors")
    print(f"  {names}\n  {counts}" + (f"\n  {latency[-1]} (last second)" if latency else ""))
    return total / int(options.seconds)


def run_dovecot(base, options):
    """The same load against Dovecot serving a copy of the folder; returns commands per second."""
    dovecot = start_dovecot(os.path.join(base, "dovecot"), options.messages)
    try:
        return (run_imaptest if options.imaptest else run_load)(dovecot.tls_port, options)
    finally:
        dovecot.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--keep-open", action="store_true")
    parser.add_argument("--against-dovecot", action="store_true")
    parser.add_argument("--imaptest", metavar="PATH", help="Dovecot's imaptest binary: it makes the load")
    parser.add_argument("--imaptest-mbox", metavar="MBOX", help="the mbox imaptest appends from")
    options = parser.parse_args()
    base = tempfile.mkdtemp(prefix="imap-load-")
    try:
        server = Appliance(base)
        try:
            fill(server.maildir, options.messages)
            server_cpu_before = server.cpu_seconds()
            print("the appliance:")
            ours = (run_imaptest if options.imaptest else run_load)(server.port, options)
            print(f"server CPU {server.cpu_seconds() - server_cpu_before:.1f} s, "
                  f"peak RSS (VmHWM) {server.peak_rss_mib():.0f} MiB")
        finally:
            server.stop()
        if options.against_dovecot:
            theirs = run_dovecot(base, options)
            print(f"the appliance serves {ours / theirs:.2f}x Dovecot's commands per second")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
