"""The HTTPS listener's documents, as Thunderbird, Outlook, Apple devices and MTA-STS senders
fetch them (curl and Python clients), checked against the listeners actually bound; the HTTP
listener's redirect; hostile requests (issue 18)."""

import json
import plistlib
import shutil
import subprocess
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree

import pytest

from conftest import Office, unverified_tls

AUTODISCOVER_REQUEST = b"""<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request><EMailAddress>alice@example.test</EMailAddress>
  <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request></Autodiscover>"""


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    running = Office(str(tmp_path_factory.mktemp("web"))).start()
    yield running
    running.appliance.stop()


def fetch(office, path, host="mail.example.test", data=None, listener="https"):
    """(status, headers, body) of one request to the listener, with *host* as the Host."""
    scheme = "https" if listener == "https" else "http"
    request = urllib.request.Request(f"{scheme}://127.0.0.1:{office.ports[listener]}{path}", data=data,
                                     headers={"Host": host})
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=unverified_tls()), NoRedirect())
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *arguments):
        return None


def test_thunderbird_autoconfig_names_the_bound_listeners(office):
    for path, host in (("/mail/config-v1.1.xml?emailaddress=alice%40example.test", "mail.example.test"),
                       ("/.well-known/autoconfig/mail/config-v1.1.xml", "autoconfig.example.test")):
        status, headers, body = fetch(office, path, host)
        assert status == 200 and headers["Content-Type"].startswith("application/xml"), body
        provider = ElementTree.fromstring(body).find("emailProvider")
        assert provider.get("id") == "example.test"
        servers = {(server.get("type"), int(server.findtext("port")), server.findtext("socketType"))
                   for server in provider if server.tag in ("incomingServer", "outgoingServer")}
        ports = office.ports
        assert servers == {("imap", ports["imaps"], "SSL"), ("imap", ports["imap"], "STARTTLS"),
                           ("pop3", ports["pop3s"], "SSL"), ("pop3", ports["pop3"], "STARTTLS"),
                           ("smtp", ports["submissions"], "SSL"), ("smtp", ports["submission"], "STARTTLS")}
        assert {element.text for element in provider.iter("hostname")} == {"mail.example.test"}
        assert {username.text for username in provider.iter("username")} == {"%EMAILADDRESS%"}


def test_outlook_autodiscover(office):
    status, _, body = fetch(office, "/Autodiscover/Autodiscover.xml", data=AUTODISCOVER_REQUEST)
    assert status == 200, body
    namespace = {"r": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    protocols = ElementTree.fromstring(body).findall(".//r:Protocol", namespace)
    found = {(protocol.findtext("r:Type", namespaces=namespace), int(protocol.findtext("r:Port", namespaces=namespace)),
              protocol.findtext("r:SSL", namespaces=namespace)) for protocol in protocols}
    assert ("IMAP", office.ports["imaps"], "on") in found and ("SMTP", office.ports["submissions"], "on") in found
    assert {protocol.findtext("r:LoginName", namespaces=namespace) for protocol in protocols} == {"alice@example.test"}
    status, _, body = fetch(office, "/autodiscover/autodiscover.json/v1.0/alice@example.test?Protocol=AutodiscoverV1")
    assert status == 200 and json.loads(body) == {
        "Protocol": "AutodiscoverV1",
        "Url": f"https://mail.example.test:{office.ports['https']}/autodiscover/autodiscover.xml"}


def test_apple_profile(office):
    status, headers, body = fetch(office, "/apple/example.test.mobileconfig?email=alice%40example.test")
    assert status == 200 and headers["Content-Type"] == "application/x-apple-aspen-config"
    [account] = plistlib.loads(body)["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed" and account["EmailAddress"] == "alice@example.test"
    assert (account["IncomingMailServerPortNumber"], account["IncomingMailServerUseSSL"]) == (office.ports["imaps"], True)
    assert account["OutgoingMailServerPortNumber"] == office.ports["submissions"]


def test_mta_sts_policy(office):
    status, headers, body = fetch(office, "/.well-known/mta-sts.txt", "mta-sts.example.test")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    # The test's certificate is the self-signed one: a sender must not enforce it yet.
    assert body == b"version: STSv1\r\nmode: testing\r\nmx: mail.example.test\r\nmax_age: 604800\r\n"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_and_the_http_redirect(office):
    result = subprocess.run(["curl", "-sS", "-k", "--resolve", f"autoconfig.example.test:{office.ports['https']}:127.0.0.1",
                             f"https://autoconfig.example.test:{office.ports['https']}/mail/config-v1.1.xml"],
                            capture_output=True, timeout=60)
    assert result.returncode == 0 and b'<emailProvider id="example.test">' in result.stdout, result
    status, headers, _ = fetch(office, "/mail/config-v1.1.xml?x=1", "autoconfig.example.test", listener="http")
    assert status == 301
    assert headers["Location"] == f"https://autoconfig.example.test:{office.ports['https']}/mail/config-v1.1.xml?x=1"
    status, headers, _ = fetch(office, "/", "evil.test", listener="http")
    assert status == 301 and headers["Location"].startswith("https://mail.example.test:")


@pytest.mark.parametrize("path, host, data", [
    ("/mail/config-v1.1.xml?emailaddress=alice%40elsewhere.test", "mail.example.test", None),
    ("/mail/config-v1.1.xml", "autoconfig.elsewhere.test", None),
    ("/.well-known/mta-sts.txt", "mta-sts.elsewhere.test", None),
    ("/apple/elsewhere.test.mobileconfig?email=a%40elsewhere.test", "mail.example.test", None),
    ("/apple/example.test.mobileconfig?email=not-an-address", "mail.example.test", None),
    ("/autodiscover/autodiscover.xml", "mail.example.test", b"<not xml"),
    ("/autodiscover/autodiscover.xml", "mail.example.test",
     b"<!DOCTYPE a [<!ENTITY b 'bbbbbbbb'><!ENTITY c '&b;&b;&b;&b;'>]><EMailAddress>&c;</EMailAddress>"),
    ("/../../etc/passwd", "mail.example.test", None),
])
def test_what_is_not_ours_is_not_found(office, path, host, data):
    status, _, _ = fetch(office, path, host, data)
    assert status == 404


def test_a_huge_body_is_refused_and_the_listener_goes_on(office):
    status, _, _ = fetch(office, "/autodiscover/autodiscover.xml", data=b"x" * (1024 * 1024))
    assert status == 413
    assert fetch(office, "/.well-known/mta-sts.txt", "mta-sts.example.test")[0] == 200
    assert not any("Traceback" in line for line in office.appliance.lines)
