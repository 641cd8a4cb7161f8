"""SEARCH (RFC 3501 §6.4.4): every search key, parsed into one predicate and run over a view.

Replaces Twisted's search, which fetched every message and filtered a few per reactor turn,
failed on str/bytes for SUBJECT/FROM/HEADER, and sent no ``* SEARCH`` line for no match.
Flag, size, UID and sequence keys look only at the file name; INTERNALDATE keys stat the file;
only header and text keys open it (header keys read just the header).
"""

import email.utils
import re
import time
from datetime import date

from mailbox_appliance import address_list
from mailbox_appliance.maildir.flags import LETTER_OF
from mailbox_appliance.maildir.names import FLAG_SEEN
from mailbox_appliance.message import to_crlf

from mailbox_appliance.message import decoded

from .headers import header_values, read_header
from .literals import Literal
from .response import MONTHS
from .selection import BadSequence, parse_sequence_set

__all__ = ["SearchError", "judge", "parse_search", "run", "tokenize"]

_TOKEN = re.compile(rb'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|([^\s()"]+))')
_SIMPLE_FLAGS = {"ANSWERED": "\\Answered", "DELETED": "\\Deleted", "DRAFT": "\\Draft",
                 "FLAGGED": "\\Flagged", "SEEN": "\\Seen"}
# RFC 3501 §6.4.4: FROM, TO, CC and BCC match the addresses (names, mailboxes, group names).
_ADDRESS_KEYS = {"BCC", "CC", "FROM", "TO"}
# Date keys: which date (INTERNALDATE or the Date: header), and how it compares with the day given.
_DATE_KEYS = {
    "BEFORE": ("internal", lambda d, day: d < day),
    "ON": ("internal", lambda d, day: d == day),
    "SINCE": ("internal", lambda d, day: d >= day),
    "SENTBEFORE": ("sent", lambda d, day: d < day),
    "SENTON": ("sent", lambda d, day: d == day),
    "SENTSINCE": ("sent", lambda d, day: d >= day),
}


# Bounds on one search, decided before any message is read: a search nested deeper than this
# recursed into Python's limit (a traceback per command), and 100,000 keys cost 33 s of the
# reactor over 5,000 messages.  Real clients send a few dozen keys at most.
MAX_SEARCH_DEPTH = 64
MAX_SEARCH_KEYS = 1000


class SearchError(ValueError):
    """A malformed search; the message is for the client (tagged BAD)."""


def tokenize(pieces):
    """Tokens of a search: *pieces* alternate command text (bytes) and Literal strings.

    Returns a list of "(" / ")" markers, Literal strings (quoted or literal) and atoms (bytes).
    """
    tokens = []
    for piece in pieces:
        if isinstance(piece, Literal):
            tokens.append(piece)
            continue
        position = 0
        piece = piece.rstrip()
        while position < len(piece):
            match = _TOKEN.match(piece, position)
            if match is None or match.end() == position:
                raise SearchError("Unparsable search text")
            position = match.end()
            opening, closing, quoted, atom = match.groups()
            if opening:
                tokens.append("(")
            elif closing:
                tokens.append(")")
            elif quoted is not None:
                tokens.append(Literal(re.sub(rb"\\(.)", rb"\1", quoted)))
            elif atom.startswith(b"{"):
                # Only {digits} at the end of a line is a literal (RFC 3501 §4.3); anything else
                # that looks like one ({-1}, twisted#12763) is malformed.
                raise SearchError("Malformed literal %s" % atom.decode("ascii", "replace"))
            else:
                tokens.append(atom)
    return tokens


