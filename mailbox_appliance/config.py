"""The INI file -> frozen settings objects.

Every setting the appliance reads is declared once, in ``SCHEMA``, with its default and its parser,
so the example file (etc/mailbox-appliance.conf), the parser and the error messages cannot drift
apart.  Every error names the file, the section and the key, and says what was expected: an admin
reading the one line on stderr knows what to fix without reading the code.
"""

import configparser
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Callable, Optional

from twisted.internet.endpoints import serverFromString

from mailbox_appliance.accounts.addresses import is_valid_domain

CONFIG_ENVIRONMENT_VARIABLE = "MAILBOX_APPLIANCE_CONFIG"

# RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.  Larger values are
# allowed for the IMAP side, which shares the setting as its line limit.
MINIMUM_LINE_LENGTH = 512


class ConfigError(Exception):
    """A configuration problem, said in one line an admin can act on."""

    def __init__(self, path, section, key, problem):
        self.path = path
        self.section = section
        self.key = key
        self.problem = problem
        super().__init__(str(self))

    def __str__(self):
        where = self.path or "built-in defaults"
        if self.section and self.key:
            where += f": [{self.section}] {self.key}"
        elif self.section:
            where += f": [{self.section}]"
        return f"{where}: {self.problem}"


class _BadValue(ValueError):
    """Raised by a value parser; the message says what was expected."""


# -- value parsers: str -> value, raising _BadValue("expected ...") ------------------------------

_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_text(value):
    return value.strip()


def parse_size(value):
    """'26214400', '25M', '512k' -> bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)[bB]?\s*", value)
    if not match or int(match.group(1)) == 0:
        raise _BadValue("expected a positive size in bytes, optionally with k, M or G (e.g. 25M)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def parse_optional_size(value):
    """A size, or None for an empty value (no limit)."""
    return parse_size(value) if value.strip() else None


def parse_duration(value):
    """'300', '5m', '4h', '5d' -> seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdSMHD]?)\s*", value)
    if not match or int(match.group(1)) == 0:
        raise _BadValue("expected a positive duration: a number with s, m, h or d (e.g. 5m, 4h, 5d)")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def parse_positive_int(value):
    try:
        number = int(value.strip())
    except ValueError:
        number = 0
    if number <= 0:
        raise _BadValue("expected a positive whole number")
    return number


def parse_count(value):
    """A whole number, 0 for "no limit"."""
    return 0 if value.strip() == "0" else parse_positive_int(value)


def parse_port(value):
    number = parse_positive_int(value)
    if number > 65535:
        raise _BadValue("expected a port number from 1 to 65535")
    return number


def parse_line_length(value):
    number = parse_positive_int(value)
    if number < MINIMUM_LINE_LENGTH:
        raise _BadValue(f"expected at least {MINIMUM_LINE_LENGTH} (RFC 5321 §4.5.3.1.4)")
    return number


def parse_domain_list(value):
    domains = []
    for item in value.split(","):
        domain = item.strip().lower().rstrip(".")
        if not domain:
            continue
        if not is_valid_domain(domain):
            raise _BadValue(f"expected comma-separated domain names; {item.strip()!r} is not one")
        domains.append(domain)
    return tuple(dict.fromkeys(domains))


def parse_hostname(value):
    name = value.strip().lower().rstrip(".")
    if not is_valid_domain(name):
        raise _BadValue("expected a host name such as mail.example.com")
    return name


def parse_duration_list(value):
    delays = tuple(parse_duration(item) for item in value.split(",") if item.strip())
    if not delays:
        raise _BadValue("expected a comma-separated list of durations (e.g. 5m, 10m, 1h)")
    return delays


def parse_resolver(value):
    """'system' -> (); 'host:port, [v6]:port' -> ((host, port), ...)."""
    value = value.strip()
    if value == "system":
        return ()
    servers = []
    for item in value.split(","):
        match = re.fullmatch(r"\s*(?:\[([0-9a-fA-F:.]+)\]|([^:\s\[\]]+)):(\d+)\s*", item)
        if not match or not 0 < int(match.group(3)) < 65536:
            raise _BadValue("expected 'system' or host:port[, host:port] (IPv6 as [::1]:53)")
        servers.append((match.group(1) or match.group(2), int(match.group(3))))
    return tuple(servers)


