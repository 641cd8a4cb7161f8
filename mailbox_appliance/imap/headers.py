"""A stored message's header section, read without its body, and header values as text.

Why: SEARCH on header keys and SORT on header keys (RFC 3501 §6.4.4, RFC 5256 §3) need a few
header fields of many messages; reading whole files for that would read every attachment.  So
only the header section is read here, and only the fields asked for are picked out of it.
"""

import functools
import re

__all__ = ["HEADER_BYTES", "MAX_HEADER_OCTETS", "read_header", "within_limit", "header_values"]

# Headers are read in the first HEADER_BYTES of a file, and further only if they run longer.
HEADER_BYTES = 16384
# For SEARCH, SORT and THREAD, a header is read this far and no further (Postfix keeps 100 KB of
# a header, header_size_limit): a 20 MB folded field cost seconds of CPU per command.  What lies
# beyond is not searched; FETCH still serves the message whole.
MAX_HEADER_OCTETS = 1024 * 1024
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")


def read_header(path):
    """The header section of the message file at *path*, up to and with its blank line; of a
    longer one, its lines within the first MAX_HEADER_OCTETS."""
    with open(path, "rb") as handle:
        head = bytearray(handle.read(HEADER_BYTES))
        end = _HEADER_END.search(head)
        while end is None:
            more = handle.read(min(HEADER_BYTES * 16, MAX_HEADER_OCTETS + 4 - len(head)))
            if not more:
                return bytes(head)
            head += more
            end = _HEADER_END.search(head, max(0, len(head) - len(more) - 3))
            if end is None and len(head) > MAX_HEADER_OCTETS:
                return within_limit(bytes(head))
    return bytes(head[:end.end()])


def within_limit(header):
    """*header*'s lines within its first MAX_HEADER_OCTETS: as far as a header is parsed."""
    if len(header) <= MAX_HEADER_OCTETS:
        return header
    return header[:header.rfind(b"\n", 0, MAX_HEADER_OCTETS) + 1]


@functools.lru_cache(maxsize=64)
def _fields_pattern(names):
    alternatives = b"|".join(re.escape(name) for name in sorted(names))
    # A field line (RFC 5322 §2.2) and its continuation lines.  Starting with a literal "\n" and
    # run over a lower-cased copy (no IGNORECASE), the regex engine skips from line to line in C.
    return re.compile(rb"\n(" + alternatives + rb")[ \t]*:(.*(?:\r?\n[ \t].*)*)")


def header_values(header, names):
    """{name: [values]} of the lower-case field *names* (a frozenset of bytes) in *header*, each
    value unfolded and stripped (bytes, as stored), in the order they appear."""
    found = {}
    header = b"\n" + header
    for match in _fields_pattern(names).finditer(header.lower()):
        value = header[match.start(2):match.end(2)]
        if b"\n" in value:
            value = _FOLD.sub(b"", value)
        found.setdefault(match.group(1), []).append(value.strip())
    return found
