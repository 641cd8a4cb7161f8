"""Port 25's sender checks (smtp/sender_auth.py) against a real DNS server on loopback: SPF, DKIM
and DMARC verdicts in the stored Authentication-Results field, DMARC policies applied, our own
domain protected, a forged verdict removed, DNS trouble never losing mail."""

import os
import signal

import authheaders
import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import Office
from mailbox_appliance.queue.dkim_keys import txt_record
from outbound_world import serving_dns
from rawsmtp import RawSMTP

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

ZONE = {
    "records": {
        # 127.0.0.1 is the client of every test: "pass" domains list it, "fail" ones do not.
        "good.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
        "sel._domainkey.good.test": {"TXT": [txt_record(KEY.public_key())]},
        "_dmarc.good.test": {"TXT": ["v=DMARC1; p=reject"]},
        "strict.test": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
        "_dmarc.strict.test": {"TXT": ["v=DMARC1; p=reject"]},
        "quarantine.test": {"TXT": ["v=spf1 -all"]},
        "_dmarc.quarantine.test": {"TXT": ["v=DMARC1; p=quarantine"]},
        "relaxed.test": {"TXT": ["v=spf1 ~all"]},
        "_dmarc.relaxed.test": {"TXT": ["v=DMARC1; p=none"]},
        "loop.test": {"TXT": ["v=spf1 include:loop.test -all"]},
        "broken.test": {"TXT": ["v=spf1 ip4:not-an-address -all"]},
        "badrecord.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
        "_dmarc.badrecord.test": {"TXT": ["v=DMARC1; p"]},
        # RFC 7208 §7: the client's address expanded into the name asked.
        "macro.test": {"TXT": ["v=spf1 exists:%{i}.allowed.macro.test -all"]},
        "127.0.0.1.allowed.macro.test": {"A": ["127.0.0.2"]},
        # Eleven includes: one past RFC 7208 §4.6.4's ten DNS-querying terms.
        "many.test": {"TXT": ["v=spf1 " + " ".join(f"include:i{n}.many.test" for n in range(11)) + " -all"]},
        **{f"i{n}.many.test": {"TXT": ["v=spf1 ip4:192.0.2.1 ?all"]} for n in range(11)},
    },
    "servfail": ["dnsdown.test", "_dmarc.dnsdown.test", "_dmarc.example.test"],
}


@pytest.fixture(scope="module")
def resolver(tmp_path_factory):
    with serving_dns(str(tmp_path_factory.mktemp("zone")), ZONE) as address:
        yield address


@pytest.fixture
def office(tmp_path, resolver, request):
    running = Office(str(tmp_path), resolver=resolver, extra=getattr(request, "param", "")).start()
    yield running
    running.appliance.stop()


def _message(author, subject="hello", extra=b""):
    return (b"From: " + author.encode() + b"\r\nTo: alice@example.test\r\nSubject: " + subject.encode()
            + b"\r\nMessage-ID: <" + subject.encode() + b"@x>\r\n" + extra + b"\r\nbody\r\n")


def _send(office, mail_from, message, helo="client.example.test"):
    raw = RawSMTP(office.ports["smtp"])
    assert raw.command(f"EHLO {helo}")[0] == 250
    assert raw.command(f"MAIL FROM:<{mail_from}>")[0] == 250
    assert raw.command("RCPT TO:<alice@example.test>")[0] == 250
    assert raw.command("DATA")[0] == 354
    raw.send(message + b".\r\n")
    reply = raw.reply()
    raw.close()
    return reply


def _verdict(office, folder=""):
    [stored] = office.inbox("alice", folder, verdict=True)
    return _field(stored)


def _field(stored):
    assert stored.startswith(b"Return-Path: ")
    field = stored.split(b"\r\n", 1)[1]
    assert field.startswith(b"Authentication-Results: mail.example.test;"), stored[:300]
    return field[:field.index(b"\r\nReceived: ")].replace(b"\r\n    ", b" ").decode()


def test_spf_dkim_and_dmarc_pass(office):
    message = _message("Sender <news@good.test>")
    signature = dkim.sign(message, b"sel", b"good.test", PRIVATE, include_headers=[b"from", b"to", b"subject"])
    assert _send(office, "bounces@good.test", signature + message)[0] == 250
    field = _verdict(office)
    assert "spf=pass" in field and "smtp.mailfrom=bounces@good.test" in field
    assert "dkim=pass header.d=good.test" in field and "dmarc=pass" in field
    assert "arc=none (Message is not ARC signed);" in field


