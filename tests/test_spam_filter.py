"""Port 25 with a real rspamd (Debian's, on loopback): its actions as SMTP replies and Junk
filing, its fields in the stored message, rspamd down or silent never losing mail, and users
teaching it by moving messages into and out of Junk, across a restart.  DNS blocklists, the
baseline without rspamd, against the tests' DNS server."""

import os
import socket

import pytest

from conftest import Office
from imapclient import Session, message
from outbound_world import serving_dns
from rawsmtp import RawSMTP
import rspamd_world

needs_rspamd = pytest.mark.skipif(not rspamd_world.installed(), reason="rspamd and redis-server are not installed "
                                  "(CI installs them: apt-get install rspamd redis-server)")
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# Enough words for rspamd's Bayes classifier to learn from (min_tokens 11).
WORDS = "the quarterly budget meeting moves to thursday afternoon in the large room upstairs please " \
        "bring the printed report and your notes from the client visit last week\r\n"

ZONE = {"records": {"2.0.0.127.bl.test": {"A": ["127.0.0.2"]},
                    "2.0.0.127.refused.test": {"A": ["127.255.255.254"]}},
        "servfail": ["2.0.0.127.broken.test"]}


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    with serving_dns(str(tmp_path_factory.mktemp("zone")), ZONE) as address:
        yield address


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory, dns):
    if not rspamd_world.installed():
        pytest.skip("rspamd and redis-server are not installed (CI installs them)")
    running = rspamd_world.Rspamd(str(tmp_path_factory.mktemp("rspamd")), dns)
    yield running
    running.stop()


def _office(tmp_path, dns, filtering):
    return Office(str(tmp_path), resolver=dns, extra=f"[filter]\n{filtering}\n").start()


@pytest.fixture
def office(tmp_path, dns, rspamd):
    running = _office(tmp_path, dns, f"rspamd = {rspamd.url}\nrspamd_controller = {rspamd.controller}")
    yield running
    running.appliance.stop()


def _send(office, data, client="127.0.0.1"):
    raw = RawSMTP(office.ports["smtp"], source=client)
    assert raw.command("EHLO client.remote.test")[0] == 250
    assert raw.command("MAIL FROM:<bob@remote.test>")[0] == 250
    reply = raw.command("RCPT TO:<alice@example.test>")
    if reply[0] != 250:
        raw.close()
        return reply
    assert raw.command("DATA")[0] == 354
    raw.send(data + b".\r\n")
    reply = raw.reply()
    raw.close()
    return reply


def _header(stored):
    return stored.split(b"\r\n\r\n", 1)[0]


@needs_rspamd
def test_gtube_is_refused(office):
    reply = _send(office, message("hello", body=GTUBE + "\r\n"))
    assert reply[0] == 550 and "5.7.1" in reply[1], reply
    assert office.inbox("alice") == [] and office.inbox("alice", ".Junk") == []
    office.appliance.wait_for_log(r"result=refused 550 5\.7\.1 \(rspamd: reject")


@needs_rspamd
def test_add_header_files_into_junk_with_the_spam_fields(office):
    forged = b"X-Spam-Flag: NO\r\nX-Spam-Status: No, score=-100\r\n"
    assert _send(office, forged + message("a spammy offer", body=WORDS))[0] == 250
    assert office.inbox("alice") == []
    [stored] = office.inbox("alice", ".Junk")
    header = _header(stored)
    assert b"X-Spam-Flag: YES\r\n" in header and b"X-Spam-Action: add header\r\n" in header
    assert b"X-Spam-Status: Yes, score=" in header and b"TEST_SPAMMY_SUBJECT" in header
    assert b"X-Spam-Flag: NO" not in header and b"score=-100" not in header
    office.appliance.wait_for_log(r"result=250 queued into Junk \(rspamd: add header")


@needs_rspamd
def test_soft_reject_asks_the_sender_to_come_back(office):
    reply = _send(office, message("please try later", body=WORDS))
    assert reply[0] == 451 and "4.7.1" in reply[1], reply
    assert office.inbox("alice") == []


@needs_rspamd
def test_ham_is_delivered_with_the_score(office):
    assert _send(office, message("minutes", body=WORDS))[0] == 250
    [stored] = office.inbox("alice")
    assert b"X-Spam-Status: No, score=" in _header(stored) and b"X-Spam-Flag" not in stored


