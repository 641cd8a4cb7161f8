"""CONDSTORE and QRESYNC (RFC 7162): what a session has enabled, the arguments they add to
SELECT, FETCH and STORE, and the answers that tell a reconnecting client only what changed.

A mix-in for imap.server.IMAPServer; the mod-sequences themselves are kept per folder by
maildir/modseq.py, and a Selection reports flag changes with MODSEQ and expunges as VANISHED
once the session has asked for it.
"""

from bisect import bisect_left, bisect_right

from twisted.mail.imap4 import IllegalClientResponse, IMAP4Server

from . import search
from .response import uid_set
from .selection import BadSequence, parse_sequence_set

__all__ = ["Resync", "parse_list", "mod_sequence"]

MAX_MOD_SEQUENCE = 2 ** 63 - 1           # RFC 7162 §7 mod-sequence-value


def mod_sequence(token, zero=False):
    """An RFC 7162 mod-sequence-value (or mod-sequence-valzer with *zero*) from a token."""
    text = bytes(token) if not isinstance(token, str) else b""
    if not (text.isdigit() and text.isascii() and len(text) <= 19) or not (0 if zero else 1) <= int(text) <= MAX_MOD_SEQUENCE:
        raise IllegalClientResponse("Expected a mod-sequence, not %r" % text[:30])
    return int(text)


def parse_list(line):
    """(nested lists of tokens, rest) for a parenthesised list at the start of *line*, or
    (None, line) when there is none.  Tokens are bytes (atoms and strings)."""
    if not line.startswith(b"("):
        return None, line
    depth, end = 0, None
    for index, octet in enumerate(line):
        depth += {40: 1, 41: -1}.get(octet, 0)
        if depth == 0:
            end = index + 1
            break
    if end is None:
        raise IllegalClientResponse("Unbalanced parentheses")
    try:
        tokens = search.tokenize([line[:end]])
    except search.SearchError as error:
        raise IllegalClientResponse(str(error)) from None
    stack = [[]]
    for token in tokens:
        if token == "(":
            stack.append([])
        elif token == ")":
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(bytes(token))
    return stack[0][0], line[end:].lstrip(b" ")


def _modifiers(line, known):
    """FETCH and STORE modifiers ``(NAME [value] ...)`` as {name: value}."""
    parsed, rest = parse_list(line)
    if parsed is None:
        return {}, rest
    found, words = {}, iter(parsed)
    for word in words:
        name = word.upper() if isinstance(word, bytes) else b""
        if name not in known:
            raise IllegalClientResponse("Unknown modifier %r" % name[:30])
        found[name] = known[name](next(words, b"")) if known[name] else True
    return found, rest


def _missing(ranges, present):
    """Ranges of the UIDs in *ranges* [(low, high)] not in *present* (sorted): what a client
    too far behind must hear as VANISHED (EARLIER) (RFC 7162 §3.2.5.2)."""
    gaps = []
    for low, high in ranges:
        start = low
        for uid in present[bisect_left(present, low):bisect_right(present, high)]:
            if uid > start:
                gaps.append((start, uid - 1))
            start = uid + 1
        if start <= high:
            gaps.append((start, high))
    return gaps


def _ranges_text(ranges):
    return b",".join(b"%d" % low if low == high else b"%d:%d" % (low, high) for low, high in ranges)


