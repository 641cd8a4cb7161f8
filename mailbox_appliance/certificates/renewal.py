"""The service that keeps an ACME certificate in use (``[tls] acme``): at start the one on disk
(if any) is served, a new one is ordered when there is none, when it names fewer names than we
serve, or 30 days before it expires (RENEW_BEFORE, as certbot does); a failure is logged and
tried again later (RETRY_SECONDS), the certificate in use staying in use.  A new certificate is
written atomically (key first, mode 0600) and installed into the listeners' ServerCertificate,
so every new connection gets it without a restart.

Names: [server] hostname, and autoconfig.DOMAIN and mta-sts.DOMAIN of each domain (the names
clients and other servers fetch our HTTPS documents under).
"""

import datetime
import os

from cryptography import x509
from twisted.application.service import Service
from twisted.internet import threads
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailbox_appliance.atomic import atomic_replace
from mailbox_appliance.certificates.acme_order import OrderFailed, order_certificate
from mailbox_appliance.tls import TLSError

RENEW_BEFORE = datetime.timedelta(days=30)
CHECK_SECONDS = 12 * 3600
RETRY_SECONDS = (60, 300, 1800, 3 * 3600, 12 * 3600)


def acme_directory(data_dir):
    return os.path.join(data_dir, "tls", "acme")


def names_of(hostname, domains):
    """The names the certificate must carry, in a stable order."""
    names = [hostname]
    for domain in sorted(domains):
        names += [f"autoconfig.{domain}", f"mta-sts.{domain}"]
    return list(dict.fromkeys(name.lower() for name in names))


class AcmeCertificates(Service):
    log = Logger()

    def __init__(self, settings, accounts, certificate, challenges, reactor, order=order_certificate):
        """*certificate* is the listeners' tls.ServerCertificate; *challenges* the dict the HTTP
        listener answers http-01 from; *order* does one ACME order (in a thread)."""
        self.url, self.email = settings.tls.acme, settings.tls.acme_email
        self.hostname, self.accounts = settings.server.hostname, accounts
        self.certificate, self.challenges, self.reactor, self.order = certificate, challenges, reactor, order
        self.directory = acme_directory(settings.server.data_dir)
        self.certificate_path = os.path.join(self.directory, "certificate.pem")
        self.key_path = os.path.join(self.directory, "private-key.pem")
        self.failures = 0
        self.timer = None
        self.ours = None          # the ACME certificate in use: (names, not after), or None

    def startService(self):
        super().startService()
        if os.path.exists(self.certificate_path):
            try:
                self.certificate.install(self.certificate_path, self.key_path)
                self.ours = _described(self.certificate_path)
                self.log.info("serving the ACME certificate for {names}, valid until {until}",
                              names=" ".join(self.ours[0]), until=self.ours[1].isoformat())
            except (TLSError, OSError, ValueError) as problem:
                self.log.error("the ACME certificate {path} cannot be used ({problem}); ordering another",
                               path=self.certificate_path, problem=problem)
        self.check()

    def stopService(self):
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        return super().stopService()

    def due(self):
        """Why a new certificate is needed now, or None."""
        wanted = names_of(self.hostname, self.accounts.domains())
        if self.ours is None:
            return "no ACME certificate yet"
        missing = [name for name in wanted if name not in self.ours[0]]
        if missing:
            return "it lacks " + " ".join(missing)
        now = datetime.datetime.fromtimestamp(self.reactor.seconds(), datetime.timezone.utc)
        if self.ours[1] - now < RENEW_BEFORE:
            return f"it expires on {self.ours[1].date().isoformat()}"
        return None

    def check(self):
        self.timer = None
        why = self.due()
        if why is None:
            return self._later(CHECK_SECONDS)
        names = names_of(self.hostname, self.accounts.domains())
        self.log.info("ordering a certificate for {names} from {url}: {why}", names=" ".join(names), url=self.url,
                      why=why)
        result = threads.deferToThread(self.order, self.url, self.email, names, self.directory, self._publish,
                                       self._withdraw)
        result.addCallbacks(self._issued, self._failed)

    def _publish(self, token, validation):
        # Called from the ordering thread: the answer is in place before the CA is told to look.
        threads.blockingCallFromThread(self.reactor, self.challenges.__setitem__, token, validation)

    def _withdraw(self, token):
        self.reactor.callFromThread(self.challenges.pop, token, None)

    def _issued(self, pair):
        chain, key = pair
        try:
            atomic_replace(self.key_path, key)
            atomic_replace(self.certificate_path, chain, mode=0o644)
            self.certificate.install(self.certificate_path, self.key_path)
        except (TLSError, OSError):
            return self._failed(Failure())
        self.failures = 0
        self.ours = _described(self.certificate_path)
        self.log.info("certificate for {names} installed on every listener, valid until {until}",
                      names=" ".join(self.ours[0]), until=self.ours[1].isoformat())
        self._later(CHECK_SECONDS)

    def _failed(self, failure):
        problem = failure.value
        if not failure.check(OrderFailed, TLSError, OSError):
            self.log.failure("ACME order broke", failure)
        delay = RETRY_SECONDS[min(self.failures, len(RETRY_SECONDS) - 1)]
        self.failures += 1
        self.log.error("ACME order failed: {problem}; the certificate in use stays; trying again in {delay}s",
                       problem=problem, delay=delay)
        self._later(delay)

    def _later(self, seconds):
        if self.running:
            self.timer = self.reactor.callLater(seconds, self.check)


def _described(path):
    """(names, not after) of the certificate in the PEM file *path*."""
    with open(path, "rb") as handle:
        certificate = x509.load_pem_x509_certificate(handle.read())
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    until = getattr(certificate, "not_valid_after_utc", None) or \
        certificate.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return [name.lower() for name in names], until
