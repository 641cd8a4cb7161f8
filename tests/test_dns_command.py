"""mailbox-appliance-admin dns DOMAIN [--check]: every record a domain needs, and what a real
DNS server (twisted.names on loopback) holds of them (issue 18)."""

import os
import types

import pytest

from appliance import LISTENERS, admin
from outbound_world import serving_dns

ZONE = {"records": {
    "example.test": {"MX": [[10, "mail.example.test"]], "TXT": ["v=spf1 mx -all"]},
    "mail.example.test": {"A": ["127.0.0.1"]},
    "_dmarc.example.test": {"TXT": ["v=DMARC1; p=quarantine"]},
    "autoconfig.example.test": {"CNAME": ["mail.example.test"]},
    "autodiscover.example.test": {"A": ["127.0.0.1"]},                    # an A record serves too
    "mta-sts.example.test": {"CNAME": ["elsewhere.test"]},                # wrong
    "_imaps._tcp.example.test": {"SRV": [[0, 1, 993, "mail.example.test"]]},
    "_submissions._tcp.example.test": {"SRV": [[0, 1, 4650, "mail.example.test"]]},   # wrong port
}}
LISTEN = {"imaps": "tcp:993", "submissions": "tcp:465", "https": "tcp:443"}


@pytest.fixture
def office(tmp_path):
    """A configuration (never started: the command reads it and asks the DNS itself) listening
    on real ports, so that the records name them."""
    with serving_dns(str(tmp_path), ZONE) as resolver:
        path = os.path.join(tmp_path, "appliance.conf")
        with open(path, "w") as handle:
            handle.write(f"[server]\nhostname = mail.example.test\ndata_dir = {tmp_path / 'data'}\n"
                         "domains = example.test\n[listen]\n"
                         + "".join(f"{name} = {LISTEN.get(name, '')}\n" for name in LISTENERS)
                         + f"[outbound]\nresolver = {resolver}\n")
        os.makedirs(tmp_path / "data")
        yield types.SimpleNamespace(config_path=path)


def run(office, *arguments):
    result = admin(office.config_path, "dns", *arguments)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_records_a_domain_needs(office):
    output = run(office, "example.test")
    for line in ("example.test. IN MX 10 mail.example.test.", 'example.test. IN TXT "v=spf1 mx -all"',
                 "autoconfig.example.test. IN CNAME mail.example.test.",
                 "_imaps._tcp.example.test. IN SRV 0 1 993 mail.example.test.",
                 "_submissions._tcp.example.test. IN SRV 0 1 465 mail.example.test.",
                 "_autodiscover._tcp.example.test. IN SRV 0 1 443 mail.example.test.",
                 '_smtp._tls.example.test. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.test"'):
        assert line in output, line
    assert "_domainkey" not in output                   # no key yet
    assert "_pop3" not in output and "_imap._tcp" not in output      # only the listeners that are on
    assert admin(office.config_path, "dkim", "keygen", "example.test").returncode == 0
    assert "mail._domainkey.example.test. IN TXT" in run(office, "example.test")


def test_check_says_what_is_missing_or_wrong(office):
    output = run(office, "example.test", "--check")
    lines = {" ".join(line.split(":", 1)[0].split()[1:3]): line for line in output.splitlines()}
    for name, status in (("example.test MX", "OK"), ("mail.example.test A", "OK"), ("example.test TXT", "OK"),
                         ("_dmarc.example.test TXT", "OK"), ("autoconfig.example.test CNAME", "OK"),
                         ("autodiscover.example.test CNAME", "OK"), ("mta-sts.example.test CNAME", "WRONG"),
                         ("_imaps._tcp.example.test SRV", "OK"), ("_submissions._tcp.example.test SRV", "WRONG"),
                         ("_smtp._tls.example.test TXT", "MISSING"), ("_mta-sts.example.test TXT", "MISSING")):
        assert lines[name].startswith(status), lines[name]
    assert "found elsewhere.test; publish mail.example.test." in lines["mta-sts.example.test CNAME"]
    assert "found port 4650 on mail.example.test" in lines["_submissions._tcp.example.test SRV"]
    assert output.endswith("7 of 12 records of example.test are as they should be\n")
    assert lines["_smtp._tls.example.test TXT"].endswith('publish "v=TLSRPTv1; rua=mailto:postmaster@example.test"')


def test_a_domain_that_is_not_ours(office):
    result = admin(office.config_path, "dns", "elsewhere.test")
    assert result.returncode == 1 and "not a domain of this server" in result.stderr
