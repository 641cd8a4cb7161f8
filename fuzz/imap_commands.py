"""Fuzz the IMAP command parser for as long as asked: mutated commands (tests/imap_fuzzing.py)
against a fresh appliance, seed after seed, until a traceback or an unanswered command.

    .venv/bin/python fuzz/imap_commands.py --minutes 10 [--seed N]

Prints each seed's count and, on a failure, the seed and the log's traceback: add the command
that found it to test_imap_fuzz.py's regression list.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import imap_fuzzing  # noqa: E402
from conftest import Office  # noqa: E402

COMMANDS_PER_SEED = 5000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    options = parser.parse_args()
    deadline = time.monotonic() + options.minutes * 60
    with tempfile.TemporaryDirectory() as directory:
        office = Office(directory, extra="[limits]\nmax_connection_rate = 0\n").start()
        try:
            seed = options.seed
            while time.monotonic() < deadline:
                closed = imap_fuzzing.run(office, COMMANDS_PER_SEED, seed)
                found = imap_fuzzing.tracebacks(office.appliance.lines)
                print(f"seed {seed}: {COMMANDS_PER_SEED} commands, {closed} sessions closed by the server, "
                      f"{len(found)} tracebacks", flush=True)
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
