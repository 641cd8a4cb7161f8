"""Pure logic of the inbound checks: rspamd's actions as verdicts, verdicts combined, fields
replaced, RFC 5782 query names."""

import pytest

from mailbox_appliance.smtp.inbound_checks import spam_verdict
from mailbox_appliance.message import without_fields
from mailbox_appliance.smtp.verdict import Verdict, combined
from mailbox_appliance.spam.dnsbl import query_name
from mailbox_appliance.spam.rspamd import RspamdResult, controller_url


@pytest.mark.parametrize("action, disposition, code", [
    ("reject", "reject", 550), ("soft reject", "defer", 451), ("greylist", "defer", 451),
    ("add header", "junk", None), ("rewrite subject", "junk", None), ("no action", "deliver", None),
    ("an action of a newer rspamd", "deliver", None),
])
def test_each_rspamd_action_has_its_disposition(action, disposition, code):
    verdict = spam_verdict(RspamdResult(action, 9.5, 15.0, ("A", "B"), ""))
    assert verdict.disposition == disposition
    assert (verdict.reply.code if verdict.reply else None) == code
    assert (b"X-Spam-Flag: YES\r\n" in verdict.fields) == (disposition != "deliver")
    assert b"score=9.50 required=15.00 tests=A,B\r\n" in verdict.fields


def test_long_symbol_lists_are_folded_and_replies_are_one_clean_line():
    verdict = spam_verdict(RspamdResult("reject", 20, 15, tuple(f"SYMBOL_{n}" for n in range(40)),
                                        "spam\r\n250 forged reply"))
    assert all(len(line) <= 78 for line in verdict.fields.split(b"\r\n"))
    assert verdict.reply.text == "spam 250 forged reply"


def test_the_most_severe_verdict_wins_and_every_field_is_kept():
    verdicts = [Verdict(b"A: 1\r\n", "junk", "a"), Verdict(b"B: 2\r\n", "deliver", "b"),
                Verdict(b"C: 3\r\n", "defer", "c", clean=lambda message: message.replace(b"x", b"y"))]
    verdict = combined(verdicts)
    assert (verdict.disposition, verdict.reason, verdict.fields) == ("defer", "c", b"A: 1\r\nB: 2\r\nC: 3\r\n")
    assert verdict.applied(b"S: x\r\n\r\nbody") == b"A: 1\r\nB: 2\r\nC: 3\r\nS: y\r\n\r\nbody"


def test_fields_are_removed_with_their_continuation_lines_and_only_in_the_header():
    message = (b"X-Spam-Flag: NO\r\nSubject: hi\r\nx-spam-status: No,\r\n\tscore=-9\r\n\r\n"
               b"X-Spam-Flag: NO in the body stays\r\n")
    assert without_fields(message, (b"x-spam-flag", b"x-spam-status")) == \
        b"Subject: hi\r\n\r\nX-Spam-Flag: NO in the body stays\r\n"


@pytest.mark.parametrize("address, name", [
    ("192.0.2.99", "99.2.0.192"),
    ("2001:db8:1:2::5", "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"),
    ("::ffff:192.0.2.1", "1.2.0.192"),
])
def test_blocklist_query_names(address, name):
    assert query_name(address) == name


def test_the_controller_is_beside_the_normal_worker():
    assert controller_url("http://127.0.0.1:11333") == "http://127.0.0.1:11334"
    assert controller_url("http://[::1]:11333") == "http://[::1]:11334"


def test_dkim_integer_conversions_answer_as_dkimpy_does():
    import random

    import dkim.crypto

    from mailbox_appliance.smtp import sender_checks
    assert (dkim.crypto.int2str, dkim.crypto.str2int) == (sender_checks.int2str, sender_checks.str2int)
    rng = random.Random(7)
    numbers = [0, 1, 255, 256, 2 ** 2048 - 1] + [rng.getrandbits(rng.randint(1, 2100)) for _ in range(200)]
    slow_int2str, slow_str2int = _dkimpy_conversions()
    for number in numbers:
        for length in (-1, 1, 4, 256):
            assert sender_checks.int2str(number, length) == slow_int2str(number, length)
        octets = bytes(slow_int2str(number))
        assert sender_checks.str2int(octets) == slow_str2int(octets) == number


def test_dkim_rsa_verification_answers_as_dkimpy_does():
    """sender_checks.rsa_verify (OpenSSL) against dkimpy's own RSASSA-PKCS1-v1_5 verification:
    good and altered signatures, SHA-256 and SHA-1, a key that is not the signer's, nonsense."""
    import hashlib

    import dkim
    import dkim.crypto
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives import hashes

    from mailbox_appliance.smtp import sender_checks
    assert dkim.RSASSA_PKCS1_v1_5_verify is sender_checks.rsa_verify
    signer, other = (rsa.generate_private_key(public_exponent=65537, key_size=1024) for _ in range(2))

    def numbers(key):
        public = key.public_key().public_numbers()
        return {"modulus": public.n, "publicExponent": public.e}
    cases = []
    for name, algorithm in (("sha256", hashes.SHA256()), ("sha1", hashes.SHA1())):
        for data in (b"", b"hello", bytes(range(256)) * 9):
            signature = signer.sign(data, padding.PKCS1v15(), algorithm)
            altered = signature[:-1] + bytes([signature[-1] ^ 1])
            digest = hashlib.new(name, data)
            cases += [(digest, signature, numbers(signer)), (digest, altered, numbers(signer)),
                      (digest, signature, numbers(other)), (digest, signature[1:], numbers(signer)),
                      (digest, signature, {"modulus": numbers(signer)["modulus"], "publicExponent": 3})]
    answers = [sender_checks.rsa_verify(*case) for case in cases]
    assert answers == [sender_checks._dkimpy_verify(*case) for case in cases]
    assert answers.count(True) == 6
    tiny = {"modulus": 3233, "publicExponent": 17}      # left to dkimpy: "digest too large"
    with pytest.raises(dkim.crypto.DigestTooLargeError):
        sender_checks.rsa_verify(hashlib.sha256(b""), b"x", tiny)


