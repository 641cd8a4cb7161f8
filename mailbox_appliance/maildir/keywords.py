"""IMAP keywords <-> Maildir flag letters, in Dovecot's ``dovecot-keywords`` file.

Why: keywords ($Junk, $Label1...) live in file names as letters a-z, so each
folder needs the letter -> name map, in Dovecot's format so migrated mail keeps
its keywords (src/lib-storage/index/maildir/maildir-keywords.c; doc.dovecot.org,
Maildir format, "IMAP Keywords").

Format: one ``<index> <keyword>`` line per keyword, index 0 = 'a' ... 25 = 'z'.
Dovecot's reader skips lines without a space, with an index that is not a
number below 26, or with an empty name, and so do we.  Names are matched
case-insensitively (Dovecot's hash uses strcasecmp), and a new keyword takes
the lowest free index.  The file is only ever replaced by rename; its mtime
must grow on every write because Dovecot re-reads it only on mtime change.
Dovecot writes it under the dovecot-uidlist lock; callers serialise writers.
"""

import os

from mailbox_appliance.atomic import atomic_replace
from .names import KEYWORD_LETTERS

__all__ = ["Keywords", "KEYWORDS_FILE", "MAX_KEYWORDS"]

KEYWORDS_FILE = "dovecot-keywords"
MAX_KEYWORDS = 26


def _fold(name):
    # ASCII-only case folding, like strcasecmp.
    return name.encode("utf-8", "surrogateescape").lower()


class Keywords:
    """The keyword letters of one Maildir folder."""

    def __init__(self, folder_path):
        self.path = os.path.join(os.fspath(folder_path), KEYWORDS_FILE)
        self._names = [None] * MAX_KEYWORDS
        self._index = {}            # folded name -> index
        self._mtime = None
        self.changed = False

    @classmethod
    def load(cls, folder_path):
        """Read *folder_path*/dovecot-keywords (empty map if the file is missing)."""
        kw = cls(folder_path)
        try:
            with open(kw.path, "rb") as f:
                kw._mtime = int(os.fstat(f.fileno()).st_mtime)
                text = f.read().decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            return kw
        for line in text.split("\n"):
            idx_s, sp, name = line.partition(" ")
            if not sp or not name:
                continue
            if not (idx_s.isdigit() and idx_s.isascii()):
                continue
            idx = int(idx_s)
            if idx >= MAX_KEYWORDS:
                continue
            old = kw._names[idx]
            if old is not None:
                kw._index.pop(_fold(old), None)
            kw._names[idx] = name
            kw._index[_fold(name)] = idx
        return kw

    def letter_for(self, keyword, create=True):
        """Letter a-z for *keyword*; allocates one if *create*.

        Returns None if the keyword is unknown and not created, or all 26
        letters are in use.
        """
        idx = self._index.get(_fold(keyword))
        if idx is not None:
            return KEYWORD_LETTERS[idx]
        if not create:
            return None
        if (not keyword or " " in keyword
                or any(ord(c) < 0x20 or ord(c) == 0x7f for c in keyword)):
            raise ValueError("invalid keyword: %r" % (keyword,))
        try:
            idx = self._names.index(None)
        except ValueError:
            return None
        self._names[idx] = keyword
        self._index[_fold(keyword)] = idx
        self.changed = True
        return KEYWORD_LETTERS[idx]

    def keyword_for(self, letter):
        """Keyword mapped to *letter* (a-z), or None."""
        if len(letter) != 1 or letter not in KEYWORD_LETTERS:
            return None
        return self._names[ord(letter) - ord("a")]

    def items(self):
        """[(letter, keyword), ...] for every mapped letter, a to z."""
        return [(KEYWORD_LETTERS[i], n) for i, n in enumerate(self._names)
                if n is not None]

    def __len__(self):
        return sum(1 for n in self._names if n is not None)

    def dumps(self):
        """The file contents as bytes."""
        return "".join("%d %s\n" % (i, n) for i, n in enumerate(self._names)
                       if n is not None).encode("utf-8", "surrogateescape")

    def save(self):
        """Replace the file atomically (temp, fsync, rename, fsync dir)."""
        atomic_replace(self.path, self.dumps(), mtime_after=self._mtime)
        self._mtime = int(os.stat(self.path).st_mtime)
        self.changed = False
