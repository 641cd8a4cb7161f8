"""Sieve at delivery, against a running appliance: scripts stored with the admin command, mail
over SMTP, the result read from the Maildir and over IMAP (issue 17)."""

import os
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


def sieve(office, *arguments, script=None):
    return subprocess.run([ADMIN, "--config", office.config_path, "sieve", *arguments], input=script,
                          capture_output=True, timeout=60)


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
    office.appliance.wait_for_log(r"sieve \S+ for alice@example.test: discarded by the script")
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
    office.appliance.wait_for_log(r"kept in the default folder, its active script cannot be read: line 1: "
                                  r"fileinto needs require")
    assert len(office.inbox()) == 1


def test_a_user_without_script_gets_mail_as_before(office):
    send(office, "statement")
    assert len(office.inbox()) == 1
    assert not any("sieve" in line for line in office.appliance.lines)


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
