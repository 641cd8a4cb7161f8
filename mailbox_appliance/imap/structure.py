"""A message's MIME structure, on its raw bytes: sections, ENVELOPE and BODYSTRUCTURE.

Why: FETCH BODY[1.2.HEADER]<0.100> must return exact octets of the stored message, and
BODYSTRUCTURE sizes and line counts must describe those same octets (RFC 3501 §6.4.5, §7.4.2).
So parts are cut out of the bytes by boundary here, never re-serialised from a parsed model; only
header *values* go through the email package (compat32, byte-preserving through
surrogateescape), so non-ASCII headers reach the client unchanged.

Messages are handled with CRLF line ends: the caller converts a file stored with bare LF first.
"""

import email.utils
import re
from email.parser import BytesHeaderParser
from email.policy import compat32

from mailbox_appliance import address_list

from .headers import within_limit
from .response import Adjacent, encode

__all__ = ["Part", "SectionError"]

_FOLD = re.compile(r"\r?\n(?=[ \t])")


# Bounds on the MIME parse of one message, applied before the work (Dovecot has the same kind):
# past them a part is served as opaque application/octet-stream, its octets unchanged.  5,000
# nested levels overflowed Python's recursion in BODYSTRUCTURE; 100,000 parts cost 3.4 s and
# 91 MB; a Content-Type with 200,000 parameters took 18 s to parse (the email package is
# quadratic in them).
MAX_MIME_DEPTH = 50
MAX_MIME_PARTS = 2000
MAX_PARAMETER_FIELD_CHARACTERS = 8192
_OPAQUE = "application/octet-stream"


class SectionError(ValueError):
    """A FETCH section naming a part the message does not have."""


def _raw(value):
    """A header value back to its bytes, unfolded."""
    return _FOLD.sub("", value).strip().encode("utf-8", "surrogateescape")


