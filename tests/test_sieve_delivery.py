"""Sieve at delivery, against a running appliance: scripts stored with the admin command, mail
over SMTP, the result read from the Maildir and over IMAP (issue 17)."""

import os
import re
import smtplib
import subprocess

import pytest

import imapclient
from appliance import ADMIN
from conftest import Office

ALICE = "alice@example.test"
RULES = b'''require ["fileinto", "imap4flags", "mailbox", "subaddress", "envelope", "variables"];
# Bank mail into Finance, read already; the +work address into Work, flagged.
if address :domain :is "from" "bank.test" { fileinto :flags "\\\\Seen" "Finance"; stop; }
if envelope :detail "to" "work" { addflag "\\\\Flagged"; fileinto "Work"; stop; }
if header :contains "subject" "lottery" { discard; stop; }
if header :matches "subject" "project *:*" { fileinto :create "Projects.${1}"; stop; }
if header :contains "subject" "misfiled" { fileinto "Nowhere"; }
'''


@pytest.fixture
def office(tmp_path):
    running = Office(str(tmp_path)).start()
    yield running
    running.appliance.stop()


def admin_command(office, *arguments, script=None):
    """mailbox-appliance-admin with *script* on standard input; output as bytes."""
    return subprocess.run([ADMIN, "--config", office.config_path, *arguments], input=script,
                          capture_output=True, timeout=60)


def sieve(office, *arguments, script=None):
    return admin_command(office, "sieve", *arguments, script=script)


def with_rules(office, script=RULES):
    """*script* active for alice, who has made the folders Finance and Work."""
    result = sieve(office, "put", ALICE, "rules", "-", "--activate", script=script)
    assert result.returncode == 0, result.stderr
    session = imapclient.Session(office)
    session.ok(b"CREATE Finance")
    session.ok(b"CREATE Work")
    session.close()
    return office


def send(office, subject, sender="clerk@bank.test", recipient=ALICE):
    client = office.smtp("smtp")
    client.sendmail(sender, [recipient], imapclient.message(subject, sender=sender, to=recipient))
    client.quit()         # the 250 came once every copy was stored where the script said


def folder_files(office, folder):
    base = os.path.join(office.data_dir, "mail", "example.test", "alice", f".{folder}" if folder else "")
    return {sub: sorted(os.listdir(os.path.join(base, sub))) for sub in ("new", "cur")
            if os.path.isdir(os.path.join(base, sub))}


def test_fileinto_with_flags_lands_in_the_folder_as_imap_shows_it(office):
    with_rules(office)
    send(office, "statement")
    office.appliance.wait_for_log(r"sieve \S+ for alice@example.test: Finance flags S")
    files = folder_files(office, "Finance")
    assert files["new"] == [] and len(files["cur"]) == 1 and files["cur"][0].endswith(":2,S")
    assert office.inbox() == []
    session = imapclient.Session(office)
    session.ok(b"SELECT Finance")
    assert any(b"FLAGS (\\Seen)" in line for line in session.ok(b"FETCH 1 FLAGS"))
    session.close()


def test_the_envelope_recipient_s_detail_and_a_flag_set_before_fileinto(office):
    with_rules(office)
    send(office, "hello", sender="someone@remote.test", recipient="alice+work@example.test")
    office.appliance.wait_for_log(r"sieve \S+ for alice@example.test: Work flags F")
    assert folder_files(office, "Work")["cur"][0].endswith(":2,F")


def test_discard_stores_nothing_and_says_so(office):
    with_rules(office)
    send(office, "you won the lottery", sender="spam@remote.test")
    office.appliance.wait_for_log(r"sieve \S+ for alice@example.test: discarded$")
    assert office.inbox() == []


def test_fileinto_create_makes_a_subscribed_folder(office):
    with_rules(office)
    send(office, "project Apollo: kickoff", sender="pm@remote.test")
    office.appliance.wait_for_log(r"sieve \S+ for alice@example.test: Projects.Apollo")
    session = imapclient.Session(office)
    assert any(b'"Projects.Apollo"' in line or b" Projects.Apollo" in line
               for line in session.ok(b'LSUB "" "*"'))
    session.ok(b"SELECT Projects.Apollo")
    session.close()
    assert sum(map(len, folder_files(office, "Projects.Apollo").values())) == 1


def test_a_missing_folder_keeps_the_message_in_the_inbox(office):
    with_rules(office)
    send(office, "misfiled report", sender="x@remote.test")
    office.appliance.wait_for_log(r"sieve \S+ for alice@example.test: kept in the default folder, no folder 'Nowhere'")
    assert len(office.inbox()) == 1


