"""DKIM keys (RFC 6376): where they live and how the admin makes them.

Keys live in ``DATA/dkim/DOMAIN/SELECTOR.key`` (PEM, RSA 2048, mode 0600), made by
``mailbox-appliance-admin dkim keygen DOMAIN``, which prints the DNS record to publish; the queue
signs with them (queue/dkim_signing.py).
"""

import base64
import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailbox_appliance.atomic import atomic_replace

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
