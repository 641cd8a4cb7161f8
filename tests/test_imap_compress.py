"""IMAP COMPRESS=DEFLATE (RFC 4978): both directions raw DEFLATE after the tagged OK, spoken here
with zlib over a real TLS socket; mbsync (test_imap_mbsync.py) uses it too."""

import zlib

import imapclient
from test_flow_control import rss


class Compressed:
    """The client's side of a session after COMPRESS DEFLATE."""

    def __init__(self, session):
        self.sock = session.sock
        self.deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self.plain = b""
        self.count = 0

    def send(self, data):
        self.sock.sendall(self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH))

    def readline(self):
        while b"\r\n" not in self.plain:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("connection closed")
            self.plain += self.inflater.decompress(chunk)
        line, _, self.plain = self.plain.partition(b"\r\n")
        return line + b"\r\n"

    def read(self, size):
        while len(self.plain) < size:
            self.plain += self.inflater.decompress(self.sock.recv(65536))
        data, self.plain = self.plain[:size], self.plain[size:]
        return data

    def command(self, text):
        self.count += 1
        tag = b"z%d" % self.count
        self.send(tag + b" " + text + b"\r\n")
        return imapclient.read_until_tagged(self, tag)


def start(session):
    """COMPRESS DEFLATE, read unbuffered so nothing compressed is taken as plain text."""
    session.sock.sendall(b"c COMPRESS DEFLATE\r\n")
    line = b""
    while not line.endswith(b"\r\n"):
        line += session.sock.recv(1)
    assert line == b"c OK DEFLATE active\r\n", line
    return Compressed(session)


def test_compress_is_offered_once_logged_in(office, session):
    before = imapclient.Session(office, login=False)
    assert b"COMPRESS=DEFLATE" not in b"".join(before.command(b"CAPABILITY"))
    assert before.command(b"COMPRESS DEFLATE")[-1].split()[1] == b"BAD"
    before.close()
    assert b"COMPRESS=DEFLATE" in b"".join(session.ok(b"CAPABILITY"))


def test_a_compressed_session_reads_and_writes_deflate(office, session):
    body = b"Subject: squeezed\r\n\r\n" + b"the same line again and again\r\n" * 2000
    office.smtp().sendmail("bob@example.test", ["alice@example.test"], body)
    compressed = start(session)
    lines = compressed.command(b"SELECT INBOX")
    assert lines[-1].startswith(b"z1 OK [READ-WRITE]") and b"* 1 EXISTS\r\n" in lines
    fetched = compressed.command(b"FETCH 1 BODY.PEEK[TEXT]")
    assert fetched[0] == b"* 1 FETCH (BODY[TEXT] {%d}\r\n" % (31 * 2000) + b"the same line again and again\r\n" * 2000 + b")\r\n"
    assert compressed.command(b"COMPRESS DEFLATE")[-1] == b"z3 NO [COMPRESSIONACTIVE] DEFLATE is active already\r\n"
    assert compressed.command(b"LOGOUT")[0].startswith(b"* BYE")


def test_commands_pipelined_behind_compress_are_read_compressed(session):
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    behind = deflater.compress(b"p1 NOOP\r\np2 SELECT INBOX\r\n") + deflater.flush(zlib.Z_SYNC_FLUSH)
    session.sock.sendall(b"c COMPRESS DEFLATE\r\n" + behind)
    line = b""
    while not line.endswith(b"\r\n"):
        line += session.sock.recv(1)
    assert line == b"c OK DEFLATE active\r\n"
    compressed = Compressed(session)
    compressed.deflater = deflater
    assert imapclient.read_until_tagged(compressed, b"p2")[-1].startswith(b"p2 OK [READ-WRITE]")


def test_an_unknown_mechanism_is_bad(session):
    assert session.command(b"COMPRESS LZ77")[-1].split()[1] == b"BAD"
    session.ok(b"NOOP")                               # and the session goes on uncompressed


def test_a_deflate_bomb_costs_neither_memory_nor_the_session_s_neighbours(office, session):
    """100 MB of one command line, compressed to 100 KB: the line limit closes the session after
    inflating little more than the limit, not the whole of it."""
    before = rss(office, "VmHWM")
    compressed = start(session)
    deflater = compressed.deflater
    bomb = deflater.compress(b"a NOOP ")
    for _ in range(100):
        bomb += deflater.compress(b"x" * 1024 * 1024)
    compressed.sock.sendall(bomb + deflater.flush(zlib.Z_SYNC_FLUSH))
    assert compressed.readline().startswith(b"* BYE Command line too long")
    assert rss(office, "VmHWM") - before < 32 * 1024 * 1024
    other = imapclient.Session(office)
    other.ok(b"NOOP")
    other.close()
