"""The parsed form of recently fetched messages, shared by every IMAP session of the process.

Why: an office's clients fetch the same new message from every device, and one FETCH of
ENVELOPE, BODYSTRUCTURE or a body section otherwise reads the file, converts its line ends and
parses its MIME structure again each time (under imaptest's load that was a fifth of the
reactor's time).  A Maildir file's bytes never change under its base name (a flag change renames
only the ``:2,`` info; a new message gets a new unique name), so the base name is a safe key and
nothing needs invalidating: what is expunged just ages out.

Bounded by the octets held, least recently used first out; a message over a limit is parsed for
the command and not kept.
"""

from collections import OrderedDict

from mailbox_appliance.message import to_crlf

from .structure import Part

__all__ = ["ParsedMessages"]


class ParsedMessages:
    def __init__(self, max_octets=32 * 1024 * 1024, max_message_octets=1024 * 1024):
        self.max_octets = max_octets
        self.max_message_octets = max_message_octets
        self._parts = OrderedDict()       # (folder path, base name) -> Part
        self._octets = 0

    def get(self, folder, message):
        """The message (maildir.mailbox.Message of *folder*) as a structure.Part, CRLF line ends."""
        key = (folder.path, message.base)
        part = self._parts.get(key)
        if part is not None:
            self._parts.move_to_end(key)
            return part
        part = Part(to_crlf(folder.read(message)))
        size = len(part.data)
        if size <= self.max_message_octets:
            self._parts[key] = part
            self._octets += size
            while self._octets > self.max_octets:
                _key, oldest = self._parts.popitem(last=False)
                self._octets -= len(oldest.data)
        return part
