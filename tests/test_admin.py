"""mailbox-appliance-admin, run as the admin runs it, against real files and a running appliance."""

import concurrent.futures
import imaplib
import os
import ssl

from appliance import ADMIN, admin


def _ok(result):
    assert result.returncode == 0, result.stderr
    return result.stdout


def _fails(result, message):
    assert result.returncode == 1
    assert result.stderr.startswith("mailbox-appliance-admin: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_console_script_is_installed():
    assert os.access(ADMIN, os.X_OK)


def test_domain_round_trip(config_path):
    assert _ok(admin(config_path, "domain", "list")).split() == ["example.test"]
    assert "added domain office.test" in _ok(admin(config_path, "domain", "add", "Office.Test"))
    assert _ok(admin(config_path, "domain", "list")).split() == ["example.test", "office.test"]
    _fails(admin(config_path, "domain", "add", "not a domain"), "'not a domain' is not a domain name")
    _fails(admin(config_path, "domain", "del", "example.test"), "[server] domains; remove it there")
    _ok(admin(config_path, "user", "add", "x@office.test", password="long enough pw"))
    _fails(admin(config_path, "domain", "del", "office.test"), "still has 1 user(s)")
    _ok(admin(config_path, "user", "del", "x@office.test"))
    _ok(admin(config_path, "domain", "del", "office.test"))
    assert _ok(admin(config_path, "domain", "list")).split() == ["example.test"]


def test_user_round_trip_creates_the_maildir(config_path, tmp_path):
    out = _ok(admin(config_path, "user", "add", "Alice@example.test", password="first password"))
    assert "added user alice@example.test" in out
    maildir = tmp_path / "data" / "mail" / "example.test" / "alice"
    for folder in ("", ".Sent", ".Drafts", ".Trash", ".Junk", ".Archive"):
        for sub in ("cur", "new", "tmp"):
            assert (maildir / folder / sub).is_dir(), folder + "/" + sub
    users = (tmp_path / "data" / "users").read_text()
    assert users.startswith("alice@example.test:{ARGON2ID}$argon2id$") and "first" not in users
    assert _ok(admin(config_path, "user", "list")).splitlines() == ["alice@example.test  0 of no limit  never logged in"]
    _fails(admin(config_path, "user", "add", "alice@example.test", password="again and again"), "exists already")
    _fails(admin(config_path, "user", "add", "bob@elsewhere.test", password="long enough pw"), "elsewhere.test is not a domain of this server")
    _fails(admin(config_path, "user", "add", "no-at-sign", password="long enough pw"), "is not a mail address")
    _fails(admin(config_path, "user", "add", "bob@example.test", password=""), "empty password")
    _fails(admin(config_path, "user", "add", "bob@example.test", password="x"), "at least 8 characters")
    _fails(admin(config_path, "user", "add", "bob@example.test", password="Password123"), "most common")
    _ok(admin(config_path, "user", "passwd", "alice@example.test", password="second password"))
    assert (tmp_path / "data" / "users").read_text() != users
    _fails(admin(config_path, "user", "passwd", "nobody@example.test", password="xxx yyy zzz"), "no user nobody@example.test")
    assert "the mail stays in" in _ok(admin(config_path, "user", "del", "alice@example.test"))
    assert maildir.is_dir()
    assert _ok(admin(config_path, "user", "list")).strip() == ""
    _fails(admin(config_path, "user", "del", "alice@example.test"), "no user alice@example.test")


def test_the_first_user_receives_root_and_postmaster_mail(config_path):
    out = _ok(admin(config_path, "user", "add", "alice@example.test", password="long enough pw"))
    assert "mail for root@example.test goes to alice@example.test" in out
    assert "mail for postmaster@example.test goes to alice@example.test" in out
    assert "root@" not in _ok(admin(config_path, "user", "add", "bob@example.test", password="long enough pw"))
    assert _ok(admin(config_path, "alias", "list")).splitlines() == [
        "postmaster@example.test: alice@example.test", "root@example.test: alice@example.test"]
    deleted = admin(config_path, "user", "del", "alice@example.test")
    assert deleted.returncode == 0
    assert "warning: postmaster@example.test, root@example.test still point(s) to alice@example.test" in deleted.stderr


def test_password_never_from_argv_and_no_terminal_is_an_error(config_path):
    result = admin(config_path, "user", "add", "alice@example.test")
    _fails(result, "no terminal to ask the password on; pipe it in with --password-stdin")


def test_alias_round_trip(config_path):
    _ok(admin(config_path, "alias", "add", "sales@example.test", "alice@example.test", "bob@example.test"))
    _ok(admin(config_path, "alias", "add", "sales@example.test", "carol@remote.test"))
    _ok(admin(config_path, "alias", "add", "@example.test", "alice@example.test"))
    assert _ok(admin(config_path, "alias", "list")).splitlines() == [
        "@example.test: alice@example.test",
        "sales@example.test: alice@example.test, bob@example.test, carol@remote.test",
    ]
    _ok(admin(config_path, "alias", "del", "sales@example.test", "bob@example.test"))
    assert "sales@example.test: alice@example.test, carol@remote.test" in _ok(admin(config_path, "alias", "list"))
    _ok(admin(config_path, "alias", "del", "sales@example.test"))
    assert _ok(admin(config_path, "alias", "list")).splitlines() == ["@example.test: alice@example.test"]
    _fails(admin(config_path, "alias", "del", "sales@example.test"), "no alias sales@example.test")
    _fails(admin(config_path, "alias", "add", "x@remote.test", "a@example.test"), "remote.test is not a domain of this server")
    _fails(admin(config_path, "alias", "add", "x@example.test", "not-an-address"), "'not-an-address' is not a mail address")
    added = admin(config_path, "alias", "add", "team@example.test", "nobody@example.test", "someone@remote.test")
    assert added.returncode == 0 and "warning: nobody@example.test is no user or alias here" in added.stderr
    assert "someone@remote.test" not in added.stderr
    _fails(admin(config_path, "alias", "add", "crew@example.test", "nobody@example.test", "--strict"),
           "nobody@example.test is no user or alias here; nothing changed")
    assert "crew@" not in _ok(admin(config_path, "alias", "list"))


def test_concurrent_edits_lose_nothing(config_path):
    names = [f"user{number}@example.test" for number in range(8)]
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(lambda name: admin(config_path, "user", "add", name, password="long enough pw"), names))
    assert all(result.returncode == 0 for result in results), [r.stderr for r in results]
    assert [line.split()[0] for line in _ok(admin(config_path, "user", "list")).splitlines()] == sorted(names)


