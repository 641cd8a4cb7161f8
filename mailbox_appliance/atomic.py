"""Durable file primitives shared by the storage, account and queue modules.

Every file the appliance replaces is written the same way: a temporary file in
the same directory, written whole, fsynced, renamed over the target, and the
directory fsynced.  rename(2) is atomic within a file system, so a reader (or a
reboot) sees either the old file or the new one, never a torn one.
"""

import errno
import fcntl
import os
import secrets
from contextlib import contextmanager

__all__ = ["sync_dir", "write_all", "create_synced", "unlink_quietly", "atomic_replace", "locked", "disk_full"]


def disk_full(error):
    """True when *error* says the file system (ENOSPC) or the user's disk quota (EDQUOT) has no
    room: the admin's problem, answered "try again later" and logged in one line, not a bug."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def sync_dir(path):
    """fsync the directory at *path*, making renames and creations in it durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd, data):
    """Write every byte of *data* to *fd*.

    os.write may write less than asked (signals, pipes, very large buffers);
    slicing a memoryview resumes without copying the message.
    """
    view = memoryview(data).cast("B")
    total = len(view)
    offset = 0
    while offset < total:
        offset += os.write(fd, view[offset:])
    return total


def unlink_quietly(path):
    """Remove *path* if it is there (clean-up on an error path must not raise another error)."""
    try:
        os.unlink(path)
    except OSError:
        pass


def create_synced(path, data, mode=0o600):
    """Write *data* to the new file *path* (O_EXCL: never someone else's) and fsync it.

    On any error the partial file is removed and the error re-raised.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        unlink_quietly(path)
        raise


def atomic_replace(path, data, tmp_prefix=None, mode=0o600, mtime_after=None):
    """Replace the file *path* with *data* atomically and durably.

    The temporary file is ``<tmp_prefix>.<random>`` (default: ``<path>.tmp``
    prefix) in the same directory, created with O_EXCL so two writers never
    share one temp file.  If *mtime_after* is given, the new file's mtime is
    forced above it: Dovecot re-reads dovecot-keywords only when its mtime
    (seconds) changes, see maildir-keywords.c "mtime must grow every time".
    """
    directory = os.path.dirname(path) or "."
    prefix = tmp_prefix if tmp_prefix is not None else path + ".tmp"
    tmp = "%s.%s" % (prefix, secrets.token_hex(8))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            write_all(fd, data)
            if mtime_after is not None:
                st = os.fstat(fd)
                if int(st.st_mtime) <= mtime_after:
                    os.utime(fd, (st.st_atime, mtime_after + 1))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise
    sync_dir(directory)


@contextmanager
def locked(path):
    """Hold an exclusive lock on ``path + '.lock'`` for a read-modify-write of *path*.

    Two admin commands editing the same file at once then run one after the other, and neither
    loses the other's edit.
    """
    descriptor = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
