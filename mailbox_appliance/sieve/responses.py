"""What a Sieve script sends: a vacation reply (RFC 5230, RFC 3834), a rejection (RFC 5429, as a
delivery status notification, RFC 3464) and a redirected copy (RFC 5228 §4.2).

Each function returns message bytes; filtering.py decides whether to send them and hands them
to delivery, which queues them with the message itself, in one durable commit.
"""

import email.header
import email.utils
import hashlib
import re
import secrets
import time

from mailbox_appliance import address_list
from mailbox_appliance.message import decoded, field_values, header_block
from mailbox_appliance.queue import dsn

# RFC 5230 §4.6 / RFC 3834 §2: never answer these senders (mailing list and system addresses).
_NO_REPLY_SENDERS = re.compile(r"^(owner-.*|.*-request|mailer-daemon|listserv|majordomo|.*-(bounces?|owner))@",
                               re.IGNORECASE)
_LIST_FIELDS = (b"list-id", b"list-help", b"list-unsubscribe", b"list-subscribe", b"list-post", b"list-owner",
                b"list-archive")


def vacation_refusal(message, sender, own_addresses):
    """Why RFC 5230 §4.5-4.6 and RFC 3834 §2 forbid a vacation reply to *message*, or None."""
    if not sender:
        return "the sender is <> (a bounce)"
    if _NO_REPLY_SENDERS.match(sender):
        return f"<{sender}> is a list or system address"
    header = header_block(message)
    automatic = [value.strip().lower() for value in field_values(header, b"auto-submitted")]
    if any(value.split(b";")[0].strip() != b"no" for value in automatic):
        return "it was sent automatically (Auto-Submitted)"
    if any(value.strip().lower() in (b"bulk", b"list", b"junk") for value in field_values(header, b"precedence")):
        return "it is bulk or list mail (Precedence)"
    if any(field_values(header, name) for name in _LIST_FIELDS):
        return "it came through a mailing list (List-*)"
    recipients = {entry_address(entry) for name in (b"to", b"cc", b"bcc", b"resent-to", b"resent-cc")
                  for value in field_values(header, name)
                  for entry in address_list.parse(decoded(value)) if entry.host}
    if not recipients & {address.lower() for address in own_addresses}:
        return "none of the user's addresses is in To or Cc"
    return None


def entry_address(entry):
    return f"{entry.mailbox}@{entry.host}".lower()


def vacation_key(vacation, sender):
    """The key under which a reply to *sender* is remembered (RFC 5230 §4.2: the handle, else
    one made of the reason, subject, :from and :mime)."""
    handle = vacation.handle if vacation.handle is not None else "\0".join(
        (vacation.reason, vacation.subject or "", vacation.sender or "", str(vacation.mime)))
    return hashlib.sha256(f"{handle}\0{sender.lower()}".encode("utf-8")).hexdigest()[:32]


def vacation_reply(vacation, message, mailbox, sender, hostname, now=None):
    """The reply (RFC 5230 §5): from the user (or :from) to the sender, Auto-Submitted:
    auto-replied, threaded with In-Reply-To and References."""
    header = header_block(message)
    subjects = field_values(header, b"subject")
    original = decoded(subjects[0]).strip() if subjects else ""
    subject = vacation.subject if vacation.subject is not None else f"Auto: {original}" if original else "Auto reply"
    ids = [value.strip().decode("ascii", "replace") for value in field_values(header, b"message-id")]
    references = [value.strip().decode("ascii", "replace") for value in field_values(header, b"references")]
    lines = [f"From: {vacation.sender or mailbox}", f"To: <{sender}>", f"Subject: {_header_text(subject)}",
             f"Date: {email.utils.format_datetime(now or email.utils.localtime())}",
             f"Message-ID: <{secrets.token_hex(12)}@{hostname}>", "Auto-Submitted: auto-replied (vacation)"]
    if ids:
        lines.append(f"In-Reply-To: {ids[0]}")
        lines.append("References: " + " ".join(references[:1] + ids[:1]))
    if vacation.mime:
        # RFC 5230 §4.4: the reason is a whole MIME entity, its own header included.
        body = vacation.reason.replace("\r\n", "\n").replace("\n", "\r\n")
        lines.append("MIME-Version: 1.0")
        return ("\r\n".join(lines) + "\r\n" + body).encode("utf-8")
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
    body = vacation.reason.replace("\r\n", "\n").replace("\n", "\r\n")
    return ("\r\n".join(lines) + "\r\n\r\n" + body + ("" if body.endswith("\r\n") else "\r\n")).encode("utf-8")


def rejection(hostname, sender, queue_id, mailbox, reason, message):
    """RFC 5429 §2.1.1: the sender is told the message was refused, and why, as a DSN."""
    report = dsn.RecipientReport(mailbox, "failed", "5.7.1", f"Rejected by the recipient's filter: {reason}"[:900])
    return dsn.build_report(hostname, sender, queue_id, time.time(), message, [report])


def failure_notice(hostname, mailbox, name, why):
    """The message that tells a user their filter failed (the mail was kept in their INBOX)."""
    lines = [f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>", f"To: <{mailbox}>",
             f"Subject: Your mail filter {_header_text(repr(name))} failed",
             f"Date: {email.utils.format_datetime(email.utils.localtime())}",
             f"Message-ID: <{secrets.token_hex(12)}@{hostname}>", "Auto-Submitted: auto-generated",
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
    body = (f"Your Sieve script {name!r} could not filter a message: {why}.\r\n\r\n"
            "The message was kept in your INBOX, as every message will be until the script is fixed;\r\n"
            "nothing is lost.  Correct it in your mail program's filter settings (ManageSieve), or ask\r\n"
            "your administrator.  You are told once for each version of the script.\r\n")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


def redirected(message, mailbox):
    """The copy a redirect sends: the message as it came, with Delivered-To naming the mailbox
    that redirected it, which is how a loop is seen (``loops``)."""
    return f"Delivered-To: {mailbox}\r\n".encode("utf-8") + message


def loops(message, mailbox):
    """True when *message* has already been redirected by *mailbox* (a Delivered-To of it)."""
    return any(value.strip().lower() == mailbox.lower().encode("utf-8")
               for value in field_values(header_block(message), b"delivered-to"))


def _header_text(text):
    """*text* for an unstructured header field: RFC 2047-encoded when not ASCII, one line."""
    text = " ".join(text.split())
    if text.isascii():
        return text
    return email.header.Header(text, "utf-8").encode()
