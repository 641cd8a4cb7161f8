"""The admin's view of the queue, and DKIM signing, against a running appliance and real peers."""

import json
import os
import re
import socket
import stat
import subprocess

import dkim
import smtplib

import pytest

from appliance import BIN, admin
from outbound_helpers import reports, submit

SENDMAIL = os.path.join(BIN, "mailbox-appliance-sendmail")


@pytest.fixture
def office(connected_office):
    return connected_office


def _run(office, *arguments):
    result = admin(office.config_path, *arguments)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_list_retry_flush_bounce_and_delete(office):
    submit(office, ["x@servfail.test"])
    office.appliance.wait_for_log(r"attempt 1: .*pending", timeout=30)
    listing = _run(office, "queue", "list")
    queue_id = re.match(r"(\w+)  from <alice@example.test>  attempts 1  next ", listing).group(1)
    assert "    <x@servfail.test> pending: 451 4.4.3 DNS lookup of MX for servfail.test failed: SERVFAIL" in listing

    assert _run(office, "queue", "retry", queue_id).strip() == f"retry {queue_id}: being tried now"
    office.appliance.wait_for_log(r"attempt 2: .*pending", timeout=30)
    assert _run(office, "queue", "flush").strip() == "flush: 1 queued message being tried now"
    office.appliance.wait_for_log(r"attempt 3: .*pending", timeout=30)
    # Logged once the attempts it started have ended, after the attempt's own line.
    flushed = office.appliance.wait_for_log(r"queue control: flush done: 1 entries tried")
    assert office.appliance.lines.index(flushed) > office.appliance.lines.index(
        office.appliance.wait_for_log(r"attempt 3: .*pending"))

    # The answer comes once the bounce is stored and the entry gone.
    assert _run(office, "queue", "bounce", queue_id).strip() == \
        f"bounced {queue_id} to <alice@example.test> (<x@servfail.test>)"
    assert office.appliance.wait_for_log(r"report \w+ to <alice@example.test> stored")
    [bounce] = reports(office)
    assert "Returned by the postmaster" in bounce.as_string()
    assert _run(office, "queue", "list").strip() == "the queue is empty"

    submit(office, ["y@servfail.test"])
    office.appliance.wait_for_log(r"attempt 1: .*pending", timeout=30, count=2)
    [entry] = office.queued()
    assert _run(office, "queue", "delete", entry.id).strip() == \
        f"deleted {entry.id} (from <alice@example.test> to <y@servfail.test>)"
    office.appliance.wait_for_log(rf"queue control: delete {entry.id} done: the message from <alice@example.test> "
                                  r"to <y@servfail.test> deleted, not delivered$")
    assert office.queued() == []
    assert len(reports(office)) == 1
    assert _run(office, "queue", "flush").strip() == "flush: 0 queued messages being tried now"


def test_a_delete_during_an_attempt_waits_for_it_and_leaves_nothing_behind(office, world):
    submit(office, ["friend@slow.test"])                # 2 s per reply: the attempt takes a while
    [entry] = office.queued()
    assert _run(office, "queue", "delete", entry.id).strip() == \
        f"{entry.id} is being delivered right now; the delete follows when that attempt ends"
    office.appliance.wait_for_log(rf"queue control: delete {entry.id} after the attempt in flight", timeout=30)
    # The attempt delivered it meanwhile (the peer is slow, not failing): nothing is left to delete.
    office.appliance.wait_for_log(rf"queue control: delete {entry.id}: no such entry any more", timeout=60)
    assert office.queued() == []
    # The attempt's outcome was recorded first and did not bring the entry back.
    assert office.appliance.wait_for_log(rf"queue {entry.id}: attempt 1: <friend@slow.test> via mx.slow.test")
    assert not [name for name in os.listdir(os.path.join(office.data_dir, "queue", "envelopes"))]


