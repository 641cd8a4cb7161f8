"""How much a user's Maildir++ holds: the octets of every message in INBOX and each ``.Folder``,
read from the ``S=`` of the file names (a stat only for names without it), so a 100,000-message
mailbox is counted from directory listings alone.  The quota (quota.py) keeps a running total
and corrects it with this."""

import os

from .names import parse

__all__ = ["storage_used"]


def _folder_octets(folder):
    total = 0
    for sub in ("cur", "new"):
        directory = os.path.join(folder, sub)
        try:
            entries = os.scandir(directory)
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    size = parse(entry.name).size
                except ValueError:
                    continue
                if size is None:
                    try:
                        size = entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue      # expunged while we counted
                total += size
    return total


def storage_used(maildir):
    """Octets stored in the user's Maildir++ at *maildir* (0 if it does not exist yet)."""
    if not os.path.isdir(maildir):
        return 0
    total = _folder_octets(maildir)
    with os.scandir(maildir) as entries:
        folders = [entry.path for entry in entries if entry.name.startswith(".") and entry.name not in (".", "..")
                   and entry.is_dir(follow_symlinks=False)]
    return total + sum(_folder_octets(folder) for folder in folders)
