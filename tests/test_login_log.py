"""What an admin (and fail2ban) reads about logins: a failed login names the user tried and the
client, never the password; a lockout's start and end are logged, with the logins refused during
it counted; the packaged fail2ban filter matches those lines, checked with fail2ban-regex."""

import imaplib
import os
import shutil
import subprocess

import pytest

import imapclient
from conftest import PASSWORD, Office

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
FILTER = os.path.join(ROOT, "packaging", "fail2ban", "filter.d", "mailbox-appliance.conf")
WRONG = "not-the-password-7f3"


@pytest.fixture
def locked_office(tmp_path):
    """An appliance that has locked 127.0.0.1 out (3 failures), and seen 2 more attempts."""
    office = Office(str(tmp_path), extra="[limits]\nlogin_failures = 3\nlogin_lockout = 3s\n").start()
    try:
        client = imapclient.connect(office, "imaps")
        for _ in range(3):
            with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                client.login("alice@example.test", WRONG)
        for _ in range(2):
            with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
                client.login("alice@example.test", PASSWORD)
        yield office
    finally:
        office.appliance.stop()


def test_failed_logins_and_the_lockout_are_logged(locked_office):
    log = locked_office.appliance
    failed = log.wait_for_log(r"imap session [0-9a-f]+ from 127\.0\.0\.1: login failed for alice@example\.test$",
                              count=3)
    assert failed
    log.wait_for_log(r"login lockout of 127\.0\.0\.1 for 3s after 3 failed logins")
    log.wait_for_log(r"login refused, 127\.0\.0\.1 is locked out")
    log.wait_for_log(r"login lockout of 127\.0\.0\.1 ended; 2 logins refused during it", timeout=15)
    assert WRONG not in "".join(log.lines) and PASSWORD not in "".join(log.lines)


@pytest.mark.skipif(shutil.which("fail2ban-regex") is None,
                    reason="fail2ban is not installed (CI installs it: apt-get install fail2ban)")
def test_the_fail2ban_filter_matches_the_real_lines(locked_office, tmp_path):
    locked_office.appliance.wait_for_log(r"login lockout of 127\.0\.0\.1 for")
    log_file = tmp_path / "appliance.log"
    log_file.write_text("".join(locked_office.appliance.lines))
    result = subprocess.run(["fail2ban-regex", "--print-all-matched", str(log_file), FILTER],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # Three failures and the lockout; nothing else (a successful login, the refusals) matches.
    assert "Failregex: 4 total" in result.stdout, result.stdout
    assert result.stdout.count("127.0.0.1") >= 4
