"""The user's active Sieve script applied at delivery: where each local copy goes.

Delivery asks ``SieveFilter.stores`` for each local mailbox of a message; the answer is the
folders to store it in, each with its flag letters, or none when the script discarded it.  The
folder the message would go to without a script (INBOX, or Junk for spam: Resolution.folder) is
what ``keep`` and the implicit keep mean, so a script sees the spam verdict and may override it.

A script never loses mail (RFC 5228 §2.10.6): a script that does not check or run, a fileinto
to a folder that does not exist (without ``:create``, RFC 5490 §3) or cannot be, and copies
beyond the user's quota all fall back to that default folder, with one log line saying why.
"""

import os
import time

from twisted.logger import Logger
from twisted.mail import imap4

from mailbox_appliance.maildir.flags import TooManyKeywords, to_letters
from mailbox_appliance.maildir.keywords import Keywords
from mailbox_appliance.maildir.layout import (
    UnsafeFolderName, folder_path, read_subscriptions, user_maildir, write_subscriptions,
)
from mailbox_appliance.sieve import interpreter
from mailbox_appliance.sieve.grammar import SieveError

INBOX = "INBOX"


class SieveFilter:
    log = Logger()

    def __init__(self, data_dir, scripts, quotas, clock=time.monotonic):
        """*scripts* (ISieveScripts) holds the users' scripts; *quotas* (IQuotas) is asked
        before a script makes a second copy."""
        self.data_dir, self.scripts, self.quotas, self.clock = data_dir, scripts, quotas, clock

    def stores(self, queue_id, mailbox, sender, recipient, message, default_folder):
        """[(folder, flag letters)] for *mailbox*'s copy of *message* (folder "" is INBOX, as
        in Resolution.folder); [] when its script discarded the message."""
        default = [(default_folder, "")]
        try:
            commands = self.scripts.active(mailbox)
        except (SieveError, OSError) as problem:
            self._kept(queue_id, mailbox, f"its active script cannot be read: {problem}")
            return default
        if commands is None:
            return default
        local, _, domain = mailbox.rpartition("@")
        maildir = user_maildir(self.data_dir, domain, local)
        try:
            outcome = interpreter.run(commands, message, interpreter.Envelope(sender, recipient),
                                      lambda name: _folder(maildir, name) is not None, self.clock)
        except interpreter.RunError as problem:
            self._kept(queue_id, mailbox, f"its script failed: {problem}")
            return default
        if not outcome.stores:
            self.log.info("sieve {queue_id} for {mailbox}: discarded by the script", queue_id=queue_id, mailbox=mailbox)
            return []
        if len(outcome.stores) > 1 and not self.quotas.fits(mailbox, len(message) * len(outcome.stores)):
            self._kept(queue_id, mailbox, f"{len(outcome.stores)} copies would exceed the quota")
            return default
        placed = []
        for store in outcome.stores:
            folder = default_folder if store.folder.upper() == INBOX else _folder(maildir, store.folder, store.create)
            if folder is None:
                # Kept as if there were no script: not marked \Seen where the user never looks.
                self._kept(queue_id, mailbox, f"no folder {store.folder!r} (fileinto :create makes it)")
                placed.append((default_folder, ""))
            else:
                placed.append((folder, _letters(maildir, folder, store.flags)))
        placed = list(dict.fromkeys(placed))
        if placed != default:
            self.log.info("sieve {queue_id} for {mailbox}: {placed}", queue_id=queue_id, mailbox=mailbox,
                          placed=", ".join(f"{folder or INBOX}" + (f" flags {letters}" if letters else "")
                                           for folder, letters in placed))
        return placed

    def _kept(self, queue_id, mailbox, why):
        self.log.error("sieve {queue_id} for {mailbox}: kept in the default folder, {why}",
                       queue_id=queue_id, mailbox=mailbox, why=why)


def _folder(maildir, name, create=False):
    """The on-disk (modified UTF-7, RFC 3501 §5.1.3) name of the folder a script names in UTF-8
    (RFC 5228 §4.1), or None when there is no such folder and *create* is false or it cannot be
    made.  A folder made is subscribed, so that clients show it."""
    if name.upper() == INBOX:
        return ""
    encoded = imap4.encoder(name)[0].decode("ascii")
    try:
        path = folder_path(maildir, encoded)
    except UnsafeFolderName:
        return None
    if os.path.isdir(os.path.join(path, "cur")):
        return encoded
    if not create:
        return None
    levels = tuple(encoded.split("."))
    subscribed = read_subscriptions(maildir)
    if levels not in subscribed:
        write_subscriptions(maildir, subscribed + [levels])
    return encoded


def _letters(maildir, folder, flags):
    """The Maildir letters of *flags* in *folder*: system flags, and keywords the folder knows
    already (a new keyword would need its dovecot-keywords file written here; it is dropped)."""
    if not flags:
        return ""
    directory = folder_path(maildir, folder) if folder else maildir
    try:
        return "".join(sorted(to_letters(flags, Keywords.load(directory), create=False)))
    except (TooManyKeywords, OSError):
        return ""
