"""FETCH's attribute list (RFC 3501 §6.4.5 and §9 fetch-att, RFC 3516 BINARY), parsed.

Why not Twisted's parser (IMAP4Server.arg_fetchatt): it has no BINARY, and hostile input raised
from inside its state machine (AttributeError, ValueError, MismatchedNesting: issue 20 #2).
This one is a plain recursive descent over the grammar; anything else is IllegalClientResponse
(a BAD naming the problem).
"""

import re
from dataclasses import dataclass
from typing import Optional, Tuple

from twisted.mail.imap4 import IllegalClientResponse

from . import transfer_encoding

__all__ = ["FetchItem", "parse_fetch_items"]

_SIMPLE = {
    b"UID": "uid", b"FLAGS": "flags", b"INTERNALDATE": "internaldate", b"ENVELOPE": "envelope",
    b"RFC822": "rfc822", b"RFC822.HEADER": "rfc822header", b"RFC822.SIZE": "rfc822size",
    b"RFC822.TEXT": "rfc822text", b"BODYSTRUCTURE": "bodystructure", b"BODY": "body",
    b"MODSEQ": "modseq",                                  # RFC 7162 §3.1.4
}
# RFC 3501 §6.4.5 macros.
_MACROS = {
    b"ALL": ("flags", "internaldate", "rfc822size", "envelope"),
    b"FAST": ("flags", "internaldate", "rfc822size"),
    b"FULL": ("flags", "internaldate", "rfc822size", "envelope", "body"),
}
_SECTIONED = {b"BODY": ("section", False), b"BODY.PEEK": ("section", True),
              b"BINARY": ("binary", False), b"BINARY.PEEK": ("binary", True),
              b"BINARY.SIZE": ("binarysize", True)}
_NAME = re.compile(rb"[A-Za-z0-9.]+")
_NUMBER = re.compile(rb"[0-9]+")
_FIELD_NAME = re.compile(rb"[!#-'*-9;-~]+")      # RFC 5322 ftext as an atom: no SP, ":", "(", ")"
_QUOTED_FIELD_NAME = re.compile(rb'"((?:[^"\\\r\n]|\\["\\])*)"')
_MAX_NUMBER = 2 ** 32 - 1


@dataclass(frozen=True)
class FetchItem:
    """One attribute.  ``kind``: uid, flags, internaldate, envelope, rfc822, rfc822header,
    rfc822size, rfc822text, bodystructure, body (BODY without a section: the structure), section
    (BODY[...]), binary (BINARY[...]), binarysize.  For the sectioned ones: ``part`` (1-based
    numbers), ``text`` (HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME or None),
    ``fields`` (the header names), ``partial`` ((origin, length) or None)."""

    kind: str
    peek: bool = False
    part: Tuple[int, ...] = ()
    text: Optional[str] = None
    fields: Tuple[bytes, ...] = ()
    partial: Optional[Tuple[int, int]] = None

    def marks_seen(self):
        """RFC 3501 §6.4.5: BODY[...] and RFC822(.TEXT) set \\Seen; .PEEK and the rest do not
        (RFC 3516 §4.2: BINARY like BODY)."""
        return self.kind in ("rfc822", "rfc822text") or (self.kind in ("section", "binary") and not self.peek)

    def octets(self, message):
        """The octets a BODY[section] or BINARY[section] names in *message* (structure.Part;
        RFC 3501 §6.4.5, RFC 3516 §4.2), before any partial: for BINARY, with the part's
        Content-Transfer-Encoding undone.  Raises structure.SectionError for a part the message
        does not have, transfer_encoding.UnknownEncoding for BINARY of an encoding we cannot undo."""
        numbers = list(self.part)
        if self.kind != "section":
            if not numbers:
                return message.data
            part = message.part(numbers)
            return transfer_encoding.decode(part.transfer_encoding, part.body)
        if self.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            inner = message.message_at(numbers)
            if self.fields:
                return inner.header_fields(self.fields, self.text == "HEADER.FIELDS.NOT")
            return inner.header
        if self.text == "TEXT":
            return message.message_at(numbers).body
        if self.text == "MIME":
            return message.part(numbers).header
        return message.content(numbers)

    def label(self):
        """The name of this item in the FETCH response (RFC 3501 §7.4.2, RFC 3516 §4.2)."""
        section = [b".".join(b"%d" % number for number in self.part)] if self.part else []
        if self.text is not None:
            text = self.text.encode("ascii")
            if self.fields:
                text += b" (" + b" ".join(self.fields) + b")"
            section.append(text)
        name = {"section": b"BODY", "binary": b"BINARY", "binarysize": b"BINARY.SIZE"}[self.kind]
        label = name + b"[" + b".".join(section) + b"]"
        if self.partial is not None:
            label += b"<%d>" % self.partial[0]
        return label


