"""The SIGKILL durability test at scale: by default 50 kills and 10,000 acknowledged messages,
SMTP and IMAP APPEND mixed (tests/test_smtp_durability.py, scaled up by its environment).

    .venv/bin/python benchmarks/kill_durability.py [--kills 50] [--messages 10000] [--seed N]

Prints the test's line per kill (what the store held: acknowledged, unknown, stored without an
acknowledgement) and its final line; a lost, torn or duplicated message fails the run, with the
seed that replays it.
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TEST = os.path.join(HERE, "..", "tests", "test_smtp_durability.py")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--messages", type=int, default=10000, help="acknowledged, at least")
    parser.add_argument("--seed", type=int)
    options = parser.parse_args()
    environment = dict(os.environ, DURABILITY_CYCLES=str(options.kills),
                       DURABILITY_ACKS=str(-(-options.messages // (options.kills + 1))))
    if options.seed is not None:
        environment["DURABILITY_SEED"] = str(options.seed)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST],
                            env=environment)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
