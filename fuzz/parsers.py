"""Run each parser fuzz target of tests/test_fuzz_parsers.py for as long as asked, with new
inputs every round, until a failure.

    .venv/bin/python fuzz/parsers.py --minutes 10 [--only NAME ...]

Each round is one pytest run of one target with FUZZ_EXAMPLES examples and a new
--hypothesis-seed; prints each target's rounds and examples, and on a failure pytest's output
(Hypothesis shrinks the input and prints it: add it to the target as an ``@example``).
"""

import argparse
import ast
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS_FILE = os.path.join(HERE, "..", "tests", "test_fuzz_parsers.py")
EXAMPLES_PER_ROUND = 2000


def targets():
    """The names of the Hypothesis tests in TARGETS_FILE (those decorated with @given)."""
    with open(TARGETS_FILE, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "given"
                    for decorator in node.decorator_list)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="for each target")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these targets only")
    options = parser.parse_args()
    environment = dict(os.environ, FUZZ_EXAMPLES=str(EXAMPLES_PER_ROUND))
    seed = int(time.time())
    for name in options.only or targets():
        deadline = time.monotonic() + options.minutes * 60
        rounds = 0
        while time.monotonic() < deadline:
            seed += 1
            result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                     f"--hypothesis-seed={seed}", f"{TARGETS_FILE}::{name}"],
                                    env=environment, capture_output=True, text=True)
            if result.returncode != 0:
                print(f"{name}: failed in round {rounds + 1} (seed {seed})\n{result.stdout}{result.stderr}")
                return 1
            rounds += 1
        print(f"{name}: {rounds} rounds, {rounds * EXAMPLES_PER_ROUND} examples, no failure", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