def _tree(directory):
    return sorted(os.path.relpath(os.path.join(root, name), directory)
                  for root, dirs, files in os.walk(directory) for name in dirs + files)


def test_check_config(config_path, tmp_path):
    before = _tree(tmp_path)
    out = _ok(admin(config_path, "check-config"))
    assert f"configuration {config_path}: OK" in out
    assert "listener imaps: tcp:0:interface=127.0.0.1 (TLS)" in out
    assert "a self-signed certificate will be made at the first start" in out
    assert _tree(tmp_path) == before, "check-config changed the disk"
    with open(config_path, "a") as handle:
        handle.write("[limits]\nmax_recipients = none\n")
    _fails(admin(config_path, "check-config"), f"{config_path}: [limits] max_recipients: expected a positive whole number")


def _imap_login(port, user, password):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context, timeout=30) as client:
        try:
            client.login(user, password)
        except imaplib.IMAP4.error:
            return False
        client.logout()
        return True


def test_edits_reach_the_running_appliance(config_path, appliance):
    port = appliance.ports["imaps"]
    assert not _imap_login(port, "alice@example.test", "first password")
    _ok(admin(config_path, "user", "add", "alice@example.test", password="first password"))
    assert _imap_login(port, "alice@example.test", "first password")
    assert not _imap_login(port, "alice@example.test", "wrong")
    assert not _imap_login(port, "nobody@example.test", "first password")
    _ok(admin(config_path, "user", "passwd", "alice@example.test", password="second password"))
    assert not _imap_login(port, "alice@example.test", "first password")
    assert _imap_login(port, "alice@example.test", "second password")
    _ok(admin(config_path, "user", "del", "alice@example.test"))
    assert not _imap_login(port, "alice@example.test", "second password")


def test_sighup_rereads_the_account_files_and_keeps_running(config_path, appliance):
    import signal

    appliance.process.send_signal(signal.SIGHUP)
    appliance.wait_for_log("SIGHUP: users, aliases and domains files re-read")
    _ok(admin(config_path, "user", "add", "carol@example.test", password="long enough pw"))
    assert _imap_login(appliance.ports["imaps"], "carol@example.test", "long enough pw")


def test_without_a_configuration_the_admin_refuses_to_guess_where_the_data_is(tmp_path):
    import subprocess
    env = {key: value for key, value in os.environ.items() if key != "MAILBOX_APPLIANCE_CONFIG"}
    result = subprocess.run([ADMIN, "queue", "list"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "no ./mailbox-data here" in result.stderr and "--config" in result.stderr
    assert os.listdir(tmp_path) == []
    (tmp_path / "mailbox-data").mkdir()          # where the demo runs: the admin works there
    assert subprocess.run([ADMIN, "user", "list"], cwd=tmp_path, env=env, capture_output=True,
                          timeout=60).returncode == 0