def parse_fetch_items(line):
    """(items, rest of the line) for FETCH's argument: a macro, one attribute, or a
    parenthesised list of them."""
    parser = _Parser(line)
    if parser.peek(b"("):
        parser.pos += 1
        items = [parser.attribute()]
        while not parser.peek(b")"):
            parser.expect(b" ")
            items.append(parser.attribute())
        parser.pos += 1
    else:
        name = parser.name()
        if name in _MACROS:
            items = [FetchItem(kind) for kind in _MACROS[name]]
        else:
            parser.pos -= len(name)
            items = [parser.attribute()]
    rest = line[parser.pos:]
    if rest and not rest.startswith(b" "):
        raise IllegalClientResponse("unexpected %r after the FETCH attributes" % rest[:20])
    return items, rest[1:]


class _Parser:
    def __init__(self, line):
        self.line = line
        self.pos = 0

    def peek(self, octet):
        return self.line[self.pos:self.pos + 1] == octet

    def expect(self, octet):
        if not self.peek(octet):
            raise IllegalClientResponse("expected %r in the FETCH attributes at %r"
                                        % (octet.decode(), self.line[self.pos:self.pos + 20]))
        self.pos += 1

    def _match(self, pattern, what):
        match = pattern.match(self.line, self.pos)
        if match is None:
            raise IllegalClientResponse("expected %s in the FETCH attributes at %r"
                                        % (what, self.line[self.pos:self.pos + 20]))
        self.pos = match.end()
        return match.group()

    def name(self):
        return self._match(_NAME, "an attribute").upper()

    def number(self, nonzero):
        digits = self._match(_NUMBER, "a number")
        value = int(digits[:11])
        if value > _MAX_NUMBER or len(digits) > 10 or (nonzero and value == 0):
            raise IllegalClientResponse("number out of range in the FETCH attributes: %r" % digits[:20])
        return value

    def field_name(self):
        """header-fld-name: an astring; here an atom or a quoted string (RFC 3501 §9)."""
        if self.peek(b'"'):
            quoted = self._match(_QUOTED_FIELD_NAME, "a quoted header field name")
            name = re.sub(rb"\\(.)", rb"\1", quoted[1:-1])
            if not _FIELD_NAME.fullmatch(name):
                raise IllegalClientResponse("not a header field name: %r" % name[:40])
            return name
        return self._match(_FIELD_NAME, "a header field name")

    def attribute(self):
        name = self.name()
        if self.peek(b"[") and name in _SECTIONED:
            kind, peek = _SECTIONED[name]
            self.pos += 1
            part, text, fields = self.section(binary=kind != "section")
            self.expect(b"]")
            partial = None
            if kind != "binarysize" and self.peek(b"<"):
                self.pos += 1
                origin = self.number(nonzero=False)
                self.expect(b".")
                length = self.number(nonzero=True)
                self.expect(b">")
                partial = (origin, length)
            return FetchItem(kind, peek, part, text, fields, partial)
        if name in _SIMPLE:
            return FetchItem(_SIMPLE[name])
        raise IllegalClientResponse("unknown FETCH attribute %r" % name[:40])

    def section(self, binary):
        """section-spec (RFC 3501 §9), or for BINARY only section-part (RFC 3516 §6)."""
        part = []
        while self.line[self.pos:self.pos + 1].isdigit():
            part.append(self.number(nonzero=True))
            if not self.peek(b"."):
                break
            self.pos += 1
            if not self.line[self.pos:self.pos + 1].isdigit():
                break                          # "1.HEADER": the text part follows
        if binary or self.peek(b"]"):
            if part and self.line[self.pos - 1:self.pos] == b".":
                raise IllegalClientResponse("a section part ends with '.'")
            return tuple(part), None, ()
        text = self.name()
        if text in (b"HEADER", b"TEXT") or (text == b"MIME" and part):
            return tuple(part), text.decode(), ()
        if text in (b"HEADER.FIELDS", b"HEADER.FIELDS.NOT"):
            self.expect(b" ")
            self.expect(b"(")
            fields = [self.field_name()]
            while not self.peek(b")"):
                self.expect(b" ")
                fields.append(self.field_name())
            self.pos += 1
            return tuple(part), text.decode(), tuple(field.upper() for field in fields)
        raise IllegalClientResponse("unknown section %r" % text[:40])
