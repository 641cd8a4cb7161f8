"""IMAP on a large folder: COUNT messages (default 100,000) in one INBOX, timed over a real
connection.

    python benchmarks/imap_scale.py [--count 100000] [--keep DIR] [--against-dovecot]

Fills the INBOX by writing Maildir files directly (imap_server.fill), starts the appliance, logs
in over IMAPS and times, one command at a time: the first SELECT (which assigns and saves the
UIDs of every message), a second SELECT, ``UID FETCH 1:* (UID FLAGS RFC822.SIZE)``,
``FETCH 1:200 (ENVELOPE BODYSTRUCTURE)``, ``UID SEARCH UNSEEN``, ``UID SEARCH SUBJECT x``,
``UID SEARCH BODY x`` (every message read), and
``UID SORT (REVERSE DATE) UTF-8 ALL`` twice (the first reads every header, the second finds the
keys cached), plus ``UID SORT (SUBJECT) UTF-8 ALL``; then ten STOREs spread over the folder and
``UID FETCH 1:* (FLAGS) (CHANGEDSINCE n)`` from before them (CONDSTORE, RFC 7162: what a phone
asks when it reconnects).  Prints each time, the target where the
design sets one (a 100,000-message folder must open fast), the server's peak RSS (VmHWM) and the load average.
``--keep DIR`` fills DIR once and reuses it on later runs (the fill is not timed).

``--against-dovecot`` then times the same commands on Debian's Dovecot (dovecot-imapd,
tests/dovecot_server.py) serving the same messages (filled again, with the same seed, into a
Maildir of its own with no dovecot-uidlist: its first SELECT does the same work), and prints each
time beside the appliance's with the ratio, and the peak RSS of Dovecot's imap process.
"""

import argparse
import os
import re
import shutil
import tempfile
import time

from imap_server import PASSWORD, USER, Appliance, Client, fill, start_dovecot

TARGETS = {"second SELECT": 1.0, "UID FETCH 1:* (UID FLAGS RFC822.SIZE)": 3.0,
           "UID SORT (REVERSE DATE) UTF-8 ALL, cached": 2.0,
           "UID FETCH 1:* (FLAGS) (CHANGEDSINCE n), 10 changed": 0.05}
RSS_TARGET_MIB = 300
COMMANDS = [
    ("first SELECT", b"SELECT INBOX"),
    ("second SELECT", b"SELECT INBOX"),
    ("UID FETCH 1:* (UID FLAGS RFC822.SIZE)", b"UID FETCH 1:* (UID FLAGS RFC822.SIZE)"),
    ("FETCH 1:200 (ENVELOPE BODYSTRUCTURE)", b"FETCH 1:200 (ENVELOPE BODYSTRUCTURE)"),
    ("UID SEARCH UNSEEN", b"UID SEARCH UNSEEN"),
    ("UID SEARCH SUBJECT x", b"UID SEARCH SUBJECT x"),
    ("UID SEARCH BODY x", b"UID SEARCH BODY x"),
    ("UID SORT (REVERSE DATE) UTF-8 ALL, first", b"UID SORT (REVERSE DATE) UTF-8 ALL"),
    ("UID SORT (REVERSE DATE) UTF-8 ALL, cached", b"UID SORT (REVERSE DATE) UTF-8 ALL"),
    ("UID SORT (SUBJECT) UTF-8 ALL, cached", b"UID SORT (SUBJECT) UTF-8 ALL"),
]


def report(label, lines, seconds):
    target = TARGETS.get(label)
    verdict = "" if target is None else f"  (target < {target:g} s: {'met' if seconds < target else 'MISSED'})"
    print(f"{label:45s} {seconds:8.3f} s  {len(lines) - 1:7d} untagged{verdict}")


def time_commands(port, count, peak_rss=None):
    """Log in to *port*, run COMMANDS and the CONDSTORE check; {label: seconds}, each reported,
    and what *peak_rss()* says before the session ends (Dovecot's imap process ends with it)."""
    times = {}
    client = Client(port)
    client.command(b'LOGIN %s "%s"' % (USER.encode(), PASSWORD.encode()))
    print(f"{count} messages, load average before: {os.getloadavg()[0]:.2f}")
    for label, command in COMMANDS:
        lines, times[label] = client.command(command)
        report(label, lines, times[label])
    lines, _seconds = client.command(b"STATUS INBOX (HIGHESTMODSEQ)")
    since = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(lines)).group(1))
    for number in range(1, count + 1, max(1, count // 10)):
        client.command(b"STORE %d +FLAGS.SILENT (\\Flagged)" % number)
    label = "UID FETCH 1:* (FLAGS) (CHANGEDSINCE n), 10 changed"
    lines, times[label] = client.command(b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % since)
    report(label, lines, times[label])
    rss = peak_rss() if peak_rss else None
    client.close()
    return times, rss


def dovecot_times(base, count):
    """The same commands on Dovecot serving the same messages: ({label: seconds}, peak RSS MiB)."""
    dovecot = start_dovecot(os.path.join(base, "dovecot"), count)
    try:
        return time_commands(dovecot.tls_port, count, _dovecot_imap_rss_mib)
    finally:
        dovecot.stop()


def _dovecot_imap_rss_mib():
    """The largest peak RSS (VmHWM) of Dovecot's imap processes (they name themselves dovecot/imap)."""
    peak = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if not handle.read().startswith(b"dovecot/imap"):
                    continue
            with open(f"/proc/{pid}/status") as handle:
                peak = max(peak, int(re.search(r"VmHWM:\s+(\d+) kB", handle.read()).group(1)))
        except (OSError, AttributeError):
            continue
    return peak / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--keep", help="a directory to fill once and reuse")
    parser.add_argument("--against-dovecot", action="store_true")
    options = parser.parse_args()
    base = options.keep or tempfile.mkdtemp(prefix="imap-scale-")
    marker = os.path.join(base, "filled-%d" % options.count)
    fresh = not os.path.exists(marker)
    if fresh:
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(base)
    started = time.perf_counter()
    server = Appliance(base)
    try:
        if fresh:
            fill(server.maildir, options.count)
            open(marker, "w").close()
            print(f"filled {options.count} messages in {time.perf_counter() - started:.1f} s")
        else:
            # A reused directory keeps its UID list: remove it so the first SELECT does the work.
            os.unlink(os.path.join(server.maildir, "dovecot-uidlist"))
        ours, rss = time_commands(server.port, options.count, server.peak_rss_mib)
        print(f"server peak RSS (VmHWM) {rss:.0f} MiB  (target < {RSS_TARGET_MIB} MiB: "
              f"{'met' if rss < RSS_TARGET_MIB else 'MISSED'})")
        print(f"load average after: {' '.join('%.2f' % load for load in os.getloadavg())}")
    finally:
        server.stop()
        if not options.keep:
            shutil.rmtree(base, ignore_errors=True)
    if options.against_dovecot:
        place = tempfile.mkdtemp(prefix="imap-scale-dovecot-")
        try:
            theirs, their_rss = dovecot_times(place, options.count)
        finally:
            shutil.rmtree(place, ignore_errors=True)
        print(f"\n{'':45s} {'appliance':>10s} {'Dovecot':>10s}  appliance/Dovecot time")
        for label, seconds in ours.items():
            print(f"{label:45s} {seconds:9.3f}s {theirs[label]:9.3f}s  {seconds / max(theirs[label], 1e-6):6.2f}x")
        print(f"{'peak RSS (MiB)':45s} {rss:10.0f} {their_rss:10.0f}")


if __name__ == "__main__":
    main()
