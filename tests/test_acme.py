"""Certificates by ACME against a real ACME server: Debian's Pebble on loopback, validating
http-01 on the appliance's http listener, the names resolved by a twisted.names server
(issue 18).  The certificate is seen by fresh TLS clients on every kind of listener; Pebble's
short validity makes the next start renew it."""

import json
import os
import random
import shutil
import socket
import ssl
import stat
import subprocess

import pytest
from cryptography import x509

from appliance import Appliance
from conftest import Office
from mailbox_appliance.tls import create_self_signed
from outbound_world import serving_dns

PEBBLE = shutil.which("pebble")
pytestmark = pytest.mark.skipif(PEBBLE is None, reason="Pebble is not installed (.ci/run installs it)")
NAMES = ["mail.example.test", "autoconfig.example.test", "mta-sts.example.test", "autoconfig.catchall.test",
         "mta-sts.catchall.test"]
VALIDITY_SECONDS = 10 * 86400          # under the 30 days before expiry at which we renew


def free_ports(count):
    """*count* distinct ports free now, below Linux's ephemeral range (32768-60999): there no
    outgoing connection can take one between this check and the listener's bind (the kernel's
    own choice, bind to port 0, comes from that range and may even repeat once closed)."""
    chosen, held = [], []
    try:
        while len(chosen) < count:
            port = random.randrange(20000, 32000)
            probe = socket.socket()
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                probe.close()
                continue
            held.append(probe)
            chosen.append(port)
    finally:
        for probe in held:
            probe.close()
    return chosen


@pytest.fixture
def acme_world(tmp_path):
    """(directory URL, Pebble's own certificate, the http port Pebble validates on)."""
    http_port, api_port, management_port, tls_port = free_ports(4)
    certificate, key = str(tmp_path / "pebble.pem"), str(tmp_path / "pebble.key")
    create_self_signed(certificate, key, "localhost")
    config = {"pebble": {"listenAddress": f"127.0.0.1:{api_port}", "managementListenAddress": f"127.0.0.1:{management_port}",
                         "certificate": certificate, "privateKey": key, "httpPort": http_port,
                         "tlsPort": tls_port, "ocspResponderURL": "", "externalAccountBindingRequired": False,
                         "certificateValidityPeriod": VALIDITY_SECONDS}}
    (tmp_path / "pebble.json").write_text(json.dumps(config))
    zone = {"records": {name: {"A": ["127.0.0.1"]} for name in NAMES}}
    dns_directory = tmp_path / "dns"
    dns_directory.mkdir()
    with serving_dns(str(dns_directory), zone) as resolver:
        process = subprocess.Popen([PEBBLE, "-config", str(tmp_path / "pebble.json"), "-dnsserver", resolver],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"})
        try:
            for line in process.stdout:
                if "Listening on" in line or "ACME directory available" in line:
                    break
            else:
                raise AssertionError("Pebble did not start")
            yield f"https://127.0.0.1:{api_port}/dir", certificate, http_port
        finally:
            process.kill()
            process.wait()


def served_certificate(port, starttls=None):
    """The certificate a fresh TLS client gets on *port* (after STARTTLS when asked)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        if starttls is not None:
            raw.recv(4096)
            raw.sendall(starttls)
            raw.recv(4096)
        with context.wrap_socket(raw) as wrapped:
            return x509.load_der_x509_certificate(wrapped.getpeercert(binary_form=True))


def test_issued_installed_everywhere_and_renewed_at_the_next_start(tmp_path, acme_world):
    url, pebble_certificate, http_port = acme_world
    office = Office(str(tmp_path / "office"), extra=f"[tls]\nacme = {url}\nacme_email = postmaster@example.test\n")
    with open(office.config_path) as handle:
        text = handle.read()
    with open(office.config_path, "w") as handle:
        handle.write(text.replace("\nhttp = tcp:0:", f"\nhttp = tcp:{http_port}:"))
    environment = {"REQUESTS_CA_BUNDLE": pebble_certificate}      # the client trusts Pebble's API
    office.start(env=environment)
    try:
        line = office.appliance.wait_for_log(r"certificate for .* installed on every listener", timeout=90)
        assert all(name in line for name in NAMES), line
        for port, starttls in ((office.ports["imaps"], None), (office.ports["https"], None),
                               (office.ports["submissions"], None), (office.ports["imap"], b"a STARTTLS\r\n"),
                               (office.ports["submission"], b"STARTTLS\r\n")):
            certificate = served_certificate(port, starttls)
            assert "Pebble" in certificate.issuer.rfc4514_string(), certificate.issuer
        first = served_certificate(office.ports["imaps"]).serial_number
        # A certificate senders can verify: the MTA-STS policy says enforce now.
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", office.ports["https"]), timeout=30) as raw:
            with context.wrap_socket(raw) as wrapped:
                wrapped.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: mta-sts.example.test\r\n\r\n")
                answer = b"".join(iter(lambda: wrapped.recv(4096), b""))     # HTTP/1.0: read to the close
                assert b"mode: enforce" in answer, answer
        acme = os.path.join(office.data_dir, "tls", "acme")
        assert stat.S_IMODE(os.stat(os.path.join(acme, "private-key.pem")).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.join(acme, "account.key")).st_mode) == 0o600
        office.appliance.stop()
        # Ten days of validity is less than the thirty before expiry at which we renew.
        office.appliance = Appliance(office.config_path, env=environment)
        office.appliance.wait_for_log(r"serving the ACME certificate for ")
        office.appliance.wait_for_log(r"ordering a certificate for .*: it expires on ")
        office.appliance.wait_for_log(r"certificate for .* installed on every listener", timeout=90)
        assert served_certificate(office.ports["imaps"]).serial_number != first
        assert not any("Traceback" in line for line in office.appliance.lines)
    finally:
        office.appliance.stop()


def test_a_failing_ca_leaves_the_certificate_in_use(tmp_path):
    office = Office(str(tmp_path), extra=f"[tls]\nacme = https://127.0.0.1:{free_ports(1)[0]}/dir\n").start()
    try:
        office.appliance.wait_for_log(r"ACME order failed: .*; the certificate in use stays; trying again in 60s")
        assert "mail.example.test" in served_certificate(office.ports["imaps"]).subject.rfc4514_string()
    finally:
        office.appliance.stop()
