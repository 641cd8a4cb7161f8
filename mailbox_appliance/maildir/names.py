"""Maildir file names: unique base names, S=/W= size fields and the :2, flags info.

Why: IMAP needs RFC822.SIZE and flags for every message without opening it, so
both live in the file name exactly as Dovecot writes them, and names written by
Dovecot or other Maildir software must parse too.

Formats decided here:

* Unique part, per the Maildir spec (https://cr.yp.to/proto/maildir.html):
  ``<secs>.M<usecs>P<pid>Q<counter>R<random hex>.<host>``; the spec asks to
  write '/' in the host name as ``\\057`` and ':' as ``\\072``.  Dovecot writes
  ``<secs>.M<usecs>P<pid>.<host>`` (maildir-filename.c); we add the Q and R
  uniqueness fields the spec also defines, which Dovecot reads fine.
* ``,S=<size>,W=<vsize>`` after the host: Dovecot's extension (doc.dovecot.org,
  Maildir format, "Maildir Filename Extensions"); S is the file size, W the
  size with every line ending as CRLF (RFC822.SIZE).  Dovecot looks for
  ``,S=`` / ``,W=`` followed by digits ending at ',' ':' or the end
  (maildir_filename_get_size), and so do we.
* Info ``:2,<flags>``: flags are single characters sorted by ASCII code (spec;
  Dovecot's maildir-filename-flags.c keeps them sorted).  D F P R S T are the
  spec's Draft Flagged Passed Replied Seen Trashed; a-z are Dovecot keyword
  letters (see keywords.py).  Dovecot ends the flags at a ',' and keeps what
  follows; ``:1,`` info (experimental semantics) carries no flags.
"""

import itertools
import os
import re
import secrets
import socket
import time
from typing import NamedTuple, Optional

__all__ = [
    "SYSTEM_FLAGS", "KEYWORD_LETTERS", "FLAG_DRAFT", "FLAG_FLAGGED",
    "FLAG_PASSED", "FLAG_REPLIED", "FLAG_SEEN", "FLAG_TRASHED",
    "MaildirName", "new_base_name", "parse", "with_flags", "base_of",
    "escape_hostname", "delivery_order",
]

FLAG_DRAFT = "D"
FLAG_FLAGGED = "F"
FLAG_PASSED = "P"
FLAG_REPLIED = "R"
FLAG_SEEN = "S"
FLAG_TRASHED = "T"
SYSTEM_FLAGS = "DFPRST"
KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"

INFO_SEP = ":"
_ALLOWED_FLAG_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

_counter = itertools.count(1)
_default_host = None


class MaildirName(NamedTuple):
    """A parsed Maildir file name.  size/crlf_size are None when absent."""
    base: str
    size: Optional[int]
    crlf_size: Optional[int]
    flags: str


def escape_hostname(hostname):
    """Host name as the Maildir spec wants it in a file name ('/' and ':' escaped)."""
    return hostname.replace("/", "\\057").replace(":", "\\072")


def _hostname(hostname):
    global _default_host
    if hostname is None:
        if _default_host is None:
            _default_host = escape_hostname(socket.gethostname() or "localhost")
        return _default_host
    return escape_hostname(hostname)


def new_base_name(size, crlf_size, hostname=None):
    """A new unique base name carrying ``,S=<size>,W=<crlf_size>``.

    Uniqueness: seconds + microseconds + pid + a per-process delivery counter
    + 64 random bits, so neither a clock step nor a pid reuse can collide.
    """
    if size < 0 or crlf_size < 0:
        raise ValueError("sizes must be non-negative")
    now = time.time_ns()
    secs, nsecs = divmod(now, 1_000_000_000)
    return "%d.M%dP%dQ%dR%s.%s,S=%d,W=%d" % (
        secs, nsecs // 1000, os.getpid(), next(_counter),
        secrets.token_hex(8), _hostname(hostname), size, crlf_size)


_DELIVERY_TIME = re.compile(r"(\d*)(?:\.M(\d+))?", re.ASCII)


def delivery_order(base):
    """Sort key putting Maildir base names in the order they were delivered.

    The seconds a name starts with, then the microseconds of a ``.M<usecs>`` field, both as
    numbers (the M field is not zero-padded, so "M99999" was delivered before "M100000"
    though it sorts after it as text), then the name: Dovecot's maildir_filename_sort_cmp,
    which it uses to give new mail its UIDs.
    """
    seconds, microseconds = _DELIVERY_TIME.match(base).groups()
    return int(seconds or 0), int(microseconds or 0), base


def base_of(name):
    """The base name: everything before the first ':' (Dovecot's base compare)."""
    i = name.find(INFO_SEP)
    return name if i < 0 else name[:i]


def _size_field(fields, key):
    for field in fields:
        if field.startswith(key):
            digits = field[2:]
            if digits.isdigit() and digits.isascii():
                return int(digits)
    return None


def parse(name):
    """Parse a Maildir file name (ours, Dovecot's, or another MUA's).

    Missing S=/W= give None; unknown ``,X=`` fields and non-``2,`` info are
    tolerated.  Raises ValueError only for names that cannot be Maildir
    files: empty, or containing '/' or NUL.
    """
    if not name or "/" in name or "\0" in name:
        raise ValueError("not a Maildir file name: %r" % (name,))
    base = base_of(name)
    info = name[len(base) + 1:] if len(base) < len(name) else ""
    fields = base.split(",")[1:]
    size = _size_field(fields, "S=")
    vsize = _size_field(fields, "W=")
    flags = ""
    if info.startswith("2,"):
        flags = info[2:].split(",", 1)[0]
        flags = "".join(sorted(set(flags)))
    return MaildirName(base, size, vsize, flags)


def with_flags(base, flags):
    """File name for *base* (info stripped if present) with *flags* set.

    Flags are de-duplicated and sorted by ASCII code as the spec requires.
    Only letters are accepted: D F P R S T, keyword letters a-z, and other
    upper-case letters that foreign software may have set and we keep.
    """
    base = base_of(base)
    if not base or "/" in base:
        raise ValueError("bad Maildir base name: %r" % (base,))
    letters = set(flags)
    bad = letters - _ALLOWED_FLAG_CHARS
    if bad:
        raise ValueError("invalid Maildir flag character(s): %r"
                         % "".join(sorted(bad)))
    return "%s:2,%s" % (base, "".join(sorted(letters)))