def _silent_listener():
    """A loopback port that takes connections and never answers (a hung rspamd)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


@pytest.mark.parametrize("where", ["closed", "silent"])
def test_rspamd_down_or_silent_delivers_without_a_verdict(tmp_path, dns, where):
    silent = _silent_listener()
    port = silent.getsockname()[1]
    if where == "closed":
        silent.close()
    office = _office(tmp_path, dns, f"rspamd = http://127.0.0.1:{port}")
    try:
        assert _send(office, message("while rspamd is away", body=WORDS))[0] == 250
        [stored] = office.inbox("alice")
        assert b"X-Spam" not in stored
        # The silent one is given rspamd.TIMEOUT (10 s), then the message goes on.
        office.appliance.wait_for_log(r"delivered without rspamd's verdict", timeout=5)
    finally:
        office.appliance.stop()
        silent.close()


def _move(office, subject_and_folders):
    session = Session(office)
    try:
        for subject, source, target in subject_and_folders:
            session.ok(b"SELECT " + source.encode())
            session.ok(b'UID MOVE 1:* ' + target.encode())
    finally:
        session.close()


def _deliver_by_submission(office, subject):
    client = office.smtp("submission", login="alice@example.test")
    client.sendmail("alice@example.test", ["alice@example.test"],
                    message(subject, body=WORDS + subject + "\r\n", sender="alice@example.test"))
    client.quit()


@needs_rspamd
def test_moving_into_and_out_of_junk_teaches_rspamd(office, rspamd):
    learned = rspamd.learned()
    _deliver_by_submission(office, "first")
    _move(office, [("first", "INBOX", "Junk")])
    office.appliance.wait_for_log(r"spam learning: spam learnt")
    assert rspamd.learned() == learned + 1
    # Out of Junk into Trash teaches nothing (deleting spam is not calling it good); out of Junk
    # into a folder is ham.  Lessons go in order, so had Trash taught, "ham" would count two.
    _deliver_by_submission(office, "second")
    _move(office, [("second", "INBOX", "Junk"), ("", "Junk", "Trash")])
    office.appliance.wait_for_log(r"spam learning: spam learnt", count=2)
    _deliver_by_submission(office, "third")
    _move(office, [("third", "INBOX", "Junk")])
    office.appliance.wait_for_log(r"spam learning: spam learnt", count=3)
    _move(office, [("", "Junk", "Archive")])
    office.appliance.wait_for_log(r"spam learning: ham learnt")
    assert rspamd.learned() == learned + 4
    assert os.listdir(os.path.join(office.data_dir, "learning")) == []


@needs_rspamd
def test_lessons_wait_for_rspamd_across_a_restart(tmp_path, dns, rspamd):
    closed = _silent_listener()
    port = closed.getsockname()[1]
    closed.close()
    office = _office(tmp_path, dns, f"rspamd = http://127.0.0.1:{port}")
    try:
        _deliver_by_submission(office, "while away")
        _move(office, [("", "INBOX", "Junk")])
        office.appliance.wait_for_log(r"spam learning: 1 waiting, trying again in 30s")
    finally:
        office.appliance.stop()
    assert len(os.listdir(os.path.join(office.data_dir, "learning"))) == 1
    learned = rspamd.learned()
    with open(office.config_path) as handle:
        config = handle.read()
    with open(office.config_path, "w") as handle:
        handle.write(config.replace(f"rspamd = http://127.0.0.1:{port}",
                                    f"rspamd = {rspamd.url}\nrspamd_controller = {rspamd.controller}"))
    office.start()
    try:
        office.appliance.wait_for_log(r"spam learning: spam learnt")
        assert rspamd.learned() == learned + 1
        assert os.listdir(os.path.join(office.data_dir, "learning")) == []
    finally:
        office.appliance.stop()


@pytest.mark.parametrize("zones, listed", [("bl.test", True), ("refused.test, broken.test, clean.test", False)])
def test_a_listed_client_is_refused_at_rcpt(tmp_path, dns, zones, listed):
    # 127.0.0.2 is listed by bl.test; refused.test answers with Spamhaus's "query refused"
    # code (RFC 5782 §2.3 leaves 127.255.255.0/24 to such answers), broken.test fails.
    office = _office(tmp_path, dns, f"dnsbl = {zones}")
    try:
        reply = _send(office, message("hello"), client="127.0.0.2")
        if listed:
            assert reply[0] == 554 and "5.7.1" in reply[1] and "bl.test" in reply[1], reply
            assert office.inbox("alice") == []
        else:
            assert reply[0] == 250, reply
        assert _send(office, message("from an address not listed"), client="127.0.0.1")[0] == 250
    finally:
        office.appliance.stop()
