"""Content-Transfer-Encoding undone, for FETCH BINARY (RFC 3516 §4.2), and done, for binary
content APPENDed (RFC 3516 §4.4).

Written here rather than with binascii: a2b_qp keeps the trailing white space RFC 2045 §6.7 (3)
says to delete and does not take "=" followed by white space as a soft line break, and
b64decode fails on the missing padding and stray characters real mail has; both as Dovecot
decodes them (imaptest's fetch-binary-mime groups).
"""

import base64
import re

from .structure import MAX_MIME_DEPTH, Part

__all__ = ["UnknownEncoding", "decode", "encode_binary_parts"]

_IDENTITY = frozenset({"7bit", "8bit", "binary"})
_TRAILING_SPACE = re.compile(rb"[ \t]+(?=\r\n|\Z)")
_SOFT_BREAK = re.compile(rb"=(?:\r\n|\Z)")
_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]+")
_ENCODING_FIELD = re.compile(rb"^Content-Transfer-Encoding[ \t]*:.*\r\n(?:[ \t].*\r\n)*", re.IGNORECASE | re.MULTILINE)


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


def encode_binary_parts(data):
    """*data* (CRLF line ends) with every leaf part that holds a NUL re-encoded as base64.

    RFC 3516 §4.4: APPEND may send binary content, which a store that cannot keep it must
    either convert or refuse.  A NUL cannot go out in a BODY[] literal (RFC 3501 §4.3) and
    Maildir restores CRLF on read, which would change binary octets; base64 keeps them, and
    FETCH BINARY gives the client the octets it sent (as Dovecot does).  A NUL in a header is
    left: the caller refuses such a message.
    """
    return _encoded(Part(data), 0) if b"\0" in data else data


def _encoded(part, depth):
    if b"\0" not in part.data or depth > MAX_MIME_DEPTH:
        return part.data
    if part.is_multipart:
        preamble, pieces, closing = part.cut()
        body = preamble + b"".join(line + _encoded(Part(content), depth + 1) for line, content in pieces) + closing
        return part.header + body[2:]
    if part.content_type == "message/rfc822":
        return part.header + _encoded(Part(part.body), depth + 1)
    if not part.header.endswith(b"\r\n\r\n") and part.header != b"\r\n":
        return part.data              # no header end: the NUL is in the header
    fields = _ENCODING_FIELD.sub(b"", part.header[:-2])
    lines = base64.encodebytes(part.body).replace(b"\n", b"\r\n")
    return fields + b"Content-Transfer-Encoding: base64\r\n\r\n" + lines