class Resync:
    condstore = False                 # RFC 7162 §3.1: a CONDSTORE-enabling command was seen
    qresync = False                   # RFC 7162 §3.2.3: ENABLE QRESYNC

    # -- enabling ------------------------------------------------------------------------------

    def enable_condstore(self):
        """A CONDSTORE-enabling command (§3.1): from now on MODSEQ goes with flag changes.  Done
        while a folder is selected, the client hears the HIGHESTMODSEQ it has missed."""
        if self.condstore:
            return
        self.condstore = True
        if self.selection is not None:
            self.selection.condstore = True
            self.sendPositiveResponse(None, b"[HIGHESTMODSEQ %d] Highest" % self.selection.folder.highest_modseq)

    def do_ENABLE(self, tag, line):
        """RFC 5161: CONDSTORE and QRESYNC (which implies CONDSTORE, RFC 7162 §3.2.3); names we
        do not know are ignored (§3.1)."""
        enabled = []
        for name in line.upper().split():
            if name == b"CONDSTORE" and not self.condstore:
                self.condstore = True
                enabled.append(name)
            elif name == b"QRESYNC" and not self.qresync:
                self.condstore = self.qresync = True
                enabled.append(name)
        if self.selection is not None:
            self.selection.condstore, self.selection.qresync = self.condstore, self.qresync
        self.sendUntaggedResponse(b" ".join([b"ENABLED", *enabled]))
        self.sendPositiveResponse(tag, b"ENABLE completed")

    auth_ENABLE = select_ENABLE = (do_ENABLE, IMAP4Server.arg_line)

    # -- arguments -----------------------------------------------------------------------------

    def arg_select_parameters(self, line):
        """SELECT/EXAMINE's optional ``(CONDSTORE)`` or ``(QRESYNC (uidvalidity modseq
        [known-uids [(seqs uids)]]))`` (RFC 7162 §3.1.8, §3.2.5): {"condstore": bool, "qresync":
        (uidvalidity, modseq, known UID ranges or None) or None}."""
        parsed, rest = parse_list(line)
        parameters = {"condstore": False, "qresync": None}
        words = iter(parsed or [])
        for word in words:
            name = word.upper() if isinstance(word, bytes) else b""
            if name == b"CONDSTORE":
                parameters["condstore"] = True
            elif name == b"QRESYNC":
                if not self.qresync:
                    raise IllegalClientResponse("QRESYNC must be enabled first (ENABLE QRESYNC)")
                parameters["qresync"] = self._qresync_arguments(next(words, None))
            else:
                raise IllegalClientResponse("Unknown SELECT parameter %r" % name[:30])
        return parameters, rest

    @staticmethod
    def _qresync_arguments(value):
        if not isinstance(value, list) or not 2 <= len(value) <= 4 or isinstance(value[0], list):
            raise IllegalClientResponse("QRESYNC wants (uidvalidity modseq [known-uids [seq-match-data]])")
        validity, since = bytes(value[0]), mod_sequence(value[1])
        if not (validity.isdigit() and validity.isascii() and 0 < int(validity) < 2 ** 32):
            raise IllegalClientResponse("Bad UIDVALIDITY in QRESYNC")
        known = None
        if len(value) > 2 and not isinstance(value[2], list):
            try:
                known = parse_sequence_set(value[2])
            except BadSequence as error:
                raise IllegalClientResponse(str(error)) from None
        return int(validity), since, known

    def arg_fetch_modifiers(self, line):
        """FETCH's optional ``(CHANGEDSINCE modseq [VANISHED])`` (RFC 7162 §3.1.4, §3.2.6)."""
        return _modifiers(line, {b"CHANGEDSINCE": mod_sequence, b"VANISHED": None})

    def arg_store_modifiers(self, line):
        """STORE's optional ``(UNCHANGEDSINCE modseq)`` (RFC 7162 §3.1.3)."""
        return _modifiers(line, {b"UNCHANGEDSINCE": lambda token: mod_sequence(token, zero=True)})

    # -- answers -------------------------------------------------------------------------------

    def vanished_earlier(self, folder, since, ranges):
        """``* VANISHED (EARLIER) set`` for UIDs in *ranges* expunged after *since*, or None.

        When the folder's expunge memory does not reach back to *since*, every UID of the ranges
        not in the folder now, as RFC 7162 §3.2.5.2 allows."""
        top = folder.next_uid - 1
        ranges = [(top, top) if (low, high) == (None, None) else
                  tuple(sorted((top if low is None else low, top if high is None else high)))
                  for low, high in ranges or [(1, top)]]
        remembered = folder.modseqs.vanished_since(since)
        if remembered is None:
            gaps = _missing(sorted(ranges), list(folder.messages))
            return b"VANISHED (EARLIER) " + _ranges_text(gaps) if gaps else None
        chosen = [uid for uid in remembered if any(low <= uid <= high for low, high in ranges)]
        return b"VANISHED (EARLIER) " + uid_set(chosen) if chosen else None

    def resync_selection(self, parameters):
        """After SELECT's own responses: what a QRESYNC client missed (RFC 7162 §3.2.5)."""
        selection = self.selection
        folder = selection.folder
        validity, since, known = parameters
        if validity != folder.uidvalidity:
            return                    # §3.2.5: a new UIDVALIDITY; the client starts over
        vanished = self.vanished_earlier(folder, since, known)
        if vanished is not None:
            self.sendUntaggedResponse(vanished)
        chosen = selection.resolve(known, by_uid=True) if known else list(enumerate(selection.uids, 1))
        for number, uid in chosen:
            message = folder.messages.get(uid)
            if message is not None and message.modseq > since:
                self.sendUntaggedResponse(selection.flag_update(number, uid, with_uid=True))
