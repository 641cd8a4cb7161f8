"""Header fields the SMTP server adds: Received (RFC 5321 §4.4), and for submission the
Date and Message-ID a client left out (RFC 6409 §8.2, §8.3)."""

import email.utils
import re
import secrets

from mailbox_appliance.message import header_block

# RFC 5321 §4.4 with RFC 3848 and RFC 6531 §3.7.3 protocol types: ESMTP, plus S for TLS, A for
# authenticated; UTF8SMTP in place of ESMTP for an SMTPUTF8 transaction.
def protocol_type(extended, tls, authenticated, smtputf8):
    if not extended:
        return "SMTP"
    base = "UTF8SMTP" if smtputf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def received(hostname, helo, client_address, protocol, queue_id, tls_version, recipients, now=None):
    """A Received field (bytes, CRLF-terminated, folded).  An authenticated session shows as
    ESMTPA/ESMTPSA in *protocol*; the user name and password never appear."""
    stamp = email.utils.format_datetime(now or email.utils.localtime())
    lines = [f"Received: from {_clean(helo)} ([{client_address}])",
             f"\tby {hostname} (mailbox-appliance) with {protocol} id {queue_id}"]
    if tls_version:
        lines.append(f"\t(using {tls_version})")
    if len(recipients) == 1:
        lines.append(f"\tfor <{recipients[0]}>;")
    else:
        lines[-1] += ";"
    lines.append(f"\t{stamp}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _clean(helo):
    """The HELO name as a client sent it, minus anything that could break the header."""
    return re.sub(r"[^\x21-\x7e\x80-\U0010ffff]", "?", helo or "unknown")[:255]


def add_missing_date_and_message_id(message, hostname, now=None):
    """RFC 6409 §8.2 and §8.3: a submission server may add Date and Message-ID when missing."""
    headers = header_block(message)
    added = b""
    if not re.search(rb"(?im)^date[ \t]*:", headers):
        added += f"Date: {email.utils.format_datetime(now or email.utils.localtime())}\r\n".encode("ascii")
    if not re.search(rb"(?im)^message-id[ \t]*:", headers):
        added += f"Message-ID: <{secrets.token_hex(12)}@{hostname}>\r\n".encode("ascii")
    return added + message