def test_every_dkim_signature_is_judged(office):
    message = _message("news@good.test")
    good = dkim.sign(message, b"sel", b"good.test", PRIVATE, include_headers=[b"from", b"subject"])
    other = dkim.sign(message, b"missing", b"strict.test", PRIVATE, include_headers=[b"from"])
    assert _send(office, "bounces@good.test", other + good + message)[0] == 250
    field = _verdict(office)
    assert "dkim=pass header.d=good.test" in field and "header.d=strict.test" in field and "dmarc=pass" in field


def test_dmarc_reject_is_refused(office):
    reply = _send(office, "ceo@strict.test", _message("ceo@strict.test"))
    assert reply[0] == 550 and "5.7.1" in reply[1] and "reject" in reply[1]
    assert office.inbox("alice", verdict=True) == []


@pytest.mark.parametrize("office", ["[filter]\ndmarc_reject = junk\n"], indirect=True)
def test_dmarc_reject_can_file_into_junk_instead(office):
    assert _send(office, "ceo@strict.test", _message("ceo@strict.test"))[0] == 250
    assert office.inbox("alice", verdict=True) == []
    assert "dmarc=fail" in _verdict(office, ".Junk")


def test_dmarc_quarantine_goes_to_junk(office):
    assert _send(office, "offers@quarantine.test", _message("offers@quarantine.test"))[0] == 250
    assert office.inbox("alice", verdict=True) == []
    field = _verdict(office, ".Junk")
    assert "spf=fail" in field and "dmarc=fail" in field and "quarantine" in field


def test_dmarc_none_and_softfail_are_delivered_with_the_verdict(office):
    assert _send(office, "a@relaxed.test", _message("a@relaxed.test"))[0] == 250
    field = _verdict(office)
    assert "spf=softfail" in field and "dmarc=fail" in field


@pytest.mark.parametrize("author", ["ceo@example.test", "CEO@Example.TEST", "Boss <ceo@example.test>"])
def test_our_own_domain_from_outside_is_refused(office, author):
    # Mixed case cannot slip past: the domain is compared as a domain.
    reply = _send(office, "x@relaxed.test", _message(author))
    assert reply[0] in (550, 451), reply
    assert office.inbox("alice", verdict=True) == []


def test_two_authors_cannot_carry_a_forged_one(office):
    message = _message("news@good.test, ceo@strict.test")
    assert _send(office, "bounces@good.test", message)[0] == 250
    field = _verdict(office, ".Junk")
    assert "dmarc=fail" in field


def test_a_from_field_added_above_a_signed_one_is_not_trusted(office):
    # The signature covers From: and Subject: only; a forger adds a From: of their own above it.
    # Whatever DKIM makes of it (RFC 6376 §5.4.2 verifies the lowest instance), the second
    # author gives it away: no single author domain, a DMARC fail.
    message = _message("news@good.test")
    signature = dkim.sign(message, b"sel", b"good.test", PRIVATE, include_headers=[b"from", b"subject"])
    assert _send(office, "bounces@good.test", b"From: ceo@strict.test\r\n" + signature + message)[0] == 250
    assert "dmarc=fail (not one From: address)" in _verdict(office, ".Junk")


def test_fields_outside_the_signature_may_change(office):
    # To: is not signed: changing it leaves the signature good (RFC 6376 §5.4), and DMARC passes.
    message = _message("news@good.test")
    signature = dkim.sign(message, b"sel", b"good.test", PRIVATE, include_headers=[b"from", b"subject"])
    changed = message.replace(b"To: alice@example.test", b"To: someone-else@example.test")
    assert _send(office, "x@relaxed.test", signature + changed)[0] == 250
    field = _verdict(office)
    assert "spf=softfail" in field and "dkim=pass" in field and "dmarc=pass" in field


def test_a_changed_signed_field_fails_dkim(office):
    message = _message("news@good.test")
    signature = dkim.sign(message, b"sel", b"good.test", PRIVATE, include_headers=[b"from", b"subject"])
    changed = message.replace(b"Subject: hello", b"Subject: pay this invoice")
    reply = _send(office, "x@relaxed.test", signature + changed)
    # SPF softfail and DKIM fail: DMARC fails, and good.test says reject.
    assert reply[0] == 550 and "5.7.1" in reply[1]


