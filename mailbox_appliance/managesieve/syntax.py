"""Reading ManageSieve commands (RFC 5804 §4): an atom, then strings (quoted, or literals
``{n+}`` / ``{n}`` followed by n octets, possibly spanning lines) and numbers.

``read_command`` takes the bytes received so far and returns the command and how many octets it
used, or None while it is incomplete; a malformed command raises CommandError, which the
session answers with NO.  Lines are bounded by the caller's limit, literals by MAX_LITERAL.
"""

import re

from mailbox_appliance.sieve.grammar import MAX_SCRIPT_OCTETS

MAX_LITERAL = MAX_SCRIPT_OCTETS
_ATOM = re.compile(rb"[A-Za-z]+")
_LITERAL = re.compile(rb"\{(\d{1,10})\+?\}\r?\n")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\["\\])*)"')
_NUMBER = re.compile(rb"\d{1,10}")


class CommandError(Exception):
    """A command that cannot be read; *skip* is how many octets to drop to go on, None when the
    connection cannot continue (an unreadable literal)."""

    def __init__(self, text, skip=None):
        super().__init__(text)
        self.text, self.skip = text, skip


def read_command(data, max_line):
    """(verb, [arguments], octets used) of the first command in *data*, or None when more is
    needed.  Arguments are bytes (strings) or int (numbers)."""
    line_end = data.find(b"\n")
    if line_end < 0 and len(data) > max_line:
        raise CommandError(f"Line longer than {max_line} octets")
    atom = _ATOM.match(data)
    if atom is None:
        if line_end < 0:
            return None
        raise CommandError("Expected a command name", line_end + 1)
    verb, position, arguments = atom.group(0).upper().decode("ascii"), atom.end(), []
    while True:
        if data.startswith(b"\r\n", position) or data.startswith(b"\n", position):
            return verb, arguments, position + (2 if data[position:position + 1] == b"\r" else 1)
        if position >= len(data) or data[position:position + 1] == b"\r" and position + 1 >= len(data):
            return None
        if data[position:position + 1] != b" ":
            raise _skip_line(data, position, "Expected a space between arguments")
        position += 1
        literal = _LITERAL.match(data, position)
        if literal is not None:
            size = int(literal.group(1))
            if size > MAX_LITERAL:
                raise CommandError(f"A literal may hold at most {MAX_LITERAL} octets")
            start = literal.end()
            if len(data) < start + size:
                return None
            arguments.append(data[start:start + size])
            position = start + size
            continue
        if data.startswith(b"{", position):
            if data.find(b"\n", position) < 0:
                return None
            raise _skip_line(data, position, "Malformed literal")
        quoted = _QUOTED.match(data, position)
        if quoted is not None:
            arguments.append(re.sub(rb'\\(["\\])', rb"\1", quoted.group(1)))
            position = quoted.end()
            continue
        number = _NUMBER.match(data, position)
        if number is not None:
            arguments.append(int(number.group(0)))
            position = number.end()
            continue
        if data.find(b"\n", position) < 0:
            return None
        raise _skip_line(data, position, "Expected a string or a number")


def _skip_line(data, position, text):
    end = data.find(b"\n", position)
    return CommandError(text, None if end < 0 else end + 1)


def quoted(text):
    """*text* (str) as a quoted string, or as a literal when it holds CR, LF or NUL (RFC 5804 §4)."""
    encoded = text.encode("utf-8")
    if any(octet in encoded for octet in b"\r\n\0") or len(encoded) > 1024:
        return b"{%d}\r\n" % len(encoded) + encoded
    return b'"' + encoded.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
