"""Parsing of SMTP command arguments: MAIL FROM / RCPT TO paths and their ESMTP parameters.

Pure functions, so every odd input can be unit-tested.  Addresses come back as str; a non-ASCII
address is only valid in an SMTPUTF8 transaction (RFC 6531 §3.3), which the caller decides.
"""

import re

from mailbox_appliance.accounts.addresses import is_valid_domain

# RFC 5321 §4.1.2 Mailbox; the local part is a dot-string or a quoted string.  Non-ASCII (UTF-8)
# characters are allowed in atoms per RFC 6531 §3.3; whether they are allowed at all is checked
# by the caller against SMTPUTF8.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\x80-\U0010ffff]|\\[\x20-\x7e])*"'
_ADDRESS_LITERAL = r"\[[^\[\]\\\s]+\]"
_MAILBOX = re.compile(rf"({_DOT_STRING}|{_QUOTED_STRING})@([^\s<>@\[\]]+|{_ADDRESS_LITERAL})\Z")
# RFC 5321 §4.1.2: a source route ("@a,@b:") may precede the mailbox and must be ignored.
_SOURCE_ROUTE = re.compile(r"@[^:,<>]+(?:,@[^:,<>]+)*:")
_PARAMETER = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e\x80-\U0010ffff]+))?\Z")


class SyntaxProblem(ValueError):
    """The argument does not parse; the message is the reply text."""


def parse_path(argument, keyword, allow_null):
    """'FROM:<a@b> SIZE=10' (keyword 'FROM') -> (address or '' for <>, {PARAM: value or None}).

    Raises SyntaxProblem with the text for a 501 reply.
    """
    try:
        text = argument.decode("utf-8")
    except UnicodeDecodeError:
        raise SyntaxProblem("Address is not valid UTF-8") from None
    head, colon, rest = text.partition(":")
    if head.strip().upper() != keyword or not colon:
        raise SyntaxProblem(f"Syntax: {'MAIL FROM' if keyword == 'FROM' else 'RCPT TO'}:<address>")
    rest = rest.lstrip(" ")
    if not rest.startswith("<"):
        raise SyntaxProblem("Address must be in angle brackets: <user@domain>")
    close = _closing_bracket(rest)
    if close < 0:
        raise SyntaxProblem("Address has no closing angle bracket")
    inside, parameters_text = rest[1:close], rest[close + 1:]
    if parameters_text and not parameters_text.startswith(" "):
        raise SyntaxProblem("Expected a space between the address and its parameters")
    inside = _SOURCE_ROUTE.sub("", inside, count=1) if inside.startswith("@") else inside
    if keyword == "TO" and inside.lower() == "postmaster":
        # RFC 5321 §4.1.1.3: "<Postmaster>" with no domain is a valid recipient.
        address = inside
    elif inside == "":
        if not allow_null:
            raise SyntaxProblem("The null address <> is not a valid recipient")
        address = ""
    else:
        match = _MAILBOX.match(inside)
        if not match or len(inside.encode("utf-8")) > 256 or not _valid_domain_part(match.group(2)):
            raise SyntaxProblem(f"Bad address syntax: <{inside}>")
        address = inside
    return address, _parameters(parameters_text)


def _closing_bracket(text):
    """Index of the '>' closing the path, skipping quoted strings."""
    quoted = escaped = False
    for index, character in enumerate(text):
        if escaped:
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == '"':
            quoted = not quoted
        elif character == ">" and not quoted:
            return index
    return -1


def _valid_domain_part(domain):
    if domain.startswith("["):
        return True
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return False
    return is_valid_domain(ascii_domain.lower().rstrip("."))


def _parameters(text):
    parameters = {}
    for item in text.split():
        match = _PARAMETER.match(item)
        if not match:
            raise SyntaxProblem(f"Bad parameter syntax: {item}")
        parameters[match.group(1).upper()] = match.group(2)
    return parameters

