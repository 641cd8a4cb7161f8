"""mbsync (isync) syncing alice's account both ways over IMAPS: a real client's whole dialogue
(LITERAL+ APPENDs, UIDPLUS, UID FETCH of flags, STORE) against the appliance.

mbsync trusts the appliance's self-signed certificate because CertificateFile names it (isync
accepts a server certificate found in that file whatever host name it carries).
"""

import email
import os
import shutil
import subprocess

import pytest

import imapclient
from conftest import PASSWORD

pytestmark = pytest.mark.skipif(shutil.which("mbsync") is None and not os.environ.get("CI"),
                                reason="mbsync (Debian package isync) is not installed")
SYNC_TIMEOUT_SECONDS = 120

CONFIG = """\
IMAPAccount office
Host 127.0.0.1
Port {port}
User alice@example.test
Pass "{password}"
SSLType IMAPS
CertificateFile {certificate}

IMAPStore office-remote
Account office

MaildirStore office-local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel office
Far :office-remote:
Near :office-local:
Patterns *
Create Both
Expunge Both
SyncState *
"""


def _mbsync(office, tmp_path):
    config = tmp_path / "mbsyncrc"
    config.write_text(CONFIG.format(port=office.ports["imaps"], password=PASSWORD, local=tmp_path / "local",
                                    certificate=os.path.join(office.data_dir, "tls", "certificate.pem")))
    # -Dn: mbsync prints the IMAP dialogue (after compression, as it reads and writes it).
    done = subprocess.run(["mbsync", "-Dn", "-c", str(config), "-a"], capture_output=True, text=True,
                          timeout=SYNC_TIMEOUT_SECONDS, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    # isync 1.4 asks for COMPRESS=DEFLATE (RFC 4978) whenever it is offered: the whole sync ran
    # compressed.
    assert "OK DEFLATE active" in done.stdout, done.stdout[-3000:]


def _local(tmp_path, folder):
    """{subject: flag letters} of the local Maildir folder."""
    found = {}
    for sub in ("new", "cur"):
        directory = tmp_path / "local" / folder / sub
        for name in os.listdir(directory):
            # mbsync stores with LF line ends.
            found[email.message_from_bytes((directory / name).read_bytes())["Subject"]] = name.partition(":2,")[2]
    return found


def _remote(client, folder):
    """{subject: flags} of the appliance's folder."""
    client.select(folder)
    typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK", data
    return {header.strip().decode()[9:]: label for label, header in data[::2]}


def test_mbsync_pulls_and_pushes_folders_messages_and_flags(office, tmp_path):
    (tmp_path / "local").mkdir()
    for subject in ("one", "two"):
        office.smtp().sendmail("bob@example.test", ["alice@example.test"], imapclient.message(subject))
    client = imapclient.login(office)
    client.create("Projects.2024")
    client.append("Archive", r"(\Flagged)", None, imapclient.message("kept"))

    _mbsync(office, tmp_path)
    assert set(_local(tmp_path, "INBOX")) == {"one", "two"}
    assert _local(tmp_path, "Archive") == {"kept": "F"}
    for folder in ("Sent", "Drafts", "Trash", "Junk", "Projects/2024"):     # "." is the separator
        assert (tmp_path / "local" / folder / "cur").is_dir(), folder

    # Near side: a new message and a flag change; far side: a flag change.
    (tmp_path / "local" / "INBOX" / "cur" / "1700000000.local.test:2,S").write_bytes(imapclient.message("three"))
    inbox = tmp_path / "local" / "INBOX"
    [one] = [path for path in [*(inbox / "new").iterdir(), *(inbox / "cur").iterdir()]
             if b"Subject: one" in path.read_bytes()]
    os.rename(one, inbox / "cur" / (one.name.partition(":2,")[0] + ":2,RS"))
    client.select("INBOX")
    [two] = client.search(None, "SUBJECT", "two")[1]
    client.store(two, "+FLAGS", r"(\Flagged)")

    _mbsync(office, tmp_path)
    remote = _remote(client, "INBOX")
    assert set(remote) == {"one", "two", "three"}
    assert b"\\Answered" in remote["one"] and b"\\Seen" in remote["one"]
    assert b"\\Seen" in remote["three"]
    assert _local(tmp_path, "INBOX")["two"] == "F"
    client.logout()
