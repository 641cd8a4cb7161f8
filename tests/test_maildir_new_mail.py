"""Atomic delivery: tmp/ -> fsync -> new/ -> fsync dir, and clean failure."""

import os

import pytest

from mailbox_appliance.atomic import sync_dir
from mailbox_appliance.maildir import layout, names, new_mail
from mailbox_appliance.message import crlf_size


@pytest.fixture
def maildir(tmp_path):
    path = tmp_path / "mail" / "example.com" / "alice"
    layout.create_user_maildir(path)
    return str(path)


def _ls(maildir, sub):
    return sorted(os.listdir(os.path.join(maildir, sub)))


def test_deliver_bytes_exactly(maildir):
    message = (b"From: a@example.com\nSubject: caf\xc3\xa9 \xff\xfe\n\n"
               + bytes(range(1, 256)) * 40 + b"\r\nlast line\n")
    name = new_mail.store(maildir, message, hostname="mx")
    assert _ls(maildir, "tmp") == []
    assert _ls(maildir, "new") == [name]
    with open(os.path.join(maildir, "new", name), "rb") as f:
        assert f.read() == message
    parsed = names.parse(name)
    assert parsed.size == len(message)
    assert parsed.crlf_size == crlf_size(message)
    assert parsed.crlf_size == len(message) + message.count(b"\n") \
        - message.count(b"\r\n")
    assert parsed.flags == ""


def test_deliver_crlf_message_has_w_equal_s(maildir):
    message = b"Subject: x\r\n\r\nhello\r\n"
    name = new_mail.store(maildir, message)
    parsed = names.parse(name)
    assert parsed.size == parsed.crlf_size == len(message)


def test_deliver_large_message(maildir):
    message = (b"x" * 76 + b"\n") * 300_000             # ~23 MB
    name = new_mail.store(maildir, message)
    path = os.path.join(maildir, "new", name)
    assert os.path.getsize(path) == len(message)
    assert names.parse(name).crlf_size == len(message) + 300_000


def test_many_deliveries_unique(maildir):
    got = {new_mail.store(maildir, b"m %d\n" % i) for i in range(200)}
    assert len(got) == 200
    assert len(_ls(maildir, "new")) == 200
    assert _ls(maildir, "tmp") == []


def test_group_commit_steps(maildir):
    tmps = [new_mail.write_tmp(maildir, b"msg %d\n" % i) for i in range(5)]
    assert len(_ls(maildir, "tmp")) == 5
    assert _ls(maildir, "new") == []
    published = [new_mail.publish(t) for t in tmps]
    sync_dir(os.path.join(maildir, "new"))
    assert _ls(maildir, "tmp") == []
    assert _ls(maildir, "new") == sorted(published)


def test_missing_maildir_raises_and_leaves_nothing(tmp_path):
    missing = tmp_path / "nobody"
    with pytest.raises(FileNotFoundError):
        new_mail.store(str(missing), b"hello\n")
    assert not missing.exists()


def test_publish_failure_cleans_tmp(maildir):
    # new/ vanished (e.g. the folder is being deleted): rename fails.
    os.rmdir(os.path.join(maildir, "new"))
    with pytest.raises(OSError):
        new_mail.store(maildir, b"hello\n")
    assert _ls(maildir, "tmp") == []
    assert not os.path.exists(os.path.join(maildir, "new"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory modes")
def test_readonly_tmp_raises_and_leaves_nothing(maildir):
    tmpdir = os.path.join(maildir, "tmp")
    os.chmod(tmpdir, 0o500)
    try:
        with pytest.raises(PermissionError):
            new_mail.store(maildir, b"hello\n")
    finally:
        os.chmod(tmpdir, 0o700)
    assert _ls(maildir, "new") == []
    assert _ls(maildir, "tmp") == []


def test_write_failure_removes_partial_tmp(maildir):
    # A real failure mid-write: data that cannot be turned into bytes
    # raises after the tmp file exists (memoryview of a non-buffer).
    class NotBytes:
        def __len__(self):
            return 3

        def count(self, _):
            return 0

    with pytest.raises(TypeError):
        new_mail.write_tmp(maildir, NotBytes())
    assert _ls(maildir, "tmp") == []
    assert _ls(maildir, "new") == []
