"""The Dovecot takeover against a real Dovecot (Debian's dovecot-imapd).

Dovecot is started by the test (`dovecot -F -c CONFIG`, its own base_dir, 127.0.0.1 on a free port,
passwd-file passdb, static userdb, Maildir++), mail is appended, flagged and expunged over IMAP,
and what Dovecot shows is recorded.  Then Dovecot stops, `mailbox-appliance-admin import-dovecot`
takes the tree over, and the appliance must show the same UIDVALIDITY, UIDNEXT, UIDs, flags and
keywords, and accept the Dovecot passwords.  Last, Dovecot serves the tree again after the
appliance changed it, and must show what the appliance showed: the files stayed Dovecot's.
"""

import imaplib
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from appliance import Appliance, admin, write_config
from dovecot_server import DOVEADM, DOVECOT, Dovecot as DovecotServer, chown_tree
from imapclient import TIMEOUT_SECONDS, connect
USERS = {"alice@dovecot.test": ("BLF-CRYPT", "alice's pw"), "bob@dovecot.test": ("SHA512-CRYPT", "bob's pw")}
FOLDERS = {"alice@dovecot.test": ("INBOX", "Work.Projects"), "bob@dovecot.test": ("INBOX",)}
FETCHED = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)")


@pytest.fixture
def place():
    """A directory Dovecot's unprivileged mail processes can reach (tmp_path is private to root),
    holding the Dovecot tree and the appliance's data: one file system, as the import needs."""
    if DOVECOT is None or DOVEADM is None:
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed: CI must apt-get install dovecot-imapd")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd); CI runs this test")
    directory = tempfile.mkdtemp(prefix="dovecot-takeover-")
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory)


class Dovecot(DovecotServer):
    """The shared launcher, with a login as this test's users."""

    def login(self, address):
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=TIMEOUT_SECONDS)
        client.login(address, USERS[address][1])
        return client


def _passwd_file(place):
    path = os.path.join(place, "dovecot-users")
    with open(path, "w") as handle:
        for address, (scheme, password) in USERS.items():
            stored = subprocess.run([DOVEADM, "pw", "-s", scheme, "-p", password], capture_output=True,
                                    text=True, check=True, timeout=60).stdout.strip()
            assert stored.startswith("{%s}" % scheme), stored
            handle.write(f"{address}:{stored}::::::\n")
    return path


def _ok(reply):
    kind, data = reply
    assert kind == "OK", (kind, data)
    return data


def _fill_dovecot(dovecot):
    """Mail, flags, keywords and expunged UIDs (gaps, and a lost highest UID) written by Dovecot."""
    alice = dovecot.login("alice@dovecot.test")
    _ok(alice.create("Work.Projects"))
    for flags in (None, r"(\Seen $Label1 Custom)", r"(\Flagged)", r"(\Draft $Label1)"):
        _ok(alice.append("INBOX", flags, None, b"Subject: inbox\r\n\r\nbody\r\n"))
    for flags in (r"(\Seen $Junk)", r"(\Answered)"):
        _ok(alice.append("Work.Projects", flags, None, b"Subject: work\r\n\r\nbody\r\n"))
    _ok(alice.select("INBOX"))
    _ok(alice.uid("STORE", "1", "+FLAGS", r"(\Answered $Forwarded)"))
    _ok(alice.uid("STORE", "3", "+FLAGS", r"(\Deleted)"))
    _ok(alice.expunge())
    _ok(alice.select("Work.Projects"))
    _ok(alice.uid("STORE", "2", "+FLAGS", r"(\Deleted)"))
    _ok(alice.expunge())
    alice.logout()
    bob = dovecot.login("bob@dovecot.test")
    _ok(bob.append("INBOX", r"(\Seen)", None, b"Subject: bob\r\n\r\nbody\r\n"))
    bob.logout()


def _state(client, address):
    """{folder: (UIDVALIDITY, UIDNEXT, {uid: flags without \\Recent})} as the server shows them."""
    state = {}
    for folder in FOLDERS[address]:
        (status,) = _ok(client.status(folder, "(UIDVALIDITY UIDNEXT MESSAGES)"))
        numbers = dict(re.findall(rb"(UIDVALIDITY|UIDNEXT|MESSAGES) (\d+)", status))
        _ok(client.select(folder, readonly=True))
        messages = {}
        if int(numbers[b"MESSAGES"]):
            for item in _ok(client.uid("FETCH", "1:*", "(FLAGS)")):
                match = FETCHED.search(item)
                uid, flags = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
                messages[int(uid)] = frozenset(flags.split()) - {rb"\Recent"}
        state[folder] = (int(numbers[b"UIDVALIDITY"]), int(numbers[b"UIDNEXT"]), messages)
        _ok(client.close())
    return state