class Candidate:
    """One message during a search; reads the file only if a key needs it."""

    __slots__ = ("selection", "folder", "number", "uid", "message", "_header", "_text")

    def __init__(self, selection, number, uid):
        self.selection = selection
        self.folder = selection.folder
        self.number = number
        self.uid = uid
        self.message = self.folder.messages[uid]
        self._header = None
        self._text = None

    def has_flag(self, flag):
        if flag.lower() == "\\recent":
            return self.uid in self.selection.recent
        letter = LETTER_OF.get(flag) or self.folder.keywords.letter_for(flag, create=False)
        return letter is not None and letter in self.message.letters

    def header_values(self, name):
        """Every value of header *name*, as stored (bytes)."""
        if self._header is None:
            self._header = read_header(self.folder.file_path(self.message))
        key = name.lower().encode("ascii", "replace")
        return header_values(self._header, frozenset((key,))).get(key, [])

    def header_text(self, name):
        """Every value of header *name*, MIME words decoded, joined (for substring matching)."""
        return "\n".join(decoded(value) for value in self.header_values(name))

    def address_text(self, name):
        """The addresses of header *name* as ``Name <mailbox@host>``, group names as
        ``group:``, display names MIME-decoded, joined (for substring matching)."""
        entries = [entry for value in self.header_values(name)
                   for entry in address_list.parse(value.decode("utf-8", "replace"))]
        return ", ".join(entry._replace(name=decoded(entry.name) if entry.name else None).text()
                         for entry in entries)

    def text(self):
        if self._text is None:
            self._text = self.folder.read(self.message).decode("utf-8", "replace").lower()
        return self._text

    def body_text(self):
        text = to_crlf(self.text().encode("utf-8")).decode("utf-8")
        return text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in text else ""

    def internal_date(self):
        """The INTERNALDATE's day, in UTC like the INTERNALDATE we send (response.py)."""
        return date(*time.gmtime(self.folder.internal_date(self.message))[:3])

    def sent_date(self):
        parsed = email.utils.parsedate_tz(self.header_text("date"))
        return date(*parsed[:3]) if parsed else None


def _search_date(token):
    """RFC 3501 §9 date: ``1-Feb-1994`` (also quoted)."""
    text = bytes(token).decode("ascii", "replace")
    match = re.fullmatch(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})", text)
    if not match or match.group(2).title() not in MONTHS:
        raise SearchError("Bad date %r: use e.g. 1-Feb-1994" % text)
    return date(int(match.group(3)), MONTHS.index(match.group(2).title()) + 1, int(match.group(1)))