def test_a_script_broken_on_disk_keeps_the_mail(office):
    with_rules(office)
    path = os.path.join(office.data_dir, "mail", "example.test", "alice", "sieve", "rules.sieve")
    with open(path, "wb") as handle:
        handle.write(b'fileinto "x";')           # no require: it would not pass `sieve put`
    send(office, "statement")
    send(office, "another")
    office.appliance.wait_for_log(r"kept in the default folder, its active script cannot be read: line 1: "
                                  r"fileinto needs require", count=2)
    # Both kept, and alice told once (for this version of the script).
    notices = [stored for stored in office.inbox() if b"Subject: Your mail filter 'rules' failed" in stored]
    assert len(office.inbox()) == 3 and len(notices) == 1
    assert b"line 1: fileinto needs require" in notices[0] and b"kept in your INBOX" in notices[0]


def test_a_user_without_script_gets_mail_as_before(office):
    send(office, "statement")
    assert len(office.inbox()) == 1
    assert not any(re.search(r"\bsieve \S+ for ", line) for line in office.appliance.lines)


def test_the_admin_commands(office):
    refused = sieve(office, "put", ALICE, "bad", "-", script=b'require "fileinto";\nfileinto;\n')
    assert refused.returncode == 1 and b"line 2: fileinto needs 1 arguments" in refused.stderr
    assert b"has no Sieve scripts" in sieve(office, "list", ALICE).stdout
    assert sieve(office, "put", ALICE, "rules", "-", script=RULES).returncode == 0
    assert sieve(office, "put", ALICE, "other", "-", script=b"keep;\n").returncode == 0
    assert sieve(office, "activate", ALICE, "rules").returncode == 0
    assert sieve(office, "list", ALICE).stdout == b"other\nrules  (active)\n"
    assert sieve(office, "show", ALICE, "rules").stdout == RULES
    refused = sieve(office, "delete", ALICE, "rules")
    assert refused.returncode == 1 and b"is the active script" in refused.stderr
    assert sieve(office, "activate", ALICE).returncode == 0
    assert sieve(office, "delete", ALICE, "rules").returncode == 0
    assert sieve(office, "list", ALICE).stdout == b"other\n"
    for arguments, error in ((("show", ALICE, "gone"), b"there is no script 'gone'"),
                             (("list", "nobody@example.test"), b"no user nobody@example.test"),
                             (("show", ALICE, "../../users"), b"is not a script name")):
        refused = sieve(office, *arguments)
        assert refused.returncode == 1 and error in refused.stderr, refused.stderr


# -- what a script sends ---------------------------------------------------------------------

def test_redirect_forwards_with_srs_and_the_bounce_finds_its_way_back(connected_office, world):
    office = with_rules(connected_office, b'redirect "friend@good.test";\n')
    send(office, "forward me", sender="someone@good.test")
    office.appliance.wait_for_log(r"sieve \S+ for alice@example.test: discarded; redirected to <friend@good.test>")
    office.appliance.wait_for_log(r"done, 1 delivered", timeout=30)
    [(envelope, wire)] = world.received()
    srs = envelope["sender"].strip("<>")
    assert re.fullmatch(r"SRS0=\w{6}=\w\w=good\.test=someone@example\.test", srs), srs
    assert envelope["recipients"] == ["friend@good.test"]
    assert wire.startswith(b"Delivered-To: alice@example.test\r\n") or b"\r\nDelivered-To: alice@example.test\r\n" in wire
    assert b"Return-Path:" not in wire          # the final delivery's field, never forwarded
    assert office.inbox() == []
    # The destination bounces it: the bounce goes to the SRS address, and on to the sender.
    client = office.smtp("smtp")
    client.sendmail("", [srs], b"From: MAILER-DAEMON@good.test\r\nSubject: failure\r\n\r\nbounced\r\n")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        client.sendmail("", [srs.replace("SRS0=", "SRS0=X")], b"Subject: forged\r\n\r\nx\r\n")
    client.quit()
    office.appliance.wait_for_log(r"done, 1 delivered", timeout=30, count=2)
    assert [envelope["recipients"] for envelope, _ in world.received()] == [["friend@good.test"], ["someone@good.test"]]


def test_a_redirect_loop_is_cut(office):
    with_rules(office, b'redirect "bob@example.test";\n')
    client = office.smtp("smtp")
    client.sendmail("x@remote.test", [ALICE], b"Delivered-To: alice@example.test\r\nSubject: again\r\n\r\nx\r\n")
    client.quit()
    office.appliance.wait_for_log(r"kept in the default folder, a redirect loop")
    assert len(office.inbox()) == 1 and office.inbox("bob") == []


