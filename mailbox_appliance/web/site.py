"""The HTTPS site (``[listen] https``) and the plain HTTP one (``[listen] http``).

Requests are routed by path and Host; an address or domain that is not ours gets 404, and no
answer depends on whether a user exists (the documents are the same for every address of a
domain).  Request bodies are bounded (MAX_BODY_OCTETS: an autodiscover request is a few hundred
octets); a larger one is answered 413 without being kept.
"""

import re

from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from mailbox_appliance.accounts.addresses import is_valid_address, normalize_address
from mailbox_appliance.web import documents
from mailbox_appliance.web.client_settings import client_servers

MAX_BODY_OCTETS = 64 * 1024
ACME_CHALLENGE = b"/.well-known/acme-challenge/"
MTA_STS_MAX_AGE = 7 * 86400
_EMAIL_IN_REQUEST = re.compile(rb"<EMailAddress>\s*([^<\s]{1,254})\s*</EMailAddress>", re.IGNORECASE)
_PREFIXES = ("autoconfig.", "autodiscover.", "mta-sts.")
XML, JSON, TEXT = b"application/xml; charset=utf-8", b"application/json", b"text/plain; charset=utf-8"
APPLE = b"application/x-apple-aspen-config"


class BoundedRequest(Request):
    """A Request that keeps at most MAX_BODY_OCTETS of its body; past that it is answered 413."""

    too_large = False

    def handleContentChunk(self, data):
        if self.too_large or self.content.tell() + len(data) > MAX_BODY_OCTETS:
            self.too_large = True
            return
        super().handleContentChunk(data)

    def process(self):
        if self.too_large:
            self.setResponseCode(413)
            self.setHeader(b"content-type", TEXT)
            self.write(b"Request body too large\n")
            self.finish()
            return
        super().process()


class ConfigurationResource(Resource):
    """Every document of the HTTPS listener."""

    isLeaf = True

    def __init__(self, hostname, accounts, bound, mta_sts_mode):
        """*bound()* gives [(listener, "address:port")] of the listeners bound now; *mta_sts_mode()*
        the MTA-STS mode for the certificate in use now."""
        super().__init__()
        self.hostname, self.accounts, self.bound, self.mta_sts_mode = hostname, accounts, bound, mta_sts_mode

    def render_GET(self, request):
        path = request.path.decode("ascii", "replace").lower()
        if path in ("/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml"):
            address = _argument(request, b"emailaddress")
            domain = address.rpartition("@")[2] if address else self._domain_of_host(request, "autoconfig.")
            if not self._ours(domain):
                return _not_found(request)
            return _answer(request, XML, documents.thunderbird(domain, self.hostname, self._servers()))
        if path.startswith("/autodiscover/autodiscover.json"):
            return _answer(request, JSON, documents.outlook_json(self.hostname, self._port("https") or 443))
        if path.startswith("/apple/") and path.endswith(".mobileconfig"):
            address = self._address(_argument(request, b"email"))
            if address is None or address.rpartition("@")[2] != path[len("/apple/"):-len(".mobileconfig")]:
                return _not_found(request)
            request.setHeader(b"content-disposition", b'attachment; filename="mail.mobileconfig"')
            return _answer(request, APPLE, documents.apple(address, self.hostname, self._servers()))
        if path == "/.well-known/mta-sts.txt":
            if not self._ours(self._domain_of_host(request, "mta-sts.")):
                return _not_found(request)
            return _answer(request, TEXT, documents.mta_sts(self.mta_sts_mode(), self.hostname, MTA_STS_MAX_AGE))
        return _not_found(request)

    def render_POST(self, request):
        if request.path.decode("ascii", "replace").lower() != "/autodiscover/autodiscover.xml":
            return _not_found(request)
        found = _EMAIL_IN_REQUEST.search(request.content.read(MAX_BODY_OCTETS))
        address = self._address(found.group(1).decode("utf-8", "replace") if found else "")
        if address is None:
            return _not_found(request)
        return _answer(request, XML, documents.outlook(address, self.hostname, self._servers()))

    def _servers(self):
        return client_servers(self.bound())

    def _port(self, name):
        return next((int(address.rpartition(":")[2]) for listener, address in self.bound() if listener == name), None)

    def _ours(self, domain):
        return bool(domain) and self.accounts.is_local_domain(domain)

    def _address(self, text):
        """*text* as one of our domains' addresses (syntax and domain only), else None."""
        address = normalize_address(text or "")
        return address if is_valid_address(address) and self._ours(address.rpartition("@")[2]) else None

    @staticmethod
    def _domain_of_host(request, prefix):
        host = (request.getRequestHostname() or b"").decode("ascii", "replace").lower().rstrip(".")
        return host[len(prefix):] if host.startswith(prefix) else ""


class RedirectResource(Resource):
    """The plain HTTP listener: ACME's http-01 answers (RFC 8555 §8.3) from *challenges*
    ({token: key authorization}, filled by certificates/renewal.py), and everything else moves
    to HTTPS on our host name (a Host that is not one of our names is not echoed: no open
    redirect)."""

    isLeaf = True

    def __init__(self, hostname, accounts, bound, challenges):
        super().__init__()
        self.hostname, self.accounts, self.bound, self.challenges = hostname, accounts, bound, challenges

    def render(self, request):
        if request.path.startswith(ACME_CHALLENGE):
            answer = self.challenges.get(request.path[len(ACME_CHALLENGE):].decode("ascii", "replace"))
            if answer is None:
                return _not_found(request)
            return _answer(request, TEXT, answer.encode("ascii"))
        host = (request.getRequestHostname() or b"").decode("ascii", "replace").lower().rstrip(".")
        bare = next((host[len(prefix):] for prefix in _PREFIXES if host.startswith(prefix)), host)
        if host != self.hostname and not self.accounts.is_local_domain(bare):
            host = self.hostname
        port = next((int(address.rpartition(":")[2]) for listener, address in self.bound() if listener == "https"), 443)
        target = f"https://{host}{'' if port == 443 else f':{port}'}{request.uri.decode('ascii', 'replace')}"
        request.redirect(target.encode("ascii", "replace"))
        request.setResponseCode(301)
        return b""


def _argument(request, name):
    values = request.args.get(name) or []
    return values[0].decode("utf-8", "replace") if values else ""


def _answer(request, content_type, body):
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"cache-control", b"no-store")
    return body


def _not_found(request):
    request.setResponseCode(404)
    request.setHeader(b"content-type", TEXT)
    return b"Not found\n"


def site(resource):
    """A twisted.web Site serving *resource*, with bounded bodies and no access log lines (the
    appliance logs what matters itself; twistd's access log would be one line per probe)."""
    made = Site(resource, logPath=None)
    made.requestFactory = BoundedRequest
    made.log = lambda request: None
    return made
