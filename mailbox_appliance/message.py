"""The wire format every part shares: CRLF line ends, dot-stuffing, the header block, Return-Path.

SMTP (server and client), POP3, IMAP, delivery and the queue all handle messages as octets with
CRLF line ends (RFC 5322 §2.1, RFC 5321 §2.3.8).  What they do alike to those octets lives here,
so no part has to import another protocol's package to get it.
"""

import email.errors
import email.header
import functools
import re

__all__ = ["to_crlf", "crlf_size", "dot_stuff", "unstuff", "header_block", "field_values", "without_fields",
           "malformed_header_line", "decoded", "return_path"]

_BARE_LF = re.compile(rb"(?<!\r)\n")
# A header value is decoded (RFC 2047) for searching and filtering only this far.
MAX_DECODED_OCTETS = 65536


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


def field_values(message, name):
    """The values of every header field called *name* (lower-case bytes), unfolded (RFC 5322
    §2.2.3: the CRLF of each continuation line removed), in order."""
    header = header_block(message)
    if not header.endswith(b"\r\n"):
        header += b"\r\n"
    return [value[:-2].replace(b"\r\n", b"") for value in _field_pattern((name,)).findall(header)]


def without_fields(message, names, removed=lambda value: True):
    """*message* without the header fields called *names* (lower-case bytes) whose value
    (unfolded) *removed* says to remove: all of them by default."""
    header, separator, body = message.partition(b"\r\n\r\n")
    kept = _field_pattern(names).sub(
        lambda found: b"" if removed(found.group(1).replace(b"\r\n", b"")) else found.group(0), header + b"\r\n")
    return kept[:-2] + separator + body


# RFC 5322 §2.2: a header line is a field (a name of printable ASCII but ":", then ":") or the
# continuation of one (it starts with a space or a tab); an mbox "From " line is tolerated.
_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+:|[ \t]|From ")


def malformed_header_line(message):
    """The first line of *message*'s header that is neither a field nor a continuation (bytes,
    without its CRLF), or None when every line is one: what DKIM signing cannot canonicalise."""
    lines = header_block(message).split(b"\r\n")
    if lines[-1] == b"":
        lines.pop()
    for number, line in enumerate(lines):
        if not _HEADER_LINE.match(line) or (number == 0 and line[:1] in b" \t"):
            return line
    return None


def decoded(value):
    """A header value (str or bytes) as text: 8-bit octets read as UTF-8, then RFC 2047 words
    decoded.  A malformed encoded word leaves the value as it is (one bad Subject made SEARCH
    and SORT fail for the whole folder); only the first MAX_DECODED_OCTETS are read (200,000
    encoded words cost 45 s of CPU per SEARCH)."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    text = value[:MAX_DECODED_OCTETS].replace(b"\r\n", b"").decode("utf-8", "replace")
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
        return text


@functools.lru_cache(maxsize=None)
def _field_pattern(names):
    """A field called one of *names* with its continuation lines; group 1 is its value."""
    return re.compile(rb"(?im)^(?:" + b"|".join(re.escape(name) for name in names)
                      + rb")[ \t]*:(.*\r\n(?:[ \t].*\r\n)*)")


def return_path(sender):
    """RFC 5321 §4.4: the Return-Path field the final delivery adds, with the envelope sender."""
    return f"Return-Path: <{sender}>\r\n".encode("utf-8")
