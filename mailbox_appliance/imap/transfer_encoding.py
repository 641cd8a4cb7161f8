"""Content-Transfer-Encoding undone, for FETCH BINARY (RFC 3516 §4.2).

Written here rather than with binascii: a2b_qp keeps the trailing white space RFC 2045 §6.7 (3)
says to delete and does not take "=" followed by white space as a soft line break, and
b64decode fails on the missing padding and stray characters real mail has; both as Dovecot
decodes them (imaptest's fetch-binary-mime groups).
"""

import base64
import re

__all__ = ["UnknownEncoding", "decode"]

_IDENTITY = frozenset({"7bit", "8bit", "binary"})
_TRAILING_SPACE = re.compile(rb"[ \t]+(?=\r\n|\Z)")
_SOFT_BREAK = re.compile(rb"=(?:\r\n|\Z)")
_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]+")


class UnknownEncoding(ValueError):
    """A Content-Transfer-Encoding this server cannot undo (RFC 3516 §4.2: NO [UNKNOWN-CTE])."""


def decode(encoding, body):
    """*body* with the transfer encoding named *encoding* (a field value, any case) undone."""
    encoding = (encoding or "7bit").strip().lower()
    if encoding in _IDENTITY:
        return body
    if encoding == "base64":
        letters = _NOT_BASE64.sub(b"", body)
        letters = letters[:len(letters) - len(letters) % 4 if len(letters) % 4 == 1 else len(letters)]
        return base64.b64decode(letters + b"=" * (-len(letters) % 4))
    if encoding == "quoted-printable":
        text = _SOFT_BREAK.sub(b"", _TRAILING_SPACE.sub(b"", body))
        return _ESCAPE.sub(lambda match: bytes([int(match.group(1), 16)]), text)
    raise UnknownEncoding(encoding)
