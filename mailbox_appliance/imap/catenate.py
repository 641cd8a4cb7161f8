"""CATENATE (RFC 4469): an APPEND message built from literal text and parts of stored messages,
named by IMAP URLs (RFC 5092), so a client forwards an attachment without downloading it.

Only URLs to the session's own mailboxes are resolved (RFC 4469 §5: without URLAUTH a server
resolves what the user may read): relative ones (``/INBOX;UIDVALIDITY=5/;UID=3/;SECTION=1``) and
``imap://`` ones naming the logged-in user or no user.  Anything else is BADURL.
"""

import re
from urllib.parse import unquote_to_bytes

from twisted.mail.imap4 import IllegalClientResponse

from .account import FolderError
from .fetch_items import parse_fetch_items
from .structure import SectionError

__all__ = ["BadURL", "Catenation", "MAX_PARTS"]

# Parts of one CATENATE: each URL may name a whole stored message, so the count is bounded as
# well as the total size; 64 is far more than a forward with attachments needs.
MAX_PARTS = 64

# RFC 5092 §11 imessagepart, after any "imap://iserver": the enc-mailbox has ";" and "/" inside
# names percent-encoded (achar), so these separators are unambiguous.
_PATH = re.compile(
    rb"/(?P<mailbox>[^;]+?)(?:;UIDVALIDITY=(?P<validity>[1-9][0-9]{0,9}))?/;UID=(?P<uid>[1-9][0-9]{0,9})"
    rb"(?:/;SECTION=(?P<section>[^/]+))?(?:/;PARTIAL=(?P<origin>[0-9]{1,10})(?:\.(?P<length>[1-9][0-9]{0,9}))?)?\Z",
    re.IGNORECASE)
_SERVER = re.compile(rb"imap://(?:(?P<user>[^@/;]*)(?:;AUTH=[^@/]*)?@)?[^/@]*(?=/)", re.IGNORECASE)


class BadURL(ValueError):
    """A URL that cannot be resolved: the APPEND fails with NO [BADURL "url"] (RFC 4469 §6)."""

    def __init__(self, url, reason):
        super().__init__(reason)
        self.url = url
        self.reason = reason


def _mailbox_name(encoded):
    """The enc-mailbox as an IMAP mailbox name: RFC 5092 §3.2 carries it as %-encoded UTF-8,
    our commands take modified UTF-7."""
    return unquote_to_bytes(encoded).decode("utf-8").encode("imap4-utf-7").decode("ascii")


class Catenation:
    """The parts of one CATENATE message as they are read: ("text", octets) and ("url", url)."""

    def __init__(self):
        self.parts = []
        self.text_size = 0            # what the literals hold, bounded as they are read

    def add(self, kind, value):
        if len(self.parts) >= MAX_PARTS:
            raise IllegalClientResponse("CATENATE takes at most %d parts" % MAX_PARTS)
        self.parts.append((kind, value))
        if kind == "text":
            self.text_size += len(value)

    def assemble(self, account, limit, parsed_messages):
        """The message's octets; BadURL for a URL that names nothing readable, OverflowError
        past *limit* octets (checked before each part is added).  A URL's message is read
        through *parsed_messages* (parsed_messages.ParsedMessages), as FETCH reads it."""
        octets = []
        size = 0
        for kind, value in self.parts:
            data = value if kind == "text" else self._resolve(account, value, parsed_messages)
            size += len(data)
            if size > limit:
                raise OverflowError(limit)
            octets.append(data)
        return b"".join(octets)

    @staticmethod
    def _resolve(account, url, parsed_messages):
        path = url
        server = _SERVER.match(url)
        if server is not None:
            user = server.group("user")
            if user and unquote_to_bytes(user).decode("utf-8", "replace").lower() != account.address.lower():
                raise BadURL(url, "The URL names another user's mailbox")
            path = url[server.end():]
        match = _PATH.match(path)
        if match is None:
            raise BadURL(url, "Not an IMAP URL to a message (RFC 5092)")
        try:
            folder = account.open(_mailbox_name(match.group("mailbox")))
        except (FolderError, UnicodeError, ValueError):
            raise BadURL(url, "The URL names no mailbox of yours") from None
        validity = match.group("validity")
        if validity is not None and int(validity) != folder.uidvalidity:
            raise BadURL(url, "The mailbox's UIDVALIDITY has changed")
        message = folder.messages.get(int(match.group("uid")))
        if message is None:
            raise BadURL(url, "No message with that UID")
        whole = parsed_messages.get(folder, message)
        section = unquote_to_bytes(match.group("section") or b"")
        try:
            (item,), rest = parse_fetch_items(b"BODY.PEEK[" + section + b"]")
            data = item.octets(whole)
        except (IllegalClientResponse, SectionError, ValueError):
            raise BadURL(url, "The URL names no part of the message") from None
        if rest or b"\0" in data:
            raise BadURL(url, "The URL names no part of the message")
        if match.group("origin") is not None:
            origin = int(match.group("origin"))
            length = match.group("length")
            data = data[origin:] if length is None else data[origin:origin + int(length)]
        return data