def _dovecot_files(maildir):
    """The bytes of every dovecot-uidlist and dovecot-keywords under *maildir*, by relative path."""
    found = {}
    for directory, _, file_names in os.walk(maildir):
        for name in file_names:
            if name in ("dovecot-uidlist", "dovecot-keywords"):
                path = os.path.join(directory, name)
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, maildir)] = handle.read()
    return found


def _appliance_login(appliance, address):
    client = connect(appliance, "imaps")
    client.login(address, USERS[address][1])
    return client


def test_takeover_keeps_uids_flags_keywords_and_passwords(place):
    dovecot_root = os.path.join(place, "vmail")
    passwd = _passwd_file(place)
    dovecot = Dovecot(place, dovecot_root, passwd)
    try:
        _fill_dovecot(dovecot)
        before = {}
        for address in USERS:
            client = dovecot.login(address)
            before[address] = _state(client, address)
            client.logout()
    finally:
        assert dovecot.stop() == 0, "".join(dovecot.lines)
    assert sorted(before["alice@dovecot.test"]["INBOX"][2]) == [1, 2, 4]     # the expunged UID 3 stays a gap
    assert before["alice@dovecot.test"]["Work.Projects"][1] == 3             # UID 2 was the highest, expunged
    alice_files = _dovecot_files(os.path.join(dovecot_root, "dovecot.test", "alice"))
    assert "dovecot-keywords" in alice_files and ".Work.Projects/dovecot-keywords" in alice_files

    # What the admin does first (docs/dovecot-takeover.md): the tree becomes the service user's.
    chown_tree(dovecot_root, os.geteuid(), os.getegid())
    config_path = write_config(place, listeners=("imaps",), domains="office.test")
    data_dir = os.path.join(place, "data")
    dry = admin(config_path, "import-dovecot", "--mail-root", dovecot_root, "--passwd-file", passwd, "--dry-run")
    assert dry.returncode == 0, dry.stderr + dry.stdout
    inbox_uidvalidity = before["alice@dovecot.test"]["INBOX"][0]
    assert "would add domains: dovecot.test" in dry.stdout
    assert f"INBOX: 3 message(s), UIDVALIDITY {inbox_uidvalidity}" in dry.stdout
    assert "keywords: $Label1 Custom $Forwarded" in dry.stdout
    assert "password SHA512-CRYPT (supported)" in dry.stdout
    assert not os.path.exists(os.path.join(data_dir, "mail")) and not os.path.exists(os.path.join(data_dir, "users"))

    done = admin(config_path, "import-dovecot", "--mail-root", dovecot_root, "--passwd-file", passwd)
    assert done.returncode == 0, done.stderr + done.stdout
    imported = os.path.join(data_dir, "mail", "dovecot.test", "alice")
    assert not os.path.exists(os.path.join(dovecot_root, "dovecot.test", "alice"))
    assert _dovecot_files(imported) == alice_files           # moved as they were, not rewritten

    appliance = Appliance(config_path, expected=("imaps",))
    try:
        for address in USERS:            # BLF-CRYPT and SHA512-CRYPT hashes made by doveadm log in
            client = _appliance_login(appliance, address)
            assert _state(client, address) == before[address]
            client.logout()
        # The appliance changes the mail; Dovecot must read the result back as the appliance shows it.
        client = _appliance_login(appliance, "alice@dovecot.test")
        _ok(client.append("INBOX", r"(\Seen Appliance)", None, b"Subject: later\r\n\r\nbody\r\n"))
        _ok(client.select("Work.Projects"))
        _ok(client.uid("STORE", "1", "+FLAGS", r"($Label2)"))
        after = _state(client, "alice@dovecot.test")
        client.logout()
    finally:
        appliance.stop()
    assert after["INBOX"][2][before["alice@dovecot.test"]["INBOX"][1]] == {rb"\Seen", b"Appliance"}

    dovecot = Dovecot(place, os.path.join(data_dir, "mail"), passwd)
    try:
        client = dovecot.login("alice@dovecot.test")
        assert _state(client, "alice@dovecot.test") == after
        client.logout()
    finally:
        assert dovecot.stop() == 0, "".join(dovecot.lines)
