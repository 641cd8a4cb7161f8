"""Address resolution, account files and the cred checker, on real files."""

import pytest
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.task import Clock

from mailbox_appliance.accounts import files, passwords
from mailbox_appliance.accounts.checker import PasswordChecker
from mailbox_appliance.accounts.directory import Accounts


ALICE_HASH = passwords.hash_password("alice pw")
BOB_HASH = passwords.hash_password("bob pw")


@pytest.fixture
def accounts(tmp_path):
    (tmp_path / "users").write_text(
        "# office users\n"
        f"alice@example.test:{ALICE_HASH}\n"
        f"bob@example.test:{BOB_HASH}::::::extra dovecot fields\n"
        "carol@other.test:{BLF-CRYPT}$2y$05$aML677g12stxw99mXxGfOejc8TQf.UmNxRtXyEZ9eHUnS5265zP6G\n"
        "dave@example.test:{PLAIN-MD4}0123\n"
    )
    (tmp_path / "aliases").write_text(
        "sales@example.test: alice@example.test, bob@example.test\n"
        "team@example.test: sales@example.test, partner@remote.test\n"
        "loop1@example.test: loop2@example.test\n"
        "loop2@example.test: loop1@example.test\n"
        "@other.test: carol@other.test\n"
    )
    (tmp_path / "domains").write_text("other.test\n")
    return Accounts("mail.example.test", ["example.test"], str(tmp_path / "users"),
                    str(tmp_path / "aliases"), str(tmp_path / "domains"))


def test_domains_come_from_configuration_and_file(accounts):
    assert accounts.domains() == {"example.test", "other.test"}
    assert accounts.is_local_domain("EXAMPLE.test.")
    assert not accounts.is_local_domain("remote.test")


@pytest.mark.parametrize("address, local, remote", [
    ("alice@example.test", ("alice@example.test",), ()),
    ("Alice@Example.TEST", ("alice@example.test",), ()),
    ("alice+lists@example.test", ("alice@example.test",), ()),
    ("sales@example.test", ("alice@example.test", "bob@example.test"), ()),
    ("sales+q3@example.test", ("alice@example.test", "bob@example.test"), ()),
    ("team@example.test", ("alice@example.test", "bob@example.test"), ("partner@remote.test",)),
    ("anything@other.test", ("carol@other.test",), ()),
    ("someone@remote.test", (), ("someone@remote.test",)),
    # RFC 5321 §2.4: a local part elsewhere may be case-sensitive; it is relayed as given.
    (" John.Smith@Remote.Test", (), ("John.Smith@Remote.Test",)),
])
def test_resolution(accounts, address, local, remote):
    resolution = accounts.resolve(address)
    assert (resolution.local, resolution.remote) == (local, remote)


@pytest.mark.parametrize("address", ["nobody@example.test", "loop1@example.test", "+x@example.test"])
def test_unknown_local_addresses(accounts, address):
    assert accounts.resolve(address) is None


def test_may_send_as(accounts):
    assert accounts.may_send_as("alice@example.test", "alice@example.test")
    assert accounts.may_send_as("alice@example.test", "ALICE+news@example.test")
    assert accounts.may_send_as("alice@example.test", "sales@example.test")
    assert not accounts.may_send_as("alice@example.test", "bob@example.test")
    # A catch-all delivers to carol, but does not make every address of the domain hers.
    assert not accounts.may_send_as("carol@other.test", "ceo@other.test")


def test_edits_are_seen_without_restart(accounts, tmp_path):
    assert accounts.resolve("erin@example.test") is None
    files.edit(str(tmp_path / "users"), files.USERS, "erin@example.test", "erin@example.test:{ARGON2ID}x")
    assert accounts.resolve("erin@example.test").local == ("erin@example.test",)
    # The comment and the extra Dovecot fields of other lines survive the rewrite.
    text = (tmp_path / "users").read_text()
    assert text.startswith("# office users\n") and "::::::extra dovecot fields" in text


def test_a_broken_edit_keeps_the_previous_version(accounts, tmp_path):
    with open(tmp_path / "users", "a") as handle:
        handle.write("this line is not a user\n")
    assert accounts.password_hash("alice@example.test") is not None


def test_a_broken_file_at_start_names_file_and_line(tmp_path):
    (tmp_path / "aliases").write_text("\n# fine\nsales@example.test:\n")
    with pytest.raises(files.FileFormatError, match=r"aliases line 3: aliases file: alias sales@example.test needs one or more target"):
        Accounts("h", ["example.test"], str(tmp_path / "users"), str(tmp_path / "aliases"), str(tmp_path / "domains"))


def _login(accounts, username, password, checker=None):
    checker = checker or PasswordChecker(accounts, run_in_thread=lambda function, *args: defer.maybeDeferred(function, *args),
                                         clock=Clock())
    outcome = []
    checker.requestAvatarId(UsernamePassword(username, password)).addBoth(outcome.append)
    return outcome[0]


