"""The sender checks themselves: SPF (RFC 7208), every DKIM signature (RFC 6376), ARC (RFC 8617)
and DMARC (RFC 7489) of one message, as one Authentication-Results field (RFC 8601).

Debian's libraries do the work (pyspf, dkimpy, authheaders); they ask DNS synchronously, through
the *lookup* function given, so this module runs where blocking is fine: in the checker
processes of smtp/sender_auth.py (sender_auth_worker.py), never in the reactor.
"""

import email.utils
import functools
import importlib.resources
import re

import authheaders
import dkim
import dkim.crypto
import spf
from authheaders import dmarc_lookup
from authres import AuthenticationResultsHeader, DKIMAuthenticationResult, SPFAuthenticationResult
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from publicsuffix2 import PublicSuffixList

from mailbox_appliance.message import field_values

__all__ = ["DNSFailure", "SenderChecks"]

_DKIM_SIGNATURE = re.compile(rb"(?im)^dkim-signature[ \t]*:")
# dkimpy's ARC.ARC_HEADERS, as dkimpy's parser reads a field's name (no space before the colon).
_ARC_FIELD = re.compile(rb"(?im)^arc-(?:seal|message-signature|authentication-results):")
_NOT_ARC_SIGNED = "Message is not ARC signed"   # dkimpy's ARC.verify's words for that case
# What dkimpy's parser raises for a header section it cannot read: IndexError for one that
# starts with a continuation line (a fold with no field before it).
_UNREADABLE_HEADER = (dkim.MessageFormatError, IndexError)
# A DMARC record authheaders cannot read: DMARCException since 0.16; Debian 12's 0.15.2 lets the
# parser's own IndexError through.
_UNREADABLE_DMARC = (getattr(dmarc_lookup, "DMARCException", IndexError), IndexError, ValueError, KeyError)


class DNSFailure(Exception):
    """A lookup that got no usable answer (timeout, SERVFAIL): the check's temperror."""


@functools.lru_cache(maxsize=None)
def _suffixes():
    """The public suffix list authheaders reads (Debian's /usr/share/publicsuffix through its
    findpsl, else the copy inside the package), parsed once."""
    try:
        from authheaders.findpsl import location
    except ImportError:
        location = importlib.resources.files("authheaders") / "public_suffix_list.txt"
    with open(location, encoding="utf-8") as handle:
        return PublicSuffixList(handle)


def _org_domain(domain):
    """RFC 7489 §3.2's organizational domain.  authheaders' own get_org_domain parses the whole
    public suffix list on every call (four calls per message, 0.2 s each: 240 ms a message);
    this is the same answer from the list parsed once."""
    return _suffixes().get_public_suffix(domain)


# authheaders calls get_org_domain from both its modules, by the names they imported.
authheaders.get_org_domain = dmarc_lookup.get_org_domain = _org_domain


