"""SMTP policy: who may send what to whom, in one readable place.

The three listeners differ only here:

- ``inbound`` (port 25, RFC 5321): anyone may deliver to the addresses of our domains; anything
  else needs AUTH (after STARTTLS).  No client address is trusted, loopback included: only
  authentication opens relaying.
- ``submission`` (587, RFC 6409) and ``submissions`` (465, RFC 8314): AUTH before MAIL, always
  over TLS; then any recipient.

An authenticated user sends only as their own addresses: the address itself, its +subaddresses,
and aliases that point to them; on submission that holds for the From: field too, since the
queue DKIM-signs for the From: domain.

A local mailbox over its quota (quota.py) refuses mail with 452 4.2.2 (RFC 3463 "mailbox full";
temporary, so the sender retries once the user has made room): at RCPT when it is full already or
the SIZE declared would not fit, after DATA for the mailboxes the message does not fit, while
the others still get it and the sender gets a report for those.  Bounces (null sender) are never
refused: there is no one to tell.
"""

import re
import time
from dataclasses import replace

from mailbox_appliance import address_list
from mailbox_appliance.accounts.addresses import normalize_address, split_address
from mailbox_appliance.accounts.directory import Resolution
from mailbox_appliance.message import field_values, malformed_header_line
from mailbox_appliance.queue import dsn
from mailbox_appliance.smtp import headers
from mailbox_appliance.smtp.reply import Reply

SUBMISSION_ROLES = ("submission", "submissions")
# RFC 5321 §4.5.1: "Postmaster" with no domain must be accepted.
POSTMASTER = "postmaster"


