"""The Sender Rewriting Scheme (SRS0, as postsrsd writes it) for mail a Sieve redirect forwards.

Forwarded mail keeps its author, but the envelope sender must be ours, or SPF fails at the
destination (RFC 7208 §1.1.1 names forwarding as the case): ``bob@remote.test`` becomes
``SRS0=HHHHHH=TT=remote.test=bob@example.test``.  HHHHHH is a keyed hash (HMAC-SHA256 of the
rest, base32, case-insensitive since servers may fold case), TT the day; a bounce to that
address is accepted for MAX_AGE_DAYS and sent on to bob, and a forged one is refused, so this
is no open relay.  The key is ``DATA/srs.key``, made on first use.
"""

import base64
import hashlib
import hmac
import os
import secrets
import time

from mailbox_appliance.atomic import create_synced

KEY_FILE = "srs.key"
MAX_AGE_DAYS = 21
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_DAY = 86400


class SenderRewriting:
    def __init__(self, data_dir, clock=time.time):
        self.path = os.path.join(data_dir, KEY_FILE)
        self.clock = clock
        self._key = None

    def key(self):
        if self._key is None:
            try:
                create_synced(self.path, secrets.token_bytes(32))
            except FileExistsError:
                pass
            with open(self.path, "rb") as handle:
                self._key = handle.read()
        return self._key

    def forward(self, sender, domain):
        """*sender* rewritten to an address at *domain*; the null sender and our own addresses
        (``is_ours``) are left to the caller."""
        if not sender:
            return sender
        local, _, sender_domain = sender.rpartition("@")
        stamp = self._stamp(int(self.clock() // _DAY))
        return f"SRS0={self._hash(stamp, sender_domain, local)}={stamp}={sender_domain}={local}@{domain}"

    def reverse(self, address):
        """The original sender of an SRS0 *address* we made, or None (not ours, forged, too old)."""
        local, _, _ = address.rpartition("@")
        if not local[:5].upper() == "SRS0=":
            return None
        parts = local[5:].split("=", 3)
        if len(parts) != 4:
            return None
        given, stamp, sender_domain, sender_local = parts
        if not hmac.compare_digest(given.upper(), self._hash(stamp, sender_domain, sender_local)):
            return None
        day = self._day(stamp)
        if day < 0 or (int(self.clock() // _DAY) - day) % len(_ALPHABET) ** 2 > MAX_AGE_DAYS:
            return None
        return f"{sender_local}@{sender_domain}"

    def _hash(self, stamp, domain, local):
        text = f"{stamp}={domain}={local}".lower().encode("utf-8")
        return base64.b32encode(hmac.new(self.key(), text, hashlib.sha256).digest()).decode("ascii")[:6]

    @staticmethod
    def _stamp(day):
        day %= len(_ALPHABET) ** 2
        return _ALPHABET[day // len(_ALPHABET)] + _ALPHABET[day % len(_ALPHABET)]

    @staticmethod
    def _day(stamp):
        stamp = stamp.upper()
        if len(stamp) != 2 or any(character not in _ALPHABET for character in stamp):
            return -1
        return _ALPHABET.index(stamp[0]) * len(_ALPHABET) + _ALPHABET.index(stamp[1])
