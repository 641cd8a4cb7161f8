"""Delivery status notifications (RFC 3464): the bounce for failed recipients and the one-time
notice for delayed ones.

A report is ``multipart/report; report-type=delivery-status`` (RFC 6522) with three parts: a
readable explanation, the machine-readable ``message/delivery-status``, and the original message's
header fields (``text/rfc822-headers``).  It comes from MAILER-DAEMON at our host name, carries
``Auto-Submitted: auto-replied`` (RFC 3834) and is sent with the null envelope sender, so it is
never bounced in turn.  Addresses that are not ASCII use the RFC 6533 forms (``utf-8`` address
type, ``message/global-delivery-status``).
"""

import datetime
import email.utils
import re
import secrets
import textwrap
from dataclasses import dataclass

from mailbox_appliance.message import header_block

# RFC 5322 §2.1.1: keep generated lines well under 998 octets; fold long fields here.
_FOLD_AT = 76


@dataclass(frozen=True)
class RecipientReport:
    address: str
    action: str          # "failed" or "delayed" (RFC 3464 §2.3.3)
    status: str          # enhanced status code, e.g. "5.1.1" (RFC 3463)
    diagnostic: str      # the remote reply, or our explanation
    remote_mta: str = None


def status_of(reply, permanent):
    """The RFC 3463 code in an SMTP reply text ("550 5.1.1 ..."), else a generic one."""
    match = re.match(r"\s*\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b", reply or "")
    if match:
        return match.group(1)
    return "5.0.0" if permanent else "4.0.0"


def _fold(name, value):
    """One header or DSN field, folded at spaces so no line is too long."""
    lines = textwrap.wrap(f"{name}: {value}", _FOLD_AT, break_long_words=False, break_on_hyphens=False,
                          subsequent_indent=" ")
    return "\r\n".join(lines) + "\r\n"


def _address_field(name, address):
    kind = "rfc822" if address.isascii() else "utf-8"
    return _fold(name, f"{kind}; {address}")


def _date(unix_time):
    return email.utils.format_datetime(datetime.datetime.fromtimestamp(unix_time).astimezone())


def build_report(hostname, sender, queue_id, arrival, original, reports, retry_until=None, now=None):
    """The report message (bytes) to *sender* about *reports* (RecipientReport, one action).

    *original* is the queued message; only its header section is returned with the report.
    *retry_until* (unix time) is when a delayed message will be given up.
    """
    now = now if now is not None else email.utils.localtime()
    delayed = all(report.action == "delayed" for report in reports)
    boundary = f"=_report_{secrets.token_hex(8)}"
    global_form = not sender.isascii() or any(not report.address.isascii() for report in reports)
    subject = "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"

    head = (
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
        f"To: <{sender}>\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {email.utils.format_datetime(now)}\r\n"
        f"Message-ID: <{queue_id}.{secrets.token_hex(6)}@{hostname}>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n boundary="{boundary}"\r\n'
    )

    if delayed:
        intro = ("This is the mail system at {host}.\r\n\r\nYour message could not be delivered yet "
                 "to the recipients below. It is still being retried; you do not need to send it "
                 "again. You will be told if it finally fails.\r\n")
    else:
        intro = ("This is the mail system at {host}.\r\n\r\nYour message could not be delivered to "
                 "the recipients below. This is a permanent error; it will not be retried.\r\n")
    explanation = intro.format(host=hostname) + "\r\n" + "".join(
        f"<{report.address}>: {report.diagnostic}\r\n" for report in reports)

    status = _fold("Reporting-MTA", f"dns; {hostname}") + _fold("X-Queue-ID", queue_id)
    status += _fold("Arrival-Date", _date(arrival))
    for report in reports:
        status += "\r\n" + _address_field("Final-Recipient", report.address)
        status += _fold("Action", report.action) + _fold("Status", report.status)
        if report.remote_mta:
            status += _fold("Remote-MTA", f"dns; {report.remote_mta}")
        status += _fold("Diagnostic-Code", f"smtp; {report.diagnostic}")
        status += _fold("Last-Attempt-Date", email.utils.format_datetime(now))
        if delayed and retry_until is not None:
            status += _fold("Will-Retry-Until", _date(retry_until))

    status_type = "message/global-delivery-status" if global_form else "message/delivery-status"
    headers = header_block(original)
    if not headers.endswith(b"\r\n"):
        headers += b"\r\n"
    body = (
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"{explanation}\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: {status_type}\r\n\r\n"
        f"{status}\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
    ).encode("utf-8") + headers + f"\r\n--{boundary}--\r\n".encode("ascii")
    return head.encode("utf-8") + b"\r\n" + body
