"""A message still arriving over SMTP is kept in memory only up to a bound, then in an unlinked
temporary file (smtp/message_buffer.py); what is delivered is exactly what was sent."""

import os
import time

import pytest

from rawsmtp import RawSMTP
from test_flow_control import rss

SESSIONS = 10
UNFINISHED_OCTETS = 6 * 1024 * 1024
# The sessions' DATA together is 60 MB; kept in memory it would be more than that.
RSS_GROWTH_LIMIT = 24 * 1024 * 1024
LINE = b"x" * 76 + b"\r\n"


def _queues(port):
    """(octets the appliance has not yet read from, octets clients have not yet sent to) *port*
    over IPv4 loopback, from the kernel's socket table."""
    unread = unsent = 0
    with open("/proc/net/tcp") as table:
        for row in list(table)[1:]:
            fields = row.split()
            local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
            tx_queue, rx_queue = (int(value, 16) for value in fields[4].split(":"))
            if local == port:
                unread += rx_queue
            elif remote == port:
                unsent += tx_queue
    return unread, unsent


def _wait_until_read(port, timeout=30):
    """Wait until the kernel holds nothing sent to *port* that the appliance has not read: the
    kernel has no event for it, so its table is looked at every 10 ms, at most *timeout* s."""
    deadline = time.monotonic() + timeout
    while _queues(port) != (0, 0):
        assert time.monotonic() < deadline, f"the appliance left {_queues(port)} octets unread"
        time.sleep(0.01)


def test_unfinished_messages_are_held_on_disk_not_in_memory(office):
    """Issue 21 #12: 20 sessions each sending 24 MB without the final dot cost 600 MB."""
    port = office.ports["smtp"]
    before = rss(office)
    sessions = [RawSMTP(port) for _ in range(SESSIONS)]
    try:
        for number, session in enumerate(sessions):
            session.open_data()
            session.send(b"Subject: unfinished %d\r\n\r\n" % number + LINE * (UNFINISHED_OCTETS // len(LINE)))
        _wait_until_read(port)
        grown = rss(office) - before
        assert grown < RSS_GROWTH_LIMIT, f"{grown} octets more in memory for {SESSIONS} unfinished messages"
        assert not os.listdir(os.path.join(office.data_dir, "tmp"))      # unlinked from the start
        for session in sessions:
            session.send(b".\r\n")
            code, text = session.reply()
            assert code == 250, text
    finally:
        for session in sessions:
            session.close()
    inbox = office.inbox()
    assert len(inbox) == SESSIONS
    assert all(message.endswith(b"\r\n\r\n" + LINE * (UNFINISHED_OCTETS // len(LINE))) for message in inbox)


def _body(size):
    """Lines of every length from 0 to 100, many starting with a dot, *size* octets or so."""
    lines, total, number = [], 0, 0
    while total < size:
        line = (b"." if number % 3 == 0 else b"") + b"%d " % number + b"y" * (number % 100)
        lines.append(line)
        total += len(line) + 2
        number += 1
    return b"\r\n".join(lines) + b"\r\n"


@pytest.mark.parametrize("size", [100, 300 * 1024, 3 * 1024 * 1024])
def test_data_arrives_intact_whether_held_in_memory_or_on_disk(office, size):
    body = _body(size)
    raw = RawSMTP(office.ports["smtp"])
    try:
        raw.open_data()
        stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in body.split(b"\r\n"))
        # Sent in odd-sized pieces so the end marker and dot lines straddle the server's reads.
        message = b"Subject: dots\r\n\r\n" + stuffed + b".\r\n"
        for start in range(0, len(message), 99_991):
            raw.send(message[start:start + 99_991])
        code, text = raw.reply()
        assert code == 250, text
    finally:
        raw.close()
    assert office.inbox()[0].endswith(b"Subject: dots\r\n\r\n" + body)


def test_bdat_chunks_past_the_memory_bound_arrive_intact(office):
    body = _body(2 * 1024 * 1024)
    message = b"Subject: chunks\r\n\r\n" + body
    raw = RawSMTP(office.ports["smtp"])
    try:
        for line in ("EHLO client.example.test", "MAIL FROM:<a@remote.test>", "RCPT TO:<alice@example.test>"):
            assert raw.command(line)[0] == 250
        pieces = [message[start:start + 700_000] for start in range(0, len(message), 700_000)]
        for piece in pieces[:-1]:
            raw.send(b"BDAT %d\r\n" % len(piece) + piece)
            assert raw.reply()[0] == 250
        code, text = raw.command(b"BDAT %d LAST\r\n" % len(pieces[-1]) + pieces[-1] + b"NOOP")
        assert code == 250 and "queued" in text, text
        assert raw.reply()[0] == 250                     # the NOOP after the last chunk
    finally:
        raw.close()
    assert office.inbox()[0].endswith(message)
