"""Mutated IMAP commands against a running appliance (issue 20 #2): the server must answer each
with a tagged response or a BYE, and log no traceback.

Used by test_imap_fuzz.py for a short seeded run and by fuzz/imap_commands.py for long ones.
"""

import random
import re

import imapclient

# Valid commands to start from: every command and argument shape the server parses.
CORPUS = [
    b"CAPABILITY", b"NOOP", b"SELECT INBOX", b"EXAMINE INBOX", b"SELECT INBOX (CONDSTORE)",
    b"FETCH 1:* (FLAGS UID)", b"UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])",
    b"FETCH 1 (BODY[1.2.MIME]<0.100>)", b"FETCH 1 BODYSTRUCTURE", b"FETCH 1 (ENVELOPE INTERNALDATE RFC822.SIZE)",
    b"FETCH 1 (BINARY.PEEK[1]<0.10> BINARY.SIZE[1])", b"FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
    b"STORE 1:* +FLAGS (\\Seen \\Flagged)", b"UID STORE 1:* -FLAGS.SILENT (\\Deleted)",
    b"STORE 1 (UNCHANGEDSINCE 5) FLAGS ($Junk)", b"SEARCH OR FROM a SUBJECT b",
    b"UID SEARCH CHARSET UTF-8 TEXT \"abc\"", b"SEARCH RETURN (MIN MAX COUNT) SINCE 1-Jan-2020 NOT DELETED",
    b"UID SEARCH UID 1:* MODSEQ 1", b"SEARCH HEADER Subject x LARGER 10 (OR SEEN KEYWORD $x)",
    b"SORT (REVERSE DATE SUBJECT) UTF-8 ALL", b"THREAD REFERENCES UTF-8 ALL",
    b"LIST \"\" *", b"LIST (SUBSCRIBED) \"\" \"%\" RETURN (STATUS (MESSAGES))", b"LSUB \"\" \"%\"",
    b"STATUS INBOX (MESSAGES UNSEEN UIDNEXT HIGHESTMODSEQ)", b"CREATE foo/bar", b"RENAME foo baz",
    b"DELETE baz", b"COPY 1:2 Trash", b"UID MOVE 1 Junk", b"EXPUNGE", b"UID EXPUNGE 1:3",
    b"ENABLE CONDSTORE", b"GETQUOTAROOT INBOX", b"GETQUOTA \"\"", b"NAMESPACE", b"ID (\"name\" \"x\")",
    b"CHECK", b"UNSELECT", b"SUBSCRIBE INBOX", b"APPEND INBOX (\\Seen) \"1-Jan-2020 00:00:00 +0000\" ~{0}",
]
# What a hostile client inserts.
JUNK = [b"\xff", b"\t", b"(", b")", b"[", b"]", b"{", b"}", b"\"", b"\\", b"*", b"%", b"<", b">", b".",
        b"\x00", b" ", b"\xc3\xa9", b"1:*", b"-1", b"NIL", b"4294967296", b"$", b"~"]


def mutate(rng, command):
    """*command* with one to four insertions, deletions, splices or flipped octets; on one line,
    and with no literal announced (a literal would make the server wait for its octets)."""
    mutated = bytearray(command)
    for _ in range(rng.randint(1, 4)):
        position = rng.randint(0, len(mutated))
        choice = rng.random()
        if choice < 0.4:
            mutated[position:position] = rng.choice(JUNK)
        elif choice < 0.7:
            del mutated[position:position + rng.randint(1, 3)]
        elif choice < 0.85:
            other = rng.choice(CORPUS)
            start = rng.randint(0, len(other))
            mutated[position:position] = other[start:start + rng.randint(1, 8)]
        elif position < len(mutated):
            mutated[position] = rng.randint(0, 255)
    line = bytes(mutated).replace(b"\r", b" ").replace(b"\n", b" ")
    return re.sub(rb"\{(\d+\+?)\}$", rb"(\1)", line)


def answer(session, tag, command):
    """Send *command*; the last line of its answer: the tagged one, a BYE, or b"" (closed)."""
    session.sock.sendall(tag + b" " + command + b"\r\n")
    while True:
        line = session.reader.readline()
        if not line or line.startswith(tag + b" ") or line.startswith(b"* BYE"):
            return line


def run(office, commands, seed):
    """Send *commands* mutated commands, in sessions selecting INBOX; returns how many sessions
    the server closed.  Raises AssertionError when a command goes unanswered."""
    rng = random.Random(seed)
    sent = closed = 0
    while sent < commands:
        session = imapclient.Session(office)
        session.ok(b"SELECT INBOX")
        while sent < commands:
            command = mutate(rng, rng.choice(CORPUS))
            sent += 1
            last = answer(session, b"f%d" % sent, command)
            assert last, f"no answer to {command!r} (seed {seed})"
            if last.startswith(b"* BYE"):
                closed += 1
                break
        session.close()
    return closed


def tracebacks(lines):
    """The log lines that start a traceback or an unhandled error."""
    return [line for line in lines if "Traceback" in line or "Unhandled Error" in line or "#critical]" in line]
