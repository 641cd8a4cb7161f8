"""IMAP folder commands over a real socket: LIST, CREATE, RENAME, DELETE, subscriptions, names."""

import os

import imapclient


def listed(session, command=b'LIST "" "*"'):
    """{name: attributes} from LIST or LSUB."""
    result = {}
    for line in session.ok(command)[:-1]:
        attributes, _, name = line.rstrip(b"\r\n").partition(b') "." ')
        result[name.strip(b'"').decode()] = attributes.split(b"(", 1)[1].decode().split()
    return result


def test_list_shows_special_use_and_children(session):
    folders = listed(session)
    assert set(folders) == {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
    assert "\\Sent" in folders["Sent"] and "\\HasNoChildren" in folders["Sent"]
    assert "\\Junk" in folders["Junk"] and "\\Archive" in folders["Archive"]
    session.ok(b"CREATE Work.Projects.Big")
    folders = listed(session)
    assert folders["Work"] == ["\\Noselect", "\\HasChildren"]         # implied parent
    assert folders["Work.Projects.Big"] == ["\\HasNoChildren"]
    assert set(listed(session, b'LIST "" "%"')) == {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive", "Work"}
    assert set(listed(session, b'LIST "Work." "%"')) == {"Work.Projects"}
    assert set(listed(session, b'LIST "" "inbox"')) == {"INBOX"}
    assert session.ok(b'LIST "" ""')[0] == b'* LIST (\\Noselect) "." ""\r\n'


def test_create_rename_delete(session, office):
    maildir = os.path.join(office.data_dir, "mail", "example.test", "alice")
    session.ok(b"CREATE Work")
    session.ok(b"CREATE Work.Old")
    assert session.command(b"CREATE Work")[-1].split()[2] == b"[ALREADYEXISTS]"
    session.ok(b"SUBSCRIBE Work.Old")
    session.ok(b"RENAME Work Play")
    assert {"Play", "Play.Old"} <= set(listed(session)) and "Work" not in listed(session)
    assert set(listed(session, b'LSUB "" "Play*"')) == {"Play.Old"}
    assert os.path.isdir(os.path.join(maildir, ".Play.Old", "cur"))
    session.ok(b"DELETE Play")
    folders = listed(session)
    assert folders["Play"] == ["\\Noselect", "\\HasChildren"] and "Play.Old" in folders
    assert session.command(b"DELETE Play")[-1].split()[2] == b"[NONEXISTENT]"
    assert session.command(b"DELETE INBOX")[-1].split()[1] == b"NO"
    session.ok(b"DELETE Play.Old")
    assert "Play" not in listed(session)
    assert session.command(b"SELECT Play.Old")[-1].split()[1] == b"NO"


def test_names_are_stored_in_modified_utf7_as_sent(session, office):
    session.ok(b"CREATE Entw&APw-rfe")
    assert os.path.isdir(os.path.join(office.data_dir, "mail", "example.test", "alice", ".Entw&APw-rfe"))
    assert "Entw&APw-rfe" in listed(session)
    session.ok(b"SELECT Entw&APw-rfe")


HOSTILE_NAMES = [
    b"../bob", b'"../../bob"', b'"Work/Private"', b"Work..Old", b".hidden", b'"/etc"',
    b'"' + b"x" * 300 + b'"', b"Bad&-Name&", b"INBOX.Sub",
]


def test_hostile_folder_names_get_no_with_a_reason(session, office):
    for name in HOSTILE_NAMES:
        lines = session.command(b"CREATE " + name)
        words = lines[-1].split(None, 3)
        assert words[1] == b"NO" and len(words) == 4, (name, lines)
        for command in (b"SELECT %s", b"DELETE %s", b"RENAME Sent %s", b"STATUS %s (MESSAGES)"):
            assert session.command(command % name)[-1].split()[1] == b"NO", (command, name)
    mail = os.path.join(office.data_dir, "mail", "example.test")
    assert sorted(os.listdir(mail)) == ["alice"]
    assert sorted(os.listdir(os.path.join(mail, "alice"))) == sorted(
        [".Archive", ".Drafts", ".Junk", ".Sent", ".Trash", "cur", "new", "tmp", "subscriptions"])


def test_non_ascii_names_are_refused(session):
    lines = session.command("CREATE \"Entwürfe\"".encode())
    assert lines[-1].split()[1] == b"NO" and b"modified UTF-7" in lines[-1]


def test_one_user_never_sees_another(office):
    alice, bob = imapclient.Session(office), imapclient.Session(office, "bob")
    alice.ok(b"CREATE Secret")
    assert "Secret" not in listed(bob)
    assert bob.command(b"SELECT Secret")[-1].split()[1] == b"NO"
    assert bob.command(b"SELECT ../alice")[-1].split()[1] == b"NO"


def test_a_symlink_out_of_the_maildir_is_no_folder(session, office):
    """LIST takes a listed directory that is no symlink as it is; a symlink must resolve inside
    the Maildir (bob's folder linked into alice's Maildir is not hers to see)."""
    mail = os.path.join(office.data_dir, "mail", "example.test")
    imapclient.Session(office, "bob").ok(b"CREATE Private")
    os.symlink(os.path.join(mail, "bob", ".Private"), os.path.join(mail, "alice", ".Private"))
    os.symlink(os.path.join(mail, "alice", ".Archive"), os.path.join(mail, "alice", ".Old"))
    folders = listed(session)
    assert "Private" not in folders and "Old" in folders and "Archive" in folders
    assert session.command(b"SELECT Private")[-1].split()[1] == b"NO"
