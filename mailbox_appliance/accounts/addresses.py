"""Mail address syntax as the account files and lookups use it.

Lookups are case-insensitive: domains are case-insensitive (RFC 5321 §2.4) and, although a local
part may be case-sensitive, treating it so only loses mail in practice; every mail server the office
talks to folds case the same way.  Local parts may be UTF-8 (RFC 6531).
"""

import re

SUBADDRESS_SEPARATOR = "+"
# RFC 5321 §4.5.3.1.1 and §4.5.3.1.2: local part at most 64 octets, domain at most 255.
MAX_LOCAL_PART_OCTETS = 64
MAX_DOMAIN_OCTETS = 255

_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
# Dot-atom text of RFC 5322 §3.2.3, plus any non-ASCII character (RFC 6532 §3.2).
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+)*\Z")


def normalize_address(address):
    return address.strip().lower()


def is_valid_domain(domain):
    return (
        0 < len(domain.encode("utf-8")) <= MAX_DOMAIN_OCTETS
        and all(_LABEL.match(label) for label in domain.split("."))
    )


def is_valid_address(address):
    local, at, domain = address.rpartition("@")
    return (
        bool(at)
        and 0 < len(local.encode("utf-8")) <= MAX_LOCAL_PART_OCTETS
        and bool(_LOCAL_PART.match(local))
        and is_valid_domain(domain)
    )


def split_address(address):
    """'User@Example.COM' -> ('user', 'example.com')."""
    local, _, domain = normalize_address(address).rpartition("@")
    return local, domain


def without_subaddress(address):
    """'user+tag@example.com' -> 'user@example.com' (RFC 5233 subaddressing); others unchanged."""
    local, domain = split_address(address)
    base = local.split(SUBADDRESS_SEPARATOR, 1)[0]
    return f"{base}@{domain}" if base else f"{local}@{domain}"