def _dkimpy_conversions():
    """dkimpy's own int2str and str2int, read from its source (the module's are ours now)."""
    import inspect

    import dkim.crypto
    source = inspect.getsource(dkim.crypto)
    namespace = {}
    for name in ("str2int", "int2str"):
        start = source.index(f"def {name}(")
        end = source.index("\ndef ", start + 1)
        exec(source[start:end], namespace)
    return namespace["int2str"], namespace["str2int"]


class _SilentServers:
    """dnspython's resolver as it behaves when no server answers."""

    def __init__(self):
        self.asked = 0

    def resolve(self, name, kind, **_options):
        import dns.exception
        self.asked += 1
        raise dns.exception.Timeout()


def test_a_checker_stops_waiting_on_dns_that_does_not_answer():
    from mailbox_appliance.smtp.sender_auth_worker import DOWN_SECONDS, lookup_with
    from mailbox_appliance.smtp.sender_checks import DNSFailure
    now = [1000.0]
    servers = _SilentServers()
    lookup = lookup_with(servers, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(DNSFailure):
            lookup("example.test", "TXT")
    assert servers.asked == 1
    now[0] += DOWN_SECONDS + 1
    with pytest.raises(DNSFailure):
        lookup("example.test", "TXT")
    assert servers.asked == 2


class _CountingResolver:
    """A real dnspython resolver asking the loopback DNS server, counting the questions put to it."""

    def __init__(self, address):
        from mailbox_appliance.smtp.sender_auth_worker import make_resolver
        host, port = address.split(":")
        self.resolver = make_resolver([(host, int(port))])
        self.asked = 0

    def resolve(self, name, kind, **options):
        self.asked += 1
        return self.resolver.resolve(name, kind, **options)


def test_a_checker_keeps_answers_for_their_ttl(tmp_path):
    from mailbox_appliance.smtp.sender_auth_worker import lookup_with
    from outbound_world import serving_dns
    zone = {"records": {"remote.test": {"TXT": ["v=spf1 -all"], "MX": [[10, "mx.remote.test"]]}}}
    with serving_dns(str(tmp_path), zone) as address:
        now = [1000.0]
        servers = _CountingResolver(address)
        lookup = lookup_with(servers, clock=lambda: now[0])
        assert lookup("remote.test", "TXT") == [(b"v=spf1 -all",)]
        # What a caller does with its answer does not change the one kept.
        lookup("remote.test", "MX").append("changed")
        for _ in range(3):
            assert lookup("remote.test", "TXT") == [(b"v=spf1 -all",)]
            assert lookup("remote.test", "MX") == [(10, "mx.remote.test")]
        assert servers.asked == 2
        now[0] += 61                  # the zone's TTL is 60 s
        assert lookup("remote.test", "TXT") == [(b"v=spf1 -all",)]
        assert servers.asked == 3
        assert lookup("nowhere.remote.test", "TXT") == lookup("nowhere.remote.test", "TXT") == []


@pytest.mark.parametrize("fields", [
    b"",
    b"X-ARC-Seal: i=1; a=rsa-sha256; cv=none; d=good.test; s=sel; b=AAAA\r\n",
    b"arc-seal: i=1; a=rsa-sha256; cv=none; d=good.test; s=sel; b=AAAA\r\n",
    b"ARC-Authentication-Results: i=1; relay.test; spf=pass\r\n",
    b"Arc-Message-Signature: i=1; a=rsa-sha256; d=good.test; s=sel; h=from; bh=AAAA; b=AAAA\r\n",
])
def test_arc_is_judged_as_dkimpy_judges_it(fields):
    """The ARC check skips dkimpy only where dkimpy would find no ARC set: the same verdict."""
    import authheaders
    from mailbox_appliance.smtp.sender_checks import SenderChecks
    message = fields + b"From: a@good.test\r\nSubject: ARC-Seal: i=1\r\n\r\nARC-Seal: i=1; in the body\r\n"
    checks = SenderChecks("mail.example.test", lambda name, kind: [])
    expected = authheaders.check_arc(message, dnsfunc=lambda *_args, **_kwargs: None)
    assert str(checks._arc(message, message.split(b"\r\n\r\n", 1)[0])) == str(expected)


@pytest.mark.parametrize("field", [b"DKIM-Signature: v=1; a=rsa-sha256; d=x.test; s=s; h=from; bh=AAAA; b=AAAA\r\n",
                                   b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.test; s=s; b=AAAA\r\n"])
def test_a_header_dkimpy_cannot_parse_is_a_verdict_not_an_error(field):
    """A header section that starts with a folded line: dkimpy's parser fails on it (IndexError),
    which must give DKIM permerror or ARC none, not a checker error (a 451 on every retry)."""
    from mailbox_appliance.smtp.sender_checks import SenderChecks
    message = b" folded: x\r\n" + field + b"From: a@x.test\r\n\r\nbody\r\n"
    verdict, _result, _policy, _author = SenderChecks("mail.example.test", lambda name, kind: []).evaluate(
        "127.0.0.1", "client.x.test", "a@x.test", message)
    assert (b"dkim=permerror" if field.startswith(b"DKIM") else b"arc=none") in verdict
