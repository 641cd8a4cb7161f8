"""Layout: per-user paths, special folders, subscriptions, and hostile folder names."""

import os

import pytest

from mailbox_appliance.maildir import layout


def test_user_maildir_path(tmp_path):
    assert layout.user_maildir(str(tmp_path), "example.com", "alice") == \
        os.path.join(str(tmp_path), "mail", "example.com", "alice")


@pytest.mark.parametrize("domain,localpart", [
    ("", "a"), ("a", ""), ("..", "a"), (".", "a"), ("a", ".."),
    ("ex/ample", "a"), ("a", "b/c"), ("a", "x\0"), ("a", "x" * 256),
    ("é" * 128, "a"),                       # 256 bytes in UTF-8
])
def test_user_maildir_rejects(tmp_path, domain, localpart):
    with pytest.raises(ValueError) as info:
        layout.user_maildir(str(tmp_path), domain, localpart)
    assert ("domain" in str(info.value)) or ("localpart" in str(info.value))


def test_create_user_maildir(tmp_path):
    root = tmp_path / "mail" / "example.com" / "bob"
    layout.create_user_maildir(root)
    for sub in ("cur", "new", "tmp"):
        assert (root / sub).is_dir()
    for folder in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
        fdir = root / ("." + folder)
        for sub in ("cur", "new", "tmp"):
            assert (fdir / sub).is_dir()
        assert (fdir / "maildirfolder").is_file()
        assert (fdir / "maildirfolder").stat().st_size == 0
    subs = (root / "subscriptions").read_bytes()
    assert subs == b"V\t2\n\nSent\nDrafts\nTrash\nJunk\nArchive\n"
    assert layout.read_subscriptions(root) == [
        ("Sent",), ("Drafts",), ("Trash",), ("Junk",), ("Archive",)]
    assert not [n for n in os.listdir(root) if ".tmp" in n]


def test_create_user_maildir_idempotent(tmp_path):
    root = tmp_path / "u"
    layout.create_user_maildir(root)
    (root / "new" / "1.2.h").write_bytes(b"keep me")
    layout.write_subscriptions(root, [("Sent",), ("Work", "Projects")])
    before = sorted(os.listdir(root))
    layout.create_user_maildir(root)
    layout.create_user_maildir(root)
    assert sorted(os.listdir(root)) == before
    assert (root / "new" / "1.2.h").read_bytes() == b"keep me"
    assert layout.read_subscriptions(root) == [("Sent",), ("Work", "Projects")]


def test_create_repairs_partial(tmp_path):
    root = tmp_path / "u"
    (root / ".Sent").mkdir(parents=True)
    layout.create_user_maildir(root)
    assert (root / ".Sent" / "cur").is_dir()
    assert (root / ".Sent" / "maildirfolder").exists()


def test_subscriptions_escaping_round_trip(tmp_path):
    names = [("a\tb", "c\nd"), ("x\001y",), ("INBOX",)]
    layout.write_subscriptions(tmp_path, names)
    assert (tmp_path / "subscriptions").read_bytes() == \
        b"V\t2\n\na\x01tb\tc\x01nd\nx\x011y\nINBOX\n"
    assert layout.read_subscriptions(tmp_path) == names


def test_subscriptions_version1(tmp_path):
    (tmp_path / "subscriptions").write_bytes(b"Sent\nWork.Projects\n")
    assert layout.read_subscriptions(tmp_path) == [("Sent",),
                                                   ("Work.Projects",)]


def test_folder_path_ok(tmp_path):
    md = str(tmp_path)
    assert layout.folder_path(md, "INBOX") == md
    assert layout.folder_path(md, "inbox") == md
    assert layout.folder_path(md, "Sent") == os.path.join(md, ".Sent")
    assert layout.folder_path(md, "Work.Projects") == \
        os.path.join(md, ".Work.Projects")
    assert layout.folder_path(md, "&AOk-t&AOk-") == \
        os.path.join(md, ".&AOk-t&AOk-")


@pytest.mark.parametrize("bad", [
    "../x", "a/b", "\x00", "..", ".", ".hidden", "x" * 300, "a..b", "a.",
    "", "/etc", "a\nb", "Work.", "a.../b", "é" * 128,
])
def test_folder_path_rejects_hostile(tmp_path, bad):
    with pytest.raises(layout.UnsafeFolderName) as info:
        layout.folder_path(str(tmp_path), bad)
    assert info.value.reason
    assert isinstance(info.value, ValueError)


def test_folder_path_rejects_symlink_escape(tmp_path):
    md = tmp_path / "md"
    outside = tmp_path / "outside"
    md.mkdir()
    outside.mkdir()
    os.symlink(outside, md / ".Evil")
    with pytest.raises(layout.UnsafeFolderName):
        layout.folder_path(str(md), "Evil")
