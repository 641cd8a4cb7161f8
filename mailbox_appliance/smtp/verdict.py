"""The judgement of a message arriving on port 25, from each check and all of them together.

Each check (sender authentication, rspamd) gives a Verdict; the message gets every check's
header fields and the most severe disposition of them: refused beats "try again later" beats
Junk beats delivered.
"""

from dataclasses import dataclass, field
from typing import Callable, Optional

from mailbox_appliance.smtp.reply import Reply

__all__ = ["Verdict", "combined"]

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
