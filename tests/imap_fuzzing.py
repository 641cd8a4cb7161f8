"""Mutated IMAP commands against a running appliance (issue 20 #2): the server must answer each
with a tagged response or a BYE, and log no traceback.

Used by test_imap_fuzz.py for a short seeded run and by fuzz/sessions.py for long ones.
"""

import re

import fuzzing
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


def mutated(rng):
    """A mutated command, with no literal announced (the server would wait for its octets); a
    marker followed by spaces counts, since the server takes ``{n} `` as one too."""
    return re.sub(rb"\{(\d+\+?)\}(\s*)$", rb"(\1)\2", fuzzing.mutate(rng, CORPUS))


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
    rng = fuzzing.generator(seed)
    sent = closed = 0
    while sent < commands:
        session = imapclient.Session(office)
        session.ok(b"SELECT INBOX")
        while sent < commands:
            command = mutated(rng)
            sent += 1
            last = answer(session, b"f%d" % sent, command)
            assert last, f"no answer to {command!r} (seed {seed})"
            if last.startswith(b"* BYE"):
                closed += 1
                break
        session.close()
    return closed

