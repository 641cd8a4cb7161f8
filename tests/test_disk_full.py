"""A full disk (issue 20 #3): every protocol says so and goes on; nothing is lost or half-written;
once there is room again the appliance works without a restart.

The data directory is a 4 MB tmpfs (CI runs as root); a filler file takes what is left.
"""

import os
import smtplib
import subprocess

import pytest

import imapclient
from appliance import admin
from conftest import Office
from fuzzing import tracebacks

NO_ROOM = b"Not enough disk space on the server; try again later"


@pytest.fixture
def full_disk_office(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(data)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("needs root to mount a small tmpfs: " + mounted.stderr.decode(errors="replace"))
    office = Office(str(tmp_path)).start()
    try:
        yield office
    finally:
        office.appliance.stop()
        subprocess.run(["umount", str(data)], check=True)


def _fill(path):
    with open(path, "wb") as filler:
        try:
            while True:
                filler.write(b"x" * 65536)
                filler.flush()
        except OSError:
            pass


def _files(maildir):
    return sorted(os.path.join(folder, name) for folder, _dirs, names in os.walk(maildir)
                  for name in names if os.path.basename(folder) in ("new", "cur", "tmp"))


def test_a_full_disk_is_answered_and_nothing_is_lost(full_disk_office):
    office = full_disk_office
    session = imapclient.Session(office)
    originals = [imapclient.message(f"kept {number}") for number in range(3)]
    for message in originals:
        session.ok(b"APPEND INBOX {%d+}\r\n" % len(message) + message)
    session.ok(b"SELECT INBOX")
    # Queued for a remote address (through the alias partners@, to a port where nothing answers).
    office.smtp().sendmail("bob@remote.test", ["partners@example.test"], imapclient.message("queued"))
    office.appliance.wait_for_log(r"queue \w+: attempt 1: .*; 1 pending")
    [queued] = office.queued()
    session.ok(b"NOOP")
    maildir = os.path.join(office.data_dir, "mail")
    before = _files(maildir)
    filler = os.path.join(office.data_dir, "filler")
    _fill(filler)

    message = imapclient.message("no room")
    answer = session.command(b"APPEND INBOX {%d+}\r\n" % len(message) + message)[-1]
    assert answer.split(None, 1)[1] == b"NO [OVERQUOTA] " + NO_ROOM + b"\r\n"
    assert session.command(b"COPY 1 Trash")[-1].split(None, 1)[1] == b"NO [OVERQUOTA] " + NO_ROOM + b"\r\n"
    assert session.command(b"STORE 1 +FLAGS ($Label1)")[-1].split(None, 1)[1] == b"NO [UNAVAILABLE] " + NO_ROOM + b"\r\n"
    client = smtplib.SMTP("127.0.0.1", office.ports["smtp"], timeout=30)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("bob@remote.test", ["alice@example.test"], message)
    assert refused.value.smtp_code == 452
    assert _files(maildir) == before                 # nothing half-written left or published
    # A delivery attempt whose outcome cannot be written is tried again; the entry stays.
    admin(office.config_path, "queue", "flush")
    office.appliance.wait_for_log(rf"queue {queued.id}: attempt not recorded: \[Errno 28\] No space left on device")
    assert [entry.id for entry in office.queued()] == [queued.id]
    session.ok(b"NOOP")                              # the session goes on
    assert tracebacks(office.appliance.lines) == []
    office.appliance.wait_for_log(r"imap session \w+: APPEND failed: \[Errno 28\] No space left on device")

    os.unlink(filler)                                # room again: no restart needed
    session.ok(b"APPEND INBOX {%d+}\r\n" % len(message) + message)
    session.ok(b"STORE 1 +FLAGS ($Label1)")
    client.sendmail("bob@remote.test", ["alice@example.test"], imapclient.message("room again"))
    client.quit()
    admin(office.config_path, "queue", "flush")
    # The unrecorded attempt does not count: this one is the second again, and recorded.
    office.appliance.wait_for_log(rf"queue {queued.id}: attempt 2: .*; 1 pending")
    fetched = b"".join(session.ok(b"FETCH 1:3 BODY.PEEK[]"))
    assert all(original in fetched for original in originals)
    assert tracebacks(office.appliance.lines) == []