class _Parser:
    def __init__(self, tokens, charset):
        self.tokens = tokens
        self.position = 0
        self.charset = charset
        self.depth = 0
        self.count = 0
        self.reads_modseq = False

    def take(self, what="an argument"):
        """The next token, as a key's argument: never a parenthesis."""
        token = self.next_token(what)
        if token in ("(", ")"):
            raise SearchError("Search key needs %s, not a parenthesis" % what)
        return token

    def next_token(self, what):
        if self.position >= len(self.tokens):
            raise SearchError("Search key needs %s" % what)
        token = self.tokens[self.position]
        self.position += 1
        return token

    def text(self):
        token = self.take("a string")
        return bytes(token).decode(self.charset, "replace").lower()

    def number(self):
        token = self.take("a number")
        if not (isinstance(token, bytes) and token.isdigit() and token.isascii()):
            raise SearchError("Search key needs a number")
        return int(token)

    def keys(self, closing=False):
        """A sequence of keys ANDed, up to the end (or to ")" when *closing*)."""
        predicates = []
        while self.position < len(self.tokens):
            if self.tokens[self.position] == ")":
                if not closing:
                    raise SearchError("Unbalanced parenthesis")
                self.position += 1
                return _all(predicates)
            predicates.append(self.key())
        if closing:
            raise SearchError("Missing closing parenthesis")
        if not predicates:
            raise SearchError("Empty search")
        return _all(predicates)

    def key(self):
        self.count += 1
        if self.count > MAX_SEARCH_KEYS:
            raise SearchError("Search has more than %d keys" % MAX_SEARCH_KEYS)
        self.depth += 1
        try:
            if self.depth > MAX_SEARCH_DEPTH:
                raise SearchError("Search nested more than %d deep" % MAX_SEARCH_DEPTH)
            return self._key()
        finally:
            self.depth -= 1

    def _key(self):
        token = self.next_token("a search key")
        if token == "(":
            return self.keys(closing=True)
        if token == ")" or isinstance(token, Literal):
            raise SearchError("Expected a search key")
        name = token.upper().decode("ascii", "replace")
        if name[:1].isdigit() or name[:1] == "*":
            return self._sequence(token, by_uid=False)
        method = getattr(self, "key_" + name, None)
        if method is not None:
            return method()
        flag = _SIMPLE_FLAGS.get(name.removeprefix("UN"))
        if flag is not None:
            wanted = not name.startswith("UN")
            return lambda c: c.has_flag(flag) == wanted
        if name in _DATE_KEYS:
            return self.date_key(*_DATE_KEYS[name])
        if name in _ADDRESS_KEYS:
            needle = self.text()
            return lambda c: needle in c.address_text(name).lower()
        raise SearchError("Unknown search key %s" % name)

    def _sequence(self, token, by_uid):
        try:
            ranges = parse_sequence_set(bytes(token))
        except BadSequence as error:
            raise SearchError(str(error)) from None

        def matches(candidate):
            value = candidate.uid if by_uid else candidate.number
            top = _top(candidate, by_uid)      # "*": the highest UID or number (RFC 3501 §6.4.4)
            return any(min(lo or top, hi or top) <= value <= max(lo or top, hi or top) for lo, hi in ranges)
        return matches

    def key_ALL(self):
        return lambda c: True

    def key_NEW(self):
        return lambda c: c.has_flag("\\Recent") and FLAG_SEEN not in c.message.letters

    def key_OLD(self):
        return lambda c: not c.has_flag("\\Recent")

    def key_RECENT(self):
        return lambda c: c.has_flag("\\Recent")

    def key_KEYWORD(self):
        keyword = bytes(self.take("a keyword")).decode("ascii", "replace")
        return lambda c: c.has_flag(keyword)

    def key_UNKEYWORD(self):
        keyword = bytes(self.take("a keyword")).decode("ascii", "replace")
        return lambda c: not c.has_flag(keyword)

    def key_LARGER(self):
        size = self.number()
        return lambda c: c.folder.rfc822_size(c.message) > size

    def key_SMALLER(self):
        size = self.number()
        return lambda c: c.folder.rfc822_size(c.message) < size

    def key_UID(self):
        return self._sequence(self.take("a UID set"), by_uid=True)

    def key_NOT(self):
        inner = self.key()
        return lambda c: not inner(c)

    def key_OR(self):
        first, second = self.key(), self.key()
        return lambda c: first(c) or second(c)

    def key_MODSEQ(self):
        """RFC 7162 §3.1.5: MODSEQ [entry-name entry-type] n, mod-sequence at least n.  Flags
        have no mod-sequences of their own here, so the entry is read and the message's is
        used, as §3.1.5 says a server that keeps none per flag does."""
        token = self.take("a mod-sequence")
        if isinstance(token, Literal):
            entry_type = bytes(self.take("an entry type")).lower()
            if entry_type not in (b"priv", b"shared", b"all"):
                raise SearchError("MODSEQ entry type must be priv, shared or all")
            token = self.take("a mod-sequence")
        text = bytes(token) if token not in ("(", ")") else b""
        if not (text.isdigit() and text.isascii() and len(text) <= 19):
            raise SearchError("MODSEQ wants a number")
        least = int(text)
        self.reads_modseq = True
        return lambda c: c.message.modseq >= least

    def key_SUBJECT(self):
        needle = self.text()
        return lambda c: needle in c.header_text("subject").lower()

    def key_HEADER(self):
        """RFC 3501 §6.4.4: the field's text contains the string; an empty string matches every
        message that has the field at all."""
        field = bytes(self.take("a header name")).decode("ascii", "replace")
        needle = self.text()
        if not needle:
            return lambda c: bool(c.header_values(field))
        return lambda c: needle in c.header_text(field).lower()

    def key_BODY(self):
        needle = self.text()
        return lambda c: needle in c.body_text()

    def key_TEXT(self):
        needle = self.text()
        return lambda c: needle in c.text()

    def date_key(self, which, compare):
        day = _search_date(self.take("a date"))
        if which == "internal":
            return lambda c: compare(c.internal_date(), day)
        return lambda c: (sent := c.sent_date()) is not None and compare(sent, day)


def _top(candidate, by_uid):
    view = candidate.selection.uids
    return (view[-1] if view else 0) if by_uid else len(view)


def _all(predicates):
    if len(predicates) == 1:
        return predicates[0]
    return lambda c: all(predicate(c) for predicate in predicates)


def parse_search(pieces, charset="us-ascii"):
    """A predicate over Candidate for the search text (see tokenize for *pieces*); its
    ``reads_modseq`` says whether a MODSEQ key is in it (RFC 7162 §3.1.5 answers differ)."""
    parser = _Parser(tokenize(pieces), charset)
    predicate = parser.keys()         # a closure made for this search: its own attributes
    predicate.reads_modseq = parser.reads_modseq
    return predicate


def judge(selection, predicate):
    """*predicate* as a test of one message of the view by (sequence number, uid)."""
    return lambda number, uid: predicate(Candidate(selection, number, uid))


def run(selection, predicate):
    """[(number, uid)] of the view's messages matching *predicate*, ascending."""
    folder = selection.folder
    return [(number, uid) for number, uid in enumerate(selection.uids, 1)
            if uid in folder.messages and predicate(Candidate(selection, number, uid))]
