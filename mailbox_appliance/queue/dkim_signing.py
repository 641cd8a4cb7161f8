"""DKIM (RFC 6376) signatures on mail from our domains as it leaves the queue, with dkimpy.

Keys live in ``DATA/dkim/DOMAIN/SELECTOR.key`` (PEM, RSA 2048, mode 0600), made by
``mailbox-appliance-admin dkim keygen DOMAIN``.  A message is signed with the key of the domain in
its From: field (so the signature aligns for DMARC, RFC 7489 §3.1.1), else of its envelope
sender's domain; a domain with no key is sent unsigned.  Signing is rsa-sha256 with relaxed/relaxed
canonicalisation, the choices RFC 8301 and common practice recommend.
"""

import base64
import email.utils
import os
import re

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailbox_appliance.atomic import atomic_replace
from mailbox_appliance.message import header_block

KEY_BITS = 2048
DEFAULT_SELECTOR = "mail"


def key_directory(data_dir):
    return os.path.join(data_dir, "dkim")


def generate_key(data_dir, domain, selector=DEFAULT_SELECTOR):
    """Create the domain's key (refusing to overwrite one); returns the DNS TXT record value."""
    directory = os.path.join(key_directory(data_dir), domain)
    path = os.path.join(directory, f"{selector}.key")
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists already; delete it first to make a new key")
    os.makedirs(directory, mode=0o750, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    atomic_replace(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()), mode=0o600)
    return txt_record(key.public_key())


def txt_record(public_key):
    """'v=DKIM1; k=rsa; p=...' for the public key (RFC 6376 §3.6.1)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


def public_record(data_dir, domain, selector=DEFAULT_SELECTOR):
    with open(os.path.join(key_directory(data_dir), domain, f"{selector}.key"), "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), password=None)
    return txt_record(key.public_key())


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
                for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
                    if name.endswith(".key"):
                        with open(os.path.join(folder, name), "rb") as handle:
                            keys[domain] = (name[:-4], handle.read())
                        break
            self._keys, self._signature = keys, signature
        return self._keys

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
    match = re.search(rb"(?im)^from[ \t]*:(.*(?:\r\n[ \t].*)*)", header_block(message))
    if not match:
        return None
    _, address = email.utils.parseaddr(match.group(1).decode("utf-8", "replace").replace("\r\n", ""))
    return address.rpartition("@")[2].lower() or None
