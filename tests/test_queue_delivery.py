"""The outbound queue against real peers on loopback: a DNS server with a test zone and SMTP
servers that accept, refuse, drop, stall or are not there (tests/outbound_world.py)."""

import os
import re

import pytest

from outbound_helpers import MESSAGE, office_for, reports, submit


@pytest.fixture
def office(connected_office):
    return connected_office


def test_delivered_to_the_best_mx_with_starttls_byte_for_byte(office, world):
    message = MESSAGE + b".a line starting with a dot\r\n..\r\n.\r\nend\r\n"
    submit(office, ["friend@good.test"], message)
    office.appliance.wait_for_log(r"queue \w+: attempt 1: <[^>]+> via \S+ \[[0-9.]+\] tls=\S+: 250 .*; done, 1 delivered, 0 failed")
    [(envelope, wire)] = world.received()
    assert envelope == {"sender": "<alice@example.test>", "recipients": ["friend@good.test"],
                        "host": "127.0.0.2", "tls": True, "user": None, "connection": 1}
    # What crossed the wire is the stored message, dot-stuffed (RFC 5321 §4.5.2) and nothing else:
    # no CR CR LF, every leading dot doubled, ended by CRLF "." CRLF.
    assert b"\r\r\n" not in wire
    assert wire.endswith(b"\r\n..a line starting with a dot\r\n...\r\n..\r\nend\r\n.\r\n")
    line = office.appliance.wait_for_log(r"attempt 1: <friend@good.test> via mx1.good.test \[127.0.0.2\] tls=TLSv1")
    assert "250 2.0.0 accepted as 1" in line
    # One line for the SMTP transaction, one for the delivery attempt: the admin's whole story.
    queue_id = re.search(r"queue (\w+): attempt 1", line).group(1)
    assert len([logged for logged in office.appliance.lines if queue_id in logged]) == 2
    assert office.queued() == []


def test_messages_to_one_server_share_a_connection(office, world):
    submit(office, ["first@good.test"])
    office.appliance.wait_for_log(r"done, 1 delivered")
    submit(office, ["second@good.test"])
    office.appliance.wait_for_log(r"done, 1 delivered", count=2)
    assert [envelope["connection"] for envelope, _ in world.received()] == [1, 1]


def test_a_host_that_is_down_is_skipped_for_the_next_mx(office, world):
    submit(office, ["friend@backup.test"])
    office.appliance.wait_for_log(r"done, 1 delivered")
    assert office.appliance.wait_for_log(r"via down.backup.test \[127.0.0.9\]: connection refused by 127\.0\.0\.9:\d+$")
    assert [envelope["host"] for envelope, _ in world.received()] == ["127.0.0.3"]
    # Twisted's lines for each DNS query's UDP port, and for each listening port, are not logged.
    noise = [line for line in office.appliance.lines
             if "UDP Port" in line or "DNSDatagramProtocol" in line or " starting on " in line]
    assert noise == []


def test_no_mx_falls_back_to_the_address_record(office, world):
    submit(office, ["friend@nomx.test"])
    office.appliance.wait_for_log(r"done, 1 delivered")
    assert world.received()[0][0]["host"] == "127.0.0.2"


def test_a_server_without_starttls_or_pipelining_still_gets_the_mail(office, world):
    submit(office, ["friend@plain.test", "perm-x@plain.test", "other@plain.test"])
    office.appliance.wait_for_log(r"done, 2 delivered, 1 failed")
    [(envelope, _)] = world.received()
    assert envelope["tls"] is False and envelope["recipients"] == ["friend@plain.test", "other@plain.test"]


def test_permanent_failures_are_bounced_once_with_every_failed_recipient(office, world):
    submit(office, ["ok@good.test", "perm-one@good.test", "someone@nullmx.test", "someone@missing.test"])
    office.appliance.wait_for_log(r"report \w+ to <alice@example.test> stored")
    [bounce] = reports(office)
    assert bounce["From"] == "Mail Delivery System <MAILER-DAEMON@mail.example.test>"
    assert bounce["Auto-Submitted"] == "auto-replied"
    assert bounce.get_content_type() == "multipart/report"
    assert bounce.get_param("report-type") == "delivery-status"
    explanation, status, headers = bounce.iter_parts()
    assert explanation.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: quarterly report" in headers.get_content()
    fields = status.get_payload()
    per_recipient = {block["Final-Recipient"]: block for block in fields[1:]}
    assert fields[0]["Reporting-MTA"] == "dns; mail.example.test"
    assert set(per_recipient) == {"rfc822; perm-one@good.test", "rfc822; someone@nullmx.test",
                                  "rfc822; someone@missing.test"}
    perm = per_recipient["rfc822; perm-one@good.test"]
    assert (perm["Action"], perm["Status"], perm["Remote-MTA"]) == ("failed", "5.1.1", "dns; mx1.good.test")
    assert "550 5.1.1 <perm-one@good.test>: user unknown" in perm["Diagnostic-Code"]
    assert per_recipient["rfc822; someone@nullmx.test"]["Status"] == "5.1.10"
    assert per_recipient["rfc822; someone@missing.test"]["Status"] == "5.1.2"
    stored = office.inbox("alice")[0]
    assert stored.startswith(b"Return-Path: <>\r\n")


