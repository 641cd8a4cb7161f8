"""IMAP flags and keywords <-> the flag letters of a Maildir file name.

Why: flags live in the file name (``:2,DFPRST`` plus keyword letters a-z,
names.py), but IMAP speaks ``\\Seen`` and ``$Label1``; this is the one place
that translates, so the store and the protocol agree with Dovecot's mapping
(maildir-sync-index.c: D Draft, F Flagged, R Answered, S Seen, T Deleted;
P "passed" has no IMAP flag and is kept untouched, as are unknown letters).
"""

from .names import FLAG_DRAFT, FLAG_FLAGGED, FLAG_REPLIED, FLAG_SEEN, FLAG_TRASHED, KEYWORD_LETTERS

__all__ = ["SYSTEM_FLAGS", "LETTER_OF", "FLAG_OF", "TooManyKeywords", "to_letters", "to_flags"]

# RFC 3501 §2.3.2 system flags that a Maildir file name can carry.  \Recent is not one of them:
# it belongs to a session, not to the file.
LETTER_OF = {
    "\\Answered": FLAG_REPLIED,
    "\\Flagged": FLAG_FLAGGED,
    "\\Deleted": FLAG_TRASHED,
    "\\Seen": FLAG_SEEN,
    "\\Draft": FLAG_DRAFT,
}
FLAG_OF = {letter: flag for flag, letter in LETTER_OF.items()}
SYSTEM_FLAGS = tuple(LETTER_OF)
_SYSTEM_BY_FOLDED = {flag.lower(): letter for flag, letter in LETTER_OF.items()}


class TooManyKeywords(Exception):
    """All 26 keyword letters of the folder are taken (Dovecot's limit for Maildir)."""


def to_letters(flags, keywords, create=True):
    """The set of Maildir letters for IMAP *flags* (str); keywords through *keywords*.

    System flags match case-insensitively (RFC 3501 §2.3.2 flag names are case-insensitive);
    \\Recent and other unknown backslash flags are ignored, as RFC 3501 §6.4.6 lets a server do
    for flags it cannot store.  A new keyword takes a letter only if *create*; unknown keywords are
    otherwise skipped.  Raises TooManyKeywords when no letter is left.
    """
    letters = set()
    for flag in flags:
        letter = _SYSTEM_BY_FOLDED.get(flag.lower())
        if letter is not None:
            letters.add(letter)
        elif not flag.startswith("\\"):
            letter = keywords.letter_for(flag, create=create)
            if letter is None and create:
                raise TooManyKeywords(flag)
            if letter is not None:
                letters.add(letter)
    return letters


def to_flags(letters, keywords):
    """IMAP flags for the Maildir *letters*: system flags first, then keywords, in letter order."""
    system = [FLAG_OF[letter] for letter in letters if letter in FLAG_OF]
    named = [keywords.keyword_for(letter) for letter in letters if letter in KEYWORD_LETTERS]
    return system + [name for name in named if name is not None]
