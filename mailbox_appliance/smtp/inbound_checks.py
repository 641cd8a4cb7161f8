"""What port 25 asks about mail from outside before it answers: the client's address against
DNS blocklists (at RCPT), and each message's sender authentication and rspamd's opinion of it
(after DATA), combined into one smtp.verdict.Verdict.

rspamd's actions (https://rspamd.com/doc/faq.html#what-are-rspamd-actions) map to SMTP as
most servers beside rspamd do: "reject" is refused (550 5.7.1), "soft reject" and "greylist"
asked to come back (451 4.7.1), "add header" and "rewrite subject" filed into Junk with
X-Spam-* fields, "no action" delivered.  rspamd down or slow: delivered without its verdict, and
a warning logged; accepted mail is never lost to the filter's trouble.
"""

import re

from twisted.internet import defer
from twisted.logger import Logger

from mailbox_appliance.spam.rspamd import RspamdUnavailable
from mailbox_appliance.smtp.reply import Reply
from mailbox_appliance.message import without_fields
from mailbox_appliance.smtp.verdict import Verdict, combined

__all__ = ["InboundChecks"]

# The fields we write for rspamd's verdict (SpamAssassin's names, which clients and Sieve
# scripts already look for); the same fields arriving from outside are removed first.
X_SPAM_FIELDS = (b"x-spam-flag", b"x-spam-status", b"x-spam-action")
_DISPOSITIONS = {"reject": "reject", "soft reject": "defer", "greylist": "defer",
                 "add header": "junk", "rewrite subject": "junk", "no action": "deliver"}


class InboundChecks:
    log = Logger()

    def __init__(self, sender_auth=None, rspamd=None, blocklists=None):
        """*sender_auth*: smtp.sender_auth.SenderAuthentication; *rspamd*: spam.rspamd.Rspamd;
        *blocklists*: spam.dnsbl.Blocklists; each None when not configured."""
        self.sender_auth = sender_auth
        self.rspamd = rspamd
        self.blocklists = blocklists

    def screen(self, ip):
        """A Deferred firing with the blocklist that lists *ip* or None; None when there are none."""
        return self.blocklists.listed(ip) if self.blocklists is not None else None

    def judge(self, session, message):
        """A Deferred Verdict on *message*, received in *session*, or None with nothing to ask."""
        transaction = session.transaction
        checks = []
        if self.sender_auth is not None:
            checks.append(self.sender_auth.check(session.client_address, session.helo or "", transaction.sender,
                                                 message))
        if self.rspamd is not None:
            asking = self.rspamd.check(message, session.client_address, session.helo, transaction.sender,
                                       [address for address, _ in transaction.recipients], session.session_id)
            checks.append(asking.addCallbacks(spam_verdict, self._no_spam_verdict, errbackArgs=(session,)))
        if not checks:
            return None
        gathering = defer.gatherResults(checks, consumeErrors=True)
        return gathering.addCallback(combined).addErrback(lambda failure: failure.value.subFailure)

    def _no_spam_verdict(self, failure, session):
        failure.trap(RspamdUnavailable)
        self.log.warn("smtp session {session}: delivered without rspamd's verdict: {error}",
                      session=session.session_id, error=failure.getErrorMessage())
        return Verdict(b"", "deliver", "rspamd unavailable")


def spam_verdict(result):
    """The Verdict for an rspamd.RspamdResult."""
    disposition = _DISPOSITIONS.get(result.action, "deliver")
    spam = disposition != "deliver"
    status = f"{'Yes' if spam else 'No'}, score={result.score:.2f} required={result.required_score:.2f}"
    if result.symbols:
        status += " tests=" + ",".join(result.symbols)
    fields = (b"X-Spam-Flag: YES\r\n" if spam else b"") + _folded(f"X-Spam-Status: {status}") \
        + _folded(f"X-Spam-Action: {result.action}")
    reason = f"rspamd: {result.action} (score {result.score:.2f} of {result.required_score:.2f})"
    # rspamd's own words for the client when it has them (printable ASCII only: a reply line).
    said = " ".join(re.sub(r"[^\x20-\x7e]", " ", result.smtp_message).split())[:200]
    reply = {"reject": Reply(550, "5.7.1", said or "Message refused as spam"),
             "defer": Reply(451, "4.7.1", "Try again later")}.get(disposition)
    return Verdict(fields, disposition, reason, reply, lambda message: without_fields(message, X_SPAM_FIELDS))


def _folded(text):
    """A header field line (ASCII), folded at spaces and commas to lines of at most 78
    characters (RFC 5322 §2.2.3)."""
    text = text.encode("ascii", "replace").decode("ascii")
    lines, line = [], ""
    for piece in re.findall(r"[^ ,]+[ ,]*", text):
        if line and len(line) + len(piece) > 78:
            lines.append(line.rstrip(" "))
            line = "\t"
        line += piece
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
