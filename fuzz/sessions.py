"""Fuzz the IMAP and SMTP command parsers for as long as asked: mutated commands
(tests/imap_fuzzing.py, tests/smtp_fuzzing.py) against a fresh appliance, seed after seed,
until a traceback or an unanswered command.

    .venv/bin/python fuzz/sessions.py imap --minutes 10 [--seed N]
    .venv/bin/python fuzz/sessions.py smtp --minutes 10 [--seed N]

Prints each seed's count and, on a failure, the seed and the log's traceback: add the command
that found it to the protocol's test file (test_imap_fuzz.py, test_smtp_fuzz.py).
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import fuzzing  # noqa: E402
import imap_fuzzing  # noqa: E402
import imapclient  # noqa: E402
import smtp_fuzzing  # noqa: E402
from conftest import Office  # noqa: E402

COMMANDS_PER_SEED = 5000
FUZZERS = {"imap": imap_fuzzing, "smtp": smtp_fuzzing}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", choices=sorted(FUZZERS))
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    options = parser.parse_args()
    fuzzer = FUZZERS[options.protocol]
    deadline = time.monotonic() + options.minutes * 60
    with tempfile.TemporaryDirectory() as directory:
        office = Office(directory, extra="[limits]\nmax_connection_rate = 0\n").start()
        try:
            session = imapclient.Session(office)
            for number in range(3):
                stored = imapclient.message(f"m{number}")
                session.ok(b"APPEND INBOX {%d+}\r\n" % len(stored) + stored)
            session.close()
            seed = options.seed
            total = 0
            while time.monotonic() < deadline:
                closed = fuzzer.run(office, COMMANDS_PER_SEED, seed)
                total += COMMANDS_PER_SEED
                found = fuzzing.tracebacks(office.appliance.lines)
                print(f"seed {seed}: {COMMANDS_PER_SEED} commands ({total} in all), {closed} sessions closed by "
                      f"the server, {len(found)} tracebacks", flush=True)
                if found:
                    start = office.appliance.lines.index(found[0])
                    print("".join(office.appliance.lines[max(start - 2, 0):start + 30]))
                    return 1
                seed += 1
        finally:
            office.appliance.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
