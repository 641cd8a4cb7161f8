"""ManageSieve (RFC 5804) against a running appliance, with the clients users run: Debian's
sieve-connect and sievelib's client (Roundcube's managesieve plugin speaks the same), and raw
sockets for what those never send (issue 17)."""

import base64
import os
import shutil
import socket
import subprocess

import pytest
import sievelib.managesieve
from sievelib.managesieve import Client

import imapclient
from conftest import PASSWORD, Office, unverified_tls

ALICE = "alice@example.test"
SCRIPT = b'require ["fileinto"];\r\nif header :contains "subject" "invoice" { fileinto "Archive"; }\r\n'
SIEVE_CONNECT = shutil.which("sieve-connect")
FILTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "packaging", "fail2ban", "filter.d",
                      "mailbox-appliance.conf")


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    running = Office(str(tmp_path_factory.mktemp("managesieve")), extra="[limits]\nmax_connection_rate = 0\n").start()
    yield running
    running.appliance.stop()


def sieve_connect(office, *arguments, password=PASSWORD):
    """sieve-connect with the password on a pipe; the CompletedProcess."""
    read, write = os.pipe()
    os.write(write, password.encode() + b"\n")
    os.close(write)
    try:
        return subprocess.run([SIEVE_CONNECT, "--server", "127.0.0.1", "--port", str(office.ports["managesieve"]),
                               "--user", ALICE, "--passwordfd", str(read), "--notlsverify", "--authmech", "PLAIN",
                               *arguments], pass_fds=(read,), capture_output=True, timeout=60)
    finally:
        os.close(read)


class Raw:
    """A ManageSieve session spoken byte for byte."""

    def __init__(self, office):
        self.sock = socket.create_connection(("127.0.0.1", office.ports["managesieve"]), timeout=30)
        self.reader = self.sock.makefile("rb")
        self.greeting = self.response()

    def response(self):
        """Every line up to and including the OK, NO or BYE that ends a response."""
        lines = []
        while True:
            line = self.reader.readline()
            assert line, f"closed after {lines}"
            lines.append(line)
            if line.split(b" ", 1)[0].rstrip(b"\r\n") in (b"OK", b"NO", b"BYE"):
                return lines

    def command(self, data):
        self.sock.sendall(data + b"\r\n")
        return self.response()

    def starttls(self):
        assert self.command(b"STARTTLS")[-1].startswith(b"OK")
        self.sock = unverified_tls().wrap_socket(self.sock)
        self.reader = self.sock.makefile("rb")
        return self.response()


@pytest.mark.skipif(SIEVE_CONNECT is None, reason="sieve-connect is not installed (.ci/run installs it)")
def test_sieve_connect_uploads_activates_lists_and_downloads(office, tmp_path):
    local = tmp_path / "invoices.sieve"
    local.write_bytes(SCRIPT)
    result = sieve_connect(office, "--upload", "--localsieve", str(local), "--remotesieve", "invoices")
    assert result.returncode == 0, result.stderr
    assert sieve_connect(office, "--activate", "--remotesieve", "invoices").returncode == 0
    listed = sieve_connect(office, "--list")
    assert listed.returncode == 0 and listed.stdout == b'"invoices" ACTIVE\n', listed
    copy = tmp_path / "copy.sieve"
    assert sieve_connect(office, "--download", "--remotesieve", "invoices", "--localsieve", str(copy)).returncode == 0
    assert copy.read_bytes() == SCRIPT
    # ... and the script runs at delivery.
    client = office.smtp("smtp")
    client.sendmail("shop@remote.test", [ALICE], imapclient.message("Your invoice", sender="shop@remote.test"))
    client.quit()
    office.appliance.wait_for_log(r"sieve \S+ for alice@example.test: Archive")
    refused = sieve_connect(office, "--list", password="wrong password")
    assert refused.returncode != 0
    office.appliance.wait_for_log(r"managesieve session [0-9a-f]+ from 127\.0\.0\.1: login failed for alice@example\.test")


