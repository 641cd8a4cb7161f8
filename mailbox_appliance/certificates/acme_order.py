"""One ACME order, start to end, with certbot's library (python3-acme): the account, the
order for our names, the http-01 challenges, the certificate.

Synchronous (the library uses requests): the renewal service runs it in a thread.  The
challenge answers are handed to the reactor through *publish* and *withdraw*, which the plain
HTTP listener serves at /.well-known/acme-challenge/TOKEN (RFC 8555 §8.3).
"""

import datetime
import json
import os

import josepy
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailbox_appliance.atomic import atomic_replace

ORDER_SECONDS = 180
USER_AGENT = "mailbox-appliance"


class OrderFailed(Exception):
    """The order did not give a certificate; the text says why."""


def new_key_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def order_certificate(directory_url, email, names, state_dir, publish, withdraw):
    """(full chain PEM, private key PEM) for *names*; raises OrderFailed.  *state_dir* keeps
    the account key and URL (mode 0600), so the account is made once."""
    try:
        acme = _client(directory_url, email, state_dir)
        key_pem = new_key_pem()
        order = acme.new_order(crypto_util.make_csr(key_pem, names))
        answered = []
        try:
            for authorization in order.authorizations:
                if authorization.body.status == messages.STATUS_VALID:
                    continue        # RFC 8555 §7.1.4: the CA still holds a valid one for this name
                challenge = next((c for c in authorization.body.challenges if isinstance(c.chall, challenges.HTTP01)),
                                 None)
                if challenge is None:
                    raise OrderFailed(f"no http-01 challenge offered for {authorization.body.identifier.value}")
                response, validation = challenge.response_and_validation(acme.net.key)
                token = challenge.chall.encode("token")
                publish(token, validation)
                answered.append(token)
                acme.answer_challenge(challenge, response)
            deadline = datetime.datetime.now() + datetime.timedelta(seconds=ORDER_SECONDS)
            finished = acme.poll_and_finalize(order, deadline)
        finally:
            for token in answered:
                withdraw(token)
        return finished.fullchain_pem.encode("ascii"), key_pem
    except (errors.Error, messages.Error, OSError, ValueError) as problem:
        raise OrderFailed(_reason(problem)) from None


def _client(directory_url, email, state_dir):
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    key_path, account_path = os.path.join(state_dir, "account.key"), os.path.join(state_dir, "account.json")
    if not os.path.exists(key_path):
        atomic_replace(key_path, new_key_pem())
    with open(key_path, "rb") as handle:
        key = josepy.JWKRSA(key=serialization.load_pem_private_key(handle.read(), password=None))
    net = client.ClientNetwork(key, user_agent=USER_AGENT)
    acme = client.ClientV2(client.ClientV2.get_directory(directory_url, net), net)
    account = _load(account_path)
    if account.get("directory") == directory_url and account.get("uri"):
        net.account = messages.RegistrationResource(uri=account["uri"], body=messages.Registration())
        return acme
    registration = messages.NewRegistration.from_data(email=email or None, terms_of_service_agreed=True)
    try:
        made = acme.new_account(registration)
    except errors.ConflictError as existing:
        # RFC 8555 §7.3.1: the key has an account already (its record here was lost).
        made = messages.RegistrationResource(uri=existing.location, body=messages.Registration())
        net.account = made
    atomic_replace(account_path, json.dumps({"directory": directory_url, "uri": made.uri}).encode("ascii"))
    return acme


def _load(path):
    try:
        with open(path, "rb") as handle:
            loaded = json.loads(handle.read())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _reason(problem):
    text = str(problem) or type(problem).__name__
    return " ".join(text.split())[:300]