def test_show_and_json_list_an_entry(office):
    submit(office, ["x@servfail.test"])
    office.appliance.wait_for_log(r"attempt 1: .*pending", timeout=30)
    [listed] = json.loads(_run(office, "queue", "list", "--json"))
    assert listed["sender"] == "alice@example.test" and listed["attempts"] == 1
    assert [recipient["address"] for recipient in listed["recipients"]] == ["x@servfail.test"]
    shown = _run(office, "queue", "show", listed["id"])
    assert shown.startswith(f"*** ENVELOPE {listed['id']} ***\n")
    assert json.loads(shown.split("***\n", 1)[1].split("\n*** MESSAGE HEADER")[0]) == listed
    header = shown.split("***\n", 2)[2]
    assert "\nFrom: alice@example.test\n" in "\n" + header + "\n" and "\r" not in header
    assert _run(office, "queue", "list", "--json").strip().startswith("[")


def test_unknown_queue_id(office):
    for command in ("retry", "delete", "bounce", "show"):
        result = admin(office.config_path, "queue", command, "0000000000000000zz")
        assert result.returncode == 1 and "no queued message 0000000000000000zz" in result.stderr


def test_the_admin_channel_is_the_service_users_alone(office):
    path = os.path.join(office.data_dir, "control.sock")
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_malformed_request_gets_an_answer_not_a_crash(office):
    with socket.socket(socket.AF_UNIX) as channel:
        channel.settimeout(30)
        channel.connect(os.path.join(office.data_dir, "control.sock"))
        channel.sendall(b'not json\n["a list"]\n{"command": "no such thing"}\n'
                        b'{"command": "queue retry", "arguments": {"bad": 1}}\n{"command": "queue flush"}\n')
        answers = b""
        while answers.count(b"\n") < 5:
            answers += channel.recv(4096)
    assert [json.loads(line) for line in answers.splitlines()] == [
        {"ok": False, "text": "unknown or malformed request"}] * 4 + [
        {"ok": True, "text": "flush: 0 queued messages being tried now"}]


def test_commands_for_the_running_appliance_say_when_it_is_not_running(office):
    office.appliance.stop()
    for arguments in (("flush",), ("retry", "0000000000000000zz"), ("delete", "0000000000000000zz")):
        result = admin(office.config_path, "queue", *arguments)
        assert result.returncode == 1, result.stdout
        assert "the appliance is not running" in result.stderr and "nothing was done" in result.stderr
        assert "Traceback" not in result.stderr


def test_dkim_signature_verifies(office, world):
    output = _run(office, "dkim", "keygen", "example.test")
    assert "mail._domainkey.example.test. IN TXT" in output
    assert 'example.test. IN TXT "v=spf1 mx -all"' in output
    assert "_dmarc.example.test. IN TXT" in output
    [line] = [line for line in output.split("\n") if "._domainkey." in line]
    record = "".join(re.findall(r'"([^"]*)"', line))
    assert record.startswith("v=DKIM1; k=rsa; p=")

    submit(office, ["friend@good.test"])
    office.appliance.wait_for_log(r"done, 1 delivered", timeout=30)
    [(_, wire)] = world.received()
    assert wire.startswith(b"DKIM-Signature: ")
    message = wire[:-3].replace(b"\r\n..", b"\r\n.")  # as the peer would store it: unstuffed, no end marker

    def dns(name, timeout=5):
        assert name == b"mail._domainkey.example.test."
        return record.encode("ascii")

    assert dkim.verify(message, dnsfunc=dns)
    assert not dkim.verify(message.replace(b"Figures attached.", b"Figures changed."), dnsfunc=dns)


def test_a_second_key_signs_only_once_the_admin_says_so(office, world):
    assert "selector mail signs the mail of example.test" in _run(office, "dkim", "keygen", "example.test")
    second = _run(office, "dkim", "keygen", "example.test", "--selector", "a2027")
    assert "selector mail signs the mail of example.test, not a2027" in second
    assert "dkim use example.test a2027" in second

    def selector_of_last_message(count):
        submit(office, ["friend@good.test"])
        office.appliance.wait_for_log(r"done, 1 delivered", timeout=30, count=count)
        wire = world.received()[-1][1]
        unfolded = re.sub(rb"\r\n[ \t]+", b" ", wire)
        return re.search(rb"DKIM-Signature: [^\r]*?\bs=([\w.-]+);", unfolded).group(1)

    assert selector_of_last_message(1) == b"mail"
    assert "selector a2027 signs the mail of example.test from now on" in _run(office, "dkim", "use", "example.test", "a2027")
    assert selector_of_last_message(2) == b"a2027"
    assert "selector a2027 signs the mail of example.test" in _run(office, "dkim", "show", "example.test",
                                                                   "--selector", "a2027")
    for arguments, error in ((("use", "example.test", "b2028"), "no DKIM key for example.test with selector b2028"),
                             (("keygen", "example.test", "--selector", "../../x"), "is not a DKIM selector")):
        result = admin(office.config_path, "dkim", *arguments)
        assert result.returncode == 1 and error in result.stderr, result.stderr