def parse_choice(*choices):
    def parse(value):
        value = value.strip().lower()
        if value not in choices:
            raise _BadValue("expected " + " or ".join(choices))
        return value
    return parse


def parse_optional_http_url(value):
    """'' (none) or an http(s) URL without a path, e.g. http://127.0.0.1:11333."""
    value = value.strip().rstrip("/")
    if value and not re.fullmatch(r"https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?", value):
        raise _BadValue("expected an http URL such as http://127.0.0.1:11333, or nothing")
    return value


def parse_acme_directory(value):
    """'' (no ACME) or the https URL of an ACME directory (RFC 8555 §7.1.1)."""
    value = value.strip()
    if value and not re.fullmatch(r"https://[^\s/]+(/\S*)?", value):
        raise _BadValue("expected the https URL of an ACME directory, such as "
                        "https://acme-v02.api.letsencrypt.org/directory, or nothing")
    return value


def parse_optional_address(value):
    value = value.strip()
    if value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise _BadValue("expected a mail address, or nothing")
    return value


def _endpoint_parser(implicit_tls):
    def parse_endpoint(value):
        value = value.strip()
        if not value:
            return ""
        if value.split(":", 1)[0] in ("ssl", "tls"):
            raise _BadValue(
                "expected a plain stream endpoint such as tcp:993; TLS is added from the [tls] section"
                if implicit_tls
                else "expected a plain stream endpoint such as tcp:143; STARTTLS uses the [tls] section"
            )
        # Imported here, not at module level: twistd installs the reactor the admin chose
        # (--reactor) after loading plugins, and importing it earlier would install the default.
        from twisted.internet import reactor

        example = "tcp:993" if implicit_tls else "tcp:25"
        if value.isdigit():
            raise _BadValue(f"expected an endpoint string: a port alone is written tcp:{value}")
        kind, _, rest = value.partition(":")
        if kind == "tcp" and not re.fullmatch(r"\d{1,5}(:.*)?", rest):
            raise _BadValue(f"expected tcp:PORT with a port number, such as {example} or {example}:interface=127.0.0.1")
        try:
            serverFromString(reactor, value)
        except (ValueError, TypeError, KeyError) as error:
            # Twisted's own words name what it did not take ("Unknown endpoint type: 'x'").
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise _BadValue(f"expected a Twisted endpoint string such as {example} ({reason})") from None
        return value

    return parse_endpoint


def parse_optional_hostname(value):
    return parse_hostname(value) if value.strip() else ""


def parse_boolean(value):
    word = value.strip().lower()
    if word in ("yes", "true", "on", "1"):
        return True
    if word in ("no", "false", "off", "0"):
        return False
    raise _BadValue("expected yes or no")


def parse_path(value):
    value = value.strip()
    if not value:
        raise _BadValue("expected a file or directory path")
    return value


# -- the settings objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSettings:
    hostname: str
    data_dir: str
    domains: tuple
    maildrop: str


@dataclass(frozen=True)
class ListenSettings:
    """Twisted endpoint strings; '' disables a listener."""

    smtp: str
    submission: str
    submissions: str
    imap: str
    imaps: str
    pop3: str
    pop3s: str
    managesieve: str
    https: str
    http: str
    metrics: str

    IMPLICIT_TLS = ("submissions", "imaps", "pop3s", "https")

    def enabled(self):
        """(name, endpoint string, implicit TLS?) for every enabled listener."""
        return [
            (name, getattr(self, name), name in self.IMPLICIT_TLS)
            for name in ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "managesieve",
                         "https", "http", "metrics")
            if getattr(self, name)
        ]


@dataclass(frozen=True)
class TLSSettings:
    certificate: str
    private_key: str
    # True when the files are the built-in defaults under data_dir: created on first start.
    create_self_signed: bool
    acme: str = ""             # the ACME directory URL; "" = no ACME
    acme_email: str = ""


@dataclass(frozen=True)
class AccountsSettings:
    users_file: str
    aliases_file: str
    domains_file: str


@dataclass(frozen=True)
class LimitsSettings:
    max_message_size: int
    max_recipients: int
    max_connections: int
    max_connections_per_address: int
    max_connection_rate: int
    max_commands_before_login: int
    max_line_length: int
    login_failures: int
    login_lockout: int
    default_quota: Optional[int]


