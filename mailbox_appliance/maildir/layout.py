"""Where mail lives on disk: per-user Maildirs and their Maildir++ folders.

Why: every path built from client or admin input must stay inside the user's
own Maildir, so all path building goes through the checks here.

Layout decided here:

* ``DATA/mail/DOMAIN/LOCALPART`` is the user's Maildir (docs/architecture.md, On disk).
* Folders are Maildir++ (Courier's layout, Dovecot's default): a folder
  ``Work.Projects`` is the directory ``.Work.Projects`` in the Maildir root,
  a Maildir itself (cur/ new/ tmp/) holding an empty ``maildirfolder`` file;
  INBOX is the root.  This module takes names already in that on-disk form
  and does not choose the IMAP hierarchy separator.
* ``subscriptions`` in the root is Dovecot's subscription file
  (src/lib-storage/list/subscription-file.c): Dovecot 2.3 writes a version 2
  header ``V<TAB>2<LF><LF>``, then one mailbox per line with hierarchy levels
  separated by TAB and each level tab-escaped (\\001 -> \\0011, TAB -> \\001t,
  CR -> \\001r, LF -> \\001n).  A file without the header is version 1: one
  name per line, written with the namespace separator.
"""

import os

from mailbox_appliance.atomic import atomic_replace, sync_dir

__all__ = [
    "SPECIAL_FOLDERS", "SUBSCRIPTIONS_FILE", "UnsafeFolderName",
    "user_maildir", "ensure_user_maildir", "create_user_maildir", "make_maildir", "folder_path",
    "check_folder_name", "read_subscriptions", "write_subscriptions",
]

NAME_MAX = 255

# Folder name -> RFC 6154 special-use attribute.
SPECIAL_FOLDERS = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}
SUBSCRIPTIONS_FILE = "subscriptions"
MAILDIRFOLDER_FILE = "maildirfolder"
_SUBS_V2_HEADER = "V\t2\n\n"


class UnsafeFolderName(ValueError):
    """A folder name that is malformed or would leave the user's Maildir.

    ``reason`` is a short sentence fit to send to the client.
    """

    def __init__(self, name, reason):
        super().__init__("unsafe folder name %r: %s" % (name, reason))
        self.name = name
        self.reason = reason


def _check_path_component(kind, value):
    if not isinstance(value, str):
        raise ValueError("%s must be a string, not %s"
                         % (kind, type(value).__name__))
    if not value:
        raise ValueError("%s is empty" % kind)
    if "/" in value:
        raise ValueError("%s %r contains '/'" % (kind, value))
    if "\0" in value:
        raise ValueError("%s %r contains a NUL byte" % (kind, value))
    if value in (".", ".."):
        raise ValueError("%s may not be %r" % (kind, value))
    if len(value.encode("utf-8", "surrogateescape")) > NAME_MAX:
        raise ValueError("%s is longer than %d bytes" % (kind, NAME_MAX))


def user_maildir(data_dir, domain, localpart):
    """Path of the Maildir for localpart@domain: DATA/mail/DOMAIN/LOCALPART.

    Raises ValueError naming the bad part if domain or localpart is empty,
    '.', '..', contains '/' or NUL, or exceeds 255 bytes.
    """
    _check_path_component("domain", domain)
    _check_path_component("localpart", localpart)
    return os.path.join(os.fspath(data_dir), "mail", domain, localpart)


def make_maildir(path, folder=False):
    """Create cur/ new/ tmp/ under *path* (and ``maildirfolder`` if *folder*).

    Missing parent directories are created too, and every new directory
    entry is fsynced.  Existing parts are left alone.  Returns True if
    anything was created.
    """
    created = False
    if not os.path.isdir(path):
        missing = []
        p = os.path.abspath(path)
        while not os.path.isdir(p):
            missing.append(p)
            p = os.path.dirname(p)
        os.makedirs(path, mode=0o700, exist_ok=True)
        for made in reversed(missing):      # make each new entry durable
            sync_dir(os.path.dirname(made))
        created = True
    for sub in ("cur", "new", "tmp"):
        p = os.path.join(path, sub)
        if not os.path.isdir(p):
            os.mkdir(p, 0o700)
            created = True
    if folder:
        marker = os.path.join(path, MAILDIRFOLDER_FILE)
        if not os.path.exists(marker):
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
                             0o600))
            created = True
    if created:
        sync_dir(path)
    return created


def ensure_user_maildir(data_dir, address):
    """The Maildir of *address* (user@domain), created with its special-use folders if it does not
    exist yet: a user added by editing the users file by hand has none."""
    localpart, _, domain = address.rpartition("@")
    path = user_maildir(data_dir, domain, localpart)
    create_user_maildir(path)
    return path


