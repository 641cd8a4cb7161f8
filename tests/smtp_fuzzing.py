"""Mutated SMTP commands and messages against a running appliance's port 25 (issue 20): the
server must answer each with a reply, or close with 421/221, and log no traceback.

Used by test_smtp_fuzz.py for a short seeded run and by fuzz/sessions.py for long ones.
"""

import re

import fuzzing
from rawsmtp import RawSMTP

# Valid commands to start from: every verb and parameter the server parses (RFC 5321, 1870,
# 6152, 3461, 6531, 3030, 4954).
CORPUS = [
    b"EHLO client.example.test", b"HELO client.example.test", b"EHLO [127.0.0.1]", b"EHLO [IPv6:::1]",
    b"MAIL FROM:<a@remote.test>", b"MAIL FROM:<> SIZE=100 BODY=8BITMIME", b"MAIL FROM:<\"a b\"@remote.test> SMTPUTF8",
    b"MAIL FROM:<a@remote.test> RET=HDRS ENVID=QQ+2Bx", b"MAIL FROM:<@relay.test:a@remote.test>",
    b"RCPT TO:<alice@example.test>", b"RCPT TO:<postmaster>", b"RCPT TO:<bob+tag@example.test> NOTIFY=SUCCESS,FAILURE",
    b"RCPT TO:<alice@example.test> ORCPT=rfc822;alice@example.test", b"RCPT TO:<sales@example.test>",
    b"RCPT TO:<x@[127.0.0.1]>", b"RCPT TO:<someone@elsewhere.test>", b"DATA", b"BDAT 12 LAST", b"BDAT 5",
    b"RSET", b"NOOP", b"VRFY alice", b"EXPN staff", b"HELP", b"AUTH PLAIN AGFsaWNlAHNlY3JldA==", b"AUTH LOGIN",
]
MESSAGES = [
    b"From: a@remote.test\r\nTo: alice@example.test\r\nSubject: hello\r\n\r\nbody\r\n",
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n",
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\n.\r\n..\r\nline\r\n",
]
# A chunk the fuzzer sends at most, whatever BDAT size it announced.
MAX_CHUNK = 4096


def message(rng):
    """A mutated message, dot-stuffed (RFC 5321 §4.5.2: every line that starts with "." gets a
    second one, after a CR or an LF alike), so that the data never ends early."""
    return re.sub(rb"(^|[\r\n])\.", rb"\1..", fuzzing.mutate(rng, MESSAGES, one_line=False))


def bdat_size(command):
    """The chunk size a BDAT command announces, as the server reads it, or None."""
    verb, _, argument = command.partition(b" ")
    words = argument.strip(b" ").split()
    if verb.upper() != b"BDAT" or not words or not words[0].isdigit() or len(words) > 2:
        return None
    return int(words[0]) if len(words) == 1 or words[1].upper() == b"LAST" else None


def mutated(rng):
    """A mutated command; a BDAT announces at most MAX_CHUNK octets."""
    command = fuzzing.mutate(rng, CORPUS)
    size = bdat_size(command)
    if size is not None and size > MAX_CHUNK:
        command = command.replace(b"%d" % size, b"%d" % (size % MAX_CHUNK), 1)
    return command if (bdat_size(command) or 0) <= MAX_CHUNK else b"NOOP"


def converse(client, rng, command):
    """Send *command* and what its reply asks for (the message after 354, the chunk after
    BDAT, a cancel after 334); the last reply code, or None when the server closed."""
    if command.upper().startswith(b"STARTTLS"):
        command = b"NOOP"      # the server would wait for a TLS handshake
    size = bdat_size(command)
    client.send(command + b"\r\n" + (rng.randbytes(size) if size is not None else b""))
    code, _ = client.reply()
    while code == 334:
        code, _ = client.command(b"*")
    if code == 354:
        code, _ = client.command(message(rng) + b"\r\n.")
    return code


def run(office, commands, seed):
    """Send *commands* mutated commands, in sessions on port 25; returns how many sessions the
    server closed.  Raises AssertionError when a command goes unanswered."""
    rng = fuzzing.generator(seed)
    sent = closed = 0
    while sent < commands:
        client = RawSMTP(office.ports["smtp"], timeout=30)
        client.command(b"EHLO fuzz.example.test")
        while sent < commands:
            command = mutated(rng)
            sent += 1
            code = converse(client, rng, command)
            assert code is not None or command.upper().startswith(b"QUIT"), f"no answer to {command!r} (seed {seed})"
            if code in (None, 221, 421):
                closed += 1
                break
        client.close()
    return closed