def test_reject_tells_the_sender_and_stores_nothing(office):
    with_rules(office, b'require "reject";\nif header :contains "subject" "survey" { reject "No surveys, thank you."; }\n')
    client = office.smtp("submission", login="bob@example.test")
    client.sendmail("bob@example.test", [ALICE], imapclient.message("Quick survey", sender="bob@example.test"))
    client.quit()
    office.appliance.wait_for_log(r"sieve \S+ for alice@example.test: discarded; rejected, the sender told")
    assert office.inbox() == []
    [report] = office.inbox("bob")
    assert b"Content-Type: multipart/report; report-type=delivery-status" in report
    assert b"Status: 5.7.1" in report and b"No surveys, thank you." in report


VACATION = b'''require "vacation";
vacation :days 3 :subject "Away until Monday" "I am away; Carol handles urgent matters.";
'''


def test_vacation_answers_each_sender_once_and_never_a_list(office):
    with_rules(office, VACATION)
    client = office.smtp("submission", login="bob@example.test")
    for subject in ("first", "second"):
        client.sendmail("bob@example.test", [ALICE], imapclient.message(subject, sender="bob@example.test"))
    client.sendmail("bob@example.test", [ALICE], b"From: bob@example.test\r\nTo: alice@example.test\r\n"
                    b"List-Id: <staff.example.test>\r\nSubject: list mail\r\n\r\nx\r\n")
    client.quit()
    office.appliance.wait_for_log(r"sieve \S+ for alice@example.test: INBOX; vacation reply to <bob@example.test>")
    office.appliance.wait_for_log(r"no vacation reply: <bob@example.test> had one less than 3 days ago")
    office.appliance.wait_for_log(r"no vacation reply: it came through a mailing list")
    assert len(office.inbox()) == 3
    [reply] = office.inbox("bob")
    assert b"Subject: Away until Monday\r\n" in reply and b"Auto-Submitted: auto-replied" in reply
    assert b"In-Reply-To: <first@example.test>" in reply and reply.startswith(b"Return-Path: <>\r\n")
    assert b"I am away; Carol handles urgent matters." in reply
    state = os.path.join(office.data_dir, "mail", "example.test", "alice", "sieve", "vacation.json")
    assert os.path.exists(state)


def test_the_admin_sets_a_vacation_for_someone_else(office):
    with_rules(office)
    refused = admin_command(office, "vacation", ALICE, "on", script=b"Away.\n")
    assert refused.returncode == 1 and b"has the active script 'rules'" in refused.stderr
    text = b'Back on Monday.\n.\nAsk "Carol" meanwhile.\n'
    result = admin_command(office, "vacation", ALICE, "on", "--replace", "--subject", "Out of office", "--days", "2",
                         script=text)
    assert result.returncode == 0, result.stderr
    assert sieve(office, "list", ALICE).stdout == b"rules\nvacation  (active)\n"
    client = office.smtp("submission", login="bob@example.test")
    client.sendmail("bob@example.test", [ALICE], imapclient.message("hello", sender="bob@example.test"))
    client.quit()
    [reply] = office.inbox("bob")
    assert b"Subject: Out of office\r\n" in reply and b'Back on Monday.\r\n.\r\nAsk "Carol" meanwhile.' in reply
    assert admin_command(office, "vacation", ALICE, "off").stdout == (
        b"vacation reply off for alice@example.test; script rules is active again\n")
    assert sieve(office, "list", ALICE).stdout == b"rules  (active)\n"


def test_include_of_a_personal_and_a_global_script(office):
    assert sieve(office, "put", ALICE, "finance", "-", script=b'require "fileinto";\n'
                 b'if address :domain :is "from" "bank.test" { fileinto "Finance"; }\n').returncode == 0
    global_dir = os.path.join(office.data_dir, "sieve-global")
    os.makedirs(global_dir)
    with open(os.path.join(global_dir, "newsletters.sieve"), "wb") as handle:
        handle.write(b'require "fileinto";\nif header :contains "subject" "newsletter" { fileinto "Archive"; }\n')
    with_rules(office, b'require "include";\ninclude "finance";\ninclude :global "newsletters";\n')
    send(office, "statement")
    office.appliance.wait_for_log(r"sieve \S+ for alice@example.test: Finance$")
    send(office, "weekly newsletter", sender="news@remote.test")
    office.appliance.wait_for_log(r"sieve \S+ for alice@example.test: Archive$")