def test_a_domain_without_key_is_sent_unsigned_with_a_warning(office, world):
    office.appliance.wait_for_log(r"domain example.test has no DKIM key")
    submit(office, ["friend@good.test"])
    office.appliance.wait_for_log(r"done, 1 delivered", timeout=30)
    [(_, wire)] = world.received()
    assert b"DKIM-Signature" not in wire


def test_mail_from_outside_claiming_our_domain_is_refused_not_forwarded_with_our_key(office, world):
    _run(office, "dkim", "keygen", "example.test")
    _run(office, "alias", "add", "forward@example.test", "friend@good.test")
    client = office.smtp()            # port 25, no AUTH: a stranger claiming to be our CEO
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("ceo@example.test", ["forward@example.test"],
                        b"From: ceo@example.test\r\nSubject: wire the money\r\n\r\nNow.\r\n")
    client.quit()
    # Our own domain as the author, without a DMARC pass: refused (smtp/sender_auth.py), so
    # nothing is queued to be signed with our key.
    assert refused.value.smtp_code == 550 and b"5.7.1" in refused.value.smtp_error
    assert office.queued() == []


def test_mail_from_outside_forwarded_by_an_alias_is_not_signed_with_our_key(office, world):
    _run(office, "dkim", "keygen", "example.test")
    _run(office, "alias", "add", "forward@example.test", "friend@good.test")
    client = office.smtp()
    client.sendmail("someone@remote.test", ["forward@example.test"],
                    b"From: someone@remote.test\r\nSubject: fwd me\r\n\r\nNow.\r\n")
    client.quit()
    office.appliance.wait_for_log(r"done, 1 delivered", timeout=30)
    [(_, wire)] = world.received()
    assert b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test" not in wire


def test_a_malformed_header_is_refused_at_submission(office, world):
    """Issue 20 #4: dkimpy could not sign it, and the queue sent it unsigned."""
    _run(office, "dkim", "keygen", "example.test")
    client = office.smtp("submission", login="alice@example.test")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("alice@example.test", ["friend@good.test"],
                        b"From: alice@example.test\r\nbroken header line\r\n\r\nbody\r\n")
    assert refused.value.smtp_code == 550
    assert b"5.6.0 Malformed header line" in refused.value.smtp_error and b"broken header line" in refused.value.smtp_error
    client.quit()
    assert world.received() == []


def test_a_message_dkim_cannot_sign_is_bounced_not_sent_unsigned(office, world):
    """A local program's message skips submission's checks: the queue refuses to send it
    unsigned for a domain with a key, and tells the sender why."""
    _run(office, "dkim", "keygen", "example.test")
    result = subprocess.run([SENDMAIL, "-C", office.config_path, "-f", "alice@example.test", "friend@good.test"],
                            input=b"From: alice@example.test\nbroken header line\n\nbody\n",
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    office.appliance.wait_for_log(r"could not DKIM-sign it: Unexpected characters in RFC822 header", timeout=30)
    office.appliance.wait_for_log(r"report \w+ to <alice@example.test> stored", timeout=30)
    [bounce] = reports(office)
    _, status, _ = bounce.iter_parts()
    [failed] = status.get_payload()[1:]
    assert failed["Final-Recipient"] == "rfc822; friend@good.test" and failed["Status"] == "5.6.0"
    assert "could not be DKIM-signed" in failed["Diagnostic-Code"]
    assert world.received() == []
