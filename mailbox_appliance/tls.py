"""Certificates: load the configured pair, or create a self-signed one for the built-in defaults.

One context factory serves every listener, for implicit TLS (465, 993, 995) and STARTTLS alike,
with TLS 1.2 as the floor (RFC 8996 deprecates 1.0 and 1.1; RFC 8314 §4.1 asks the same of mail).
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer

from mailbox_appliance.atomic import atomic_replace

SELF_SIGNED_VALID_DAYS = 3650
SELF_SIGNED_KEY_BITS = 2048


class TLSError(Exception):
    """The certificate or key cannot be used; the message names the file and the fix."""


def context_factory(settings, log=None, create=True):
    """The server context factory for ``settings.tls``, creating a self-signed pair if allowed
    (and *create*: a check must change nothing)."""
    tls = settings.tls
    if create and tls.create_self_signed and not (os.path.exists(tls.certificate) or os.path.exists(tls.private_key)):
        create_self_signed(tls.certificate, tls.private_key, settings.server.hostname)
        if log is not None:
            log.info("created a self-signed certificate {path} for {hostname}",
                     path=tls.certificate, hostname=settings.server.hostname)
    return ServerCertificate(server_options(tls.certificate, tls.private_key))


def server_options(certificate_path, key_path):
    """ServerOptions for the PEM pair; TLSError when a file is unreadable or they do not match."""
    certificate = _read(certificate_path, "certificate", x509.load_pem_x509_certificate)
    private_key = _read(key_path, "private_key", _load_private_key)
    if _public_key_bytes(certificate) != _public_key_bytes(private_key):
        raise TLSError(f"[tls] private_key {key_path} does not match certificate {certificate_path}")
    chain = [crypto.X509.from_cryptography(extra) for extra in _chain(certificate_path)[1:]]
    return ServerOptions(
        # Twisted 22.4 (Debian 12) takes pyOpenSSL objects, so convert.
        privateKey=crypto.PKey.from_cryptography_key(private_key),
        certificate=crypto.X509.from_cryptography(certificate),
        extraCertChain=chain,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
    )


@implementer(IOpenSSLContextFactory)
class ServerCertificate:
    """What every listener serves, replaceable while they run (an ACME renewal): the listeners
    hold this one object, and each new TLS connection, implicit or by STARTTLS, asks it for the
    context in use now; sessions already encrypted keep theirs."""

    def __init__(self, options):
        self.options = options

    def getContext(self):
        return self.options.getContext()

    def install(self, certificate_path, key_path):
        """Serve this PEM pair from the next connection on; TLSError (and the old pair kept) when
        it cannot be used."""
        self.options = server_options(certificate_path, key_path)


def _chain(path):
    """Every certificate in the PEM file *path*, the server's own first."""
    with open(path, "rb") as handle:
        data = handle.read()
    found = []
    for block in data.split(b"-----END CERTIFICATE-----")[:-1]:
        start = block.find(b"-----BEGIN CERTIFICATE-----")
        if start >= 0:
            found.append(x509.load_pem_x509_certificate(block[start:] + b"-----END CERTIFICATE-----\n"))
    return found


class ServerOptions(ssl.CertificateOptions):
    """The server's TLS options, answering ALPN (RFC 7301) by negotiating no protocol.

    Why: current Twisted installs an ALPN callback on every server context which, when none of
    the client's protocols is acceptable, returns b"" instead of pyOpenSSL's "no overlap": the
    handshake then fails with an internal_error alert.  A client offering ALPN (curl offers
    h2/http1.1 to HTTPS; mail clients may offer "imap") could not connect to any listener.  None
    of our protocols needs ALPN, so none is negotiated and the handshake goes on without it."""

    _answers_alpn = False

    def getContext(self):
        context = super().getContext()
        # Once, before the first connection: pyOpenSSL refuses changes to a context in use.
        if not self._answers_alpn:
            context.set_alpn_select_callback(_no_application_protocol)
            self._answers_alpn = True
        return context


def _no_application_protocol(connection, offered):
    return SSL.NO_OVERLAPPING_PROTOCOLS


def client_context_factory():
    """For opportunistic STARTTLS to other mail servers: encrypt, do not verify (as RFC 7435
    describes; most MX certificates would not verify), and never below TLS 1.2."""
    return ssl.CertificateOptions(raiseMinimumTo=ssl.TLSVersion.TLSv1_2)


def verifying_client_context(hostname):
    """For a smart host: the certificate must chain to the system's CAs and name *hostname*
    (service-identity does the name check)."""
    return ssl.optionsForClientTLS(hostname, extraCertificateOptions={"raiseMinimumTo": ssl.TLSVersion.TLSv1_2})


def negotiated_version(transport):
    """'TLSv1.3' for a transport that speaks TLS (implicit, or after startTLS), else 'TLS'."""
    try:
        return transport.getHandle().get_protocol_version_name()
    except AttributeError:
        return "TLS"


def _load_private_key(data):
    return serialization.load_pem_private_key(data, password=None)


def _public_key_bytes(certificate_or_key):
    return certificate_or_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _read(path, key, loader):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise TLSError(f"[tls] {key} {path}: cannot read it: {error.strerror}") from None
    try:
        return loader(data)
    except (ValueError, TypeError):
        kind = "certificate" if key == "certificate" else "unencrypted private key"
        raise TLSError(f"[tls] {key} {path}: not a PEM {kind}") from None


def _self_signed_names(hostname):
    """The host name, and the loopback names and addresses the demo listens on: a client told
    to connect to 127.0.0.1 checks the address against the certificate (fetchmail does)."""
    names = dict.fromkeys([hostname, "localhost"])
    return [x509.DNSName(name) for name in names] + [
        x509.IPAddress(ipaddress.ip_address(address)) for address in ("127.0.0.1", "::1")]


def create_self_signed(certificate_path, key_path, hostname):
    """Write a new RSA key (mode 0600) and a self-signed certificate for *hostname*."""
    os.makedirs(os.path.dirname(os.path.abspath(certificate_path)), exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(key_path)), exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=SELF_SIGNED_KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_self_signed_names(hostname)), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    atomic_replace(key_path, key_pem, mode=0o600)
    atomic_replace(certificate_path, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)