class Policy:

    def __init__(self, role, accounts, quotas, checks=None, rewriting=None):
        """*checks* (smtp.inbound_checks.InboundChecks) judge mail from outside on port 25;
        *rewriting* (srs.SenderRewriting) reads the SRS addresses our redirects sent from."""
        self.role = role
        self.accounts = accounts
        self.quotas = quotas
        self.checks = checks if role == "inbound" else None
        self.rewriting = rewriting

    def screen(self, session):
        """At connect: a Deferred firing with the DNS blocklist listing the client (or None),
        answered at RCPT; None when there is nothing to ask."""
        return self.checks.screen(session.client_address) if self.checks is not None else None

    def check_client(self, session, listed_by):
        """At RCPT: a client listed by a blocklist sends nothing here without AUTH (RFC 5782 §1)."""
        if listed_by is not None and session.user is None:
            raise Reply(554, "5.7.1", f"Client host [{session.client_address}] blocked using {listed_by}")

    def check_session(self, session):
        """Before MAIL: submission requires TLS and AUTH (RFC 6409 §4.3, RFC 4954 §6)."""
        if self.role in SUBMISSION_ROLES and session.user is None:
            if not session.secure:
                raise Reply(530, "5.7.0", "Must issue a STARTTLS command first")
            raise Reply(530, "5.7.0", "Authentication required")

    def check_sender(self, session, sender):
        if session.user is None or sender == "":
            # Inbound mail may come from anyone; a null sender (bounces, MDNs) claims no one.
            return
        if not self.accounts.may_send_as(session.user, sender):
            raise Reply(553, "5.7.1", f"Sender address <{sender}> is not owned by user {session.user}")

    def check_recipient(self, session, address):
        """The Resolution of *address*, or a Reply refusing it."""
        if normalize_address(address) == POSTMASTER:
            address = f"{POSTMASTER}@{self.accounts.primary_domain}"
        _, domain = split_address(address)
        if domain.startswith("["):
            local = False
        else:
            local = self.accounts.is_local_domain(domain)
        if not local and session.user is None:
            raise Reply(554, "5.7.1", f"Relay access denied for <{address}>; authenticate to send to other domains")
        resolution = self.accounts.resolve(address)
        original = self.rewriting.reverse(address) if resolution is None and local and self.rewriting else None
        if original is not None:
            # A reply or bounce to a message a Sieve redirect forwarded: on to its sender.
            resolution = Resolution((), (original,))
        if resolution is None:
            raise Reply(550, "5.1.1", f"No such user here: <{address}>")
        transaction = session.transaction
        if transaction.sender and resolution.local and not resolution.remote and all(
                self.quotas.full(mailbox) or not self.quotas.fits(mailbox, transaction.declared_size)
                for mailbox in resolution.local):
            raise Reply(452, "4.2.2", f"Mailbox full: <{address}>")
        return resolution

    def without_full_mailboxes(self, recipients, sender, size):
        """(*recipients* with the local mailboxes *size* more octets would put over quota left
        out, those mailboxes); recipients left with nowhere to go are dropped."""
        if not sender:
            return recipients, []
        full = {mailbox for _address, resolution in recipients for mailbox in resolution.local
                if not self.quotas.fits(mailbox, size)}
        if not full:
            return recipients, []
        kept = []
        for address, resolution in recipients:
            resolution = replace(resolution, local=tuple(m for m in resolution.local if m not in full))
            if resolution.local or resolution.remote:
                kept.append((address, resolution))
        return kept, sorted(full)

    def judge(self, session, message):
        """A Deferred smtp.verdict.Verdict on *message* from outside (port 25 without AUTH), or
        None: submitted mail is the authenticated user's own, on port 25 too."""
        if self.checks is None or session.user is not None:
            return None
        return self.checks.judge(session, message)

    def failure_report(self, sender, queue_id, message, full, unknown=()):
        """The report (RFC 3464) to *sender* for the mailboxes a message did not fit, and the
        *unknown* addresses (mail from local programs, which no one refused at RCPT)."""
        reports = [dsn.RecipientReport(address, "failed", "5.1.1", "No such user here") for address in unknown]
        reports += [dsn.RecipientReport(mailbox, "failed", "5.2.2", "Mailbox full") for mailbox in full]
        return dsn.build_report(self.accounts.hostname, sender, queue_id, time.time(), message, reports)

    def check_author(self, session, message):
        """On submission, the header must be well formed (every line a field or a continuation),
        and the message's author must be the user: exactly one From: field, holding
        exactly one address the user may send as (RFC 5322 §3.6.2 allows several authors, but
        then no one domain owns the message; the queue signs with the From: domain's key, so a
        forged or second From: would carry our signature, and DMARC would pass it)."""
        if self.role not in SUBMISSION_ROLES:
            return
        broken = malformed_header_line(message)
        if broken is not None:
            # The queue could not DKIM-sign it, and other servers read such a header each their
            # own way: the client that wrote it is told now, not by a bounce later.
            raise Reply(550, "5.6.0", f"Malformed header line, neither a field nor a continuation "
                                      f"(RFC 5322 §2.2): {_shown(broken)}")
        fields = field_values(message, b"from")
        entries = address_list.parse(fields[0].decode("utf-8", "replace")) if fields else []
        if len(fields) != 1 or len(entries) != 1 or not entries[0].host:
            raise Reply(550, "5.7.1", "The message must have one From: field with one address, your own")
        author = f"{entries[0].mailbox}@{entries[0].host}"
        if not self.accounts.may_send_as(session.user, author):
            raise Reply(550, "5.7.1", f"From: <{author}> is not an address of user {session.user}")

    def prepare_message(self, session, transaction, queue_id, message):
        """The message as stored: our Received field first, and for submission a Date and
        Message-ID if the client left them out."""
        if self.role in SUBMISSION_ROLES:
            message = headers.add_missing_date_and_message_id(message, session.settings.hostname)
        protocol = headers.protocol_type(session.extended, session.secure, session.user is not None, transaction.smtputf8)
        received = headers.received(session.settings.hostname, session.helo, session.client_address,
                                    protocol, queue_id, session.tls_version,
                                    [address for address, _ in transaction.recipients])
        return received + message


def _shown(line):
    """The start of a line of the client's message, as printable ASCII for a reply."""
    return re.sub(rb"[^\x20-\x7e]", b"?", line[:60]).decode("ascii")
