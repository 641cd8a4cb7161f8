"""Modification sequences of one folder (RFC 7162 CONDSTORE and QRESYNC), kept beside the UID list.

Every message has a MODSEQ, raised when it arrives or its flags change; every expunge takes one
too and is remembered, so a phone that reconnects with "what changed since N" hears only that,
including which UIDs vanished.  The one rule that matters: no mod-sequence a client has seen may
ever go backwards or be given again to another change, or that client would miss changes.

Why not a write per change: STORE is the commonest IMAP command and an fsync each would cost
more than the rest of it.  Instead the file ``mailbox-appliance-modseq`` (ours: Dovecot keeps
mod-sequences in its index, which we neither read nor write) is in one of two states:

* clean, written at shutdown: ``1 C H<highest> B<base> E<horizon> M<cur/ mtime, ns>``, then
  ``<uid> <modseq>`` for each message above B (the others have B), then
  ``X<uid> <modseq> <unix time>`` per remembered expunge.  It is exactly the state the clients
  were told, as long as cur/ has not changed since (M): a flag changed by another program while
  the appliance was stopped makes the file count as dirty.
* dirty, written before the first change after loading and whenever the mod-sequences reach the
  reservation: ``1 R<reserved>``.  Nothing handed out can exceed R.

Loading a dirty file means the process died (or a file that does not parse): the flags on disk may differ from anything the file
says, and the expunges since are unknown.  So every message gets R+1, and expunge memory starts
there (the horizon): each client resyncs its flags once, and one too far behind is answered as
RFC 7162 §3.2.5.2 allows, with every UID of its range that is no longer here.  A folder with mail
and no file (taken over from Dovecot, or from before this file existed) starts at the current
time in microseconds, above any counter Dovecot could have reached, for the same reason.
"""

import os
import time

from mailbox_appliance.atomic import atomic_replace

__all__ = ["ModSeqs", "MODSEQ_FILE", "RESERVATION", "EXPUNGE_MEMORY_SECONDS", "EXPUNGE_MEMORY_COUNT"]

MODSEQ_FILE = "mailbox-appliance-modseq"
RESERVATION = 1_000_000           # mod-sequences handed out per durable write of the file
EXPUNGE_MEMORY_SECONDS = 30 * 24 * 3600
EXPUNGE_MEMORY_COUNT = 100_000    # expunges remembered: the last 30 days or these, whichever more


class ModSeqs:
    """The mod-sequence counter and expunge memory of one folder; the messages' own values live
    on maildir.mailbox.Message.modseq."""

    def __init__(self, path, highest, base, horizon, values, expunged, clean):
        self.path = path
        self.highest = highest            # HIGHESTMODSEQ
        self.base = base                  # what a message without a value of its own has
        self.horizon = horizon            # expunges at or below it are not remembered
        self.values = values              # uid -> modseq above base, as loaded (then on Message)
        self.expunged = expunged          # [(modseq, uid, unix time)], ascending
        self._reserved = highest if clean else 0
        self._clean_on_disk = clean

    @classmethod
    def load(cls, folder_path, has_mail, cur_mtime):
        """The folder's state: from a clean file, else started above anything a client saw."""
        path = os.path.join(folder_path, MODSEQ_FILE)
        try:
            with open(path, "rb") as handle:
                lines = handle.read().split(b"\n")
        except FileNotFoundError:
            return cls._started(path, int(time.time() * 1_000_000) if has_mail else 1)
        try:
            header = dict((field[:1], field[1:]) for field in lines[0].split()[1:])
            if b"C" not in header:
                return cls._started(path, int(header[b"R"]) + 1)
            if int(header[b"M"]) != cur_mtime:
                return cls._started(path, int(header[b"H"]) + 1)
            values, expunged = {}, []
            for line in lines[1:]:
                if line.startswith(b"X"):
                    uid, modseq, when = line[1:].split()
                    expunged.append((int(modseq), int(uid), int(when)))
                elif line:
                    uid, modseq = line.split()
                    values[int(uid)] = int(modseq)
            expunged.sort()
            return cls(path, int(header[b"H"]), int(header[b"B"]), int(header[b"E"]), values, expunged, clean=True)
        except (KeyError, ValueError):
            return cls._started(path, int(time.time() * 1_000_000))

    @classmethod
    def _started(cls, path, start):
        """Every message at *start*, expunge memory from there (see the module docstring)."""
        return cls(path, start, start, start, {}, [], clean=False)

    def stored(self, uid):
        """The mod-sequence a message had when the folder was loaded."""
        return self.values.get(uid, self.base)

    def next(self):
        """A new mod-sequence, made durable first if it would pass the reservation (or the file
        still says clean)."""
        self.highest += 1
        if self._clean_on_disk or self.highest > self._reserved:
            self._reserved = self.highest + RESERVATION
            atomic_replace(self.path, b"1 R%d\n" % self._reserved)
            self._clean_on_disk = False
        return self.highest

    def remember_expunged(self, uids, modseq):
        now = int(time.time())
        self.expunged.extend((modseq, uid, now) for uid in uids)

    def vanished_since(self, modseq):
        """UIDs expunged after *modseq*, or None if memory does not reach back that far."""
        if modseq < self.horizon:
            return None
        return sorted(uid for expunged_at, uid, _when in self.expunged if expunged_at > modseq)

    def save_clean(self, messages, cur_mtime):
        """Write the whole state (at shutdown): *messages* are the folder's Message objects."""
        self._forget_old_expunges()
        messages = list(messages)
        base = min((m.modseq for m in messages), default=self.highest)
        lines = [b"1 C H%d B%d E%d M%d" % (self.highest, base, self.horizon, cur_mtime)]
        lines.extend(b"%d %d" % (m.uid, m.modseq) for m in messages if m.modseq > base)
        lines.extend(b"X%d %d %d" % (uid, modseq, when) for modseq, uid, when in self.expunged)
        atomic_replace(self.path, b"\n".join(lines) + b"\n")
        self._clean_on_disk = True
        self._reserved = self.highest

    def _forget_old_expunges(self):
        cutoff = time.time() - EXPUNGE_MEMORY_SECONDS
        keep_from = 0
        while len(self.expunged) - keep_from > EXPUNGE_MEMORY_COUNT and self.expunged[keep_from][2] < cutoff:
            keep_from += 1
        if keep_from:
            self.horizon = max(self.horizon, self.expunged[keep_from - 1][0])
            del self.expunged[:keep_from]
