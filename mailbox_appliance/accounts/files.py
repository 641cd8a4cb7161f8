"""The plain account files an admin can read and edit: users, aliases, domains.

Each file is lines of entries, with '#' comments and blank lines kept as they are when the admin
command rewrites the file.  The running appliance re-reads a file when its size, mtime or inode
changes (checked on each use, a stat call), so edits take effect without a restart; a file that no
longer parses keeps the previous good version in force and says why in the log.

- users: Dovecot's passwd-file shape, ``user@domain:{SCHEME}hash[:uid:gid:gecos:home:shell:extra]``
  (the first two fields are used, and of the extra fields Dovecot's own quota setting,
  ``userdb_quota_rule=*:storage=SIZE``, where 0 means no limit; the others are kept).
- aliases: ``source: target[, target ...]`` where source is ``name@domain`` or ``@domain`` (catch-all).
- domains: one domain per line (added to ``[server] domains`` from the configuration).
"""

import os
import re
from dataclasses import dataclass
from typing import Callable, Optional

from twisted.logger import Logger

from mailbox_appliance.atomic import atomic_replace, locked
from mailbox_appliance.accounts.addresses import normalize_address, is_valid_address, is_valid_domain


class FileFormatError(Exception):
    """A line of an account file does not parse."""

    def __init__(self, path, line_number, problem):
        self.path, self.line_number, self.problem = path, line_number, problem
        super().__init__(f"{path} line {line_number}: {problem}")


@dataclass(frozen=True)
class FileFormat:
    """How to read one kind of account file: a line -> (key, value); ValueError if malformed."""

    name: str
    parse_line: Callable


@dataclass(frozen=True)
class UserEntry:
    """One line of the users file: the password hash, the quota (bytes; 0 for none set to no
    limit; None when the line sets none) and the fields after the hash as written."""

    password_hash: str
    quota: Optional[int]
    rest: str

    def line(self, address, password_hash=None, quota=False):
        """The entry's line, with a new hash and/or quota (None: no limit; False: unchanged)."""
        rest = self.rest
        if quota is not False:
            fields = _fields(rest[1:])
            extra = [word for word in fields[5].split() if not _QUOTA_RULE.fullmatch(word)]
            extra.append("userdb_quota_rule=*:storage=%d" % (quota or 0))
            fields[5] = " ".join(extra)
            rest = ":" + ":".join(fields)
        return f"{address}:{password_hash or self.password_hash}{rest}"


def _fields(text):
    """uid, gid, gecos, home, shell and the extra fields (which may hold ":") after the hash."""
    fields = text.split(":", 5) if text else []
    return fields + [""] * (6 - len(fields))


# Dovecot's quota in a passwd-file extra field; sizes as Dovecot writes them (k, M, G, T; B).
_QUOTA_RULE = re.compile(r"(?:userdb_)?quota_rule=\*:storage=(\d+)([kKmMgGtT]?)[bB]?")
_QUOTA_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _parse_user(line):
    address, separator, rest = line.partition(":")
    address = normalize_address(address)
    if not separator or not is_valid_address(address):
        raise ValueError("expected user@domain:{SCHEME}hash")
    password_hash, _, fields = rest.partition(":")
    if not password_hash.startswith("{"):
        raise ValueError(f"the password of {address} has no {{SCHEME}} prefix")
    quota = None
    for word in _fields(fields)[5].split():
        match = _QUOTA_RULE.fullmatch(word)
        if match:
            quota = int(match.group(1)) * _QUOTA_UNITS[match.group(2).lower()]
    return address, UserEntry(password_hash, quota, rest[len(password_hash):])


def _parse_alias(line):
    source, separator, targets = line.partition(":")
    source = normalize_address(source)
    valid_source = is_valid_domain(source[1:]) if source.startswith("@") else is_valid_address(source)
    if not separator or not valid_source:
        raise ValueError("expected name@domain: target[, target] or @domain: target")
    addresses = tuple(normalize_address(target) for target in targets.split(",") if target.strip())
    bad = [target for target in addresses if not is_valid_address(target)]
    if not addresses or bad:
        raise ValueError(f"alias {source} needs one or more target addresses" + (f", not {bad[0]!r}" if bad else ""))
    return source, addresses


def _parse_domain(line):
    domain = line.strip().lower().rstrip(".")
    if not is_valid_domain(domain):
        raise ValueError(f"{domain!r} is not a domain name")
    return domain, True


USERS = FileFormat("users file", _parse_user)
ALIASES = FileFormat("aliases file", _parse_alias)
DOMAINS = FileFormat("domains file", _parse_domain)


def _is_entry(line):
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _read_lines(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        raise FileFormatError(path, 0, "not UTF-8 text") from None
    except OSError as error:
        raise FileFormatError(path, 0, f"cannot read it: {error.strerror}") from None


def read_entries(path, file_format):
    """The file's entries as a dict key -> value (a missing file has none)."""
    entries = {}
    for number, line in enumerate(_read_lines(path), 1):
        if not _is_entry(line):
            continue
        try:
            key, value = file_format.parse_line(line)
        except ValueError as error:
            raise FileFormatError(path, number, f"{file_format.name}: {error}") from None
        entries[key] = value
    return entries


def edit(path, file_format, key, new_line):
    """Replace the entry *key* with *new_line* (None deletes it; a new key is appended).

    Under an exclusive lock and written atomically, so concurrent edits never lose one another.
    Returns the previous value, or None when *key* had no entry.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with locked(path):
        lines = _read_lines(path)
        previous, kept = None, []
        for number, line in enumerate(lines, 1):
            if _is_entry(line):
                try:
                    line_key, value = file_format.parse_line(line)
                except ValueError as error:
                    raise FileFormatError(path, number, f"{file_format.name}: {error}") from None
                if line_key == key:
                    previous = value
                    continue
            kept.append(line)
        if new_line is not None:
            kept.append(new_line)
        mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o640
        atomic_replace(path, "".join(line + "\n" for line in kept).encode("utf-8"), mode=mode)
    return previous


class WatchedFile:
    """An account file's entries, re-read whenever the file changes on disk."""

    log = Logger()

    def __init__(self, path, file_format):
        self.path = path
        self.format = file_format
        self._signature = None
        self._entries = {}
        self.reload(strict=True)

    def entries(self):
        """The current entries: a stat per call, a re-read when the file changed."""
        if self._stat() != self._signature:
            self.reload(strict=False)
        return self._entries

    def _stat(self):
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (status.st_ino, status.st_size, status.st_mtime_ns)

    def reload(self, strict):
        """Re-read the file.  strict: raise FileFormatError; otherwise log it and keep the old entries."""
        signature = self._stat()
        try:
            entries = read_entries(self.path, self.format)
        except FileFormatError as error:
            if strict:
                raise
            self.log.error("{path}: not reloaded, the previous version stays in force: {error}",
                           path=self.path, error=str(error))
        else:
            self._entries = entries
            if self._signature is not None:
                self.log.info("{path}: reloaded, {count} entries", path=self.path, count=len(entries))
        # Remember the signature even on failure, so a broken file is reported once, not per use.
        self._signature = signature
