"""SORT (RFC 5256 §3): sort criteria, the per-message sort keys, and a bounded cache of them.

Why a cache: the header keys (DATE, SUBJECT, FROM, TO, CC) need each message's header section,
and reading 100,000 files on every SORT would take seconds.  A message's file never changes in
Maildir (only its name does, with its flags), so its keys, once read, hold until it is expunged.
They are kept by base name per folder in one process-wide cache holding at most
MAX_CACHED_MESSAGES messages' keys, each string cut at MAX_KEY_CHARACTERS: memory stays bounded
however many and however large the folders are; the least recently sorted folders are dropped
first.  ARRIVAL and SIZE need no header: INTERNALDATE and RFC822.SIZE come from the folder
(W= in the name, one stat for the date, both kept by maildir.mailbox).
"""

import email.utils
import re
import sys
from collections import OrderedDict
from typing import NamedTuple, Optional

from mailbox_appliance import address_list
from mailbox_appliance.message import decoded

from .base_subject import base_subject
from .headers import header_values, read_header

__all__ = ["SortError", "parse_criteria", "sort_messages", "HeaderKeys", "header_keys", "SortKeyCache"]

# Messages whose header keys are kept in memory, over all folders (each costs about 300 bytes).
MAX_CACHED_MESSAGES = 500_000
# Longest key kept: messages alike in their first MAX_KEY_CHARACTERS sort by sequence number.
MAX_KEY_CHARACTERS = 200
_HEADER_FIELDS = frozenset((b"date", b"subject", b"from", b"to", b"cc"))
_HEADER_CRITERIA = frozenset(("CC", "DATE", "FROM", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"))
_CRITERIA = _HEADER_CRITERIA | {"ARRIVAL", "SIZE"}
# i;ascii-casemap (RFC 4790 §9.2), the collation RFC 5256 §3 asks for: a-z compare as A-Z, and
# nothing else changes (str.upper would also change non-ASCII letters).
# The usual shapes, "local@domain" and "Name <local@domain>" (no quotes, comments or groups), are
# read by this pattern; anything else goes through address_list.parse.
_SIMPLE_ADDRESS = re.compile(rb'[ \t]*(?:[^"(),:;<>@\\]*<)?([^"(),:;<>@\\\s]+)@')
# The same usual shapes for RFC 5957's display name: "Name <local@domain>", "<local@domain>" and
# "local@domain" alone; parsing every From and To fully made the first SORT of 100,000 messages
# take 1.5 times as long.
_SIMPLE_DISPLAY = re.compile(rb'[ \t]*(?:([^"(),:;<>@\\]*?)[ \t]*<([^"(),:;<>@\\\s]+@[^"(),:;<>@\\\s]+)>'
                             rb'|([^"(),:;<>@\\\s]+@[^"(),:;<>@\\\s]+))[ \t]*(?:,|\Z)')
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class SortError(ValueError):
    """Malformed sort criteria; the message is for the client (tagged BAD)."""


class HeaderKeys(NamedTuple):
    """What SORT needs from one message's header: the sent date (POSIX seconds, None if the Date
    field is missing or unparsable) and the collation keys of the base subject, of the first
    From, To and Cc addresses' mailbox (local) parts, and of the first From and To addresses'
    display names (RFC 5957)."""
    date: Optional[float]
    subject: str
    sender: str
    to: str
    cc: str
    display_from: str
    display_to: str


def parse_criteria(atoms):
    """RFC 5256 §3 sort-criteria (a list of atoms, bytes) -> [(criterion, reverse)]."""
    criteria, reverse = [], False
    for atom in atoms:
        if not isinstance(atom, bytes):
            raise SortError("Sort criteria are atoms")
        name = atom.upper().decode("ascii", "replace")
        if name == "REVERSE":
            if reverse:
                raise SortError("REVERSE twice")
            reverse = True
        elif name in _CRITERIA:
            criteria.append((name, reverse))
            reverse = False
        else:
            raise SortError("Unknown sort criterion %s" % name)
    if reverse or not criteria:
        raise SortError("Sort criteria must end with a criterion")
    return criteria


def _collation_key(text):
    return text[:MAX_KEY_CHARACTERS].translate(_ASCII_UPPER)


def _first_mailbox(values):
    """The addr-mailbox (local part) of the first address of a From/To/Cc field (RFC 5256 §3)."""
    if not values:
        return ""
    value = values[0]
    simple = _SIMPLE_ADDRESS.match(value)
    if simple:
        local = simple.group(1).decode("utf-8", "replace")
    else:
        # A group's first entry is its name (Dovecot sorts "Cc: team: a@b;" under "team").
        entries = address_list.parse(value.decode("utf-8", "replace"))
        local = entries[0].mailbox or "" if entries else ""
    return sys.intern(_collation_key(local))


def _first_display(values):
    """RFC 5957 §3: the display name of the first address of a From/To field (MIME-decoded), or
    its addr-spec when it has none; a group's name for a group."""
    if not values:
        return ""
    simple = _SIMPLE_DISPLAY.match(values[0])
    if simple:
        name, bracketed, bare = simple.groups()
        text = decoded(name) if name else (bracketed or bare).decode("utf-8", "replace")
        return sys.intern(_collation_key(text))
    entries = address_list.parse(values[0].decode("utf-8", "replace"))
    if not entries:
        return ""
    first = entries[0]
    if first.name:
        text = decoded(first.name)
    else:
        text = f"{first.mailbox or ''}@{first.host}" if first.host else (first.mailbox or "")
    return sys.intern(_collation_key(text))


def _sent_date(values):
    """RFC 5256 §2.2: the Date field in POSIX seconds (so normalised to UTC), or None."""
    if not values:
        return None
    try:
        parsed = email.utils.parsedate_tz(values[0].decode("ascii", "replace"))
        return float(email.utils.mktime_tz(parsed)) if parsed else None
    except (ValueError, OverflowError, TypeError):
        return None


def header_keys(header):
    """HeaderKeys of a message's header section (bytes)."""
    values = header_values(header, _HEADER_FIELDS)
    return HeaderKeys(_sent_date(values.get(b"date")), _collation_key(base_subject(values.get(b"subject", [b""])[0])),
                      _first_mailbox(values.get(b"from")), _first_mailbox(values.get(b"to")),
                      _first_mailbox(values.get(b"cc")), _first_display(values.get(b"from")),
                      _first_display(values.get(b"to")))


_MISSING = HeaderKeys(None, "", "", "", "", "", "")


class SortKeyCache:
    """HeaderKeys by base name, per folder path, for at most *limit* messages in all."""

    def __init__(self, limit=MAX_CACHED_MESSAGES):
        self.limit = limit
        self._folders = OrderedDict()     # folder path -> {base name: HeaderKeys}, least recent first
        self._count = 0

    def keys_of(self, folder, messages):
        """{uid: HeaderKeys} of *messages* (maildir.mailbox.Message) of *folder*, reading the
        header section of those not cached yet."""
        known = self._folders.pop(folder.path, None) or {}
        self._count -= len(known)
        if len(known) > len(folder.messages):
            # Expunged messages' keys: dropped once they could outnumber the living.
            living = {message.base for message in folder.messages.values()}
            known = {base: keys for base, keys in known.items() if base in living}
        self._make_room(len(messages))
        result = {}
        for message in messages:
            keys = known.get(message.base)
            if keys is None:
                try:
                    keys = header_keys(read_header(folder.file_path(message)))
                except FileNotFoundError:
                    keys = _MISSING           # gone behind our back: the next refresh tells
                else:
                    if len(known) + self._count < self.limit:
                        known[message.base] = keys
            result[message.uid] = keys
        self._folders[folder.path] = known
        self._count += len(known)
        return result

    def _make_room(self, wanted):
        while self._folders and self._count + wanted > self.limit:
            _path, dropped = self._folders.popitem(last=False)
            self._count -= len(dropped)


_cache = SortKeyCache()


def sort_messages(selection, found, criteria, cache=_cache):
    """*found* [(number, uid)] in the order of *criteria*; ties by sequence number (RFC 5256 §3)."""
    folder = selection.folder
    messages = folder.messages
    found = [item for item in found if item[1] in messages]
    headers = None
    if any(name in _HEADER_CRITERIA for name, _reverse in criteria):
        headers = cache.keys_of(folder, [messages[uid] for _number, uid in found])
    key_of = {
        "ARRIVAL": lambda item: folder.internal_date(messages[item[1]]),
        "SIZE": lambda item: folder.rfc822_size(messages[item[1]]),
        "DATE": lambda item: _date_or_arrival(headers[item[1]].date, folder, messages[item[1]]),
        "SUBJECT": lambda item: headers[item[1]].subject,
        "FROM": lambda item: headers[item[1]].sender,
        "TO": lambda item: headers[item[1]].to,
        "CC": lambda item: headers[item[1]].cc,
        "DISPLAYFROM": lambda item: headers[item[1]].display_from,
        "DISPLAYTO": lambda item: headers[item[1]].display_to,
    }
    # Stable sorts from the last criterion to the first: messages equal in all keys keep their
    # ascending sequence numbers, and reverse=True keeps that stability too.
    for name, reverse in reversed(criteria):
        found.sort(key=key_of[name], reverse=reverse)
    return found


def _date_or_arrival(date, folder, message):
    # RFC 5256 §2.2: without a usable Date field, the INTERNALDATE is the sent date.
    return folder.internal_date(message) if date is None else date
