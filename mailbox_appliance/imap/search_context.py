"""CONTEXT=SEARCH (RFC 5267 §4): searches a session asked to keep current with RETURN (UPDATE).

The selection (selection.py) owns one SearchUpdates.  Each kept search holds its result as UIDs;
when messages arrive, change flags (in this session or another) or are expunged, only those
messages are judged again, and the client hears ``* ESEARCH (TAG "t") ADDTO/REMOVEFROM (pos set)``
at the next point where the selection may send untagged responses.  Nothing is re-run over the
whole folder.
"""

from bisect import bisect_left

from .response import string, uid_set

__all__ = ["SearchUpdates", "MAX_CONTEXTS"]

# RFC 5267 §4.2 lets the server decline with NOUPDATE; each kept search costs a judgement of every
# changed message, so a session keeps a few (Thunderbird and Dovecot's tests use one).
MAX_CONTEXTS = 10


class _Context:
    __slots__ = ("matches", "by_uid", "uids")

    def __init__(self, matches, by_uid, uids):
        self.matches = matches        # (sequence number, uid) -> bool
        self.by_uid = by_uid
        self.uids = sorted(uids)


class SearchUpdates:
    """The kept searches of one selection, by the tag of the SEARCH that made each."""

    def __init__(self):
        self._contexts = {}
        self._dirty = set()

    def keep(self, tag, matches, by_uid, uids):
        """Keep the search made by command *tag*; False when the session keeps too many."""
        if tag not in self._contexts and len(self._contexts) >= MAX_CONTEXTS:
            return False
        self._contexts[tag] = _Context(matches, by_uid, uids)
        return True

    def cancel(self, tags):
        """CANCELUPDATE (RFC 5267 §4.3): stop keeping these; returns the tags not kept."""
        unknown = [tag for tag in tags if tag not in self._contexts]
        if not unknown:
            for tag in tags:
                del self._contexts[tag]
        return unknown

    def touched(self, uids):
        """These messages arrived or changed flags: judge them again at the next update."""
        if self._contexts:
            self._dirty.update(uids)

    def expunged_lines(self, gone, sequence_of):
        """REMOVEFROM for kept results among the *gone* UIDs, numbered as the client still
        numbers them: these lines go before the EXPUNGE responses that renumber."""
        self._dirty -= gone
        lines = []
        for tag, context in self._contexts.items():
            removed = [uid for uid in context.uids if uid in gone]
            if removed:
                lines.append(self._line(tag, context, b"REMOVEFROM", context.uids, removed, sequence_of))
                context.uids = [uid for uid in context.uids if uid not in gone]
        return lines

    def changed_lines(self, present, sequence_of):
        """REMOVEFROM and ADDTO for the kept results after the touched messages were judged
        again; *present(uid)* tells whether a message can be read (not expunged meanwhile)."""
        dirty, self._dirty = self._dirty, set()
        judged = [(number, uid) for uid in sorted(dirty)
                  if present(uid) and (number := sequence_of(uid)) is not None]
        lines = []
        for tag, context in self._contexts.items():
            held = set(context.uids)
            now = {uid for number, uid in judged if context.matches(number, uid)}
            before = {uid for _number, uid in judged if uid in held}
            lost, gained = sorted(before - now), sorted(now - before)
            if lost:
                lines.append(self._line(tag, context, b"REMOVEFROM", context.uids, lost, sequence_of))
                context.uids = sorted(held - set(lost))
            if gained:
                context.uids = sorted(set(context.uids) | set(gained))
                lines.append(self._line(tag, context, b"ADDTO", context.uids, gained, sequence_of))
        return lines

    @staticmethod
    def _line(tag, context, what, listing, uids, sequence_of):
        """RFC 5267 §4.4: the position is where the first of *uids* stands in *listing* (the
        result before a removal, after an addition), counted from 1."""
        position = bisect_left(listing, uids[0]) + 1
        numbers = uids if context.by_uid else [sequence_of(uid) for uid in uids]
        return b"* ESEARCH (TAG %s)%s %s (%d %s)" % (
            string(tag), b" UID" if context.by_uid else b"", what, position, uid_set(numbers))
