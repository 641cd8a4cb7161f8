"""One message a local program hands over, as a file in the maildrop directory.

The file is one JSON line, the envelope the command line gave (``{"version": 1, "sender": ...,
"full_name": ..., "recipients": [...]}``; sender and full name null when not given), then the
message exactly as the program wrote it.  It is written under a name starting with "." and
renamed to ``TIME.RANDOM`` once complete and fsynced, so the appliance never reads half of one.

The packaged directory is world-writable, sticky and not listable (mode 1733, as Postfix's
maildrop without a setgid postdrop): anyone may drop a file; only the appliance, its owner, lists,
reads and removes them.  So the reader trusts nothing it finds there but a file's owner: anything
but a regular file with one link is refused (a symbolic or hard link could point at a file only
the appliance may read, and mail it away), and who sent it is the owner's user id, not anything
the file says.
"""

import errno
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass

from mailbox_appliance.atomic import unlink_quietly, write_all

__all__ = ["Entry", "Refused", "write", "read", "is_complete", "VERSION"]

VERSION = 1
# The envelope line: a few hundred recipients at most (the command checks [limits] max_recipients).
MAX_ENVELOPE_OCTETS = 65536
_PARTIAL = "."


@dataclass(frozen=True)
class Entry:
    uid: int                 # the file's owner: the local user who sent it
    sender: str              # as given with -f, or None (the appliance names the user)
    full_name: str           # as given with -F, or None
    recipients: tuple
    message: bytes           # as the program wrote it (LF line ends, usually)
    arrival: float           # the file's modification time


class Refused(Exception):
    """Not an entry the appliance may deliver; the message says why, for the log."""


def is_complete(name):
    return not name.startswith(_PARTIAL)


def write(directory, sender, full_name, recipients, message):
    """Drop one message into *directory*, durably; returns the file's path.

    The mode is 0644 whatever the caller's umask: the appliance runs as another user and must read
    it, while no one else can find it (the directory cannot be listed, the name is random).
    """
    problem = _problem(sender, full_name, recipients)
    if problem:
        raise ValueError(problem)
    name = f"{int(time.time())}.{secrets.token_hex(16)}"
    partial = os.path.join(directory, _PARTIAL + name)
    envelope = json.dumps({"version": VERSION, "sender": sender, "full_name": full_name,
                           "recipients": list(recipients)}, ensure_ascii=False).encode("utf-8") + b"\n"
    if len(envelope) > MAX_ENVELOPE_OCTETS:
        raise ValueError("the recipients take more than 64 KB")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o644)
            write_all(fd, envelope)
            write_all(fd, message)
            os.fsync(fd)
        finally:
            os.close(fd)
        path = os.path.join(directory, name)
        os.rename(partial, path)
    except BaseException:
        unlink_quietly(partial)
        raise
    _sync_if_allowed(directory)
    return path


def _sync_if_allowed(directory):
    """Make the rename durable when the caller may open the directory (its owner may; in the
    packaged 1733 directory others may not, and the file itself is already fsynced)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except PermissionError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path, max_message_octets):
    """The Entry at *path*; raises Refused for anything that is not one, OSError when it cannot
    be read now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise Refused("a symbolic link") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise Refused("not a regular file")
        if status.st_nlink != 1:
            raise Refused("a file with other links to it")
        if status.st_size > max_message_octets + MAX_ENVELOPE_OCTETS:
            raise Refused(f"{status.st_size} octets, over the message size limit")
        line = handle.readline(MAX_ENVELOPE_OCTETS + 1)
        message = handle.read()
    if len(message) > max_message_octets:
        raise Refused(f"{len(message)} octets, over the message size limit")
    return Entry(status.st_uid, *_envelope(line), message, status.st_mtime)


def _envelope(line):
    """(sender, full name, recipients) from the first line, checked."""
    if not line.endswith(b"\n"):
        raise Refused("no envelope line")
    try:
        envelope = json.loads(line)
    except ValueError:
        raise Refused("an envelope line that is not JSON") from None
    if not isinstance(envelope, dict) or envelope.get("version") != VERSION:
        raise Refused("an envelope of an unknown version")
    sender, full_name, recipients = envelope.get("sender"), envelope.get("full_name"), envelope.get("recipients")
    problem = _problem(sender, full_name, recipients)
    if problem:
        raise Refused(problem)
    return sender, full_name, tuple(recipients)


def _problem(sender, full_name, recipients):
    """What is wrong with an envelope (the writer and the reader check alike), or None."""
    if not isinstance(recipients, (list, tuple)) or not recipients:
        return "no recipients"
    if not all(_text(recipient) and " " not in recipient for recipient in recipients):
        return "a recipient that is not an address"
    if sender is not None and not (_text(sender, empty=True) and " " not in sender):
        return "a sender that is not an address"
    if full_name is not None and not _text(full_name):
        return "a full name with control characters"
    return None


def _text(value, empty=False):
    """A string fit for an address or a display name: no control characters, not too long."""
    return isinstance(value, str) and bool(empty or value) and len(value) <= 998 and value.isprintable()
