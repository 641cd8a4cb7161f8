"""The configuration file: every kind of error is one line naming file, section and key."""

import os
import re
import subprocess

import pytest

from appliance import TWISTD
from mailbox_appliance import config


def _write(tmp_path, text):
    path = tmp_path / "appliance.conf"
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


def test_defaults_are_the_documented_demo():
    settings = config.load(None)
    assert settings.server.domains == ("localhost",)
    assert settings.server.data_dir == "./mailbox-data"
    assert settings.listen.smtp == "tcp:2525:interface=127.0.0.1"
    assert settings.limits.max_message_size == 25 * 1024 * 1024
    assert settings.outbound.resolver == ()
    assert settings.outbound.smtp_port == 25
    assert settings.outbound.retry_schedule[:4] == (300, 600, 1200, 2400)
    assert settings.outbound.max_lifetime == 5 * 86400
    assert settings.tls.create_self_signed
    assert settings.filter == config.FilterSettings(rspamd="", rspamd_controller="", dnsbl=(), dmarc_reject="reject")


def test_values_are_parsed(tmp_path):
    path = _write(tmp_path, """
[server]
hostname = Mail.Example.COM.
data_dir = /srv/mail
domains = example.com, Example.org ,
[listen]
pop3 =
[limits]
max_message_size = 10M
[outbound]
resolver = 127.0.0.1:5353, [::1]:53
retry_schedule = 1m, 2h
max_lifetime = 2d
[tls]
certificate = /etc/cert.pem
private_key = key.pem
[filter]
rspamd = http://127.0.0.1:11333/
dnsbl = zen.spamhaus.org, bl.example.
dmarc_reject = Junk
""")
    settings = config.load(path)
    assert settings.server.hostname == "mail.example.com"
    assert settings.server.domains == ("example.com", "example.org")
    assert settings.listen.pop3 == ""
    assert "pop3" not in [name for name, _, _ in settings.listen.enabled()]
    assert settings.limits.max_message_size == 10 * 1024 * 1024
    assert settings.outbound.resolver == (("127.0.0.1", 5353), ("::1", 53))
    assert settings.outbound.retry_schedule == (60, 7200)
    assert settings.outbound.max_lifetime == 2 * 86400
    assert settings.tls.certificate == "/etc/cert.pem"
    assert settings.tls.private_key == "/srv/mail/key.pem"
    assert not settings.tls.create_self_signed
    assert settings.accounts.users_file == "/srv/mail/users"
    assert settings.filter.rspamd == "http://127.0.0.1:11333"
    assert settings.filter.dnsbl == ("zen.spamhaus.org", "bl.example")
    assert settings.filter.dmarc_reject == "junk"


@pytest.mark.parametrize("text, expected", [
    ("[sever]\nhostname = x\n", r"\[sever\]: unknown section; expected one of server, listen"),
    ("[server]\nhost = x\n", r"\[server\] host: unknown key; \[server\] takes hostname, data_dir, domains"),
    ("[limits]\nmax_message_size = lots\n", r"\[limits\] max_message_size: expected a positive size .* \(got 'lots'\)"),
    ("[limits]\nmax_recipients = -3\n", r"\[limits\] max_recipients: expected a positive whole number"),
    ("[limits]\nmax_line_length = 100\n", r"\[limits\] max_line_length: expected at least 512"),
    ("[outbound]\nsmtp_port = 70000\n", r"\[outbound\] smtp_port: expected a port number"),
    ("[outbound]\nresolver = dns.example\n", r"\[outbound\] resolver: expected 'system' or host:port"),
    ("[outbound]\nretry_schedule = soon\n", r"\[outbound\] retry_schedule: expected a positive duration"),
    ("[filter]\ndmarc_reject = bounce\n", r"\[filter\] dmarc_reject: expected reject or junk"),
    ("[filter]\nrspamd = 127.0.0.1:11333\n", r"\[filter\] rspamd: expected an http URL"),
    ("[filter]\ndnsbl = zen spamhaus\n", r"\[filter\] dnsbl: expected comma-separated domain names"),
    ("[server]\ndomains = exa mple.com\n", r"\[server\] domains: expected comma-separated domain names"),
    ("[listen]\nsmtp = tcp:notaport\n", r"\[listen\] smtp: expected tcp:PORT with a port number, such as tcp:25"),
    ("[listen]\nsmtp = tcp:25x25\n", r"\[listen\] smtp: expected tcp:PORT with a port number, such as tcp:25 or "),
    ("[listen]\nsmtp = 2525\n", r"\[listen\] smtp: expected an endpoint string: a port alone is written tcp:2525"),
    ("[listen]\nsmtp = tpc:25\n", r"\[listen\] smtp: expected a Twisted endpoint string such as tcp:25 \(Unknown endpoint type: .tpc.\)"),
    ("[listen]\nimaps = ssl:993\n", r"\[listen\] imaps: expected a plain stream endpoint such as tcp:993"),
    ("[tls]\ncertificate = /x.pem\n", r"\[tls\] private_key: certificate and private_key must be set together"),
    ("hostname = x\n", r"line 1: 'hostname = x' comes before any \[section\] header; every key belongs to a section"),
    ("[server]\n[server]\n", r"not a valid INI file: .*section 'server' already exists"),
    (b"[server]\nhostname = \xff\n", r"not UTF-8 text"),
])
def test_each_error_names_file_section_and_key(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(config.ConfigError) as raised:
        config.load(path)
    message = str(raised.value)
    assert message.startswith(path + ": ")
    assert "\n" not in message
    assert re.search(expected, message), message


def test_missing_file(tmp_path):
    with pytest.raises(config.ConfigError, match=r"cannot read the configuration file: No such file"):
        config.load(str(tmp_path / "absent.conf"))


@pytest.mark.parametrize("text, expected", [
    (None, "cannot read the configuration file: No such file or directory"),
    ("[limits]\nmax_connections = many\n", "[limits] max_connections: expected a positive whole number"),
    ("[tls]\ncertificate = /nonexistent/c.pem\nprivate_key = /nonexistent/k.pem\n",
     "[tls] certificate /nonexistent/c.pem: cannot read it"),
])
def test_twistd_exits_with_one_line_before_binding(tmp_path, text, expected):
    path = str(tmp_path / "absent.conf") if text is None else _write(tmp_path, text + "[server]\ndata_dir = %s\n" % tmp_path)
    result = subprocess.run([TWISTD, "-n", "--pidfile=", "mailbox-appliance", "--config", path],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mailbox-appliance: {path}: ")
    assert expected in lines[0]
    assert "listening" not in result.stdout


def test_example_configuration_documents_every_setting():
    """etc/mailbox-appliance.conf parses and names every key of the schema."""
    path = os.path.join(os.path.dirname(__file__), os.pardir, "etc", "mailbox-appliance.conf")
    with open(path) as handle:
        text = handle.read()
    for section, keys in config.SCHEMA.items():
        assert f"[{section}]" in text
        for key in keys:
            assert re.search(rf"^#?\s*{key}\s*=", text, re.MULTILINE), f"[{section}] {key} is not documented"
    config.load(path)


def test_relative_paths_in_a_file_are_relative_to_the_file(tmp_path, monkeypatch):
    directory = tmp_path / "etc"
    directory.mkdir()
    path = _write(directory, "[server]\ndata_dir = ../var/mail\n[accounts]\nusers_file = users.txt\n")
    monkeypatch.chdir("/")
    settings = config.load(path)
    assert settings.server.data_dir == str(tmp_path / "var" / "mail")
    assert settings.accounts.users_file == str(tmp_path / "var" / "mail" / "users.txt")