@dataclass(frozen=True)
class OutboundSettings:
    resolver: tuple
    smtp_port: int
    retry_schedule: tuple
    max_lifetime: int
    warn_after: int
    relay_host: str
    relay_port: int
    relay_user: str
    relay_password: str
    relay_require_tls: bool


@dataclass(frozen=True)
class FilterSettings:
    rspamd: str
    rspamd_controller: str
    dnsbl: tuple
    dmarc_reject: str


@dataclass(frozen=True)
class Settings:
    path: Optional[str]
    server: ServerSettings
    listen: ListenSettings
    tls: TLSSettings
    accounts: AccountsSettings
    limits: LimitsSettings
    outbound: OutboundSettings
    filter: FilterSettings

    def data_path(self, *parts):
        return os.path.join(self.server.data_dir, *parts)


@dataclass(frozen=True)
class Setting:
    """One key of the INI file: its parser and its default ('{data_dir}' is substituted)."""

    parse: Callable
    default: Optional[str]
    # Defaults that depend on the data directory are filled in after [server] is read.
    relative_to_data_dir: bool = field(default=False)


_LOOPBACK = "interface=127.0.0.1"

SCHEMA = {
    "server": {
        "hostname": Setting(parse_hostname, None),
        "data_dir": Setting(parse_path, "./mailbox-data"),
        "domains": Setting(parse_domain_list, "localhost"),
        "maildrop": Setting(parse_path, "maildrop", relative_to_data_dir=True),
    },
    "listen": {
        "smtp": Setting(_endpoint_parser(False), f"tcp:2525:{_LOOPBACK}"),
        "submission": Setting(_endpoint_parser(False), f"tcp:2587:{_LOOPBACK}"),
        "submissions": Setting(_endpoint_parser(True), f"tcp:2465:{_LOOPBACK}"),
        "imap": Setting(_endpoint_parser(False), f"tcp:1143:{_LOOPBACK}"),
        "imaps": Setting(_endpoint_parser(True), f"tcp:1993:{_LOOPBACK}"),
        "pop3": Setting(_endpoint_parser(False), f"tcp:1110:{_LOOPBACK}"),
        "pop3s": Setting(_endpoint_parser(True), f"tcp:1995:{_LOOPBACK}"),
        "managesieve": Setting(_endpoint_parser(False), f"tcp:14190:{_LOOPBACK}"),
        "https": Setting(_endpoint_parser(True), f"tcp:1443:{_LOOPBACK}"),
        "http": Setting(_endpoint_parser(False), f"tcp:1080:{_LOOPBACK}"),
        "metrics": Setting(_endpoint_parser(False), f"tcp:9110:{_LOOPBACK}"),
    },
    "tls": {
        "certificate": Setting(parse_path, "tls/certificate.pem", relative_to_data_dir=True),
        "private_key": Setting(parse_path, "tls/private-key.pem", relative_to_data_dir=True),
        "acme": Setting(parse_acme_directory, ""),
        "acme_email": Setting(parse_optional_address, ""),
    },
    "accounts": {
        "users_file": Setting(parse_path, "users", relative_to_data_dir=True),
        "aliases_file": Setting(parse_path, "aliases", relative_to_data_dir=True),
        "domains_file": Setting(parse_path, "domains", relative_to_data_dir=True),
    },
    "limits": {
        "max_message_size": Setting(parse_size, "25M"),
        "max_recipients": Setting(parse_positive_int, "100"),
        "max_connections": Setting(parse_positive_int, "200"),
        "max_connections_per_address": Setting(parse_positive_int, "20"),
        "max_connection_rate": Setting(parse_count, "300"),
        "max_commands_before_login": Setting(parse_positive_int, "30"),
        "max_line_length": Setting(parse_line_length, "65536"),
        "login_failures": Setting(parse_positive_int, "10"),
        "login_lockout": Setting(parse_duration, "15m"),
        "default_quota": Setting(parse_optional_size, ""),
    },
    "outbound": {
        "resolver": Setting(parse_resolver, "system"),
        "smtp_port": Setting(parse_port, "25"),
        "retry_schedule": Setting(parse_duration_list, "5m, 10m, 20m, 40m, 1h, 2h, 4h"),
        "max_lifetime": Setting(parse_duration, "5d"),
        "warn_after": Setting(parse_duration, "4h"),
        "relay_host": Setting(parse_optional_hostname, ""),
        "relay_port": Setting(parse_port, "587"),
        "relay_user": Setting(parse_text, ""),
        "relay_password": Setting(parse_text, ""),
        "relay_require_tls": Setting(parse_boolean, "yes"),
    },
    "filter": {
        "rspamd": Setting(parse_optional_http_url, ""),
        "rspamd_controller": Setting(parse_optional_http_url, ""),
        "dnsbl": Setting(parse_domain_list, ""),
        "dmarc_reject": Setting(parse_choice("reject", "junk"), "reject"),
    },
}