def test_sievelib_client_and_a_script_with_a_mistake(office, monkeypatch):
    # The client trusts the test's self-signed certificate, as sieve-connect does with --notlsverify.
    context = unverified_tls()
    monkeypatch.setattr(sievelib.managesieve.ssllib, "create_default_context", lambda: context)
    client = Client("127.0.0.1", office.ports["managesieve"])
    assert client.connect(ALICE, PASSWORD, starttls=True, authmech="PLAIN")
    assert "fileinto" in client.get_sieve_capabilities()
    assert not client.putscript("broken", 'require "fileinto";\nfileinto;\n')
    assert "line 2: fileinto needs 1 arguments" in client.errmsg.decode()
    assert client.putscript("rules", SCRIPT.decode())
    assert client.havespace("rules", len(SCRIPT))
    assert client.setactive("rules")
    active, others = client.listscripts()
    assert active == "rules"
    assert client.renamescript("rules", "filters")
    assert client.listscripts()[0] == "filters"
    assert not client.deletescript("filters")                   # active
    assert client.setactive("")
    assert client.deletescript("filters")
    assert not client.getscript("filters")
    client.logout()


def test_no_password_before_tls_and_the_capabilities_after_it(office):
    raw = Raw(office)
    assert b'"SASL" ""\r\n' in raw.greeting and b'"STARTTLS"\r\n' in raw.greeting
    assert raw.command(b'AUTHENTICATE "PLAIN" "AGFsaWNlQGV4YW1wbGUudGVzdABjb3JyZWN0IGhvcnNl"')[-1].startswith(
        b"NO (ENCRYPT-NEEDED)")
    assert raw.command(b"LISTSCRIPTS")[-1] == b'NO "LISTSCRIPTS is not allowed now"\r\n'
    after = raw.starttls()
    assert b'"SASL" "PLAIN"\r\n' in after and b'"STARTTLS"' not in b"".join(after) and after[-1].startswith(b"OK")
    assert raw.command(b'NOOP "x"')[-1] == b'OK (TAG "x") "Done"\r\n'
    assert raw.command(b"LOGOUT")[-1].startswith(b"OK")


def test_literals_and_hostile_input(office):
    raw = Raw(office)
    raw.starttls()
    token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode())
    assert raw.command(b'AUTHENTICATE "PLAIN" {%d+}\r\n%s' % (len(token), token))[-1].startswith(b"OK")
    assert raw.command(b'PUTSCRIPT "lit" {%d+}\r\n%s' % (len(SCRIPT), SCRIPT))[-1].startswith(b"OK")
    got = raw.command(b'GETSCRIPT "lit"')
    assert got[0] == b"{%d}\r\n" % len(SCRIPT) and b"".join(got[1:-1]) == SCRIPT + b"\r\n"
    for command, answer in ((b"FROBNICATE", b'NO "Unknown command"'),
                            (b'PUTSCRIPT "x"', b'NO "Expected 2 arguments"'),
                            (b'PUTSCRIPT "../../users" "keep;"', b"is not a script name"),
                            (b'GETSCRIPT "nope"', b"NO (NONEXISTENT)"),
                            (b'HAVESPACE "x" 99999999', b"NO (QUOTA/MAXSIZE)"),
                            (b'CHECKSCRIPT "if true"', b'NO "line 1: expected'),
                            (b'SETACTIVE "\xff"', b'NO "Strings must be UTF-8"'),
                            (b"\x00\x01", b'NO "Expected a command name"')):
        reply = raw.command(command)[-1]
        assert reply.startswith(b"NO") and answer in reply, (command, reply)
    assert raw.command(b"NOOP")[-1].startswith(b"OK")
    # Where a literal too large to take would end cannot be known: the session ends.
    assert raw.command(b'PUTSCRIPT "x" {9999999999+}')[-1].startswith(b'BYE "A literal may hold at most')
    assert not any("Traceback" in line or "Unhandled" in line for line in office.appliance.lines)


@pytest.mark.skipif(shutil.which("fail2ban-regex") is None,
                    reason="fail2ban is not installed (CI installs it: apt-get install fail2ban)")
def test_a_wrong_password_is_logged_for_fail2ban(office, tmp_path):
    raw = Raw(office)
    raw.starttls()
    token = base64.b64encode(f"\0{ALICE}\0not-the-password".encode())
    assert raw.command(b'AUTHENTICATE "PLAIN" "%s"' % token)[-1] == b'NO "Authentication failed"\r\n'
    line = office.appliance.wait_for_log(r"managesieve session [0-9a-f]+ from 127\.0\.0\.1: login failed for "
                                         r"alice@example\.test$")
    log_file = tmp_path / "appliance.log"
    log_file.write_text(line)
    result = subprocess.run(["fail2ban-regex", str(log_file), FILTER], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Failregex: 1 total" in result.stdout, result.stdout + result.stderr
