"""Password hashes in Dovecot's ``{SCHEME}hash`` notation.

New hashes are Argon2id (RFC 9106) with argon2-cffi's parameters.  {BLF-CRYPT} (bcrypt) is verified
too, so that a users file taken over from Dovecot keeps working; `doveadm pw -s BLF-CRYPT` writes
``$2y$`` hashes, which bcrypt checks as ``$2b$`` (the same algorithm, a different label).

{SHA512-CRYPT} and {SHA256-CRYPT} (glibc's ``$6$`` / ``$5$`` SHA-crypt, common in Dovecot set-ups) are
verified where the platform can: through the standard ``crypt`` module, which Python 3.13 removed
(PEP 594) and which exists only where the C library implements these methods.  Without it those
schemes are simply not in VERIFIERS, so is_supported says so and `user list` flags the users.
"""

import functools
import hmac
import re
import warnings

import argon2
import bcrypt

try:
    with warnings.catch_warnings():
        # crypt is deprecated (PEP 594) and gone in Python 3.13, but it is the standard library's
        # only way to the C library's SHA-crypt; silence only its import-time warning, only here.
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt as _crypt
except ImportError:
    _crypt = None

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


def crypt_verifiers(crypt_module):
    """{SCHEME: verifier} for the SHA-crypt schemes *crypt_module* (``crypt``, or None when Python
    has none) can check: only the methods the C library implements (``crypt.methods``)."""
    if crypt_module is None:
        return {}

    def verify_crypt(encoded, password):
        try:
            computed = crypt_module.crypt(password, encoded)
        except (OSError, ValueError):       # an unusable salt, a NUL in the password
            return False
        return computed is not None and hmac.compare_digest(computed.encode(), encoded.encode())

    schemes = {"SHA512-CRYPT": "METHOD_SHA512", "SHA256-CRYPT": "METHOD_SHA256"}
    return {scheme: verify_crypt for scheme, method in schemes.items()
            if getattr(crypt_module, method, None) in crypt_module.methods}


VERIFIERS = {
    "ARGON2ID": _verify_argon2,
    "ARGON2I": _verify_argon2,
    "BLF-CRYPT": _verify_bcrypt,
    **crypt_verifiers(_crypt),
}


def hash_password(password):
    """Hash *password* (str) for the users file."""
    return "{%s}%s" % (DEFAULT_SCHEME, _hasher.hash(password))


def scheme_of(stored):
    """The scheme name of a stored ``{SCHEME}hash`` (upper case), or None if it has none."""
    match = re.match(r"\{([A-Za-z0-9._-]+)\}", stored)
    return match.group(1).upper() if match else None


def is_supported(stored):
    """True when this platform can verify *stored*'s scheme (see VERIFIERS)."""
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
