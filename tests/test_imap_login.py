"""IMAP login rules over real sockets: TLS before any password, STARTTLS, throttling, pipelining."""

import imaplib
import socket
import time

import pytest

import imapclient
from conftest import PASSWORD, Office, unverified_tls


def test_plaintext_port_advertises_starttls_and_refuses_login(office):
    client = imapclient.connect(office, "imap")
    capabilities = client.capabilities
    assert {"STARTTLS", "LOGINDISABLED"} <= set(capabilities)
    assert not any(cap.startswith("AUTH=") for cap in capabilities)
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        client.login("alice@example.test", PASSWORD)
    client.starttls(ssl_context=unverified_tls())
    typ, data = client.capability()
    assert b"STARTTLS" not in data[0] and b"LOGINDISABLED" not in data[0] and b"AUTH=PLAIN" in data[0]
    assert client.login("alice@example.test", PASSWORD)[0] == "OK"
    client.logout()


def test_implicit_tls_login_and_authenticate_plain(office):
    client = imapclient.connect(office, "imaps")
    assert "STARTTLS" not in client.capabilities
    assert client.login("alice@example.test", PASSWORD)[0] == "OK"
    client.logout()
    client = imapclient.connect(office, "imaps")
    answer = client.authenticate("PLAIN", lambda _: b"\0bob@example.test\0" + PASSWORD.encode())
    assert answer[0] == "OK"
    client.logout()


def test_wrong_password_and_other_users_authzid_fail(office):
    client = imapclient.connect(office, "imaps")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login("alice@example.test", "wrong")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.authenticate("PLAIN", lambda _: b"alice@example.test\0bob@example.test\0" + PASSWORD.encode())


def test_starttls_discards_commands_pipelined_in_plaintext(office):
    sock, reader = imapclient.raw(office, "imap")
    sock.sendall(b"a STARTTLS\r\nb LOGIN alice@example.test \"" + PASSWORD.encode() + b"\"\r\n")
    assert reader.readline().startswith(b"a OK")
    tls = unverified_tls().wrap_socket(sock)
    tls_reader = tls.makefile("rb")
    tls.sendall(b"c CAPABILITY\r\n")
    lines = imapclient.read_until_tagged(tls_reader, b"c")
    assert not any(line.startswith(b"b ") for line in lines), lines
    assert b"AUTH=PLAIN" in lines[0]
    tls.sendall(b"d SELECT INBOX\r\n")          # not logged in: the pipelined LOGIN never ran
    assert imapclient.read_until_tagged(tls_reader, b"d")[-1].startswith(b"d BAD")


def test_pipelined_commands_wait_for_the_login_before_them(office):
    # twisted#9282: each command must run in the state the one before it left.
    plain = socket.create_connection(("127.0.0.1", office.ports["imaps"]), timeout=30)
    tls = unverified_tls().wrap_socket(plain)
    reader = tls.makefile("rb")
    reader.readline()
    tls.sendall(b'a LOGIN alice@example.test "' + PASSWORD.encode() + b'"\r\nb SELECT INBOX\r\nc NOOP\r\n')
    lines = imapclient.read_until_tagged(reader, b"c")
    tagged = [line.split()[:2] for line in lines if not line.startswith(b"*")]
    assert tagged == [[b"a", b"OK"], [b"b", b"OK"], [b"c", b"OK"]], lines


def test_failed_logins_are_throttled_per_address(tmp_path):
    office = Office(str(tmp_path), extra="[limits]\nlogin_failures = 3\n").start()
    try:
        client = imapclient.connect(office, "imaps")
        for _ in range(3):
            with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                client.login("alice@example.test", "wrong")
        with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
            client.login("alice@example.test", PASSWORD)
    finally:
        office.appliance.stop()


@pytest.mark.parametrize("ending", [b"a LOGOUT\r\n", b"a LOGIN {5000+}\r\n", b"a NOOP " + b"x" * 70_000 + b"\r\n"],
                         ids=["logout", "literal-too-big", "line-too-long"])
def test_every_way_a_session_ends_gives_its_connection_slot_back(tmp_path, ending):
    """Each of these ended a session with the TLS transport paused, which then never saw the
    client's close and held its connection slot: 200 of them refused every client of every
    protocol.  With 3 slots, 12 sessions ended so in a row, then one more must be served."""
    office = Office(str(tmp_path), extra="[limits]\nmax_connections = 3\n").start()
    try:
        for _ in range(12):
            session = imapclient.Session(office, login=False)
            session.sock.sendall(ending)
            assert b"* BYE " in session.reader.read()      # read to the server's close
            session.close()
        deadline = time.monotonic() + 10
        while True:                                      # the last close may still be on its way
            try:
                imapclient.Session(office, login=False).close()
                break
            except AssertionError:                       # "* BYE Too many connections"
                assert time.monotonic() < deadline, "no connection slot came back"
    finally:
        office.appliance.stop()


def test_malformed_commands_get_bad_and_the_session_continues(office):
    session = imapclient.Session(office)
    assert session.command(b"FROBNICATE")[-1].split()[1] == b"BAD"
    assert session.command(b"SELECT")[-1].split()[1] == b"BAD"
    session.ok(b"SELECT INBOX")
    assert session.command(b"FETCH x:y FLAGS")[-1].split()[1] == b"BAD"
    assert session.command(b"FETCH 1 (FLAGS")[-1].split()[1] == b"BAD"
    # twisted#12763: a negative literal in SEARCH must not hang the server.
    assert session.command(b"SEARCH SUBJECT {-1}")[-1].split()[1] == b"BAD"
    session.ok(b"NOOP")
    session.ok(b"NAMESPACE")
    assert session.command(b"ENABLE X-UNKNOWN")[0] == b"* ENABLED\r\n"   # RFC 5161: unknown ones ignored
    assert session.command(b"AUTHENTICATE PLAIN")[-1].split()[1] == b"BAD"  # not once logged in