def test_checker(accounts):
    assert _login(accounts, b"alice@example.test", b"alice pw") == "alice@example.test"
    assert _login(accounts, b"ALICE@example.test", b"alice pw") == "alice@example.test"
    assert _login(accounts, b"bob@example.test", b"bob pw") == "bob@example.test"
    # A Dovecot bcrypt hash ($2y$), verified as written by doveadm.
    assert _login(accounts, b"carol@other.test", b"pw") == "carol@other.test"
    for username, password in [(b"alice@example.test", b"wrong"), (b"nobody@example.test", b"alice pw"),
                               (b"dave@example.test", b"0123"), (b"\xff@example.test", b"x"),
                               (b"alice@example.test", b"")]:
        assert _login(accounts, username, password).check(UnauthorizedLogin), username


def test_password_hash_is_argon2id_in_dovecot_notation():
    stored = passwords.hash_password("s\u00e9cret")
    assert stored.startswith("{ARGON2ID}$argon2id$v=19$")
    assert passwords.verify(stored, "s\u00e9cret")
    assert not passwords.verify(stored, "secret")


# Written by Dovecot 2.3's `doveadm pw -s SCHEME` (the second with -r 10000).
SHA_CRYPT_HASHES = [
    ("{SHA512-CRYPT}$6$2CNoinf.ctgn6y7x$ymracysHx5ayV3RFG3hS/vvdfZk9yX9YkaT6eEyPWJetfcgr3nnvHiNXmH18HrliNhArJqkZu12WkREJMCHAq/",
     "p\u00e2ss word"),
    ("{SHA512-CRYPT}$6$rounds=10000$GgQOJ4OITAPXTwbV$QhnQ2BDuZdOsqGESZmPjd4crNfPSjQ23h.DRxj.bblORq0DuB4rf2YHc9r.eo2kNdapVaEvzfUZBgB0I2u5da1",
     "x"),
    ("{SHA256-CRYPT}$5$L6j3B7EwkOre5Obl$1rbxs5jqZiPz.ywieOd9pYJI4mwXQPyaepE6bkyAGPA", "p\u00e2ss word"),
]


@pytest.mark.skipif("SHA512-CRYPT" not in passwords.VERIFIERS,
                    reason="this Python has no crypt module with SHA-crypt (removed in Python 3.13)")
@pytest.mark.parametrize("stored, password", SHA_CRYPT_HASHES)
def test_dovecot_sha_crypt_hashes_verify_where_the_platform_can(stored, password):
    assert passwords.is_supported(stored)
    assert passwords.verify(stored, password)
    for wrong in (password + "!", "", "nul\0byte"):
        assert not passwords.verify(stored, wrong)


def test_sha_crypt_is_reported_unsupported_without_a_crypt_module():
    assert passwords.crypt_verifiers(None) == {}

    class Sha256Only:
        METHOD_SHA512, METHOD_SHA256 = "sha512", "sha256"
        methods = ["sha256"]

    assert list(passwords.crypt_verifiers(Sha256Only)) == ["SHA256-CRYPT"]


def test_is_supported_is_exactly_what_verify_can_check():
    for stored, _ in SHA_CRYPT_HASHES:
        assert passwords.is_supported(stored) == (passwords.scheme_of(stored) in passwords.VERIFIERS)
    assert not passwords.is_supported("{PLAIN-MD4}0123")
    assert not passwords.is_supported("$6$no-scheme-prefix")


def test_a_verified_password_is_remembered_for_a_while(accounts, tmp_path):
    checks = []

    def run(function, *args):
        checks.append(args)
        return defer.maybeDeferred(function, *args)

    clock = Clock()
    checker = PasswordChecker(accounts, run_in_thread=run, clock=clock)
    assert _login(accounts, b"alice@example.test", b"alice pw", checker) == "alice@example.test"
    assert _login(accounts, b"alice@example.test", b"alice pw", checker) == "alice@example.test"
    assert len(checks) == 1
    # A wrong password is always checked, and never matches what was remembered.
    assert _login(accounts, b"alice@example.test", b"alice pw!", checker).check(UnauthorizedLogin)
    assert len(checks) == 2
    clock.advance(301)
    _login(accounts, b"alice@example.test", b"alice pw", checker)
    assert len(checks) == 3
    # A new hash in the users file (password changed) is checked again at once.
    files.edit(str(tmp_path / "users"), files.USERS, "alice@example.test",
               f"alice@example.test:{BOB_HASH}")
    assert _login(accounts, b"alice@example.test", b"alice pw", checker).check(UnauthorizedLogin)
    assert _login(accounts, b"alice@example.test", b"bob pw", checker) == "alice@example.test"
    assert len(checks) == 5