def create_user_maildir(path):
    """Create a user's Maildir with the special-use folders; idempotent.

    Creates the root cur/new/tmp, ``.Sent .Drafts .Trash .Junk .Archive``
    (each a Maildir with ``maildirfolder``), and, only if absent, a Dovecot
    ``subscriptions`` file subscribing to them.  An existing subscriptions
    file is never rewritten (the user's choices win).
    """
    path = os.fspath(path)
    make_maildir(path)
    for name in SPECIAL_FOLDERS:
        make_maildir(os.path.join(path, "." + name), folder=True)
    subs = os.path.join(path, SUBSCRIPTIONS_FILE)
    if not os.path.exists(subs):
        write_subscriptions(path, [(name,) for name in SPECIAL_FOLDERS])
    sync_dir(path)


def folder_path(maildir, name):
    """Directory of the Maildir++ folder *name* (on-disk form) inside *maildir*.

    "INBOX" (any case) is the root itself; "Work.Projects" is
    ``<maildir>/.Work.Projects``.  Raises UnsafeFolderName for '/', NUL or
    control characters, empty or '.'/'..' levels (so no leading, trailing or
    doubled '.'), names over 255 bytes on disk, and anything that resolves
    (symlinks included) outside *maildir*.
    """
    maildir = os.fspath(maildir)
    if isinstance(name, str) and name.upper() == "INBOX":
        return maildir
    path = os.path.join(maildir, check_folder_name(name))
    root = os.path.realpath(maildir)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root or real == root:
        raise UnsafeFolderName(name, "folder name points outside the mailbox")
    return path


def check_folder_name(name):
    """The directory name (``.Work.Projects``) of the folder *name* other than INBOX, checked
    as folder_path does, but for where it resolves: for a directory listed in the Maildir and
    no symlink, that is inside it (LIST then costs no realpath per folder)."""
    if not isinstance(name, str):
        raise UnsafeFolderName(name, "folder name must be text")
    if not name:
        raise UnsafeFolderName(name, "folder name is empty")
    if "/" in name:
        raise UnsafeFolderName(name, "folder name may not contain '/'")
    if "\0" in name:
        raise UnsafeFolderName(name, "folder name may not contain NUL")
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in name):
        raise UnsafeFolderName(name,
                               "folder name may not contain control characters")
    if name.startswith("."):
        raise UnsafeFolderName(name, "folder name may not start with '.'")
    for level in name.split("."):
        if level == "":
            raise UnsafeFolderName(name,
                                   "folder name has an empty hierarchy level")
        if level in (".", ".."):
            raise UnsafeFolderName(name, "folder name may not contain '..'")
    dirname = "." + name
    if len(dirname.encode("utf-8", "surrogateescape")) > NAME_MAX:
        raise UnsafeFolderName(name, "folder name is too long")
    return dirname


def _tabescape(s):
    # Dovecot's str_append_tabescaped (lib/strescape.c).
    return (s.replace("\001", "\0011").replace("\t", "\001t")
            .replace("\r", "\001r").replace("\n", "\001n"))


_UNESCAPE = {"1": "\001", "t": "\t", "r": "\r", "n": "\n", "0": "\0"}


def _tabunescape(s):
    if "\001" not in s:
        return s
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\001" and i + 1 < len(s):
            out.append(_UNESCAPE.get(s[i + 1], s[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def special_folder(path):
    """The special-use folder ("Junk", "Trash", ...) whose directory *path* is, or None."""
    name = os.path.basename(os.path.normpath(path))
    return name[1:] if name.startswith(".") and name[1:] in SPECIAL_FOLDERS else None


def read_subscriptions(maildir):
    """Subscribed mailboxes as tuples of hierarchy levels ([] if no file).

    A version 1 file (no header) gives each line as a one-element tuple,
    unsplit, since its separator is the namespace's and not known here.
    """
    path = os.path.join(os.fspath(maildir), SUBSCRIPTIONS_FILE)
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return []
    if text.startswith(_SUBS_V2_HEADER):
        lines = text[len(_SUBS_V2_HEADER):].split("\n")
        return [tuple(_tabunescape(p) for p in line.split("\t"))
                for line in lines if line]
    return [(line,) for line in text.split("\n") if line]


def write_subscriptions(maildir, names):
    """Atomically write Dovecot's version 2 ``subscriptions`` file.

    *names* is an iterable of mailboxes, each a sequence of hierarchy levels,
    e.g. ``[("Sent",), ("Work", "Projects")]``.
    """
    body = [_SUBS_V2_HEADER]
    for levels in names:
        if isinstance(levels, str):
            levels = (levels,)
        body.append("\t".join(_tabescape(level) for level in levels) + "\n")
    data = "".join(body).encode("utf-8", "surrogateescape")
    atomic_replace(os.path.join(os.fspath(maildir), SUBSCRIPTIONS_FILE), data)
