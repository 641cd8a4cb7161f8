"""One Maildir folder's state, kept in memory once per process and shared by every session.

Why: IMAP needs UIDs, flags and sizes of every message at SELECT and FETCH FLAGS time; on a
100,000 message folder that must come from file names, never from message bodies
(docs/architecture.md, On disk).  Every session of the same folder shares one Folder, so a change made by one (or found
on disk, e.g. a new delivery in new/) reaches all of them through IFolderListener.

What this module decides:

* Messages are found by directory listing only.  Size (S=), RFC822.SIZE (W=) and flags (``:2,``)
  come from the name (names.py); a name without W= is read once and its size cached in the UID
  list as Dovecot's W record extension.
* A message found in new/ is renamed into cur/ with an empty ``:2,`` info, as Dovecot does when it
  first sees it, and is \\Recent to the first session told about it.
* UIDs come from the dovecot-uidlist (uidlist.py), new files getting ascending UIDs in the order
  of their delivery time (the seconds at the start of a Maildir name); new UIDs are appended to
  the list (unflushed, under its reservation: uidlist.py) before any session learns them, and
  removals wait for the next poll's atomic rewrite (see save and _drop).
* Flags change by renaming the file in cur/; keywords take letters through dovecot-keywords.
* Every arrival, flag change and expunge takes a new mod-sequence (RFC 7162), kept by modseq.py;
  the whole state is written when the appliance stops (FolderRegistry.save_all).
* Changes by other programs are found by polling: new/ is listed, and cur/ is re-listed when its
  modification time moved, every POLL_INTERVAL_SECONDS while any session watches the folder, and
  whenever a session asks (NOOP, IDLE, CHECK).  The appliance is the only writer of the UID list:
  it takes no Dovecot dotlock, so Dovecot must not serve the same Maildir at the same time.
"""

import errno
import functools
import os
import shutil

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from mailbox_appliance.atomic import create_synced, sync_dir, unlink_quietly
from mailbox_appliance.interfaces import IFolderListener
from mailbox_appliance.message import crlf_size
from . import names
from .flags import to_letters
from .keywords import Keywords
from .modseq import ModSeqs
from .uidlist import UidList

__all__ = ["Folder", "FolderRegistry", "Message", "POLL_INTERVAL_SECONDS"]

# How often a watched folder looks for mail delivered or changed behind its back; IDLE reports new
# mail within this time (well under a second, so a phone in IDLE hears of it at once).
POLL_INTERVAL_SECONDS = 0.5
INFO = ":2,"


class Message:
    """What the folder knows of one message without opening it."""

    __slots__ = ("uid", "base", "letters", "modseq", "_vsize", "_mtime")

    def __init__(self, uid, base, letters):
        self.uid = uid
        self.base = base
        self.letters = letters            # sorted flag letters, as in the file name
        self.modseq = None                # RFC 7162 MODSEQ, set with the UID
        self._vsize = None
        self._mtime = None

    @property
    def file_name(self):
        return self.base + INFO + self.letters

    def size_field(self, key):
        """The S= or W= value of the base name, or None."""
        marker = "," + key + "="
        start = self.base.find(marker)
        if start < 0:
            return None
        digits = self.base[start + 3:].split(",", 1)[0]
        return int(digits) if digits.isdigit() and digits.isascii() else None


def _split_name(file_name):
    base, _, info = file_name.partition(":")
    return base, _letters(info)


@functools.lru_cache(maxsize=1024)
def _letters(info):
    """The sorted flag letters of a ``2,<letters>`` info.  A folder's files share a few dozen
    infos at most: worked out once each, opening a 100,000-message folder is a third faster."""
    return "".join(sorted(set(info[2:].split(",", 1)[0]))) if info.startswith("2,") else ""


