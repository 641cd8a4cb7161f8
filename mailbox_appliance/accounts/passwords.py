"""Password hashes in Dovecot's ``{SCHEME}hash`` notation.

New hashes are Argon2id (RFC 9106) with argon2-cffi's parameters.  {BLF-CRYPT} (bcrypt) is verified
too, so that a users file taken over from Dovecot keeps working; `doveadm pw -s BLF-CRYPT` writes
``$2y$`` hashes, which bcrypt checks as ``$2b$`` (the same algorithm, a different label).
"""

import functools
import re

import argon2
import bcrypt

DEFAULT_SCHEME = "ARGON2ID"

_hasher = argon2.PasswordHasher()


@functools.cache
def _decoy_hash():
    """Verified in place of a missing user's hash, so that an unknown user costs the same time as
    a wrong password and login timing does not tell which addresses exist."""
    return _hasher.hash("decoy password never matched")


def _verify_argon2(encoded, password):
    try:
        return _hasher.verify(encoded, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHash):
        return False


def _verify_bcrypt(encoded, password):
    if encoded.startswith("$2y$"):
        encoded = "$2b$" + encoded[4:]
    try:
        return bcrypt.checkpw(password.encode("utf-8"), encoded.encode("ascii"))
    except ValueError:
        return False


VERIFIERS = {
    "ARGON2ID": _verify_argon2,
    "ARGON2I": _verify_argon2,
    "BLF-CRYPT": _verify_bcrypt,
}


def hash_password(password):
    """Hash *password* (str) for the users file."""
    return "{%s}%s" % (DEFAULT_SCHEME, _hasher.hash(password))


def scheme_of(stored):
    """The scheme name of a stored ``{SCHEME}hash`` (upper case), or None if it has none."""
    match = re.match(r"\{([A-Za-z0-9._-]+)\}", stored)
    return match.group(1).upper() if match else None


def is_supported(stored):
    return scheme_of(stored) in VERIFIERS


def verify(stored, password):
    """True when *password* (str) matches *stored*; False for a wrong password or unknown scheme.

    CPU-heavy on purpose (Argon2): callers in the reactor run it in a thread.
    """
    if stored is None:
        _verify_argon2(_decoy_hash(), password)
        return False
    scheme = scheme_of(stored)
    verifier = VERIFIERS.get(scheme)
    if verifier is None:
        return False
    return verifier(stored[len(scheme) + 2:], password)
