"""Durable file primitives shared by the storage, account and queue modules.

Every file the appliance replaces is written the same way: a temporary file in
the same directory, written whole, fsynced, renamed over the target, and the
directory fsynced.  rename(2) is atomic within a file system, so a reader (or a
reboot) sees either the old file or the new one, never a torn one.

The group committer's writer thread makes the files of a whole round durable at
once (SyncRound): one syncfs(2) per file system instead of one fsync per file.
"""

import collections
import ctypes
import errno
import fcntl
import os
import platform
import re
import secrets
import threading
from contextlib import contextmanager

__all__ = ["sync_dir", "write_all", "create_synced", "SyncRound", "unlink_quietly", "atomic_replace", "locked",
           "disk_full"]


_LibcCalls = collections.namedtuple("_LibcCalls", "syncfs fstatfs")


def _libc_syncfs():
    """libc's syncfs(2) and fstatfs(2) (_LibcCalls) where syncfs reports every error: Linux 5.17 and later
    (from 5.8, commit 735e4ae5ba28, write-back errors; from 5.17, commit 5679897eb104, the file
    system's own; before, it returned 0 whatever was lost); else None."""
    version = re.match(r"(\d+)\.(\d+)", platform.release())
    if platform.system() != "Linux" or version is None or (int(version[1]), int(version[2])) < (5, 17):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs, fstatfs = libc.syncfs, libc.fstatfs
    except (OSError, AttributeError):
        return None
    syncfs.argtypes, syncfs.restype = [ctypes.c_int], ctypes.c_int
    fstatfs.argtypes, fstatfs.restype = [ctypes.c_int, ctypes.c_void_p], ctypes.c_int
    return _LibcCalls(syncfs, fstatfs)


_SYNCFS = _libc_syncfs()
_rounds = threading.local()       # .current: the SyncRound open in this thread, if any
# The file systems (statfs f_type) whose syncfs makes every file written there durable, as an
# fsync of each would: ext2/3/4, XFS, btrfs, and tmpfs (nothing is durable there anyway).  On
# others (FUSE, network file systems, overlayfs) syncfs may not ask the server, or pass on a
# write-back error, where fsync does: their files are fsynced one by one.
_SYNCFS_KEEPS_FILES = {0xEF53, 0x58465342, 0x9123683E, 0x01021994}


def _syncfs_keeps_files(fd):
    """Whether syncfs makes the files of *fd*'s file system durable (_SYNCFS_KEEPS_FILES)."""
    statfs = ctypes.create_string_buffer(512)      # struct statfs, f_type (a word) first
    if _SYNCFS.fstatfs(fd, statfs) != 0:
        return False
    return ctypes.c_ulong.from_buffer(statfs).value & 0xFFFFFFFF in _SYNCFS_KEEPS_FILES


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
    """Write *data* to the new file *path* (O_EXCL: never someone else's) and make it durable:
    fsynced here, or, inside a SyncRound of this thread, by that round's sync().

    On any error the partial file is removed and the error re-raised.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            syncing = getattr(_rounds, "current", None)
            by_round = syncing is not None and syncing.add(fd, path)
            write_all(fd, data)
            if not by_round:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        unlink_quietly(path)
        raise


def sync_filesystem(fd):
    """syncfs(2) the file system *fd* is on: every file written there is durable once it
    returns; a write-back error there since *fd* was opened is raised (OSError)."""
    if _SYNCFS.syncfs(fd) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


class SyncRound:
    """Files create_synced makes in this thread while the round is entered are made durable
    together by sync(), before any of them is renamed into place.

    A round of the group committer holds a file for each message that arrived meanwhile.  With
    an fsync each, the writer thread waited once per file for the disk, then for a CPU and the
    interpreter lock: at 700 messages a second a round of 9 files took 10 ms (median).  One
    syncfs(2) per file system, which writes back every file there and flushes the disk's cache
    once, brought that to 3.5 ms.  Where syncfs does not report every error (before Linux
    5.17, or off Linux), and on file systems not in _SYNCFS_KEEPS_FILES, create_synced fsyncs
    each file instead; so it does in a round of one job (*together* false), where an fsync
    costs no more and writes back nothing else.

    The file system's descriptor is opened before the first file on it is written: syncfs
    reports only the errors that came after its descriptor was opened.  Unrelated files on the
    same file system are written back too, and an error writing one of them fails the round:
    the data directory is best on a file system of its own.
    """

    def __init__(self, together=True):
        self._together = together and _SYNCFS is not None
        self._filesystems = {}        # st_dev: a descriptor of a directory on it, or None

    def __enter__(self):
        if self._together:
            _rounds.current = self
        return self

    def __exit__(self, exc_type, *exc_info):
        _rounds.current = None
        if exc_type is not None:
            self._close()

    def add(self, fd, path):
        """*fd*, open on the new file *path*, is about to be written: whether the round makes
        it durable (else the caller fsyncs it)."""
        device = os.fstat(fd).st_dev
        if device not in self._filesystems:
            self._filesystems[device] = os.open(os.path.dirname(path) or ".",
                                                os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) \
                if _syncfs_keeps_files(fd) else None
        return self._filesystems[device] is not None

    def sync(self):
        """Make every file of the round durable (OSError if that cannot be known), then close."""
        try:
            for fd in self._filesystems.values():
                if fd is not None:
                    sync_filesystem(fd)
        finally:
            self._close()

    def _close(self):
        filesystems, self._filesystems = self._filesystems, {}
        for fd in filesystems.values():
            if fd is not None:
                os.close(fd)


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
