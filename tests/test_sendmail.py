"""The sendmail of local programs (mailbox-appliance-sendmail) and the appliance's pickup, driven the
way cron, PHP and an admin's scripts drive them: with the appliance up, and down (the message
waits in the maildrop and is delivered at the next start); hostile files in the maildrop are
refused, never delivered."""

import email.header
import os
import pwd
import subprocess

import pytest

from appliance import BIN
from conftest import Office
from mailbox_appliance.maildrop import entry as maildrop_entry
from mailbox_appliance.maildrop.headers import qualified_fields, with_from

SENDMAIL = os.path.join(BIN, "mailbox-appliance-sendmail")
LOGIN = pwd.getpwuid(os.getuid()).pw_name
CRON_MAIL = (b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> run-parts --report /etc/cron.daily\n"
             b"\nrun-parts: /etc/cron.daily/logrotate exited with return code 1\n.\nthe dot above is text\n")
PICKED_UP = r"pickup (\S+) from local user {login} \(uid {uid}\): "


def sendmail(office, *arguments, message=CRON_MAIL, config=True):
    command = [SENDMAIL, *(["-C", office.config_path] if config else []), *arguments]
    return subprocess.run(command, input=message, capture_output=True, timeout=60)


def maildrop(office):
    return os.path.join(office.data_dir, "maildrop")


def with_root_alias(office):
    with open(os.path.join(office.data_dir, "aliases"), "a") as handle:
        handle.write("root@example.test: alice@example.test\n")
    return office


@pytest.fixture
def office(tmp_path):
    running = with_root_alias(Office(str(tmp_path))).start()
    yield running
    running.appliance.stop()


def picked_up(office, count=1):
    return office.appliance.wait_for_log(PICKED_UP.format(login=LOGIN, uid=os.getuid()), count=count)


def test_cron_mail_reaches_roots_alias_while_the_appliance_runs(office):
    result = sendmail(office, "-t", "-oi")
    assert result.returncode == 0, result.stderr
    line = picked_up(office)
    assert "to=<root@example.test>" in line and "mailboxes=<alice@example.test>" in line
    [stored] = office.inbox()
    head, _, body = stored.partition(b"\r\n\r\n")
    assert b"From: Cron Daemon <root@example.test>\r\n" in head
    assert b"To: root@example.test\r\n" in head
    assert f"Return-Path: <{LOGIN}@example.test>".encode() in head
    assert f"(mailbox-appliance, from userid {os.getuid()})".encode() in head
    assert b"\r\nDate: " in head and b"\r\nMessage-ID: <" in head
    # -oi: the line "." is part of the text.
    assert body.endswith(b"code 1\r\n.\r\nthe dot above is text\r\n")
    assert os.listdir(maildrop(office)) == []


def test_mail_waits_in_the_maildrop_while_the_appliance_is_down(tmp_path):
    office = with_root_alias(Office(str(tmp_path)))
    os.makedirs(maildrop(office), mode=0o700)
    result = sendmail(office, "-t", "-i")
    assert result.returncode == 0, result.stderr
    assert len(os.listdir(maildrop(office))) == 1
    office.start()
    try:
        picked_up(office)
        assert len(office.inbox()) == 1
        assert os.listdir(maildrop(office)) == []
    finally:
        office.appliance.stop()


def test_recipients_sender_and_full_name_from_the_command_line(office):
    message = b"Subject: report\nBcc: bob@example.test\n\nfirst\n.\nnot sent\n"
    result = sendmail(office, "-t", "-f", "alice@example.test", "-F", "Nightly Job", "--", "sales@example.test",
                      message=message)
    assert result.returncode == 0, result.stderr
    picked_up(office)
    # sales is alice and bob; Bcc: names bob again: one copy each, and no Bcc: field.
    [alice] = office.inbox("alice")
    [bob] = office.inbox("bob")
    assert alice == bob
    assert b"Bcc" not in alice and b"Bcc" not in bob
    assert b"From: Nightly Job <alice@example.test>\r\n" in alice
    assert b"Return-Path: <alice@example.test>\r\n" in alice
    # Without -i a line "." ends the message.
    assert alice.endswith(b"\r\n\r\nfirst\r\n") and b"not sent" not in alice


def test_remote_recipients_are_queued(office):
    result = sendmail(office, "-oi", "someone@remote.test", message=b"Subject: out\n\nhello\n")
    assert result.returncode == 0, result.stderr
    line = picked_up(office)
    queue_id = line.split("pickup ", 1)[1].split()[0]
    [entry] = office.queued()
    assert entry.id == queue_id
    assert entry.sender == f"{LOGIN}@example.test"
    assert [recipient.address for recipient in entry.recipients] == ["someone@remote.test"]
    assert entry.received_from["session"] == "pickup" and entry.received_from["user"] == LOGIN


def test_an_unknown_recipient_is_reported_to_the_sender(office):
    result = sendmail(office, "-oi", "-f", "alice@example.test", "nobody@example.test", "bob@example.test",
                      message=b"Subject: two\n\nhello\n")
    assert result.returncode == 0, result.stderr
    line = picked_up(office)
    assert "unknown <nobody@example.test>" in line
    office.appliance.wait_for_log(r"report \S+ to <alice@example\.test> stored")
    assert len(office.inbox("bob")) == 1
    [report] = office.inbox("alice")
    assert b"Undelivered Mail Returned to Sender" in report
    assert b"Final-Recipient: rfc822; nobody@example.test" in report and b"Status: 5.1.1" in report