@pytest.mark.parametrize("recipient, why", [
    ("x@servfail.test", "SERVFAIL"),
    ("x@greylist.test", "greeting: 421 4.3.2 not now"),
    ("x@dropper.test", "connection lost"),
    ("temp-x@good.test", "451 4.2.1"),
])
def test_temporary_failures_stay_queued_for_a_retry(office, world, recipient, why):
    submit(office, [recipient])
    office.appliance.wait_for_log(r"attempt 1: .*; 1 pending, next attempt in 300s", timeout=30)
    [entry] = office.queued()
    assert entry.attempts == 1 and entry.recipients[0].state == "pending"
    assert why in entry.recipients[0].last_reply
    assert entry.next_attempt >= entry.arrival + 300 - 5
    assert reports(office) == []


def test_a_slow_server_is_waited_for(office, world):
    submit(office, ["friend@slow.test"])
    office.appliance.wait_for_log(r"done, 1 delivered", timeout=60)


def test_expiry_bounces_what_is_still_pending_and_warns_once_before(tmp_path, world):
    office = office_for(world, tmp_path)
    with open(office.config_path) as handle:
        text = handle.read()
    with open(office.config_path, "w") as handle:
        handle.write(text.replace("[outbound]\n", "[outbound]\nretry_schedule = 1s\nwarn_after = 1s\nmax_lifetime = 4s\n"))
    office.start()
    try:
        submit(office, ["temp-a@good.test", "ok@good.test"])
        office.appliance.wait_for_log(r"delayed report to <alice@example.test> for <temp-a@good.test>", timeout=30)
        office.appliance.wait_for_log(r"done, 1 delivered, 1 failed", timeout=30)
        office.appliance.wait_for_log(r"report \w+ to <alice@example.test> stored", timeout=30, count=2)
        received = reports(office)
        subjects = sorted(report["Subject"] for report in received)
        assert subjects == ["Delayed Mail (still being retried)", "Undelivered Mail Returned to Sender"]
        failed = next(report for report in received if report["Subject"].startswith("Undelivered"))
        status = list(failed.iter_parts())[1].get_payload()[1]
        assert status["Status"] == "4.4.7" and status["Action"] == "failed"
        delayed = next(report for report in received if report["Subject"].startswith("Delayed"))
        assert list(delayed.iter_parts())[1].get_payload()[1]["Action"] == "delayed"
        assert sum("delayed report" in line for line in office.appliance.lines) == 1
    finally:
        office.appliance.stop()


def test_the_failure_is_logged_before_the_bounce_it_causes(office, world):
    submit(office, ["perm-x@good.test"])
    report = office.appliance.wait_for_log(r"failed report to <alice@example\.test> for <perm-x@good\.test>")
    outcome = office.appliance.wait_for_log(r"attempt 1: <perm-x@good\.test> via .*; done, 0 delivered, 1 failed")
    assert office.appliance.lines.index(outcome) < office.appliance.lines.index(report)


def test_a_bounce_is_never_bounced(office, world):
    client = office.smtp("submission", login="alice@example.test")
    client.sendmail("", ["perm-x@good.test"], MESSAGE)
    client.quit()
    office.appliance.wait_for_log(r"failed for the null sender, no report sent")
    office.appliance.wait_for_log(r"done, 0 delivered, 1 failed")
    assert reports(office) == []


def test_the_queue_survives_a_restart_and_sets_corrupt_entries_aside(tmp_path, world):
    office = office_for(world, tmp_path).start()
    submit(office, ["x@servfail.test"])
    office.appliance.wait_for_log(r"SERVFAIL")
    office.appliance.stop()
    [entry] = office.queued()
    broken = os.path.join(office.data_dir, "queue", "envelopes", "0000000000000000aa.json")
    with open(broken, "w") as handle:
        handle.write("{not json")
    office.start()
    try:
        office.appliance.wait_for_log(r"queue entry 0000000000000000aa moved aside .*: Expecting property name")
        office.appliance.wait_for_log(r"queue loaded: 1 entries")
        assert [queued.id for queued in office.queued()] == [entry.id]
        assert os.path.exists(os.path.join(office.data_dir, "queue", "corrupt", "0000000000000000aa.json"))
    finally:
        office.appliance.stop()


def _relay_office(tmp_path, world, relay_host):
    relay = (f"relay_host = {relay_host}\nrelay_port = {world.smtp_port}\n"
             "relay_user = relayuser\nrelay_password = relaypass\n")
    office = office_for(world, tmp_path)
    with open(office.config_path) as handle:
        text = handle.read()
    with open(office.config_path, "w") as handle:
        handle.write(text.replace("[outbound]\n", "[outbound]\n" + relay))
    # The peers' certificate is trusted as a CA by the appliance process only.
    return office.start(env={"SSL_CERT_FILE": world.certificate})


def test_a_smart_host_carries_everything_with_verified_tls_and_auth(tmp_path, world):
    office = _relay_office(tmp_path, world, "relay.test")
    try:
        submit(office, ["friend@good.test", "other@nomx.test"])
        office.appliance.wait_for_log(r"done, 2 delivered", timeout=30)
        [(envelope, _)] = world.received()
        assert envelope["host"] == "127.0.0.8" and envelope["tls"] and envelope["user"] == "relayuser"
        assert sorted(envelope["recipients"]) == ["friend@good.test", "other@nomx.test"]
    finally:
        office.appliance.stop()


def test_a_smart_host_whose_certificate_fails_verification_is_a_temporary_failure(tmp_path, world):
    office = _relay_office(tmp_path, world, "wrongname.test")
    try:
        submit(office, ["friend@good.test"])
        office.appliance.wait_for_log(r"attempt 1: .*; 1 pending", timeout=30)
        assert world.received() == []
        [entry] = office.queued()
        assert entry.recipients[0].state == "pending"
    finally:
        office.appliance.stop()
