"""The judgement of a message arriving on port 25, from each check and all of them together.

Each check (sender authentication, rspamd) gives a Verdict; the message gets every check's
header fields and the most severe disposition of them: refused beats "try again later" beats
Junk beats delivered.
"""

import functools
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from mailbox_appliance.smtp.reply import Reply

__all__ = ["Verdict", "combined", "without_fields"]

SEVERITY = ("deliver", "junk", "defer", "reject")


@dataclass(frozen=True)
class Verdict:
    """*fields*: header fields to put on top of the stored message (bytes, CRLF-terminated);
    *disposition*: one of SEVERITY; *reason*: why, for the log; *reply*: what the client is told
    when the disposition is "reject" or "defer"; *clean*: the message without the fields that
    arrived with it and that ours stand for, so no sender can pre-fill them."""

    fields: bytes
    disposition: str
    reason: str
    reply: Optional[Reply] = None
    clean: Callable = field(default=lambda message: message)

    def applied(self, message):
        """The message as stored: cleaned, our fields on top."""
        return self.fields + self.clean(message)


def combined(verdicts):
    worst = max(verdicts, key=lambda verdict: SEVERITY.index(verdict.disposition))

    def clean(message):
        for verdict in verdicts:
            message = verdict.clean(message)
        return message

    return Verdict(b"".join(verdict.fields for verdict in verdicts), worst.disposition, worst.reason, worst.reply,
                   clean)


def without_fields(message, names, removed=lambda value: True):
    """*message* without the header fields called *names* (lower-case bytes) whose value
    (unfolded) *removed* says to remove: all of them by default."""
    header, separator, body = message.partition(b"\r\n\r\n")
    kept = _field_pattern(names).sub(
        lambda found: b"" if removed(found.group(1).replace(b"\r\n", b"")) else found.group(0), header + b"\r\n")
    return kept[:-2] + separator + body


@functools.lru_cache(maxsize=None)
def _field_pattern(names):
    """A field called one of *names* with its continuation lines; group 1 is its value."""
    return re.compile(rb"(?im)^(?:" + b"|".join(re.escape(name) for name in names)
                      + rb")[ \t]*:(.*\r\n(?:[ \t].*\r\n)*)")
