"""The ID command's argument (RFC 2971 §3.3) and what the server says it is.

Why a module: ID's parameter list is parsed from the same tokens as SEARCH (quoted strings and
literals, LITERAL+ ones too), and what is kept of it is bounded by the RFC's limits: fields of at
most 30 octets, values of at most 1024, at most 30 pairs.
"""

from importlib import metadata

from .literals import Literal

__all__ = ["identity_fields", "SERVER_IDENTITY"]

MAX_FIELD_OCTETS = 30           # RFC 2971 §3.3
MAX_VALUE_OCTETS = 1024         # RFC 2971 §3.3
MAX_PAIRS = 30                  # RFC 2971 §3.3
# RFC 2971 §3.3: no field is required; name and version tell an admin reading a client's log.
SERVER_IDENTITY = ["name", "mailbox-appliance", "version", metadata.version("mailbox-appliance")]


def identity_fields(tokens):
    """{field: value or None} from the tokens (search.tokenize) of ``NIL`` or ``("f" "v" ...)``.

    Raises ValueError, for a BAD, when the list is malformed.  Pairs past the RFC's limits (a
    longer field or value, more than 30 pairs) are left out, not refused: RFC 2971 §3.3 limits
    what a client sends, and a client that sends more still deserves its answer.
    """
    if len(tokens) == 1 and not isinstance(tokens[0], Literal) and tokens[0].upper() == b"NIL":
        return {}
    if len(tokens) < 2 or tokens[0] != "(" or tokens[-1] != ")":
        raise ValueError("ID wants NIL or a parenthesised list of field and value strings")
    items = tokens[1:-1]
    if len(items) % 2:
        raise ValueError("ID wants field and value pairs")
    fields = {}
    for field, value in zip(items[::2], items[1::2]):
        if not isinstance(field, Literal):
            raise ValueError("ID fields are strings")
        if isinstance(value, Literal):
            text = value.decode("utf-8", "replace")
        elif value not in ("(", ")") and value.upper() == b"NIL":
            text = None
        else:
            raise ValueError("ID values are NIL or strings")
        if len(field) <= MAX_FIELD_OCTETS and (text is None or len(value) <= MAX_VALUE_OCTETS) \
                and len(fields) < MAX_PAIRS:
            fields[field.decode("utf-8", "replace")] = text
    return fields