def test_an_arc_chain_is_validated(office):
    # A forwarder (good.test) recorded its verdict and sealed it (RFC 8617 §5.1).
    message = b"Authentication-Results: relay.good.test; spf=pass smtp.mailfrom=a@relaxed.test\r\n" + _message(
        "a@relaxed.test")
    sealed = b"".join(authheaders.sign_message(message, b"sel", b"good.test", PRIVATE, [b"from", b"to", b"subject"],
                                               sig="ARC", srv_id=b"relay.good.test"))
    assert _send(office, "a@relaxed.test", sealed + message)[0] == 250
    assert "; arc=pass;" in _verdict(office)
    broken = sealed + message.replace(b"body", b"changed body")
    assert _send(office, "a@relaxed.test", broken)[0] == 250
    fields = [_field(stored) for stored in office.inbox("alice", verdict=True)]
    assert sorted("; arc=fail" in field for field in fields) == [False, True]


@pytest.mark.parametrize("domain, result", [("loop.test", "permerror"), ("broken.test", "permerror"),
                                            ("many.test", "permerror"), ("macro.test", "pass"),
                                            ("dnsdown.test", "temperror"), ("nowhere.test", "none")])
def test_spf_errors_are_verdicts_not_lost_mail(office, domain, result):
    assert _send(office, f"a@{domain}", _message(f"a@{domain}"))[0] == 250
    assert f"spf={result}" in _verdict(office)


def test_an_unreadable_dmarc_record_is_a_permerror_not_a_lost_message(office):
    assert _send(office, "a@badrecord.test", _message("a@badrecord.test"))[0] == 250
    field = _verdict(office)
    assert "spf=pass" in field and "dmarc=permerror" in field


def test_a_forged_verdict_with_our_name_is_removed(office):
    forged = b"Authentication-Results: mail.example.test; dmarc=pass header.from=bank.test\r\n"
    theirs = b"Authentication-Results: mx.other.test; spf=pass\r\n"
    assert _send(office, "a@relaxed.test", _message("a@relaxed.test", extra=forged + theirs))[0] == 250
    [stored] = office.inbox("alice", verdict=True)
    assert stored.count(b"Authentication-Results: mail.example.test;") == 1
    assert b"header.from=bank.test" not in stored and theirs in stored


def _checkers(office):
    """The pids of the appliance's checker processes (smtp/sender_auth_worker.py)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read()
        except (OSError, ValueError, IndexError):
            continue
        if parent == office.appliance.process.pid and b"sender_auth_worker" in command:
            found.append(int(entry))
    return found


def test_killed_checkers_are_replaced_and_mail_waits_for_them(office):
    checkers = _checkers(office)
    assert len(checkers) >= 2
    for pid in checkers:
        os.kill(pid, signal.SIGKILL)
    office.appliance.wait_for_log(r"sender checks: a checker process ended", count=len(checkers))
    message = _message("news@good.test")
    signature = dkim.sign(message, b"sel", b"good.test", PRIVATE, include_headers=[b"from", b"subject"])
    assert _send(office, "bounces@good.test", signature + message)[0] == 250
    assert "dmarc=pass" in _verdict(office)
    assert len(_checkers(office)) == len(checkers) and not set(_checkers(office)) & set(checkers)


def test_messages_checked_together_each_get_their_own_verdict(office):
    """Sixteen messages reach the end of DATA at once, more than the checkers: they wait and go
    to the checkers several to a request (sender_auth.BATCH), and each verdict is its own."""
    import threading

    count = 16
    barrier = threading.Barrier(count)
    replies = {}

    def deliver(number):
        good = number % 2 == 0
        author = "news@good.test" if good else "ceo@strict.test"
        message = _message(author, subject=f"message-{number}")
        if good:
            message = dkim.sign(message, b"sel", b"good.test", PRIVATE, include_headers=[b"from", b"subject"]) + message
        raw = RawSMTP(office.ports["smtp"])
        assert raw.command("EHLO client.example.test")[0] == 250
        assert raw.command(f"MAIL FROM:<{author}>")[0] == 250
        assert raw.command("RCPT TO:<alice@example.test>")[0] == 250
        assert raw.command("DATA")[0] == 354
        barrier.wait(timeout=30)
        raw.send(message + b".\r\n")
        replies[number] = raw.reply()[0]
        raw.close()
    threads = [threading.Thread(target=deliver, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert replies == {number: 250 if number % 2 == 0 else 550 for number in range(count)}
    stored = office.inbox("alice", verdict=True)
    assert sorted(int(m.split(b"Subject: message-")[1].split(b"\r\n")[0]) for m in stored) == list(range(0, count, 2))
    assert all("dmarc=pass" in _field(m) for m in stored)


def test_submitted_mail_is_not_judged(office):
    client = office.smtp("submission", login="alice@example.test")
    client.sendmail("alice@example.test", ["alice@example.test"], _message("alice@example.test"))
    client.quit()
    [stored] = office.inbox("alice", verdict=True)
    assert b"Authentication-Results" not in stored
