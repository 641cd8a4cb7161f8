"""Literals from the client (RFC 3501 §4.3), non-synchronizing ones too (LITERAL+, RFC 7888), capped.

A mix-in for imap.server.IMAPServer replacing Twisted's literal handling (arg_astring,
arg_literal, _stringLiteral, _fileLiteral), which knows only ``{n}``, always asks for the octets
with a continuation request and caps nothing for APPEND.  Here:

* ``{n}``: within the cap, "+ Ready" and the octets are read; over it, the command is refused
  before the client sends any of them (BAD for a string, NO [TOOBIG] for an APPEND message).
* ``{n+}`` (RFC 7888 §3): no continuation request, the octets follow the line at once.  Over the
  cap the client has sent them already, so a refusal would leave them to be read as commands.
  RFC 7888 §4 lets the server either read and discard them or close the connection; we close,
  with ``* BYE [TOOBIG]``: the announced size can be up to 4 GB, and discarding would tie the
  session (and the server's input) to all of it before the client could hear anything, while a
  BYE tells it at once and costs nothing.
"""

import re

from twisted.internet import defer
from twisted.mail.imap4 import IllegalClientResponse, IMAP4Server, LiteralFile, LiteralString

__all__ = ["LiteralArguments", "Literal", "MAX_STRING_LITERAL_OCTETS"]

# Longest literal accepted where a string is expected (names, passwords, search strings); an
# APPEND message is capped by [limits] max_message_size instead.
MAX_STRING_LITERAL_OCTETS = 4096
_LITERAL = re.compile(rb"\{(\d+)(\+?)\}\Z")
# APPEND's message may also come as literal8 (RFC 3516 §4.4, with "+" RFC 7888 §4): octets a
# literal may not hold (NUL) allowed.
_MESSAGE_LITERAL = re.compile(rb"~?\{(\d+)(\+?)\}\Z")
# An astring inside a list, where ")" may follow it at once (RFC 3501 §9 quoted, ASTRING-CHAR).
_QUOTED_OR_ATOM = re.compile(rb'"((?:[^"\\\r\n]|\\["\\])*)"|([^\x00-\x20\x7f()"{}\\%*]+)')


class Literal(bytes):
    """A string that came as an IMAP literal or quoted string: never a keyword or an atom."""


def _marker(text, whole=True, pattern=_LITERAL):
    """(size, synchronizing) if *text* is (or, unless *whole*, ends with) ``{n}`` or ``{n+}``."""
    match = (pattern.fullmatch if whole else pattern.search)(text or b"")
    return None if match is None else (int(match.group(1)), not match.group(2))


class LiteralArguments:

    def arg_astring(self, line, final=False):
        """An astring (RFC 3501 §9), its literal form with or without "+"."""
        if not line:
            # Nothing left after the previous argument (Twisted's own raised AttributeError).
            raise IllegalClientResponse("Missing argument")
        marker = _marker(line.strip())
        if marker is None:
            if line and line.lstrip()[:1] == b"{":
                # {+N}, { N}, {N }, {N_NNN}, {-1}: Twisted's int() took them, uncapped.
                raise IllegalClientResponse("Malformed literal: {digits} or {digits+} (RFC 3501 §4.3, RFC 7888)")
            return IMAP4Server.arg_astring(self, line, final)
        size, synchronizing = marker
        if final and not size:
            return (b"", b"")
        return self.string_literal(size, synchronizing)

    def arg_list_astring(self, line):
        """(astring, rest of the line) where the astring may be followed by ")" (Twisted's
        arg_astring drops the octet after a quoted string and knows no escapes)."""
        if line[:1] == b"{":
            return self.arg_astring(line)
        match = _QUOTED_OR_ATOM.match(line)
        if match is None:
            raise IllegalClientResponse("Expected a string")
        quoted, atom = match.groups()
        value = atom if quoted is None else re.sub(rb"\\(.)", rb"\1", quoted)
        return Literal(value), line[match.end():]

    def arg_literal(self, line, limit=None):
        """APPEND's message literal (or literal8), capped by the message size limit (or by
        *limit*, what is left of it)."""
        marker = _marker(line, pattern=_MESSAGE_LITERAL)
        if marker is None:
            # Only {digits} or {digits+} is a literal: anything else is BAD, never Twisted's int().
            raise IllegalClientResponse("APPEND wants a literal: {digits}, {digits+} or ~{digits} "
                                        "(RFC 3501 §4.3, RFC 7888, RFC 3516)")
        size, synchronizing = marker
        limit = self.factory.max_message_size if limit is None else limit
        if size <= limit:
            return self._read_literal(LiteralFile, size, synchronizing)
        if not synchronizing:
            return self._too_big(limit)
        self.sendNegativeResponse(self._tag, b"[TOOBIG] Message larger than %d octets" % limit)
        return defer.Deferred()       # never fires: the command ended with this NO

    def arg_text_with_literals(self, line):
        """The rest of the command, with any string literals in it read.

        Returns [command text (bytes), Literal, command text, ...] (search.tokenize reads it).
        The command's text and literals together are at most [limits] max_line_length octets:
        each literal is capped, but a command of many (ID before login, SEARCH) was not, and
        four sessions held a gigabyte.
        """
        pieces = []
        limit = self.factory.max_line_length

        def more(line):
            marker = _marker(line, whole=False)
            if marker is None:
                pieces.append(line or b"")
                return pieces, b""
            pieces.append(line[:line.rindex(b"{")])
            size, synchronizing = marker
            if sum(map(len, pieces)) + size > limit:
                if not synchronizing:
                    return self._too_big(limit)
                raise IllegalClientResponse("Command with its literals over %d octets" % limit)
            return self.string_literal(size, synchronizing).addCallback(literal_read)

        def literal_read(result):
            literal, rest_of_line = result
            pieces.append(Literal(literal))
            return more(rest_of_line)

        return more(line)

    def string_literal(self, size, synchronizing):
        """A Deferred firing (octets, rest of the line) for a string literal of *size* octets."""
        if size <= MAX_STRING_LITERAL_OCTETS:
            return self._read_literal(LiteralString, size, synchronizing)
        if not synchronizing:
            return self._too_big(MAX_STRING_LITERAL_OCTETS)
        raise IllegalClientResponse("Literal over %d octets" % MAX_STRING_LITERAL_OCTETS)

    def _read_literal(self, kind, size, synchronizing):
        result = defer.Deferred()
        self.parseState = "pending"
        self._pendingLiteral = kind(size, result)
        if synchronizing:
            self.sendContinuationRequest(b"Ready for %d octets" % size)
        self.setRawMode()
        return result

    def _too_big(self, limit):
        """A non-synchronizing literal over *limit*: BYE and close (the module says why)."""
        self.log.info("imap session {session} from {client}: non-synchronizing literal over {limit} "
                      "octets; closing", session=self.session_id, client=self.client_address, limit=limit)
        self.close_session(b"[TOOBIG] Literal larger than %d octets" % limit)
        return defer.Deferred()       # never fires: the session ends
