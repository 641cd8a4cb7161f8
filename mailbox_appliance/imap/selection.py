"""One session's view of its selected folder: sequence numbers and the changes it owes the client.

Why: the Folder (maildir.mailbox) is shared, but message sequence numbers belong to a session
(RFC 3501 §2.3.1.2): they may only shift when the server tells the client, with EXISTS and
EXPUNGE, and EXPUNGE may not be sent while answering FETCH, STORE or SEARCH (RFC 3501 §7.4.1).
So a Selection keeps its own UID list and collects what the Folder reports until the server
flushes it at a point where the protocol allows.
"""

from bisect import bisect_left

from zope.interface import implementer

from mailbox_appliance.interfaces import IFolderListener
from mailbox_appliance.maildir.flags import SYSTEM_FLAGS, to_flags
from mailbox_appliance.maildir.keywords import MAX_KEYWORDS

from .response import flag_list, uid_set
from .search_context import SearchUpdates

__all__ = ["Selection", "parse_sequence_set", "BadSequence"]


class BadSequence(ValueError):
    """A sequence set that is malformed or names a message number the session does not have."""


def parse_sequence_set(text):
    """RFC 3501 §9 sequence-set (bytes) -> [(low, high)], None standing for "*"."""
    ranges = []
    for piece in text.split(b","):
        bounds = piece.split(b":")
        if len(bounds) > 2:
            raise BadSequence("bad sequence set %r" % piece.decode("ascii", "backslashreplace"))
        values = []
        for bound in bounds:
            if bound == b"*":
                values.append(None)
            elif bound.isdigit() and bound.isascii() and 0 < int(bound) <= 0xFFFFFFFF:
                values.append(int(bound))
            else:
                raise BadSequence("bad message number %r" % bound.decode("ascii", "backslashreplace"))
        ranges.append((values[0], values[-1]))
    return ranges


