"""IMAP clients for the tests: imaplib over STARTTLS (143) or implicit TLS (993), logged in."""

import imaplib
import re
import socket

from conftest import PASSWORD, unverified_tls

TIMEOUT_SECONDS = 30
LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


def connect(office, listener="imaps"):
    """An imaplib client, not logged in; on "imap" STARTTLS is not yet done."""
    if listener == "imaps":
        return imaplib.IMAP4_SSL("127.0.0.1", office.ports["imaps"], ssl_context=unverified_tls(),
                                 timeout=TIMEOUT_SECONDS)
    return imaplib.IMAP4("127.0.0.1", office.ports["imap"], timeout=TIMEOUT_SECONDS)


def login(office, user="alice", listener="imaps"):
    """A logged-in client for user@example.test (STARTTLS first on "imap")."""
    client = connect(office, listener)
    if listener == "imap":
        client.starttls(ssl_context=unverified_tls())
    client.login(f"{user}@example.test", PASSWORD)
    return client


def raw(office, listener="imap"):
    """A plain socket to the listener with the greeting read: for byte-exact dialogues."""
    sock = socket.create_connection(("127.0.0.1", office.ports[listener]), timeout=TIMEOUT_SECONDS)
    reader = sock.makefile("rb")
    greeting = reader.readline()
    assert greeting.startswith(b"* OK"), greeting
    return sock, reader


def read_response(reader):
    """One response line with any literals in it read and kept inline."""
    line = reader.readline()
    if not line:
        raise AssertionError("connection closed")
    while (match := LITERAL.search(line)) is not None:
        line += reader.read(int(match.group(1)))
        line += reader.readline()
    return line


def read_until_tagged(reader, tag):
    """Responses up to and including the one tagged *tag*."""
    lines = []
    while True:
        lines.append(read_response(reader))
        if lines[-1].startswith(tag + b" "):
            return lines


class Session:
    """A logged-in IMAP session over implicit TLS, spoken byte for byte."""

    def __init__(self, office, user="alice", login=True, source="127.0.0.1"):
        """*source*: the loopback address the client connects from."""
        plain = socket.create_connection(("127.0.0.1", office.ports["imaps"]), timeout=TIMEOUT_SECONDS,
                                         source_address=(source, 0))
        self.sock = unverified_tls().wrap_socket(plain)
        self.reader = self.sock.makefile("rb")
        assert self.reader.readline().startswith(b"* OK")
        self.count = 0
        if login:
            self.ok(f'LOGIN {user}@example.test "{PASSWORD}"'.encode())

    def command(self, text):
        """Send one command; every response line up to its tagged one."""
        self.count += 1
        tag = b"t%d" % self.count
        self.sock.sendall(tag + b" " + text + b"\r\n")
        return read_until_tagged(self.reader, tag)

    def ok(self, text):
        lines = self.command(text)
        assert lines[-1].split()[1] == b"OK", lines
        return lines

    def close(self):
        self.sock.close()


def message(subject="Hello", body="Body text\r\n", sender="bob@remote.test", to="alice@example.test"):
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.test>\r\n\r\n{body}").encode()
