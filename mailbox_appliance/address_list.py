"""RFC 5322 §3.4 address lists, read the way mail clients and Dovecot read them.

``email.utils.getaddresses`` drops group syntax (``undisclosed-recipients:;``), which IMAP's
ENVELOPE must show (RFC 3501 §7.4.2), SEARCH must find and SORT must order by.  Here one pass
over the field's tokens gives a flat list of entries, exactly the shape ENVELOPE sends:

- a mailbox: ``Address(name, route, mailbox, host)``; a comment stands in for a missing display
  name (``user@domain (Real Name)``, the obsolete form many clients still write); a mailbox with
  no domain has host "" (host NIL would make it a group's start);
- a group: ``Address(None, None, "group name", None)`` before its members and
  ``Address(None, None, None, None)`` after them.

Malformed input gives what can be read of it, never an error; the cost is linear in the length
of the field (no backtracking), and at most MAX_ADDRESSES entries are returned.
"""

import re
from typing import NamedTuple, Optional

__all__ = ["Address", "parse", "MAX_ADDRESSES"]

# More entries than any real message has; a hostile field with more is cut off here.
MAX_ADDRESSES = 10_000

_SPECIALS = "<>@,;:"
# One token: a quoted string, a comment (nesting handled below), a domain literal, a special, or
# an atom (anything else up to white space, a special, a quote or a parenthesis; dots included,
# so "a.b" and obsolete phrases like "J. Smith" stay whole).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|\[[^\]]*\]?|[<>@,;:]|\(|\)|[^\s"()<>@,;:\[]+', re.DOTALL)
_UNQUOTE = re.compile(r"\\(.)", re.DOTALL)


class Address(NamedTuple):
    name: Optional[str]
    route: Optional[str]
    mailbox: Optional[str]
    host: Optional[str]

    @property
    def is_group_start(self):
        return self.host is None and self.mailbox is not None

    @property
    def is_group_end(self):
        return self.host is None and self.mailbox is None

    def text(self):
        """The entry as it is searched (RFC 3501 §6.4.4 FROM/TO/CC/BCC): "name <mailbox@host>",
        a group's name with ":", a group's end as ";"."""
        if self.is_group_end:
            return ";"
        if self.is_group_start:
            return f"{self.mailbox}:"
        address = f"{self.mailbox or ''}@{self.host}" if self.host else (self.mailbox or "")
        return f"{self.name} <{address}>" if self.name else address


_GROUP_END = Address(None, None, None, None)


def _tokens(text):
    """(kind, value) pairs: kind is "atom", "quoted", "comment", "literal" or the special itself."""
    depth = start = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if depth:
            if token == "(":
                depth += 1
            elif token == ")":
                depth -= 1
                if not depth:
                    yield "comment", text[start:match.start()].strip()
        elif token == "(":
            depth, start = 1, match.end()
        elif token == ")":
            continue                             # a stray closing parenthesis means nothing
        elif token[0] == '"':
            yield "quoted", _UNQUOTE.sub(r"\1", token[1:-1] if len(token) > 1 and token.endswith('"') else token[1:])
        elif token[0] == "[":
            yield "literal", token
        elif token in _SPECIALS:
            yield token, token
        else:
            yield "atom", token
    if depth:
        yield "comment", text[start:].strip()


def parse(text, limit=MAX_ADDRESSES):
    """The entries of the address list *text* (a header field's value, unfolded or not)."""
    entries = []
    phrase, comments = [], []            # words and comments of the item being read
    local, host, route = None, None, None
    in_angle = in_group = False
    stage = "phrase"                     # phrase | route | local | host | done

    def finish():
        nonlocal phrase, comments, local, host, route, stage, in_angle
        if stage == "phrase" and phrase:
            # Words alone: a mailbox with no domain (a bare local name, or broken syntax).
            entries.append(Address(comments[-1] if comments else None, None, "".join(phrase), ""))
        elif local is not None or host is not None:
            # In "<...>" the phrase before it is the name; for a bare addr-spec, its comment.
            name = " ".join(phrase) or (comments[-1] if comments else None)
            entries.append(Address(name, route, local or None, host or ""))
        phrase, comments, local, host, route, stage, in_angle = [], [], None, None, None, "phrase", False

    for kind, value in _tokens(text):
        if len(entries) >= limit:
            break
        if kind == "comment":
            if not in_angle:
                comments.append(value)
            continue
        if in_angle:
            if kind == ">":
                in_angle, stage = False, "done"
            elif stage == "route":
                if kind == ":":
                    stage = "local"
                elif kind != ",":
                    route = (route or "") + value
            elif kind == "@" and stage == "local" and local is None:
                stage = "route"                           # "<@a,@b:user@host>": a source route
                route = "@"
            elif kind == "@":
                stage = "host"
            elif stage == "local":
                local = (local or "") + value
            elif stage == "host":
                host = (host or "") + value
            continue
        if kind == "<":
            in_angle, stage = True, "local"
            local = None
        elif kind == "@" and stage == "phrase":
            local, phrase, stage = "".join(phrase), [], "host"
        elif kind == "," or kind == ";":
            finish()
            if kind == ";" and in_group:
                entries.append(_GROUP_END)
                in_group = False
        elif kind == ":" and stage == "phrase" and not in_group:
            entries.append(Address(None, None, " ".join(phrase), None))
            phrase, comments, in_group = [], [], True
        elif stage == "host":
            host = (host or "") + value
        elif stage == "phrase":
            phrase.append(value)
    finish()
    if in_group and len(entries) < limit:
        entries.append(_GROUP_END)
    return entries[:limit]
