"""DKIM (RFC 6376) signatures on mail from our domains as it leaves the queue, with dkimpy.

Keys live in ``DATA/dkim/DOMAIN/SELECTOR.key`` (queue/dkim_keys.py).  A message is signed with
the key of the domain in its From: field (so the signature aligns for DMARC, RFC 7489 §3.1.1),
else of its envelope sender's domain; a domain with no key is sent unsigned.  Signing is rsa-sha256 with relaxed/relaxed
canonicalisation, the choices RFC 8301 and common practice recommend.
"""

import email.utils
import os

import dkim

from mailbox_appliance.message import field_values
from mailbox_appliance.queue.dkim_keys import key_directory, signing_selector


class Signer:
    """Signs outgoing messages with whatever keys are in DATA/dkim (re-read when it changes)."""

    def __init__(self, data_dir):
        self.directory = key_directory(data_dir)
        self._keys = {}
        self._signature = None

    def keys(self):
        """{domain: (selector, PEM bytes)}; the directory is re-read when its entries change."""
        try:
            signature = tuple(sorted((entry, os.stat(os.path.join(self.directory, entry)).st_mtime_ns)
                                     for entry in os.listdir(self.directory)))
        except FileNotFoundError:
            signature = ()
        if signature != self._signature:
            # Built aside and swapped in whole: the reactor and the signing thread both read it.
            keys = {}
            for domain, _ in signature:
                folder = os.path.join(self.directory, domain)
                selector = signing_selector(folder)
                if selector is not None:
                    with open(os.path.join(folder, f"{selector}.key"), "rb") as handle:
                        keys[domain] = (selector, handle.read())
            self._keys, self._signature = keys, signature
        return self._keys

    def signs(self, envelope, message):
        """True when *message* of queue entry *envelope* is ours to sign and a key applies: sent
        by an authenticated user, or a report of this queue (IDelivery.deliver_report marks those
        with session "queue").  Mail from outside passing through an alias is never signed with
        our key: a forged From: would then pass DMARC."""
        origin = envelope.received_from or {}
        if not (origin.get("user") or origin.get("session") == "queue"):
            return False
        return self.key_for(message, envelope.sender) is not None

    def key_for(self, message, envelope_sender):
        """(domain, selector, PEM) of the key that signs *message*, or None."""
        domain = _from_domain(message) or envelope_sender.rpartition("@")[2].lower()
        key = self.keys().get(domain)
        return None if key is None else (domain, *key)

    def sign(self, message, envelope_sender):
        """*message* with a DKIM-Signature field first, or unchanged when no key applies."""
        key = self.key_for(message, envelope_sender)
        if key is None:
            return message
        domain, selector, private_key = key
        signature = dkim.sign(message, selector.encode("ascii"), domain.encode("ascii"), private_key,
                              canonicalize=(b"relaxed", b"relaxed"), linesep=b"\r\n")
        return signature + message


def _from_domain(message):
    fields = field_values(message, b"from")
    if not fields:
        return None
    _, address = email.utils.parseaddr(fields[0].decode("utf-8", "replace"))
    return address.rpartition("@")[2].lower() or None
