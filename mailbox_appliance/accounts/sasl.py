"""SASL PLAIN (RFC 4616), the one mechanism every protocol here offers, and only over TLS."""

import base64
import binascii

from twisted.cred.credentials import UsernamePassword


class MalformedResponse(ValueError):
    """The client's PLAIN response does not decode; the text says why, for the protocol's error."""


def plain_credentials(response):
    """The credentials in a base64 PLAIN response ('=' is an empty one, RFC 4954 §4).

    Acting as another user (an authorization identity other than the user) is not offered: it is
    answered like a wrong password, with an empty user name.
    """
    try:
        decoded = b"" if response == b"=" else base64.b64decode(response, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedResponse("Cannot decode the base64 response") from None
    parts = decoded.split(b"\0")
    if len(parts) != 3:
        raise MalformedResponse("PLAIN response must be authzid NUL authcid NUL password")
    authzid, user, password = parts
    return UsernamePassword(user if authzid in (b"", user) else b"", password)
