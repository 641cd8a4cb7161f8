"""Each user's Sieve scripts on disk (ISieveScripts): ``DATA/mail/DOMAIN/USER/sieve/NAME.sieve``,
the active one named by the symlink ``sieve/active`` (as Dovecot's Pigeonhole keeps a user's
scripts in ``~/sieve`` with a symlink to the active one; ours sits inside the sieve directory,
since a ``.name`` in the Maildir root would be a Maildir++ folder).

A script is checked (commands.check) before it is stored, so a stored script is one that runs;
writes are atomic (temp file, fsync, rename), and so is the switch of the active script.  The
active script's checked commands are cached until its file changes.
"""

import os
import secrets

from zope.interface import implementer

from mailbox_appliance.atomic import atomic_replace, sync_dir, unlink_quietly
from mailbox_appliance.interfaces import ISieveScripts
from mailbox_appliance.maildir.layout import ensure_user_maildir, user_maildir
from mailbox_appliance.sieve.commands import check

SUFFIX = ".sieve"
ACTIVE_LINK = "active"
MAX_NAME_LENGTH = 128
MAX_SCRIPTS = 64
MAX_CACHED = 10000
# Scripts every user may include with ``include :global`` (RFC 6609), put there by the admin.
GLOBAL_DIRECTORY = "sieve-global"


class ScriptError(Exception):
    """A script operation refused; the text says why (ManageSieve and the admin show it)."""


class NoSuchScript(ScriptError):
    """The user has no script of that name (ManageSieve's NONEXISTENT)."""


def check_name(name):
    """RFC 5804 §1.6: a script name is UTF-8 without control characters; here also without "/",
    not starting with ".", at most MAX_NAME_LENGTH characters."""
    if (not name or len(name) > MAX_NAME_LENGTH or name.startswith(".") or "/" in name
            or any(not character.isprintable() for character in name)):
        raise ScriptError(f"{name!r} is not a script name: 1 to {MAX_NAME_LENGTH} printable characters, "
                          "no '/', not starting with '.'")
    return name


@implementer(ISieveScripts)
class SieveScripts:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self._checked = {}             # path -> ((mtime_ns, size), commands)

    def directory(self, address, create=False):
        """The user's sieve directory; made (with the Maildir, if need be) when *create*."""
        if create:
            maildir = ensure_user_maildir(self.data_dir, address)
        else:
            local, _, domain = address.rpartition("@")
            maildir = user_maildir(self.data_dir, domain, local)
        path = os.path.join(maildir, "sieve")
        if create and not os.path.isdir(path):
            os.makedirs(path, mode=0o700, exist_ok=True)
            sync_dir(os.path.dirname(path))
        return path

    def list(self, address):
        directory = self.directory(address)
        active = self.active_name(address)
        try:
            entries = sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        return [(entry[:-len(SUFFIX)], entry[:-len(SUFFIX)] == active) for entry in entries
                if entry.endswith(SUFFIX) and not entry.startswith(".")]

    def get(self, address, name):
        try:
            with open(self._path(address, name), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise NoSuchScript(f"there is no script {name!r}") from None

    def put(self, address, name, script):
        check(script)
        path = self._path(address, name, create=True)
        if not os.path.exists(path) and len(self.list(address)) >= MAX_SCRIPTS:
            raise ScriptError(f"at most {MAX_SCRIPTS} scripts per user")
        atomic_replace(path, script, tmp_prefix=os.path.join(os.path.dirname(path), f".{name}.tmp"))

    def active_name(self, address):
        try:
            target = os.readlink(os.path.join(self.directory(address), ACTIVE_LINK))
        except (FileNotFoundError, OSError):
            return None
        return target[:-len(SUFFIX)] if target.endswith(SUFFIX) and "/" not in target else None

    def activate(self, address, name):
        """Make *name* the active script; None: no script active."""
        directory = self.directory(address, create=True)
        link = os.path.join(directory, ACTIVE_LINK)
        if name is None:
            unlink_quietly(link)
        else:
            if not os.path.exists(self._path(address, name)):
                raise NoSuchScript(f"there is no script {name!r}")
            temporary = os.path.join(directory, f".active.{secrets.token_hex(8)}")
            os.symlink(name + SUFFIX, temporary)
            os.rename(temporary, link)
        sync_dir(directory)

    def delete(self, address, name):
        if self.active_name(address) == name:
            raise ScriptError(f"{name!r} is the active script: activate another one (or none) first")
        path = self._path(address, name)
        if not os.path.exists(path):
            raise NoSuchScript(f"there is no script {name!r}")
        os.unlink(path)
        sync_dir(os.path.dirname(path))

    def rename(self, address, old, new):
        source, target = self._path(address, old), self._path(address, new)
        if not os.path.exists(source):
            raise NoSuchScript(f"there is no script {old!r}")
        if os.path.exists(target):
            raise ScriptError(f"a script {new!r} exists already")
        was_active = self.active_name(address) == old
        os.rename(source, target)
        if was_active:
            self.activate(address, new)
        sync_dir(os.path.dirname(source))

    def active(self, address):
        """The active script's checked commands, or None.  A script that no longer checks (one
        written by hand, or by a newer version) raises SieveError: delivery keeps the mail."""
        name = self.active_name(address)
        return None if name is None else self.checked(address, name)

    def checked(self, address, name):
        """The checked commands of the user's script *name* (for include), or None."""
        return self._checked_file(self._path(address, name))

    def checked_global(self, name):
        """The checked commands of the admin's global script *name* (``include :global``), or None."""
        return self._checked_file(os.path.join(self.data_dir, GLOBAL_DIRECTORY, check_name(name) + SUFFIX))

    def _checked_file(self, path):
        try:
            status = os.stat(path)
        except FileNotFoundError:
            return None
        key = (status.st_mtime_ns, status.st_size)
        cached = self._checked.get(path)
        if cached is None or cached[0] != key:
            with open(path, "rb") as handle:
                cached = (key, check(handle.read()))
            if len(self._checked) >= MAX_CACHED:
                self._checked.clear()
            self._checked[path] = cached
        return cached[1]

    def _path(self, address, name, create=False):
        return os.path.join(self.directory(address, create), check_name(name) + SUFFIX)