def int2str(n, length=-1):
    """dkimpy's int2str (dkim.crypto), the same answer from int.to_bytes: dkimpy builds the
    bytes one at a time in Python, twice per signature verified, a third of its cost."""
    assert n >= 0
    if length < 0:
        return bytearray(n.to_bytes(max((n.bit_length() + 7) // 8, 1), "big"))
    # dkimpy keeps the low *length* octets of a larger number: so do we.
    return bytearray((n & ((1 << (8 * length)) - 1)).to_bytes(length, "big"))


def str2int(octets):
    """dkimpy's str2int, likewise."""
    return int.from_bytes(bytes(octets), "big")


# dkim.crypto looks these up by name when it verifies.
dkim.crypto.int2str, dkim.crypto.str2int = int2str, str2int

_DIGESTS = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}
_dkimpy_verify = dkim.crypto.RSASSA_PKCS1_v1_5_verify


@functools.lru_cache(maxsize=1024)
def _public_key(modulus, exponent):
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def rsa_verify(digest, signature, public_key):
    """dkimpy's RSASSA_PKCS1_v1_5_verify (RFC 8017 §8.2.2), the same answer from OpenSSL through
    cryptography (which pyOpenSSL brings): dkimpy's modular exponentiation in Python was a fifth
    of a message's checks.  *digest* is the hashlib object of the signed data.  Keys under 1,024
    bits (which DKIM refuses anyway) stay with dkimpy, errors and all."""
    if public_key["modulus"].bit_length() < 1024:
        return _dkimpy_verify(digest, signature, public_key)
    try:
        key = _public_key(public_key["modulus"], public_key["publicExponent"])
        key.verify(bytes(signature), digest.digest(), padding.PKCS1v15(), Prehashed(_DIGESTS[digest.name]()))
    except UnsupportedAlgorithm:
        return _dkimpy_verify(digest, signature, public_key)
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True


# dkim imported it by name; it verifies DKIM and ARC signatures.  And dkimpy parses a key's DNS
# record (base64, then ASN.1) for every signature: the few selectors most mail is signed with are
# parsed once each.
dkim.RSASSA_PKCS1_v1_5_verify = rsa_verify
dkim.evaluate_pk = functools.lru_cache(maxsize=1024)(dkim.evaluate_pk)


class SenderChecks:

    def __init__(self, hostname, lookup):
        """*hostname*: our authserv-id; *lookup(name, kind)*: the DNS answers for *kind* "TXT"
        (each record a list of byte strings), "A", "AAAA", "PTR" (text), "MX" ((preference,
        name)); [] for none; raises DNSFailure."""
        self.hostname = hostname
        self.lookup = lookup

    def evaluate(self, ip, helo, mail_from, message):
        """(the Authentication-Results field, CRLF-terminated; the DMARC result; the policy of
        the author's domain; the author's domain, None without one single author)."""
        spf_result = self._spf(ip, helo, mail_from)
        header = message.split(b"\r\n\r\n", 1)[0]
        dkim_results = self._dkim(message, header)
        arc_result = self._arc(message, header)
        dmarc_result, policy, author_domain = self._dmarc(message, spf_result, dkim_results)
        results = [SPFAuthenticationResult(**spf_result), *dkim_results, arc_result, dmarc_result]
        field = str(AuthenticationResultsHeader(authserv_id=self.hostname, results=results)).encode("utf-8")
        # Folded at "; " so no line passes 78 characters (RFC 5322 §2.1.1).
        return field.replace(b"; ", b";\r\n    ") + b"\r\n", dmarc_result.result, policy, author_domain

    # -- DNS as each library asks for it ------------------------------------------------------

    def _txt(self, name):
        return [b"".join(strings) for strings in self.lookup(name, "TXT")]

    def _spf_dns(self, name, qtype, *_args, **_kwargs):
        """pyspf's DNSLookup: [((name, type), value)]."""
        try:
            values = self.lookup(name, "TXT" if qtype == "SPF" else qtype)
        except DNSFailure as failure:
            raise spf.TempError(str(failure)) from None
        return [((name, qtype), value) for value in values]

    def _dkim_txt(self, name, timeout=5):
        """dkimpy's dnsfunc: the first TXT record's octets, or None."""
        try:
            records = self._txt(name.decode("ascii") if isinstance(name, bytes) else name)
        except DNSFailure as failure:
            raise dkim.DnsTimeoutError(str(failure)) from None
        return records[0] if records else None

    def _dmarc_txt(self, name):
        """authheaders' DMARC dnsfunc: the one DMARC record as text, or None (RFC 7489 §6.6.3:
        several are as none)."""
        records = [record.decode("ascii", "replace") for record in self._txt(name)
                   if record.startswith(b"v=DMARC1")]
        return records[0] if len(records) == 1 else None

    # -- each check ---------------------------------------------------------------------------

    def _spf(self, ip, helo, mail_from):
        """The SPF result's properties (an SPFAuthenticationResult each is made of them)."""
        # RFC 7208 §2.4: with a null MAIL FROM, the HELO identity is checked as postmaster@helo.
        identity = mail_from or f"postmaster@{helo}"
        # pyspf asks DNS through its module-level DNSLookup; a checker process runs one check at
        # a time, so setting it for the call is safe.
        previous, spf.DNSLookup = spf.DNSLookup, self._spf_dns
        try:
            result, reason = spf.check2(ip, identity, helo)
        except Exception as failure:
            result, reason = "temperror", str(failure)
        finally:
            spf.DNSLookup = previous
        return {"result": result, "reason": reason or None, "smtp_mailfrom": identity, "smtp_helo": helo}

    def _dkim(self, message, header):
        """One result per DKIM-Signature (RFC 6376 §6.1: each is verified on its own); *header*
        is *message*'s header section."""
        count = len(_DKIM_SIGNATURE.findall(header))
        if not count:
            return [DKIMAuthenticationResult(result="none")]
        try:
            verifier = dkim.DKIM(message)
        except _UNREADABLE_HEADER:
            return [DKIMAuthenticationResult(result="permerror")]
        results = []
        for index in range(count):
            try:
                result = "pass" if verifier.verify(idx=index, dnsfunc=self._dkim_txt) else "fail"
            except dkim.DnsTimeoutError:
                result = "temperror"
            except dkim.DKIMException:
                result = "permerror"
            fields = verifier.signature_fields or {}
            # Only the properties the signature has (authres cannot print an empty one).
            found = {f"header_{tag}": fields[tag.encode()].decode("ascii", "replace")
                     for tag in ("d", "i") if fields.get(tag.encode())}
            results.append(DKIMAuthenticationResult(result=result, **found))
        return results

    def _arc(self, message, header):
        """The ARC chain's validation (RFC 8617 §5.2).  Most mail has no ARC set at all, and
        then dkimpy's answer is known without its parse of the message and canonicalization of
        every field (a sixth of a message's checks): the same "none" it gives."""
        if not _ARC_FIELD.search(header):
            return authheaders.ARCAuthenticationResult(result="none", result_comment=_NOT_ARC_SIGNED)
        try:
            return authheaders.check_arc(message, dnsfunc=self._dkim_txt)
        except _UNREADABLE_HEADER:
            return authheaders.ARCAuthenticationResult(result="none")

    def _dmarc(self, message, spf_result, dkim_results):
        """(the DMARC result, the policy, the author's domain or None)."""
        authors = [address for _name, address in email.utils.getaddresses(
            [value.decode("utf-8", "replace") for value in field_values(message, b"from")])]
        if not authors:
            return authheaders.DMARCAuthenticationResult(result="none", header_from="none"), "none", None
        if len(authors) != 1 or "@" not in authors[0]:
            # RFC 7489 §6.6.1: no single author domain to apply a policy to: a fail.
            return authheaders.DMARCAuthenticationResult(result="fail", result_comment="not one From: address",
                                                         header_from="none", policy="none"), "none", None
        domain = authors[0].rpartition("@")[2].lower().rstrip(".")
        outcomes = []
        for dkim_result in dkim_results:
            try:
                # A new SPF result each time: authheaders rewrites the properties it reads.
                outcomes.append(authheaders.dmarc_per_from(domain, SPFAuthenticationResult(**spf_result), dkim_result,
                                                           dnsfunc=self._dmarc_txt))
            except (DNSFailure, *_UNREADABLE_DMARC) as failure:
                outcomes.append(("temperror" if isinstance(failure, DNSFailure) else "permerror",
                                 str(failure), domain, "none"))
        result, comment, header_from, policy = next((o for o in outcomes if o[0] == "pass"), outcomes[0])
        return authheaders.DMARCAuthenticationResult(result=result, result_comment=comment, header_from=header_from,
                                                     policy=policy), policy, domain
