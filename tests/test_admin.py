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
    _ok(admin(config_path, "user", "add", "x@office.test", password="pw"))
    _fails(admin(config_path, "domain", "del", "office.test"), "still has 1 user(s)")
    _ok(admin(config_path, "user", "del", "x@office.test"))
    _ok(admin(config_path, "domain", "del", "office.test"))
    assert _ok(admin(config_path, "domain", "list")).split() == ["example.test"]


def test_user_round_trip_creates_the_maildir(config_path, tmp_path):
    out = _ok(admin(config_path, "user", "add", "Alice@example.test", password="first"))
    assert "added user alice@example.test" in out
    maildir = tmp_path / "data" / "mail" / "example.test" / "alice"
    for folder in ("", ".Sent", ".Drafts", ".Trash", ".Junk", ".Archive"):
        for sub in ("cur", "new", "tmp"):
            assert (maildir / folder / sub).is_dir(), folder + "/" + sub
    users = (tmp_path / "data" / "users").read_text()
    assert users.startswith("alice@example.test:{ARGON2ID}$argon2id$") and "first" not in users
    assert _ok(admin(config_path, "user", "list")).splitlines() == ["alice@example.test  0 of no limit"]
    _fails(admin(config_path, "user", "add", "alice@example.test", password="again"), "exists already")
    _fails(admin(config_path, "user", "add", "bob@elsewhere.test", password="pw"), "elsewhere.test is not a domain of this server")
    _fails(admin(config_path, "user", "add", "no-at-sign", password="pw"), "is not a mail address")
    _fails(admin(config_path, "user", "add", "bob@example.test", password=""), "empty password")
    _ok(admin(config_path, "user", "passwd", "alice@example.test", password="second"))
    assert (tmp_path / "data" / "users").read_text() != users
    _fails(admin(config_path, "user", "passwd", "nobody@example.test", password="x"), "no user nobody@example.test")
    assert "the mail stays in" in _ok(admin(config_path, "user", "del", "alice@example.test"))
    assert maildir.is_dir()
    assert _ok(admin(config_path, "user", "list")).strip() == ""
    _fails(admin(config_path, "user", "del", "alice@example.test"), "no user alice@example.test")


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


def test_concurrent_edits_lose_nothing(config_path):
    names = [f"user{number}@example.test" for number in range(8)]
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(lambda name: admin(config_path, "user", "add", name, password="pw"), names))
    assert all(result.returncode == 0 for result in results), [r.stderr for r in results]
    assert [line.split()[0] for line in _ok(admin(config_path, "user", "list")).splitlines()] == sorted(names)


def test_check_config(config_path, tmp_path):
    out = _ok(admin(config_path, "check-config"))
    assert f"configuration {config_path}: OK" in out
    assert "listener imaps: tcp:0:interface=127.0.0.1 (TLS)" in out
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
    assert not _imap_login(port, "alice@example.test", "first")
    _ok(admin(config_path, "user", "add", "alice@example.test", password="first"))
    assert _imap_login(port, "alice@example.test", "first")
    assert not _imap_login(port, "alice@example.test", "wrong")
    assert not _imap_login(port, "nobody@example.test", "first")
    _ok(admin(config_path, "user", "passwd", "alice@example.test", password="second"))
    assert not _imap_login(port, "alice@example.test", "first")
    assert _imap_login(port, "alice@example.test", "second")
    _ok(admin(config_path, "user", "del", "alice@example.test"))
    assert not _imap_login(port, "alice@example.test", "second")


def test_sighup_rereads_the_account_files_and_keeps_running(config_path, appliance):
    import signal

    appliance.process.send_signal(signal.SIGHUP)
    appliance.wait_for_log("SIGHUP: users, aliases and domains files re-read")
    _ok(admin(config_path, "user", "add", "carol@example.test", password="pw"))
    assert _imap_login(appliance.ports["imaps"], "carol@example.test", "pw")
