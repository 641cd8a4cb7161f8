"""The base subject of RFC 5256 §2.1: a Subject without its Re:, Fwd:, [list] and (fwd) decorations.

Why: SORT by SUBJECT (RFC 5256 §3) orders messages by base subject, so that a reply sorts beside
the message it answers.  The steps below are the RFC's, numbered as there; the ABNF they match
(RFC 5256 §5) is case-insensitive like all ABNF strings.
"""

import re

from mailbox_appliance.message import decoded

__all__ = ["base_subject"]

_WHITESPACE = re.compile(r"[ \t\r\n]+")
# subj-trailer = "(fwd)" / WSP
_TRAILER = re.compile(r"(?:\(fwd\)|[ \t])+\Z", re.IGNORECASE)
# subj-blob = "[" *BLOBCHAR "]" *WSP
_BLOB = r"\[[^\[\]]*\][ \t]*"
# subj-leader = (*subj-blob subj-refwd) / WSP;  subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_LEADER = re.compile(r"(?:%s)*(?:re|fwd?)[ \t]*(?:%s)?:|[ \t]+" % (_BLOB, _BLOB), re.IGNORECASE)
_LEADING_BLOB = re.compile(_BLOB)
# subj-fwd = subj-fwd-hdr subj-base subj-fwd-trl;  subj-fwd-hdr = "[fwd:";  subj-fwd-trl = "]"
_FWD_HEADER = "[fwd:"


# Only this much of a Subject is looked at.  The steps below rescan the text after each removal,
# so a hostile 80 KB "(fwd)(fwd)...X" cost seconds per message and a megabyte froze SORT; sort
# keys keep 200 characters anyway (sort.MAX_KEY_CHARACTERS), and no real subject comes near.
MAX_SUBJECT_OCTETS = 4096
MAX_SUBJECT_CHARACTERS = 1000


def base_subject(value):
    """The base subject (str) of a Subject header value (str or bytes, possibly RFC 2047 encoded)."""
    # (1) encoded words to UTF-8 (here: text), tabs and continuations to one space each run.
    text = _WHITESPACE.sub(" ", decoded(value[:MAX_SUBJECT_OCTETS]))[:MAX_SUBJECT_CHARACTERS]
    while True:
        # (2) remove trailing "(fwd)" and whitespace.
        text = _TRAILER.sub("", text)
        # (3) to (5): remove leaders (Re:, Fwd:, [blob] Re:, whitespace) and leading blobs that
        # leave something behind, until none is left.
        while True:
            leader = _LEADER.match(text)
            if leader:
                text = text[leader.end():]
                continue
            blob = _LEADING_BLOB.match(text)
            if blob and text[blob.end():].strip(" \t"):
                text = text[blob.end():]
                continue
            break
        # (6) "[fwd: subject]" is the subject forwarded: unwrap it and start again from (2).
        if text[:len(_FWD_HEADER)].lower() == _FWD_HEADER and text.endswith("]"):
            text = text[len(_FWD_HEADER):-1]
            continue
        # (7)
        return text
