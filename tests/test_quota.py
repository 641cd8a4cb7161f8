"""Quotas (RFC 9208 and issue 14): the admin sets a limit, IMAP reports it and refuses APPEND and
COPY past it with [OVERQUOTA], SMTP refuses with 452 4.2.2 at RCPT or after DATA for the full
mailboxes only, concurrent senders cannot both pass it, bounces and deletions are never refused."""

import re
import socket

import pytest

import imapclient
from appliance import admin
from conftest import Office

LIMIT = 64 * 1024


def _ok(result):
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def limited(tmp_path):
    """An office whose users may keep 64 KiB each (the [limits] default), alice holding nothing."""
    office = Office(str(tmp_path), extra="[limits]\ndefault_quota = 64k\n").start()
    yield office
    office.appliance.stop()


def _message(size, subject="big"):
    """A message of about *size* octets, in lines of 100."""
    return imapclient.message(subject=subject, body=("x" * 98 + "\r\n") * ((size - 200) // 100))


def _append(session, data, folder=b"INBOX"):
    return session.command(b"APPEND " + folder + b" {%d+}\r\n" % len(data) + data)[-1]


def test_quota_is_advertised_and_reported(limited):
    session = imapclient.Session(limited)
    try:
        capabilities = session.ok(b"CAPABILITY")[0]
        assert b" QUOTA " in capabilities and b" QUOTA=RES-STORAGE" in capabilities
        assert b" OK " in _append(session, _message(10_000))
        lines = session.ok(b"GETQUOTAROOT INBOX")
        assert lines[0] == b'* QUOTAROOT "INBOX" ""\r\n'
        assert re.fullmatch(rb'\* QUOTA "" \(STORAGE (10|11) 64\)\r\n', lines[1]), lines
        assert session.ok(b'GETQUOTA ""')[0] == lines[1]
        assert session.command(b'GETQUOTA "other"')[-1].split()[1:3] == [b"NO", b"[NONEXISTENT]"]
        assert re.search(rb"SIZE (\d+)", session.ok(b"STATUS INBOX (SIZE MESSAGES)")[0]).group(1) == b"%d" % len(
            limited.inbox()[0])
    finally:
        session.close()


def test_append_and_copy_past_the_quota_are_refused_and_deleting_makes_room(limited):
    session = imapclient.Session(limited)
    try:
        assert b" OK " in _append(session, _message(40_000))
        assert _append(session, _message(30_000)).split()[1:3] == [b"NO", b"[OVERQUOTA]"]
        session.ok(b"SELECT INBOX")
        assert session.command(b"COPY 1 Archive")[-1].split()[1:3] == [b"NO", b"[OVERQUOTA]"]
        session.ok(b"MOVE 1 Trash")                 # moving adds nothing: never refused
        session.ok(b"SELECT Trash")
        session.ok(b"STORE 1 +FLAGS.SILENT (\\Deleted)")
        session.ok(b"EXPUNGE")
        assert b" OK " in _append(session, _message(30_000))
    finally:
        session.close()


def test_admin_sets_and_lists_the_quota(limited):
    assert _ok(admin(limited.config_path, "user", "quota", "alice@example.test", "none")).strip() == (
        "quota of alice@example.test: no limit")
    session = imapclient.Session(limited)
    try:
        assert b" OK " in _append(session, _message(100_000))      # over the default: alice has none
        assert session.ok(b"GETQUOTAROOT INBOX")[:-1] == [b'* QUOTAROOT "INBOX"\r\n']
        _ok(admin(limited.config_path, "user", "quota", "alice@example.test", "200k"))
        assert b"(STORAGE 98 200)" in session.ok(b"GETQUOTAROOT INBOX")[1]
    finally:
        session.close()
    listing = _ok(admin(limited.config_path, "user", "list")).splitlines()
    assert listing[0].startswith("alice@example.test  97.") and listing[0].split("  ")[1].endswith("k of 200.0k")
    assert listing[1].split("  ")[:2] == ["bob@example.test", "0 of 64.0k"]
    assert "userdb_quota_rule=*:storage=204800" in open(f"{limited.data_dir}/users").read()
    assert admin(limited.config_path, "user", "quota", "alice@example.test", "lots").returncode != 0


def _smtp(office):
    sock = socket.create_connection(("127.0.0.1", office.ports["smtp"]), timeout=30)
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"220")

    def say(line):
        sock.sendall(line + b"\r\n")
        reply = reader.readline()
        while reply[3:4] == b"-":
            reply = reader.readline()
        return reply
    say(b"EHLO client.example.test")
    return sock, reader, say


def test_smtp_refuses_full_mailboxes_only(limited):
    limited.smtp().sendmail("carol@remote.test", ["alice@example.test"], _message(50_000))
    _sock, _reader, say = _smtp(limited)
    assert say(b"MAIL FROM:<carol@remote.test> SIZE=20000").startswith(b"250")
    assert say(b"RCPT TO:<alice@example.test>").startswith(b"452 4.2.2")      # the declared size does not fit
    assert say(b"RSET").startswith(b"250")
    # Without SIZE: both accepted at RCPT, then only bob gets it; the sender hears about alice.
    sock, reader, say = _smtp(limited)
    assert say(b"MAIL FROM:<bob@example.test>").startswith(b"250")
    assert say(b"RCPT TO:<alice@example.test>").startswith(b"250")
    assert say(b"RCPT TO:<bob@example.test>").startswith(b"250")
    assert say(b"DATA").startswith(b"354")
    assert say(_message(20_000, "shared") + b".").startswith(b"250")
    limited.appliance.wait_for_log(r"report \S+ to <bob@example.test> stored")
    # The transaction line names the mailboxes that got it: not the full one.
    limited.appliance.wait_for_log(r"from=<bob@example\.test> .*result=250 queued id=\S+ mailboxes=<bob@example\.test> "
                                   r"remote=-$")
    assert len(limited.inbox("alice")) == 1
    bob = limited.inbox("bob")
    assert any(b"Subject: shared" in m for m in bob)
    report = [m for m in bob if b"multipart/report" in m]
    assert len(report) == 1 and b"Final-Recipient: rfc822; alice@example.test" in report[0] and b"5.2.2" in report[0]
    # Alone, alice's copy is refused outright; a bounce (null sender) is never refused.
    client = limited.smtp()
    with pytest.raises(Exception) as refused:
        client.sendmail("bob@example.test", ["alice@example.test"], _message(20_000))
    assert "4.2.2" in str(refused.value)
    client.sendmail("", ["alice@example.test"], _message(20_000, "bounce"))
    assert len(limited.inbox("alice")) == 2


def test_two_concurrent_senders_cannot_both_pass_the_limit(limited):
    """Each message fits alone, not both: whichever ends its DATA first is stored, the other gets
    452 (they are checked and charged in one turn of the reactor)."""
    body = _message(25_000).replace(b"\r\n.", b"\r\n..")
    limited.smtp().sendmail("carol@remote.test", ["alice@example.test"], _message(20_000))
    sessions = []
    for _ in range(2):
        sock, reader, say = _smtp(limited)
        assert say(b"MAIL FROM:<carol@remote.test>").startswith(b"250")
        assert say(b"RCPT TO:<alice@example.test>").startswith(b"250")
        assert say(b"DATA").startswith(b"354")
        sock.sendall(body)
        sessions.append((sock, reader))
    for sock, _reader in sessions:
        sock.sendall(b"\r\n.\r\n")
    replies = sorted(reader.readline()[:9] for _sock, reader in sessions)
    assert replies == [b"250 2.0.0", b"452 4.2.2"]
    assert len(limited.inbox("alice")) == 2


@pytest.mark.parametrize("line, quota", [
    ("a@example.test:{X}h", None),
    ("a@example.test:{X}h::::::userdb_quota_rule=*:storage=1G", 1024**3),
    ("a@example.test:{X}h:1000:1000::/home/a::userdb_mail=maildir:~/M quota_rule=*:storage=512k", 512 * 1024),
    ("a@example.test:{X}h::::::userdb_quota_rule=*:storage=0", 0),
])
def test_the_users_file_carries_dovecots_quota_rule(line, quota):
    from mailbox_appliance.accounts.files import USERS

    address, entry = USERS.parse_line(line)
    assert entry.quota == quota
    # Rewritten with a new limit, every other field stays; Dovecot reads the same rule.
    changed = entry.line(address, quota=2048)
    assert USERS.parse_line(changed)[1].quota == 2048
    assert changed.split(":")[:6] == (line + ":::::").split(":")[:6]
    assert USERS.parse_line(entry.line(address, "{Y}new"))[1] == type(entry)("{Y}new", quota, entry.rest)
