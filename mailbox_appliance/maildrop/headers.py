"""What the pickup does to the header of a message from a local program before it goes anywhere.

Local programs write bare user names (cron: ``From: root (Cron Daemon)``, ``To: root``) and
sometimes no From:, Date: or Message-ID: at all.  As Postfix does for its pickup, bare names get
the office's primary domain (in the envelope and in the address fields), a missing From: names
the sending user, and our Received field records the local user id (RFC 5321 §4.4 asks for a
trace field from every host; there is no client address to give).
"""

import email.utils

from mailbox_appliance import address_list
from mailbox_appliance.message import field_values, without_fields

__all__ = ["qualify", "qualified_fields", "with_from", "local_received"]

# The fields whose addresses are qualified (RFC 5322 §3.6.2, §3.6.3).
ADDRESS_FIELDS = ("From", "Sender", "Reply-To", "To", "Cc")


def qualify(address, domain):
    """*address* with *domain* added when it is a bare local name (``root``)."""
    return address if "@" in address else f"{address}@{domain}"


def qualified_fields(message, domain):
    """*message* with every bare name in its address fields given *domain* (such a field is
    written anew, on top: RFC 5322 §3.6 fixes no order); the other fields stay as written, and
    so does a field with group syntax."""
    added = b""
    for name in ADDRESS_FIELDS:
        key = name.lower().encode("ascii")
        for value in field_values(message, key):
            entries = address_list.parse(value.decode("utf-8", "replace"))
            if not any(entry.host == "" for entry in entries) or any(entry.host is None for entry in entries):
                continue
            rewritten = ", ".join(email.utils.formataddr((entry.name or "", f"{entry.mailbox}@{entry.host or domain}"),
                                                         "utf-8") for entry in entries)
            message = without_fields(message, (key,), lambda unfolded, value=value: unfolded == value)
            added += f"{name}: {rewritten}\r\n".encode("utf-8")
    return added + message


def with_from(message, sender, full_name):
    """*message* with a From: naming *sender* (and *full_name*) when it has none (RFC 5322 §3.6
    requires one)."""
    if field_values(message, b"from"):
        return message
    return f"From: {email.utils.formataddr((full_name or '', sender), 'utf-8')}\r\n".encode("utf-8") + message


def local_received(hostname, uid, queue_id, recipients, now=None):
    """Our Received field for a message from local user id *uid* (bytes, CRLF-terminated)."""
    stamp = email.utils.format_datetime(now or email.utils.localtime())
    destination = f"\r\n\tfor <{recipients[0]}>" if len(recipients) == 1 else ""
    return (f"Received: by {hostname} (mailbox-appliance, from userid {uid})\r\n"
            f"\tid {queue_id}{destination}; {stamp}\r\n").encode("utf-8")