class Folder:
    """The shared state of one Maildir folder (INBOX or a Maildir++ sub-folder)."""

    log = Logger()

    def __init__(self, path, clock, on_removed=None, committer=None):
        """*on_removed(path)* is told when messages leave the folder (the quota counts again);
        APPEND writes through *committer* (group_commit.GroupCommitter)."""
        self.path = path
        self.clock = clock
        self.committer = committer
        self.on_removed = on_removed or (lambda path: None)
        self.uidlist = UidList.load(path)
        self.keywords = Keywords.load(path)
        self.modseqs = ModSeqs.load(path, has_mail=self.uidlist.next_uid > 1,
                                    cur_mtime=os.stat(os.path.join(path, "cur")).st_mtime_ns)
        self._loaded = False              # messages the UID list knows keep their stored MODSEQ
        self.messages = {}                # uid -> Message, ascending UID order
        self._by_base = {}                # base -> Message
        self._listeners = []
        self._claiming = []               # the listeners that take \Recent (SELECT, not EXAMINE)
        self._unclaimed_recent = set()    # arrived while no claiming session watched
        self._cur_mtime = None
        self._uidlist_dirty = False       # the UID list must be rewritten (removals, sizes)
        self._unsaved_uids = []           # new UIDs not yet on disk: appended at once
        self._incoming = set()            # bases APPEND is making durable in cur/ (append)
        self._poll = LoopingCall(self.refresh, polled=True)
        self._poll.clock = clock
        self.refresh()
        self._loaded = True
        self.modseqs.values = {}
        self._forget_missing()

    def _forget_missing(self):
        """Drop the UID list's records of files that are gone: expunged just before a crash
        (see _drop), or deleted while the appliance was not running.  Their UIDs stay used."""
        if len(self.uidlist) == len(self._by_base):
            return                        # every file has its record, so no record lacks a file
        missing = [base for _uid, base in self.uidlist.items() if base not in self._by_base]
        if missing:
            self.uidlist.remove(missing)
            self._uidlist_dirty = True
            self.save()

    # -- watching -----------------------------------------------------------------------------

    def add_listener(self, listener, claim=True):
        """Start telling *listener* (IFolderListener) about changes; returns the \\Recent UIDs
        nobody has claimed yet.  RFC 3501 §2.3.2: a message is \\Recent to one session only,
        the first to select the folder after it arrived; with *claim* they are now that one's.
        An EXAMINE session (RFC 3501 §6.3.2) sees them without claiming them."""
        IFolderListener(listener)
        self._listeners.append(listener)
        if not self._poll.running:
            self._poll.start(POLL_INTERVAL_SECONDS, now=False)
        if not claim:
            return set(self._unclaimed_recent)
        self._claiming.append(listener)
        recent, self._unclaimed_recent = self._unclaimed_recent, set()
        return recent

    def remove_listener(self, listener):
        if listener in self._claiming:
            self._claiming.remove(listener)
        if listener in self._listeners:
            self._listeners.remove(listener)
        if not self._listeners and self._poll.running:
            self._poll.stop()

    def _tell(self, method, uids, origin=None, **extra):
        for listener in list(self._listeners):
            if listener is not origin:
                getattr(listener, method)(uids, **extra)

    # -- reading the directories --------------------------------------------------------------

    def refresh(self, polled=False):
        """Take in what changed on disk: new mail in new/, and any outside change to cur/.

        The UID list's rewrite for removals (see save) waits for the poll while one runs: a busy
        folder's commands (STATUS, NOOP after each EXPUNGE) would otherwise rewrite it each time."""
        taken = self._take_new()
        added = list(taken)
        expunged, changed = [], []
        cur = os.path.join(self.path, "cur")
        if os.stat(cur).st_mtime_ns != self._cur_mtime:
            expunged, changed, found = self._reconcile_cur()
            added.extend(found)
            self._cur_mtime = os.stat(cur).st_mtime_ns
        uids = self._assign(added)
        self.save(rewrite=polled or not self._poll.running)
        if expunged:
            self._tell("messages_expunged", expunged)
        if changed:
            self._tell("flags_changed", changed)
        if uids:
            self._arrived(uids, recent={self._by_base[base].uid for base in taken})

    def _arrived(self, uids, recent):
        """Tell every session of new messages *uids*.  Those in *recent* (delivered, appended or
        copied here, not found already seen in cur/) are \\Recent to the longest-watching
        claiming session, or stay unclaimed for the next SELECT; a read-only session is shown
        them only while no session has claimed them (RFC 3501 §2.3.2, §6.3.2)."""
        if self._claiming:
            claimer = self._claiming[0]
        else:
            claimer = None
            self._unclaimed_recent |= recent
        for listener in list(self._listeners):
            if listener is claimer or (claimer is None and listener not in self._claiming):
                listener.messages_added(uids, recent=set(recent))
            else:
                listener.messages_added(uids, recent=set())

    def _take_new(self):
        """Move every file of new/ into cur/ with an empty info; returns their base names."""
        new_dir = os.path.join(self.path, "new")
        with os.scandir(new_dir) as entries:
            found = [entry.name for entry in entries if not entry.name.startswith(".")]
        moved = []
        for file_name in found:
            base, letters = _split_name(file_name)
            try:
                os.rename(os.path.join(new_dir, file_name),
                          os.path.join(self.path, "cur", base + INFO + letters))
            except FileNotFoundError:
                continue                  # taken by another reader of the Maildir
            self._by_base[base] = Message(None, base, letters)
            moved.append(base)
        return moved

    def _reconcile_cur(self):
        """List cur/ and compare with memory: (expunged uids, changed uids, new bases)."""
        with os.scandir(os.path.join(self.path, "cur")) as entries:
            on_disk = dict(_split_name(entry.name) for entry in entries if not entry.name.startswith("."))
        for base in self._incoming:
            on_disk.pop(base, None)
        gone, changed = [], []
        for base, message in self._by_base.items():
            letters = on_disk.pop(base, None)
            if letters is None:
                gone.append(message)
            elif letters != message.letters and message.uid is not None:
                message.letters = letters
                message.modseq = self.modseqs.next()
                changed.append(message.uid)
        for message in gone:
            del self._by_base[message.base]
            self.messages.pop(message.uid, None)
        expunged = [m.uid for m in gone if m.uid is not None]
        if expunged:
            self.uidlist.remove([m.base for m in gone])
            self._uidlist_dirty = True
            self.modseqs.remember_expunged(expunged, self.modseqs.next())
        for base, letters in on_disk.items():
            self._by_base[base] = Message(None, base, letters)
        return expunged, changed, list(on_disk)

    def _assign(self, bases):
        """Give UIDs to *bases* (new ones ascending in delivery order), index them; their UIDs."""
        if not bases:
            return []
        uid_for = self.uidlist.uid_for
        known_uids = {base: uid_for(base) for base in bases}
        fresh = sorted((base for base, uid in known_uids.items() if uid is None), key=names.delivery_order)
        if fresh:
            assigned = self.uidlist.assign(fresh)
            self._unsaved_uids.extend(assigned.values())
            known_uids.update(assigned)
        added = [self._by_base[base] for base in bases]
        fresh = set(fresh)
        for message in added:
            message.uid = known_uids[message.base]
            known = self.modseqs.stored(message.uid) if not self._loaded and message.base not in fresh else None
            message.modseq = known or self.modseqs.next()
        added.sort(key=lambda m: m.uid)
        if self.messages and added[0].uid < next(reversed(self.messages)):
            # Only on a file the UID list knew coming back (restored by hand): keep UID order.
            added = sorted([*self.messages.values(), *added], key=lambda m: m.uid)
            self.messages = {}
        self.messages.update((m.uid, m) for m in added)
        return [m.uid for m in added]

    def close(self):
        """Stop watching: the folder was deleted or renamed."""
        self._listeners = []
        if self._poll.running:
            self._poll.stop()

    def save(self, rewrite=True, release=False):
        """Save new UIDs before any session learns them, and new keywords.

        New UIDs are appended to the UID list (under its reservation: uidlist.py); removals and
        cached sizes need a whole atomic rewrite, which *rewrite* false leaves to the next poll
        (the commands of a busy folder then flush once, not twice).  *release*: see
        UidList.save."""
        if self._uidlist_dirty and rewrite:
            sync_dir(os.path.join(self.path, "cur"))      # removals first (see _drop)
            self.uidlist.save(release=release)
            self._uidlist_dirty = False
            self._unsaved_uids = []
        elif self._unsaved_uids:
            self.uidlist.append(self._unsaved_uids)
            self._unsaved_uids = []
        if self.keywords.changed:
            self.keywords.save()

    def save_clean(self):
        """Everything, the mod-sequences' whole state too: the appliance is stopping."""
        self._uidlist_dirty = (self._uidlist_dirty or bool(self._unsaved_uids)
                               or self.uidlist.reserved > self.uidlist.next_uid)
        self.save(release=True)
        self.modseqs.save_clean(self.messages.values(), os.stat(os.path.join(self.path, "cur")).st_mtime_ns)

    @property
    def highest_modseq(self):
        return self.modseqs.highest

    # -- per message facts --------------------------------------------------------------------

    @property
    def recent_count(self):
        """Messages \\Recent to whichever session selects the folder next (STATUS RECENT)."""
        return len(self._unclaimed_recent)

    @property
    def uidvalidity(self):
        return self.uidlist.uidvalidity

    @property
    def next_uid(self):
        return self.uidlist.next_uid

    def file_path(self, message):
        return os.path.join(self.path, "cur", message.file_name)

    def rfc822_size(self, message):
        """RFC822.SIZE: W= from the name, else the cached W record, else read once and cache."""
        if message._vsize is None:
            size = message.size_field("W")
            if size is None:
                cached = self.uidlist.get_extension(message.uid, "W")
                size = int(cached) if cached and cached.isdigit() else None
            if size is None:
                size = crlf_size(self.read(message))
                self.uidlist.set_extension(message.uid, "W", size)
                self._uidlist_dirty = True
            message._vsize = size
        return message._vsize

    def stored_size(self, message):
        """The octets the message takes on disk: S= from the name, else a stat (quota, STATUS SIZE)."""
        size = message.size_field("S")
        if size is None:
            try:
                size = os.stat(self.file_path(message)).st_size
            except FileNotFoundError:
                size = 0
        return size

    def internal_date(self, message):
        """INTERNALDATE as a POSIX time: the file's modification time, as Dovecot keeps it."""
        if message._mtime is None:
            message._mtime = os.stat(self.file_path(message)).st_mtime
        return message._mtime

    def read(self, message):
        """The message file's bytes, as stored (line ends untouched)."""
        with open(self.file_path(message), "rb") as handle:
            return handle.read()

    def flag_letters(self, flags, create=True):
        """The Maildir letters for IMAP *flags*; new keywords get a letter if *create*."""
        return to_letters(flags, self.keywords, create)

    # -- changes ------------------------------------------------------------------------------

    def set_letters(self, uids, letters, mode, origin=None):
        """STORE: replace (mode 0), add (1) or remove (-1) *letters* on these messages.

        Returns the UIDs whose flags changed; listeners other than *origin* are told.
        """
        changed = []
        cur = os.path.join(self.path, "cur")
        if self.keywords.changed:
            # A new keyword's letter is durable before any file name carries it: on a full disk
            # this fails with nothing renamed, and the letters it allocated are given back (the
            # unchanged file read again), so that reading commands do not retry the write.
            try:
                self.keywords.save()
            except OSError:
                self.keywords = Keywords.load(self.path)
                raise
        for uid in uids:
            message = self.messages.get(uid)
            if message is None:
                continue
            old = set(message.letters)
            new = letters if mode == 0 else (old | letters if mode > 0 else old - letters)
            new_letters = "".join(sorted(new))
            if new_letters == message.letters:
                continue
            try:
                os.rename(os.path.join(cur, message.file_name),
                          os.path.join(cur, message.base + INFO + new_letters))
            except FileNotFoundError:
                continue                  # expunged or renamed outside: the next refresh tells
            message.letters = new_letters
            message.modseq = self.modseqs.next()
            changed.append(uid)
        if changed:
            self._cur_mtime = os.stat(cur).st_mtime_ns
            self.save(rewrite=False)
            self._tell("flags_changed", changed, origin)
        return changed

    def append(self, items):
        """APPEND (RFC 3501 §6.3.11): store each (data, flag letters, internal date or None)
        durably, all or none (RFC 3502 §6); a Deferred firing with their UIDs.

        Each is written to tmp/, made durable and renamed straight into cur/ with its flags by the
        group committer's thread, which fsyncs cur/ once for every APPEND waiting: the reactor
        serves the other sessions meanwhile (writing and fsyncing here took a third of its time
        under imaptest's load).  UIDs are given once the files are durable; each message is
        \\Recent (RFC 3501 §2.3.2), like delivered and copied mail, to one session."""
        jobs = [_Appended(self.path, data, letters, internal_date) for data, letters, internal_date in items]
        # Until then the files in cur/ are this folder's own: a poll must not adopt them.
        self._incoming.update(job.base for job in jobs)

        def settled(result):
            self._incoming.difference_update(job.base for job in jobs)
            return result
        committing = self.committer.commit(jobs)
        committing.addBoth(settled)
        committing.addCallback(lambda _: self._register([(job.base, job.letters) for job in jobs]))
        return committing

    def copy_in(self, source, messages):
        """COPY into this folder: hard links when possible (same bytes, no copy), else a copy.

        Returns the new UIDs in the order of *messages*.
        """
        uids = []
        for message in messages:
            base = names.new_base_name(message.size_field("S") or os.stat(source.file_path(message)).st_size,
                                       source.rfc822_size(message))
            tmp_path = os.path.join(self.path, "tmp", base)
            try:
                os.link(source.file_path(message), tmp_path)
            except OSError as error:
                if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                shutil.copyfile(source.file_path(message), tmp_path)
            os.utime(tmp_path, (source.internal_date(message),) * 2)
            letters = set(message.letters) - set(names.KEYWORD_LETTERS)
            keywords = [source.keywords.keyword_for(letter) for letter in message.letters
                        if letter in names.KEYWORD_LETTERS]
            letters |= self.flag_letters([k for k in keywords if k])
            uids.append(self._publish(tmp_path, base, letters))
        if uids:
            self._arrived(uids, recent=set(uids))
        return uids

    def _publish(self, tmp_path, base, letters):
        letters = "".join(sorted(letters))
        cur = os.path.join(self.path, "cur")
        try:
            os.rename(tmp_path, os.path.join(cur, base + INFO + letters))
        except BaseException:
            unlink_quietly(tmp_path)
            raise
        sync_dir(cur)
        return self._register([(base, letters)], notify=False)[0]

    def _register(self, stored, notify=True):
        """Index messages just stored durably in cur/ as (base, letters); their new UIDs, saved
        to the UID list before any session is told of them."""
        for base, letters in stored:
            self._by_base[base] = Message(None, base, letters)
        uids = self._assign([base for base, _letters in stored])
        self._cur_mtime = os.stat(os.path.join(self.path, "cur")).st_mtime_ns
        self.save(rewrite=False)
        if notify:
            self._arrived(uids, recent=set(uids))
        return uids

    def expunge(self, uids=None, origin=None):
        """Remove the \\Deleted messages (only those in *uids*, if given: UID EXPUNGE, RFC 4315).

        Returns the removed UIDs, ascending; listeners other than *origin* are told.
        """
        deleted_letter = names.FLAG_TRASHED
        candidates = self.messages.values() if uids is None else (
            self.messages[uid] for uid in uids if uid in self.messages)
        doomed = [m for m in candidates if deleted_letter in m.letters]
        for message in doomed:
            unlink_quietly(self.file_path(message))
        return self._drop(doomed, origin)

    def remove(self, uids, origin=None):
        """MOVE (RFC 6851) and POP3 deletion: take these messages out whatever their flags;
        returns their UIDs.  The unlinks are made durable at once: these messages are not
        flagged \\Deleted, so one coming back after a crash would be a copy left behind (MOVE)
        or mail the client was told is gone (POP3)."""
        doomed = [self.messages[uid] for uid in uids if uid in self.messages]
        for message in doomed:
            unlink_quietly(self.file_path(message))
        if doomed:
            sync_dir(os.path.join(self.path, "cur"))
        return self._drop(doomed, origin)

    def _drop(self, doomed, origin):
        """Forget removed messages.  The UID list is saved later (by the next poll or change),
        after an fsync of cur/ so that a record never goes before its file: should a crash lose
        EXPUNGE's unlinks, the files come back with their UIDs still listed, flagged
        \\Deleted; should it lose the save, the records of files that are gone are dropped
        when the folder is next opened.  Either way no UID is ever given to another message,
        and EXPUNGE costs no disk flush (it was the slowest command of a busy folder)."""
        if not doomed:
            return []
        self.uidlist.remove([m.base for m in doomed])
        for message in doomed:
            del self.messages[message.uid]
            del self._by_base[message.base]
        self._uidlist_dirty = True
        self.modseqs.remember_expunged([m.uid for m in doomed], self.modseqs.next())
        self._cur_mtime = os.stat(os.path.join(self.path, "cur")).st_mtime_ns
        removed = sorted(m.uid for m in doomed)
        self.on_removed(self.path)
        self._tell("messages_expunged", removed, origin)
        return removed


