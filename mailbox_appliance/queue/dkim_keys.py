"""DKIM keys (RFC 6376): where they live and how the admin makes them.

Keys live in ``DATA/dkim/DOMAIN/SELECTOR.key`` (PEM, RSA 2048, mode 0600), made by
``mailbox-appliance-admin dkim keygen DOMAIN``, which prints the DNS record to publish; the queue
signs with them (queue/dkim_signing.py).  One key per domain signs: the selector named in
``DATA/dkim/DOMAIN/active`` (``dkim use DOMAIN SELECTOR``), the domain's first key until then.
A rotation is: keygen a new selector, publish its record, wait for DNS, ``dkim use`` it.
"""

import base64
import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailbox_appliance.atomic import atomic_replace

KEY_BITS = 2048
DEFAULT_SELECTOR = "mail"
ACTIVE = "active"


def key_directory(data_dir):
    return os.path.join(data_dir, "dkim")


def generate_key(data_dir, domain, selector=DEFAULT_SELECTOR):
    """Create the domain's key (refusing to overwrite one); returns the DNS TXT record value."""
    directory = os.path.join(key_directory(data_dir), domain)
    path = os.path.join(directory, f"{selector}.key")
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists already; delete it first to make a new key")
    os.makedirs(directory, mode=0o750, exist_ok=True)
    # The key signing now goes on signing: a new selector signs only once the admin says so.
    use(data_dir, domain, signing_selector(directory) or selector)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    atomic_replace(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()), mode=0o600)
    return txt_record(key.public_key())


def signing_selector(directory):
    """The selector that signs for the domain whose keys are in *directory*, or None."""
    try:
        with open(os.path.join(directory, ACTIVE), encoding="ascii") as handle:
            chosen = handle.read().strip()
        if os.path.exists(os.path.join(directory, f"{chosen}.key")):
            return chosen
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    keys = sorted(name[:-4] for name in os.listdir(directory) if name.endswith(".key")) \
        if os.path.isdir(directory) else []
    return keys[0] if keys else None


def use(data_dir, domain, selector):
    """Make *selector* the one that signs for *domain* (FileNotFoundError when it has no key)."""
    directory = os.path.join(key_directory(data_dir), domain)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no DKIM key for {domain}")
    atomic_replace(os.path.join(directory, ACTIVE), f"{selector}\n".encode("ascii"), mode=0o640)


def txt_record(public_key):
    """'v=DKIM1; k=rsa; p=...' for the public key (RFC 6376 §3.6.1)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


def public_record(data_dir, domain, selector=DEFAULT_SELECTOR):
    with open(os.path.join(key_directory(data_dir), domain, f"{selector}.key"), "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), password=None)
    return txt_record(key.public_key())
