"""import-dovecot's decisions that need no running Dovecot: hash labels, layouts it refuses and
why, users it refuses, and --dry-run changing nothing.  (test_dovecot_takeover.py runs the whole
takeover on Maildirs a real Dovecot wrote.)"""

import os
import shutil
import tempfile

import pytest

from appliance import write_config
from mailbox_appliance import config
from mailbox_appliance.dovecot_import import TakeoverError, labelled_hash, take_over
from mailbox_appliance.maildir.layout import make_maildir
from mailbox_appliance.maildir.uidlist import UidList

BCRYPT = "$2y$05$aML677g12stxw99mXxGfOejc8TQf.UmNxRtXyEZ9eHUnS5265zP6G"


@pytest.mark.parametrize("field, stored", [
    ("{BLF-CRYPT}" + BCRYPT, "{BLF-CRYPT}" + BCRYPT),
    (BCRYPT, "{BLF-CRYPT}" + BCRYPT),
    ("{CRYPT}$6$salt$hash", "{SHA512-CRYPT}$6$salt$hash"),
    ("$5$salt$hash", "{SHA256-CRYPT}$5$salt$hash"),
    ("{PLAIN}secret", "{PLAIN}secret"),
    ("abDES1234567", "{CRYPT}abDES1234567"),
])
def test_hashes_are_labelled_never_changed(field, stored):
    assert labelled_hash(field) == stored


@pytest.fixture
def site(tmp_path):
    """(settings, mail root, passwd-file path) with a Dovecot-shaped tree for alice."""
    settings = config.load(write_config(str(tmp_path), domains="office.test"))
    root = tmp_path / "vmail"
    alice = root / "example.test" / "alice"
    make_maildir(str(alice))
    make_maildir(str(alice / ".Work"), folder=True)
    (alice / "cur" / "1700000000.M1P1.host,S=5,W=6:2,Sa").write_bytes(b"x\n")
    (alice / "dovecot-keywords").write_text("0 $Label1\n")
    uidlist = UidList(str(alice), uidvalidity=1700000001)
    uidlist.assign(["1700000000.M1P1.host,S=5,W=6"])
    uidlist.save()
    passwd = tmp_path / "passwd"
    passwd.write_text(f"alice@example.test:{BCRYPT}:1000:1000::/home/alice::\n")
    return settings, str(root), str(passwd)


def test_dry_run_reports_and_changes_nothing(site):
    settings, root, passwd = site
    before = sorted(os.walk(root))
    outcome = take_over(settings, root, passwd, dry_run=True)
    assert outcome.complete
    assert "would add domains: example.test" in outcome.report
    assert "INBOX: 1 message(s), UIDVALIDITY 1700000001, next UID 2, keywords: $Label1" in outcome.report
    assert "Work: 0 message(s), no dovecot-uidlist: new UIDVALIDITY" in outcome.report
    assert sorted(os.walk(root)) == before
    assert not os.path.exists(settings.accounts.users_file)
    assert not os.path.exists(settings.accounts.domains_file)


def test_import_moves_and_then_leaves_the_user_alone(site):
    settings, root, passwd = site
    assert take_over(settings, root, passwd).complete
    target = os.path.join(settings.server.data_dir, "mail", "example.test", "alice")
    assert os.path.isfile(os.path.join(target, "cur", "1700000000.M1P1.host,S=5,W=6:2,Sa"))
    with open(settings.accounts.users_file) as handle:
        assert handle.read() == f"alice@example.test:{{BLF-CRYPT}}{BCRYPT}\n"
    again = take_over(settings, root, passwd)
    assert again.complete and "already a user here: left alone" in again.report


def test_home_with_a_maildir_inside_is_found(site, tmp_path):
    settings, root, passwd = site
    home = os.path.join(root, "example.test", "alice")
    os.rename(home, str(tmp_path / "moved"))
    os.makedirs(home)
    os.rename(str(tmp_path / "moved"), os.path.join(home, "Maildir"))
    assert f"Dovecot Maildir {home}/Maildir" in take_over(settings, root, passwd, dry_run=True).report


@pytest.mark.parametrize("spoil, reason", [
    (lambda alice: open(os.path.join(alice, "dovecot-uidlist.lock"), "w").close(), "stop Dovecot first"),
    (lambda alice: open(os.path.join(alice, "dovecot-uidlist"), "w").write("9 junk\n"), "broken UID list"),
    (lambda alice: make_maildir(os.path.join(alice, "Sent"), folder=True), "LAYOUT=fs"),
])
def test_users_are_refused_with_the_reason(site, spoil, reason):
    settings, root, passwd = site
    spoil(os.path.join(root, "example.test", "alice"))
    outcome = take_over(settings, root, passwd)
    assert not outcome.complete
    assert "REFUSED: " in outcome.report and reason in outcome.report
    assert os.path.isdir(os.path.join(root, "example.test", "alice"))
    assert not os.path.exists(settings.accounts.users_file)


def test_existing_target_and_bare_user_names_are_refused(site):
    settings, root, passwd = site
    os.makedirs(os.path.join(settings.server.data_dir, "mail", "example.test", "alice"))
    with open(passwd, "a") as handle:
        handle.write("carol:{PLAIN}pw\n")
    outcome = take_over(settings, root, passwd)
    assert "exists already; nothing is merged" in outcome.report
    assert "not a user@domain name" in outcome.report
    assert "password PLAIN (NOT supported here" in outcome.report


def test_a_maildir_without_a_passwd_entry_stays(site):
    settings, root, passwd = site
    make_maildir(os.path.join(root, "example.test", "dave"))
    outcome = take_over(settings, root, passwd)
    assert outcome.complete and "example.test/dave: no user in the passwd-file: left where it is" in outcome.report
    assert os.path.isdir(os.path.join(root, "example.test", "dave"))


@pytest.mark.parametrize("shape, explanation", [
    ("example.test/alice", "is itself one Maildir"),
    ("example.test", "straight under"),
])
def test_other_layouts_are_explained(site, shape, explanation):
    settings, root, passwd = site
    with pytest.raises(TakeoverError, match=explanation):
        take_over(settings, os.path.join(root, shape), passwd)


def test_dbox_is_explained(site):
    settings, root, passwd = site
    os.makedirs(os.path.join(root, "example.test", "bob", "mailboxes", "INBOX", "dbox-Mails"))
    with pytest.raises(TakeoverError, match="dbox mail store, not a Maildir; convert it first"):
        take_over(settings, root, passwd)


def test_another_file_system_is_refused_not_copied(site):
    _, root, passwd = site
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(root).st_dev:
        pytest.skip("no second file system (/dev/shm) to put the data_dir on")
    elsewhere = tempfile.mkdtemp(dir="/dev/shm")
    try:
        settings = config.load(write_config(elsewhere))
        outcome = take_over(settings, root, passwd)
    finally:
        shutil.rmtree(elsewhere)
    assert "are on different file systems, and mail is moved, never copied" in outcome.report
    assert os.path.isdir(os.path.join(root, "example.test", "alice"))
