"""The appliance as an admin starts it: twistd finds the plugin, every listener answers, SIGTERM stops it."""

import os
import re
import signal
import socket
import ssl
import subprocess

from appliance import ADMIN, TWISTD, Appliance, LISTENERS

GREETINGS = {
    "smtp": b"220 ", "submission": b"220 ", "submissions": b"220 ",
    "imap": b"* OK", "imaps": b"* OK",
    "pop3": b"+OK", "pop3s": b"+OK",
    "managesieve": b'"IMPLEMENTATION" "mailbox-appliance"',
    "https": b"HTTP/1.1 404 ", "http": b"HTTP/1.1 301 ", "metrics": b"HTTP/1.1 404 ",
}
IMPLICIT_TLS = {"submissions", "imaps", "pop3s", "https"}
# The web listeners speak when spoken to.
FIRST_WORDS = {"https": b"GET / HTTP/1.1\r\nHost: mail.example.test\r\n\r\n", "http": b"GET / HTTP/1.1\r\n\r\n",
               "metrics": b"GET / HTTP/1.1\r\n\r\n"}


def _greeting(port, tls, first_words=b""):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        if not tls:
            raw.sendall(first_words)
            return raw.recv(1024), None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(raw) as wrapped:
            wrapped.sendall(first_words)
            return wrapped.recv(1024), wrapped.version()


def test_twistd_lists_the_plugin():
    result = subprocess.run([TWISTD, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "mailbox-appliance" in result.stdout


def test_the_version_is_printed_and_logged(appliance):
    from importlib import metadata
    version = metadata.version("mailbox-appliance")
    result = subprocess.run([TWISTD, "mailbox-appliance", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith(f"mailbox-appliance {version} (Twisted "), result
    result = subprocess.run([ADMIN, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"mailbox-appliance {version}", result
    assert appliance.wait_for_log(rf"mailbox-appliance {re.escape(version)} starting \(Twisted \S+, Python \S+\)")


def test_the_admin_command_alone_prints_its_help():
    result = subprocess.run([ADMIN], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout.startswith("usage: mailbox-appliance-admin"), result
    assert "domain" in result.stdout and "queue" in result.stdout


def test_every_listener_answers_and_sigterm_stops_cleanly(appliance):
    assert set(appliance.ports) == set(LISTENERS)
    for name, port in appliance.ports.items():
        greeting, version = _greeting(port, name in IMPLICIT_TLS, FIRST_WORDS.get(name, b""))
        assert greeting.startswith(GREETINGS[name]), (name, greeting)
        if name in IMPLICIT_TLS:
            assert version in ("TLSv1.2", "TLSv1.3"), (name, version)
    _assert_clean_stop(appliance)


def _assert_clean_stop(appliance):
    # Twisted re-raises SIGTERM once the reactor has shut down, so the status is "killed by
    # SIGTERM" (as systemd expects of a clean stop) on current releases and 0 on older ones.
    assert appliance.stop() in (0, -signal.SIGTERM)
    assert "Server Shut Down." in appliance.lines[-1]
    assert "Traceback" not in "".join(appliance.lines)


def test_built_in_defaults_serve_a_demo(tmp_path):
    """No --config: loopback, the unprivileged demo ports, ./mailbox-data, a self-signed certificate."""
    demo = Appliance(cwd=str(tmp_path))
    try:
        assert demo.ports == {"smtp": 2525, "submission": 2587, "submissions": 2465,
                              "imap": 1143, "imaps": 1993, "pop3": 1110, "pop3s": 1995, "managesieve": 14190,
                              "https": 1443, "http": 1080, "metrics": 9110}
        assert all("127.0.0.1:" in line for line in demo.lines if " listening on " in line)
        assert os.path.exists(tmp_path / "mailbox-data" / "tls" / "certificate.pem")
        assert os.stat(tmp_path / "mailbox-data" / "tls" / "private-key.pem").st_mode & 0o077 == 0
        greeting, _ = _greeting(2993 - 1000, tls=True)
        assert greeting.startswith(b"* OK")
    finally:
        _assert_clean_stop(demo)


def test_a_port_in_use_is_one_clear_line(tmp_path):
    from appliance import write_config

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(str(tmp_path), listeners=("smtp",))
        with open(path) as handle:
            text = handle.read().replace("smtp = tcp:0:", f"smtp = tcp:{port}:")
        with open(path, "w") as handle:
            handle.write(text)
        result = subprocess.run([TWISTD, "-n", "--pidfile=", "mailbox-appliance", "--config", path],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"cannot listen for smtp on tcp:{port}:interface=127.0.0.1" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_each_configuration_has_its_own_pid_file_and_is_checked_first(tmp_path):
    """Two appliances started from one directory without --pidfile both run (twistd's default
    ./twistd.pid made the second refuse); a broken configuration says what is wrong even while
    another appliance runs there."""
    from appliance import write_config

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    running = [Appliance(write_config(str(directory)), cwd=str(tmp_path), pidfile=None) for directory in (first, second)]
    try:
        for directory, appliance in zip((first, second), running):
            assert (directory / "data" / "twistd.pid").read_text().strip() == str(appliance.process.pid)
        assert not (tmp_path / "twistd.pid").exists()
        broken = tmp_path / "broken.conf"
        broken.write_text("[server]\ndata_dir = " + str(first / "data") + "\nno_such_key = 1\n")
        result = subprocess.run([TWISTD, "-n", "mailbox-appliance", "--config", str(broken)], cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode != 0
        assert "no_such_key" in result.stderr and "Another twistd server" not in result.stdout + result.stderr
    finally:
        for appliance in running:
            _assert_clean_stop(appliance)