@implementer(IFolderListener)
class Selection:
    def __init__(self, folder, readonly, on_change):
        self.folder = folder
        self.readonly = readonly
        self.on_change = on_change        # called after each change (the server pushes in IDLE)
        self.uids = list(folder.messages)
        self.recent = set(folder.add_listener(self, claim=not readonly))
        self._added = []
        self._expunged = set()
        self._changed = set()
        self._keywords_told = None
        self.searches = SearchUpdates()     # CONTEXT=SEARCH (RFC 5267 §4)
        self.condstore = False              # RFC 7162: flag changes carry MODSEQ
        self.qresync = False                # RFC 7162 §3.2.10: expunges go as VANISHED

    def close(self):
        self.folder.remove_listener(self)

    # -- IFolderListener ----------------------------------------------------------------------

    def messages_added(self, uids, recent):
        self._added.extend(uids)
        self.recent |= recent
        self.searches.touched(uids)
        self.on_change()

    def messages_expunged(self, uids):
        self._expunged.update(uids)
        self.on_change()

    def flags_changed(self, uids):
        self._changed.update(uids)
        self.searches.touched(uids)
        self.on_change()

    def set_letters(self, uids, letters, mode):
        """This session's STORE or implicit \\Seen: other sessions hear of it from the folder;
        this one's own kept searches are judged again.  Returns the UIDs changed."""
        changed = self.folder.set_letters(uids, letters, mode, origin=self)
        self.searches.touched(changed)
        return changed

    # -- sequence numbers ---------------------------------------------------------------------

    def sequence_of(self, uid):
        index = bisect_left(self.uids, uid)
        return index + 1 if index < len(self.uids) and self.uids[index] == uid else None

    def resolve(self, ranges, by_uid):
        """[(sequence number, uid)] for a parsed sequence set, ascending, each once.

        By UID, UIDs not in the view are skipped and "*" is the highest UID (RFC 3501 §6.4.8);
        by number, a number beyond the view is a BadSequence.
        """
        view = self.uids
        chosen = set()
        for low, high in ranges:
            if by_uid:
                top = view[-1] if view else 0
                low, high = sorted((top if low is None else low, top if high is None else high))
                chosen.update(range(bisect_left(view, low), bisect_left(view, high + 1)))
            else:
                low, high = sorted((len(view) if low is None else low, len(view) if high is None else high))
                if high > len(view) or low < 1:
                    raise BadSequence("No message %d in this folder" % high)
                chosen.update(range(low - 1, high))
        return [(index + 1, view[index]) for index in sorted(chosen)]

    def resolve_among(self, ranges, by_uid, uids):
        """resolve() for the few messages *uids* only (CHANGEDSINCE's): each is looked up,
        instead of listing a 100,000-message range to keep ten of it."""
        view = self.uids
        top = (view[-1] if view else 0) if by_uid else len(view)
        bounds = [tuple(sorted((top if low is None else low, top if high is None else high))) for low, high in ranges]
        if not by_uid and any(high > len(view) for _low, high in bounds):
            raise BadSequence("No message %d in this folder" % max(high for _low, high in bounds))
        chosen = []
        for uid in sorted(uids):
            number = self.sequence_of(uid)
            value = uid if by_uid else number
            if number is not None and any(low <= value <= high for low, high in bounds):
                chosen.append((number, uid))
        return chosen

    def flags_of(self, uid):
        """The message's IMAP flags as this session sees them (with its own \\Recent)."""
        message = self.folder.messages.get(uid)
        flags = to_flags(message.letters, self.folder.keywords) if message else []
        return flags + ["\\Recent"] if uid in self.recent else flags

    def flag_update(self, number, uid, with_uid=True, flags=True):
        """``n FETCH (FLAGS (...) UID u MODSEQ (m))`` for a message whose flags changed: MODSEQ
        once the session has enabled CONDSTORE (RFC 7162 §3.1.4)."""
        items = [b"FLAGS " + flag_list(self.flags_of(uid))] if flags else []
        if with_uid:
            items.append(b"UID %d" % uid)
        if self.condstore:
            items.append(b"MODSEQ (%d)" % self.folder.messages[uid].modseq)
        return b"%d FETCH (%s)" % (number, b" ".join(items))

    # -- catching the client up ---------------------------------------------------------------

    def flag_lines(self):
        """FLAGS and PERMANENTFLAGS (RFC 3501 §7.2.6, §7.1) for the folder's keywords now; the
        session has then been told of them."""
        keywords = [keyword for _letter, keyword in self.folder.keywords.items()]
        self._keywords_told = tuple(keywords)
        flags = list(SYSTEM_FLAGS) + keywords
        # New keywords can be made while letters are left (Dovecot's 26 per Maildir folder).
        permanent = [] if self.readonly else flags + (["\\*"] if len(keywords) < MAX_KEYWORDS else [])
        return [b"* FLAGS " + flag_list(flags), b"* OK [PERMANENTFLAGS " + flag_list(permanent) + b"] Limited"]

    def keyword_lines(self):
        """flag_lines() when a keyword was made since the session last heard (by any session),
        else nothing: a FETCH may show a keyword only once FLAGS has listed it (RFC 3501 §7.2.6)."""
        if self._keywords_told == tuple(keyword for _letter, keyword in self.folder.keywords.items()):
            return []
        return self.flag_lines()

    def pending(self, allow_expunge):
        """Untagged lines (no CRLF) telling the client what changed since it last heard."""
        lines = self.keyword_lines()
        if allow_expunge and self._expunged:
            unseen = self._expunged.intersection(self._added)
            self._added = [uid for uid in self._added if uid not in unseen]
            lines.extend(self.searches.expunged_lines(self._expunged - unseen, self.sequence_of))
            gone = []
            for index in sorted((bisect_left(self.uids, uid) for uid in self._expunged - unseen), reverse=True):
                if index < len(self.uids) and self.uids[index] in self._expunged:
                    gone.append(self.uids[index])
                    lines.append(b"* %d EXPUNGE" % (index + 1))
                    del self.uids[index]
            if self.qresync and gone:
                # RFC 7162 §3.2.10: one VANISHED with the UIDs instead of an EXPUNGE each.
                del lines[len(lines) - len(gone):]
                lines.append(b"* VANISHED " + uid_set(sorted(gone)))
            self.recent -= self._expunged
            self._changed -= self._expunged
            self._expunged = set()
        if self._added:
            self.uids.extend(sorted(self._added))
            self._added = []
            lines.append(b"* %d EXISTS" % len(self.uids))
            lines.append(b"* %d RECENT" % len(self.recent))
        for uid in sorted(self._changed):
            number = self.sequence_of(uid)
            if number is not None and uid in self.folder.messages:
                lines.append(b"* " + self.flag_update(number, uid))
        self._changed = set()
        lines.extend(self.searches.changed_lines(self.folder.messages.__contains__, self.sequence_of))
        return lines