class Part:
    """One MIME entity: ``header`` (with its blank line) and ``body``, both bytes."""

    def __init__(self, data, default_type="text/plain", depth=0, budget=None):
        """*depth* is how deep in the message this part is; *budget* ([parts left]) is shared by
        the whole message's parts."""
        if data.startswith(b"\r\n"):
            self.header, self.body = b"\r\n", data[2:]
        else:
            end = data.find(b"\r\n\r\n")
            self.header, self.body = (data, b"") if end < 0 else (data[:end + 4], data[end + 4:])
        self.data = data
        self.default_type = default_type
        self.depth = depth
        self.budget = [MAX_MIME_PARTS] if budget is None else budget
        self._fields = None
        self._children = None
        self._envelope = None
        self._structures = {}             # extended (bool) -> BODYSTRUCTURE or BODY
        self._encoded = {}                # FETCH item name -> its value as response bytes

    @property
    def fields(self):
        if self._fields is None:
            fields = BytesHeaderParser(policy=compat32).parsebytes(within_limit(self.header))
            fields.set_default_type(self.default_type)
            for name in ("content-type", "content-disposition"):
                value = fields.get(name)
                if isinstance(value, str) and len(value) > MAX_PARAMETER_FIELD_CHARACTERS:
                    fields.replace_header(name, value[:MAX_PARAMETER_FIELD_CHARACTERS])
            self._fields = fields
        return self._fields

    @property
    def content_type(self):
        if self.depth > MAX_MIME_DEPTH:
            return _OPAQUE
        return self.fields.get_content_type()

    @property
    def transfer_encoding(self):
        """The Content-Transfer-Encoding value, or None (RFC 2045 §6.1: 7bit then)."""
        value = self._value("content-transfer-encoding")
        return None if value is None else value.decode("ascii", "replace")

    @property
    def is_multipart(self):
        return self.content_type.startswith("multipart/")

    @property
    def children(self):
        """Sub-parts: a multipart's parts, or the one message a message/rfc822 part holds."""
        if self._children is None:
            if self.is_multipart:
                boundary = self.fields.get_param("boundary")
                default = "message/rfc822" if self.content_type == "multipart/digest" else "text/plain"
                self._children = [self._child(piece, default) for piece in self._split(boundary)]
                self._children = [child for child in self._children if child is not None]
            elif self.content_type == "message/rfc822":
                self._children = [child for child in [self._child(self.body, "text/plain")] if child]
            else:
                self._children = []
        return self._children

    def _child(self, data, default_type):
        """A sub-part, or None once the message's part budget is spent."""
        if self.budget[0] <= 0:
            return None
        self.budget[0] -= 1
        return Part(data, default_type, self.depth + 1, self.budget)

    def _split(self, boundary):
        return [content for _line, content in self.cut(boundary)[1]]

    def cut(self, boundary=None):
        """This multipart's body at its delimiters (RFC 2046 §5.1.1): (preamble,
        [(delimiter and the rest of its line, part octets)], closing delimiter and epilogue);
        the three joined give the body back, with CRLF in front."""
        if boundary is None:
            boundary = self.fields.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            return b"\r\n" + self.body, [], b""
        boundary = _FOLD.sub("", boundary)     # a folded Content-Type (RFC 5322 §2.2.3 unfolding)
        delimiter = b"\r\n--" + boundary.encode("utf-8", "surrogateescape")
        pieces = (b"\r\n" + self.body).split(delimiter)
        parts = []
        for index, piece in enumerate(pieces[1:], 1):
            if piece.startswith(b"--"):
                return pieces[0], parts, delimiter + delimiter.join(pieces[index:])
            line_end = piece.find(b"\r\n")
            line, content = (piece[:line_end + 2], piece[line_end + 2:]) if line_end >= 0 else (piece, b"")
            parts.append((delimiter + line, content))
        return pieces[0], parts, b""

    # -- RFC 3501 §6.4.5 section numbers -------------------------------------------------------

    def part(self, numbers):
        """The part at *numbers* (1-based), from this message."""
        node = self
        for depth, number in enumerate(numbers):
            # The first number counts in this message; each later one in the part it reached,
            # or, where that part is a message/rfc822, in the message it holds (RFC 3501 §6.4.5).
            # (For a message that is itself message/rfc822, "1" is its body: a test of identity
            # with self could not tell "1.1" from "1".)
            message = node.children[0] if depth and node.content_type == "message/rfc822" else node
            if message.is_multipart:
                if not 0 < number <= len(message.children):
                    raise SectionError("no part %d" % number)
                node = message.children[number - 1]
            elif number == 1:
                node = message
            else:
                raise SectionError("a non-multipart message has only part 1")
        return node

    def message_at(self, numbers):
        """The message whose HEADER/TEXT a section names: this one, or an encapsulated one."""
        if not numbers:
            return self
        node = self.part(numbers)
        if node.content_type != "message/rfc822":
            raise SectionError("HEADER and TEXT need a message/rfc822 part")
        return node.children[0]

    def content(self, numbers):
        """BODY[n.n]: the octets of that part's body (the whole message for no numbers)."""
        if not numbers:
            return self.data
        node = self.part(numbers)
        return node.body

    def header_fields(self, names, negate):
        """HEADER.FIELDS (names) / HEADER.FIELDS.NOT: the matching fields plus the blank line."""
        wanted = {name.lower() for name in names}
        kept, keep = [], False
        for line in self.header.split(b"\r\n")[:-2]:
            if line[:1] in (b" ", b"\t"):
                if keep:
                    kept.append(line)
                continue
            keep = (line.split(b":", 1)[0].strip().lower() in wanted) != negate
            if keep:
                kept.append(line)
        return b"".join(line + b"\r\n" for line in kept) + b"\r\n"

    # -- ENVELOPE and BODYSTRUCTURE ------------------------------------------------------------

    def _all(self, name):
        """Every value of header *name*, as stored (raw_items: compat32's get() would turn a
        non-ASCII value into a Header object)."""
        return [value for key, value in self.fields.raw_items() if key.lower() == name]

    def _value(self, name):
        values = self._all(name)
        return _raw(values[0]) if values else None

    def _addresses(self, name):
        """An address field as ENVELOPE lists it (RFC 3501 §7.4.2), groups included: a group is
        (NIL NIL "name" NIL), its members, then (NIL NIL NIL NIL)."""
        result = [[None if part is None else _raw(part) for part in entry]
                  for value in self._all(name) for entry in address_list.parse(_FOLD.sub("", value))]
        return [Adjacent(result)] if result else None

    def envelope(self):
        """RFC 3501 §7.4.2 ENVELOPE of this message (worked out once: parsed_messages.py shares
        a Part among sessions)."""
        if self._envelope is None:
            self._envelope = self._make_envelope()
        return self._envelope

    def _make_envelope(self):
        sender = self._addresses("from")
        return [self._value("date"), self._value("subject"), sender,
                self._addresses("sender") or sender, self._addresses("reply-to") or sender,
                self._addresses("to"), self._addresses("cc"), self._addresses("bcc"),
                self._value("in-reply-to"), self._value("message-id")]

    def _params(self, header):
        params = self.fields.get_params(header=header) or []
        pairs = [item for key_value in params[1:] for item in
                 (_raw(key_value[0]).upper(), _raw(email.utils.collapse_rfc2231_value(key_value[1])))]
        return pairs or None

    def _disposition(self):
        values = self._all("content-disposition")
        if not values:
            return None
        value = values[0]
        return [_raw(value.split(";", 1)[0]).upper(), self._params("content-disposition")]

    def _extension(self):
        return [self._disposition(), self._value("content-language"), self._value("content-location")]

    def encoded(self, item):
        """The value of FETCH's ENVELOPE, BODYSTRUCTURE or BODY (*item*, lower case) as response
        bytes, encoded once: every session fetching this message shares it."""
        value = self._encoded.get(item)
        if value is None:
            value = self._encoded[item] = encode(
                self.envelope() if item == "envelope" else self.structure(extended=item == "bodystructure"))
        return value

    def structure(self, extended):
        """BODYSTRUCTURE (*extended*) or BODY: RFC 3501 §7.4.2, as nested lists (each worked out
        once, as the envelope)."""
        if extended not in self._structures:
            self._structures[extended] = self._make_structure(extended)
        return self._structures[extended]

    def _make_structure(self, extended):
        main, _, sub = self.content_type.partition("/")
        if self.is_multipart:
            children = self.children or [Part(b"\r\n")]
            result = [Adjacent(child.structure(extended) for child in children), sub.upper().encode()]
            if extended:
                result += [self._params("content-type")] + self._extension()
            return result
        params = self._params("content-type")
        if main == "text" and params is None:
            params = [b"CHARSET", b"US-ASCII"]
        result = [main.upper().encode(), sub.upper().encode(), params,
                  self._value("content-id"), self._value("content-description"),
                  (self._value("content-transfer-encoding") or b"7BIT").upper(), len(self.body)]
        lines = self.body.count(b"\n")
        if main == "text":
            result.append(lines)
        elif self.content_type == "message/rfc822":
            inner = self.children[0]
            result += [inner.envelope(), inner.structure(extended), lines]
        if extended:
            result += [self._value("content-md5")] + self._extension()
        return result