def test_files_not_made_by_the_command_are_refused(office, tmp_path):
    directory = maildrop(office)
    secret = os.path.join(office.data_dir, "users")
    os.symlink(secret, os.path.join(directory, "1.symlink"))
    copy = tmp_path / "copy"
    copy.write_bytes(b'{"version": 1, "sender": null, "full_name": null, "recipients": ["alice@example.test"]}\n'
                     b"Subject: linked\n\nx\n")
    os.link(copy, os.path.join(directory, "2.hardlink"))
    with open(os.path.join(directory, "3.garbage"), "wb") as handle:
        handle.write(b"not json\nSubject: x\n\nx\n")
    with open(os.path.join(directory, ".4.being-written"), "wb") as handle:
        handle.write(b"{")
    for name, reason in (("1.symlink", "a symbolic link"), ("2.hardlink", "a file with other links to it"),
                         ("3.garbage", "an envelope line that is not JSON")):
        office.appliance.wait_for_log(rf"pickup: {name} from uid \d+ removed, not delivered: {reason}")
    assert office.inbox() == []
    assert sorted(os.listdir(directory)) == [".4.being-written"]
    assert os.path.exists(secret) and copy.exists()


def test_usage_errors_say_what_is_wrong(office):
    no_recipients = sendmail(office, "-oi", message=b"Subject: x\n\nx\n")
    assert no_recipients.returncode == 64 and b"no recipients given" in no_recipients.stderr
    none_in_header = sendmail(office, "-t", message=b"Subject: x\n\nx\n")
    assert none_in_header.returncode == 65 and b"no recipients given" in none_in_header.stderr
    unknown_option = sendmail(office, "-Z", "root")
    assert unknown_option.returncode == 64 and b"option -Z not recognized" in unknown_option.stderr
    bad_sender = sendmail(office, "-f", "a b@c", "root")
    assert bad_sender.returncode == 64
    smtp_mode = sendmail(office, "-bs")
    assert smtp_mode.returncode == 64 and b"-bs is not supported" in smtp_mode.stderr
    assert os.listdir(maildrop(office)) == []


def test_a_message_over_the_size_limit_is_refused(tmp_path):
    office = Office(str(tmp_path), extra="[limits]\nmax_message_size = 1k\n")
    os.makedirs(maildrop(office))
    result = sendmail(office, "-oi", "root", message=b"Subject: big\n\n" + b"x" * 2000 + b"\n")
    assert result.returncode == 65 and b"message too big: more than 1024 octets" in result.stderr
    assert os.listdir(maildrop(office)) == []


def test_without_a_maildrop_it_says_where_it_looked(tmp_path):
    result = subprocess.run([SENDMAIL, "root"], input=b"x\n", capture_output=True, cwd=tmp_path, timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "MAILBOX_APPLIANCE_CONFIG"})
    assert result.returncode == 73
    assert b"cannot queue the message in ./mailbox-data/maildrop" in result.stderr
    assert b"pass -C CONFIG" in result.stderr


def test_mailq_and_newaliases(office):
    sendmail(office, "-oi", "someone@remote.test", message=b"Subject: out\n\nhello\n")
    picked_up(office)
    listing = sendmail(office, "-bp", message=b"")
    assert listing.returncode == 0
    assert f"from <{LOGIN}@example.test>".encode() in listing.stdout
    assert b"<someone@remote.test>" in listing.stdout
    aliases = sendmail(office, "-bi", message=b"")
    assert aliases.returncode == 0 and b"is read whenever it changes" in aliases.stdout


# -- pure logic ----------------------------------------------------------------------------------


def test_bare_names_in_address_fields_get_the_domain():
    message = (b"From: root (Cron Daemon)\r\nTo: root, bob@elsewhere.test\r\nCc: Team: a@b.test;\r\n"
               b"Subject: To: root\r\n\r\nTo: body\r\n")
    qualified = qualified_fields(message, "example.test")
    assert qualified.startswith(b"From: Cron Daemon <root@example.test>\r\nTo: root@example.test, bob@elsewhere.test\r\n")
    # A group is left as written; the subject and the body are not address fields.
    assert b"Cc: Team: a@b.test;\r\n" in qualified and b"Subject: To: root\r\n" in qualified
    assert qualified.endswith(b"\r\n\r\nTo: body\r\n")
    plain = b"From: a@b.test\r\n\r\nx"
    assert qualified_fields(plain, "example.test") == plain


def test_a_missing_from_names_the_user():
    first, rest = with_from(b"Subject: x\r\n\r\n", "www-data@example.test", "Jos\u00e9").split(b"\r\n", 1)
    assert first.startswith(b"From: =?utf-8?") and rest == b"Subject: x\r\n\r\n"
    decoded = email.header.make_header(email.header.decode_header(first.decode("ascii")[len("From: "):]))
    assert str(decoded) == "Jos\u00e9 <www-data@example.test>"
    assert with_from(b"From: a@b\r\n\r\n", "w@e", None) == b"From: a@b\r\n\r\n"


def test_entries_round_trip_and_bad_envelopes_are_refused(tmp_path):
    path = maildrop_entry.write(str(tmp_path), "", "Name", ["root", "a@b.test"], b"Subject: x\r\n\r\nbody")
    assert os.stat(path).st_mode & 0o777 == 0o644
    entry = maildrop_entry.read(path, 1000)
    assert (entry.uid, entry.sender, entry.full_name, entry.recipients, entry.message) == (
        os.getuid(), "", "Name", ("root", "a@b.test"), b"Subject: x\r\n\r\nbody")
    with pytest.raises(maildrop_entry.Refused, match="over the message size limit"):
        maildrop_entry.read(path, 5)
    with pytest.raises(ValueError, match="full name with control characters"):
        maildrop_entry.write(str(tmp_path), None, "a\tb", ["root"], b"")
    with pytest.raises(ValueError, match="no recipients"):
        maildrop_entry.write(str(tmp_path), None, None, [], b"")