class _Appended:
    """One APPENDed message as an ICommitJob: written durably in tmp/, then renamed into
    cur/ with its flags; the committer fsyncs cur/.  Not delivery.MaildirJob: an APPEND goes to
    cur/ even without flags (a client that appends has seen it), carries its internal date, and
    has its name before the writer thread runs, so a poll can leave the file to the APPEND."""

    def __init__(self, folder_path, data, letters, internal_date):
        self.data, self.internal_date = data, internal_date
        self.letters = "".join(sorted(letters))
        self.base = names.new_base_name(len(data), crlf_size(data))
        self.tmp_path = os.path.join(folder_path, "tmp", self.base)
        self.cur = os.path.join(folder_path, "cur")
        self.cur_path = os.path.join(self.cur, self.base + INFO + self.letters)

    def write(self):
        create_synced(self.tmp_path, self.data)
        if self.internal_date is not None:
            os.utime(self.tmp_path, (self.internal_date, self.internal_date))

    def publish(self):
        os.rename(self.tmp_path, self.cur_path)

    def directories(self):
        return [self.cur]

    def settle(self):
        self.data = None

    def discard(self):
        unlink_quietly(self.tmp_path)
        unlink_quietly(self.cur_path)


class FolderRegistry:
    """The one Folder per directory in this process; folders stay open once opened, so the
    second SELECT of a large folder costs nothing but the directory poll.

    service.py makes one and hands it to the realm: every IMAP and POP3 session must share it, or
    two sessions of one folder would hold two diverging states."""

    def __init__(self, clock, committer, on_removed=None):
        """*committer*, *on_removed(folder path)*: see Folder."""
        self.clock = clock
        self.committer = committer
        self.on_removed = on_removed
        self._folders = {}
        self._name_watchers = {}          # maildir -> sessions told of folder name changes

    def open(self, path):
        path = os.path.realpath(path)
        folder = self._folders.get(path)
        if folder is None:
            folder = self._folders[path] = Folder(path, self.clock, self.on_removed, self.committer)
        return folder

    def watch_names(self, maildir, watcher):
        """Tell *watcher* (``names_changed(origin, event, name, old_name)``) of folders made,
        deleted, renamed and (un)subscribed in *maildir* (IMAP NOTIFY, RFC 5465 §5.4-5.5)."""
        self._name_watchers.setdefault(maildir, []).append(watcher)

    def unwatch_names(self, maildir, watcher):
        watchers = self._name_watchers.get(maildir, [])
        if watcher in watchers:
            watchers.remove(watcher)

    def names_changed(self, maildir, origin, event, name, old_name=None):
        for watcher in list(self._name_watchers.get(maildir, ())):
            watcher.names_changed(origin, event, name, old_name)

    def save_all(self):
        """At shutdown: every open folder's whole state, mod-sequences included (modseq.py)."""
        for folder in self._folders.values():
            folder.save_clean()

    def forget(self, path):
        """Drop the state of a deleted or renamed folder (and of every folder below it)."""
        path = os.path.realpath(path)
        for known in list(self._folders):
            if known == path or known.startswith(path + "."):
                self._folders.pop(known).close()
