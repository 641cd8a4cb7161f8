"""The wire format every part shares: CRLF line ends, dot-stuffing, the header block, Return-Path.

SMTP (server and client), POP3, IMAP, delivery and the queue all handle messages as octets with
CRLF line ends (RFC 5322 §2.1, RFC 5321 §2.3.8).  What they do alike to those octets lives here,
so no part has to import another protocol's package to get it.
"""

import re

__all__ = ["to_crlf", "crlf_size", "dot_stuff", "unstuff", "header_block", "return_path"]

_BARE_LF = re.compile(rb"(?<!\r)\n")


def to_crlf(data):
    """*data* with every bare LF made CRLF: what IMAP and POP3 send of a message stored with LF
    line ends (Dovecot writes them so).  Counting in C first spares the common case a copy."""
    return _BARE_LF.sub(b"\r\n", data) if data.count(b"\n") != data.count(b"\r\n") else data


def crlf_size(data):
    """Size of *data* when every line ends in CRLF (Dovecot's W= / vsize, IMAP's RFC822.SIZE).

    Each bare LF counts as two octets; a CRLF stays two.  count() runs in C over the buffer, so
    this costs no copy of the message.
    """
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


def unstuff(raw):
    """RFC 5321 §4.5.2: remove the leading '.' of every line that starts with one.

    *raw* is the DATA octets without the end marker; the first line counts as following a CRLF.
    """
    data = raw.replace(b"\r\n.", b"\r\n") if b"\r\n." in raw else raw
    return data[1:] if data.startswith(b".") else data


def dot_stuff(message):
    """RFC 5321 §4.5.2 (SMTP DATA) and RFC 1939 §3 (POP3 multi-line responses): double every '.'
    that starts a line, the first line included, and end with CRLF '.' CRLF.  The octets are
    otherwise sent exactly as given."""
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if stuffed and not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def header_block(message):
    """The header fields of *message* (RFC 5322 §2.1): up to and including the CRLF before the
    blank line (all of it if there is none; nothing if the message starts with the blank line)."""
    if message.startswith(b"\r\n"):
        return b""
    end = message.find(b"\r\n\r\n")
    return message if end < 0 else message[:end + 2]


def return_path(sender):
    """RFC 5321 §4.4: the Return-Path field the final delivery adds, with the envelope sender."""
    return f"Return-Path: <{sender}>\r\n".encode("utf-8")