def load(path=None):
    """Read the INI file at *path* (None: the built-in defaults) into a Settings.

    Raises ConfigError, naming file, section and key, for a missing or unreadable file, a syntax
    error, an unknown section or key, or a bad value.
    """
    parser = configparser.ConfigParser(interpolation=None, default_section="\0no-defaults")
    parser.optionxform = str
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except OSError as error:
            raise ConfigError(path, None, None, f"cannot read the configuration file: {error.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(path, None, None, "the configuration file is not UTF-8 text") from None
        except configparser.MissingSectionHeaderError as error:
            raise ConfigError(path, None, None, f"line {error.lineno}: {error.line.strip()!r} comes before any "
                                                "[section] header; every key belongs to a section such as [server]") from None
        except configparser.Error as error:
            message = " ".join(str(error).split())
            raise ConfigError(path, None, None, f"not a valid INI file: {message}") from None
    _reject_unknown(parser, path)

    values = {}
    for section, keys in SCHEMA.items():
        values[section] = {}
        for key, setting in keys.items():
            values[section][key] = _value(parser, path, section, key, setting, values)

    server = ServerSettings(
        hostname=values["server"]["hostname"] or _machine_hostname(path),
        data_dir=values["server"]["data_dir"],
        domains=values["server"]["domains"],
        maildrop=values["server"]["maildrop"],
    )
    pair = ("certificate", "private_key")
    tls_given = any(parser.has_option("tls", key) for key in pair)
    if tls_given and not all(parser.has_option("tls", key) for key in pair):
        missing = next(key for key in pair if not parser.has_option("tls", key))
        raise ConfigError(path, "tls", missing, "certificate and private_key must be set together")
    return Settings(
        path=path,
        server=server,
        listen=ListenSettings(**values["listen"]),
        tls=TLSSettings(create_self_signed=not tls_given, **values["tls"]),
        accounts=AccountsSettings(**values["accounts"]),
        limits=LimitsSettings(**values["limits"]),
        outbound=OutboundSettings(**values["outbound"]),
        filter=FilterSettings(**values["filter"]),
    )


def _machine_hostname(path):
    name = socket.getfqdn()
    try:
        return parse_hostname(name)
    except _BadValue:
        if path is None:
            # The built-in demo has no file to set hostname in: it must start anyway.
            return "localhost"
        raise ConfigError(path, "server", "hostname",
                          f"the machine's name {name!r} is not a usable host name; set hostname") from None


def _reject_unknown(parser, path):
    for section in parser.sections():
        if section not in SCHEMA:
            known = ", ".join(SCHEMA)
            raise ConfigError(path, section, None, f"unknown section; expected one of {known}")
        for key in parser.options(section):
            if key not in SCHEMA[section]:
                known = ", ".join(SCHEMA[section])
                raise ConfigError(path, section, key, f"unknown key; [{section}] takes {known}")


def _value(parser, path, section, key, setting, values):
    if parser.has_option(section, key):
        raw = parser.get(section, key)
    elif setting.default is None:
        return None
    else:
        raw = setting.default
    try:
        value = setting.parse(raw)
    except _BadValue as error:
        raise ConfigError(path, section, key, f"{error} (got {raw.strip()!r})") from None
    if setting.relative_to_data_dir:
        value = os.path.join(values["server"]["data_dir"], value)
    elif setting.parse is parse_path and path is not None and not os.path.isabs(value):
        # A relative path in a file means the same wherever the appliance or the admin command
        # is started from: relative to the file.
        value = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), value))
    return value
