"""What each IMAP command costs on messages built to make the parsers work hard (issue 20: every
FETCH/SEARCH/SORT/THREAD under 1 s, resident memory growing less than 100 MB).

    .venv/bin/python benchmarks/hostile_messages.py

Prints, per message and command, the seconds the answer took (median of 3) and the appliance's
RSS before and after; then the largest RSS growth.
"""

import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import hostile_messages  # noqa: E402

ROUNDS = 3


def rss_mb(office):
    with open(f"/proc/{office.appliance.process.pid}/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS:"))


def main():
    with tempfile.TemporaryDirectory() as directory:
        office, session = hostile_messages.stored_office(directory)
        try:
            start = rss_mb(office)
            print(f"RSS after storing them: {start} MB")
            print(f"{'message':22} {'command':42} {'median s':>9} {'RSS MB':>12}")
            for number, name in enumerate(hostile_messages.MESSAGES, 1):
                for command in hostile_messages.COMMANDS:
                    before = rss_mb(office)
                    seconds = []
                    for _ in range(ROUNDS):
                        began = time.perf_counter()
                        session.ok(command % number)
                        seconds.append(time.perf_counter() - began)
                    print(f"{name:22} {(command % number).decode():42} {statistics.median(seconds):9.3f} "
                          f"{before:5} ->{rss_mb(office):5}", flush=True)
            print(f"RSS growth over all commands: {rss_mb(office) - start} MB")
        finally:
            office.appliance.stop()


if __name__ == "__main__":
    main()
