"""What the session fuzzers share (issue 20): mutation of a valid command line, and the search
of the appliance's log for tracebacks.

imap_fuzzing.py and smtp_fuzzing.py hold each protocol's corpus and conversation; the test suite
runs them briefly and seeded (test_imap_fuzz.py, test_smtp_fuzz.py), fuzz/sessions.py for as long
as asked.
"""

import random

# What a hostile client inserts.
JUNK = [b"\xff", b"\t", b"(", b")", b"[", b"]", b"{", b"}", b"\"", b"\\", b"*", b"%", b"<", b">", b".",
        b"\x00", b" ", b"\xc3\xa9", b"1:*", b"-1", b"NIL", b"4294967296", b"$", b"~", b"=", b":", b"@"]


def mutate(rng, corpus, one_line=True):
    """An entry of *corpus* with one to four insertions, deletions, splices or flipped octets;
    kept on one line unless *one_line* is false."""
    mutated = bytearray(rng.choice(corpus))
    for _ in range(rng.randint(1, 4)):
        position = rng.randint(0, len(mutated))
        choice = rng.random()
        if choice < 0.4:
            mutated[position:position] = rng.choice(JUNK)
        elif choice < 0.7:
            del mutated[position:position + rng.randint(1, 3)]
        elif choice < 0.85:
            other = rng.choice(corpus)
            start = rng.randint(0, len(other))
            mutated[position:position] = other[start:start + rng.randint(1, 8)]
        elif position < len(mutated):
            mutated[position] = rng.randint(0, 255)
    return bytes(mutated).replace(b"\r", b" ").replace(b"\n", b" ") if one_line else bytes(mutated)


def generator(seed):
    """The random source of one seeded run: the same seed, the same commands."""
    return random.Random(seed)


def tracebacks(lines):
    """The log lines that start a traceback or an unhandled error."""
    return [line for line in lines if "Traceback" in line or "Unhandled Error" in line or "#critical]" in line]
