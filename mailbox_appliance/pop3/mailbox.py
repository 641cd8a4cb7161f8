"""One POP3 session's view of a user's INBOX: a numbered snapshot taken at login, deletions kept
until QUIT (RFC 1939 §6, the UPDATE state), then applied through the folder's shared state so
every IMAP session of the INBOX sees them at once.

The snapshot holds no lock: delivery goes on while a POP3 session is open (new mail shows in the
next session), and a message an IMAP client expunges meanwhile answers -ERR when retrieved.
"""

from mailbox_appliance.maildir import names
from mailbox_appliance.message import to_crlf


class NoSuchMessage(Exception):
    """The message number is not in the snapshot, or is marked deleted; the text says which."""


class Gone(Exception):
    """The message was removed by another session after the snapshot was taken."""


class POP3Mailbox:
    def __init__(self, folder):
        folder.refresh()
        self.folder = folder
        self.messages = list(folder.messages.values())   # ascending UID: message n is messages[n-1]
        self.deleted = set()
        self.retrieved = set()

    def _message(self, number):
        if not (isinstance(number, int) and 1 <= number <= len(self.messages)):
            raise NoSuchMessage(f"no message {number}")
        if number in self.deleted:
            raise NoSuchMessage(f"message {number} is already deleted")
        return self.messages[number - 1]

    def numbers(self):
        """The message numbers not marked deleted."""
        return [number for number in range(1, len(self.messages) + 1) if number not in self.deleted]

    def size(self, number):
        """Octets as sent, with CRLF line ends (RFC 1939 §5 LIST): Maildir's W= size."""
        return self.folder.rfc822_size(self._message(number))

    def uidl(self, number):
        """Dovecot's default pop3_uidl_format %08Xu%08Xv: UID and UIDVALIDITY, so a client moving
        from Dovecot, or from POP3 to IMAP and back, does not download everything again."""
        return "%08X%08X" % (self._message(number).uid, self.folder.uidvalidity)

    def content(self, number):
        """The message with CRLF line ends (Dovecot writes LF into Maildir files)."""
        message = self._message(number)
        try:
            data = self.folder.read(message)
        except FileNotFoundError:
            raise Gone(f"message {number} was removed by another session") from None
        return to_crlf(data)

    def mark_retrieved(self, number):
        self.retrieved.add(number)

    def delete(self, number):
        self._message(number)
        self.deleted.add(number)

    def reset(self):
        self.deleted.clear()

    def commit(self):
        """QUIT: remove the deleted messages, and mark the retrieved ones \\Seen as Dovecot does."""
        uids = [self.messages[number - 1].uid for number in sorted(self.deleted)]
        removed = self.folder.remove(uids)
        seen = [self.messages[number - 1].uid for number in sorted(self.retrieved - self.deleted)]
        self.folder.set_letters(seen, {names.FLAG_SEEN}, 1)
        return len(removed) == len(uids)
