"""The per-folder UID list, in Dovecot's ``dovecot-uidlist`` format.

Why: IMAP UIDs must never change while UIDVALIDITY holds, and an office
moving from Dovecot must keep its UIDs, so we read and write Dovecot's own
file (src/lib-storage/index/maildir/maildir-uidlist.c; doc.dovecot.org,
Maildir format, "IMAP UID mapping").

Version 3 (Dovecot v1.1+), the one we write::

    3 V<uidvalidity> N<next uid> G<mailbox guid, 32 lower-case hex>[ <other>]
    <uid>[ <key><value>...] :<base file name>

Header fields are a key letter glued to its value, in any order; unknown ones
are kept and written back.  Record extensions are keys 'A'-'Z' (W = virtual
size, S = physical size, P = POP3 UIDL, O = POP3 order, G = message GUID).
UIDs are strictly ascending; Dovecot treats anything else as a broken file.
The text after ':' is the last known file name; Dovecot writes the base name
only (it cuts at the first ':'), older versions wrote the ``:2,`` info too, so
on reading we cut it off.

Version 1 (Dovecot <= 1.0, Courier's courierimapuiddb)::

    1 <uidvalidity> <next uid>
    <uid> <file name>

is read too and rewritten as version 3 on save.

New records may also be appended at the end of the file, as Dovecot does
between rewrites; a record above the header's next UID raises it.  A last line
without its newline is an append cut short by a crash: it is ignored, and the
next save rewrites the file.

Appends are not fdatasynced (one per APPEND was a sixth of the IMAP reactor's
time under load).  Instead UIDs are reserved, as modseq.py reserves
mod-sequences: before a UID at or above the header's N on disk is handed out,
the file is rewritten with N = next UID + RESERVATION, durably.  A crash may
lose appended records, but their files are then numbered from N upwards: a UID
a client saw is never given to another message (the client sees that message
expunged and a new one arrive).  At shutdown the file is written whole with
the exact next UID (save(release=True)).

Locking: Dovecot serialises writers with a ``dovecot-uidlist.lock`` dotlock.
This class does not lock; the caller must serialise load-modify-save per
folder (one UidList object per folder in the server).
"""

import fcntl
import operator
import os
import secrets
import time
from itertools import islice

from mailbox_appliance.atomic import atomic_replace, write_all

__all__ = ["UidList", "UidListError", "UIDLIST_FILE", "MAX_UID", "RESERVATION", "next_uidvalidity"]

UIDLIST_FILE = "dovecot-uidlist"
UIDVALIDITY_FILE = "dovecot-uidvalidity"
MAX_UID = 0xFFFFFFFE            # Dovecot: "UID too high" at (uint32_t)-1
RESERVATION = 1000              # UIDs handed out per durable rewrite of the header (append)
_HEX = frozenset("0123456789abcdefABCDEF")


class UidListError(ValueError):
    """A dovecot-uidlist file that cannot be parsed (names file and line)."""

    def __init__(self, path, line_no, message):
        where = "%s line %d" % (path, line_no) if line_no else path
        super().__init__("broken UID list %s: %s" % (where, message))
        self.path = path
        self.line_no = line_no


def _maildir_root(folder_path):
    """The Maildir++ root a folder belongs to: itself (INBOX), or the parent of ``.Name``."""
    folder_path = os.path.abspath(os.fspath(folder_path))
    return os.path.dirname(folder_path) if os.path.basename(folder_path).startswith(".") else folder_path


def next_uidvalidity(maildir_root):
    """A UIDVALIDITY for a folder made now: the time, or one more than the last one given in
    this Maildir if that is not less (RFC 3501 §2.3.1.1: a folder deleted and made again within
    the same second must not get the same UIDVALIDITY, or clients would keep their cache of
    the old one).  The last value is kept, as Dovecot keeps it, in ``dovecot-uidvalidity`` (hex)
    in the Maildir's root, under an flock, written durably."""
    path = os.path.join(maildir_root, UIDVALIDITY_FILE)
    root = os.open(maildir_root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(root, fcntl.LOCK_EX)          # the directory itself: no lock file left behind
        try:
            with open(path, "rb") as f:
                last = int(f.read().strip() or b"0", 16)
        except (FileNotFoundError, ValueError):
            last = 0
        value = max(int(time.time()), last + 1)
        if value > 0xFFFFFFFF:
            value = 1
        atomic_replace(path, b"%08x\n" % value)
        return value
    finally:
        os.close(root)


def _base(name):
    i = name.find(":")
    return name if i < 0 else name[:i]


class UidList:
    """UIDVALIDITY, next UID and uid <-> base name for one Maildir folder."""

    def __init__(self, folder_path, uidvalidity=None, next_uid=1, guid=None):
        self.path = os.path.join(os.fspath(folder_path), UIDLIST_FILE)
        self.uidvalidity = int(uidvalidity if uidvalidity is not None
                               else time.time())
        if not 0 < self.uidvalidity <= 0xFFFFFFFF:
            raise ValueError("UIDVALIDITY out of range: %r" % self.uidvalidity)
        self.next_uid = next_uid
        self.reserved = next_uid        # the header's N on disk: no UID from it on is handed out
        self.guid = guid if guid is not None else secrets.token_hex(16)
        self.header_extra = []          # unknown header fields, kept verbatim
        # uid -> base, kept in ascending uid order (insertion order).
        self._by_uid = {}
        self._by_base = {}
        self._ext = {}                  # uid -> list of "<key><value>" fields

    # -- reading ---------------------------------------------------------

    @classmethod
    def load(cls, folder_path):
        """Read *folder_path*/dovecot-uidlist; a fresh list if there is none.

        A fresh list has next UID 1 and a UIDVALIDITY no folder of this Maildir had before
        (next_uidvalidity).  Raises UidListError for a file that cannot be parsed.
        """
        try:
            with open(os.path.join(os.fspath(folder_path), UIDLIST_FILE), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return cls(folder_path, uidvalidity=next_uidvalidity(_maildir_root(folder_path)))
        ul = cls(folder_path, uidvalidity=1)
        ul._parse(data.decode("utf-8", "surrogateescape"))
        return ul

    def _parse(self, text):
        path = self.path
        lines = text.split("\n")
        if len(lines) > 1:
            lines.pop()       # after the last newline: "", or an append cut short by a crash
        if not lines or not lines[0]:
            raise UidListError(path, 0, "file is empty")
        header = lines[0]
        if len(header) < 2 or header[0] not in "0123456789" or header[1] != " ":
            raise UidListError(path, 1, "invalid version number in header")
        version = int(header[0])
        uidvalidity = next_uid = 0
        guid = None
        extra = []
        if version == 1:
            parts = header[2:].split()
            if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
                raise UidListError(path, 1, "corrupted version 1 header")
            uidvalidity, next_uid = int(parts[0]), int(parts[1])
        elif version == 3:
            for field in header[2:].split(" "):
                if not field:
                    continue
                key, value = field[0], field[1:]
                if key in "VN":
                    if not (value.isdigit() and value.isascii()):
                        raise UidListError(path, 1, "bad %s field %r"
                                           % (key, field))
                    if key == "V":
                        uidvalidity = int(value)
                    else:
                        next_uid = int(value)
                elif key == "G":
                    if len(value) != 32 or not _HEX.issuperset(value):
                        raise UidListError(path, 1,
                                           "invalid mailbox GUID %r" % value)
                    guid = value.lower()
                else:
                    extra.append(field)
        else:
            raise UidListError(path, 1, "unsupported version %d" % version)
        if uidvalidity == 0 or next_uid == 0 or uidvalidity > 0xFFFFFFFF:
            raise UidListError(path, 1, "broken header (uidvalidity=%d, "
                               "next uid=%d)" % (uidvalidity, next_uid))

        fast = self._parse_records_fast(lines) if version == 3 else None
        if fast is not None:
            by_uid, by_base = fast
            exts = {}
            prev = next(reversed(by_uid)) if by_uid else 0
        else:
            by_uid, by_base, exts, prev = self._parse_records(
                lines, version, next_uid)
        if next_uid <= prev:
            next_uid = prev + 1             # as Dovecot does
        self.uidvalidity = uidvalidity
        self.next_uid = self.reserved = next_uid
        if guid is not None:
            self.guid = guid
        self.header_extra = extra
        self._by_uid = by_uid
        self._by_base = by_base
        self._ext = exts

    @staticmethod
    def _parse_records_fast(lines):
        """Bulk parse when every record is ``<uid> :<name>`` and all is well.

        Each check runs over whole lists in C; on any doubt (extensions,
        errors, duplicates) return None and let _parse_records decide and
        name the offending line.
        """
        recs = [line.partition(" :") for line in lines[1:]]
        if not recs:
            return {}, {}
        uid_strs = [r[0] for r in recs]
        joined = "".join(uid_strs)
        if not (joined.isdigit() and joined.isascii() and all(uid_strs)):
            return None
        names = [r[2] for r in recs]
        if not all(names) or "/" in "".join(names):
            return None
        uids = list(map(int, uid_strs))
        if uids[0] <= 0 or uids[-1] > MAX_UID:
            return None
        if not all(map(operator.lt, uids, islice(uids, 1, None))):
            return None
        if ":" in "".join(names):
            names = [_base(n) for n in names]
        by_base = dict(zip(names, uids))
        if len(by_base) != len(uids):
            return None
        return dict(zip(uids, names)), by_base

    def _parse_records(self, lines, version, next_uid):
        path = self.path
        by_uid = {}
        by_base = {}
        exts = {}
        prev = 0
        v3 = version == 3
        line_no = 1
        for line in lines[1:]:
            line_no += 1
            sp = line.find(" ")
            uid_s = line[:sp]
            if sp <= 0 or not (uid_s.isdigit() and uid_s.isascii()):
                raise UidListError(path, line_no, "invalid data: %r" % line)
            uid = int(uid_s)
            if uid <= prev:
                raise UidListError(path, line_no, "UIDs not ordered "
                                   "(%d after %d)" % (uid, prev))
            if uid > MAX_UID:
                raise UidListError(path, line_no, "UID too high (%d)" % uid)
            prev = uid
            rest = line[sp + 1:]
            if v3:
                if rest.startswith(":"):        # the common case: no extensions
                    name = rest[1:]
                else:
                    name, fields = self._parse_ext(rest, path, line_no)
                    if fields:
                        exts[uid] = fields
            else:
                if uid >= next_uid:
                    raise UidListError(path, line_no, "UID larger than next "
                                       "uid (%d >= %d)" % (uid, next_uid))
                name = rest.lstrip(" ")
            if not name:
                raise UidListError(path, line_no, "missing file name")
            if "/" in name:
                raise UidListError(path, line_no, "broken file name %r" % name)
            base = _base(name)
            old = by_base.get(base)
            if old is not None:
                # Dovecot: "Duplicate file entry" -- the later UID wins.
                del by_uid[old]
                exts.pop(old, None)
            by_uid[uid] = base
            by_base[base] = uid
        return by_uid, by_base, exts, prev

    @staticmethod
    def _parse_ext(rest, path, line_no):
        fields = []
        n = len(rest)
        pos = 0
        while pos < n and rest[pos] == " ":
            pos += 1
        while pos < n and rest[pos] != ":":
            end = rest.find(" ", pos)
            if end < 0:
                end = n
            token = rest[pos:end]
            if "A" <= token[0] <= "Z":
                fields.append(token)
            # Dovecot drops invalid extension records and carries on.
            pos = end
            while pos < n and rest[pos] == " ":
                pos += 1
        if pos >= n:
            raise UidListError(path, line_no,
                               "invalid extended fields: %r" % rest)
        return rest[pos + 1:], fields

    # -- queries and changes ---------------------------------------------

    def __len__(self):
        return len(self._by_uid)

    def __contains__(self, name):
        return _base(name) in self._by_base

    def uid_for(self, base):
        """UID of *base* (a ``:2,`` info suffix is ignored), or None."""
        return self._by_base.get(_base(base))

    def base_for(self, uid):
        """Base name recorded for *uid*, or None."""
        return self._by_uid.get(uid)

    def items(self):
        """[(uid, base), ...] in ascending UID order."""
        return list(self._by_uid.items())

    def uids(self):
        """All UIDs, ascending."""
        return list(self._by_uid)

    def assign(self, base_names):
        """Give each new base name the next UID, in the order given.

        Names already listed keep their UID.  Returns {base: uid} for every
        name passed.  Raises OverflowError when UIDs are exhausted (the
        folder then needs a new UIDVALIDITY).
        """
        result = {}
        by_base = self._by_base
        by_uid = self._by_uid
        for name in base_names:
            base = _base(name)
            uid = by_base.get(base)
            if uid is None:
                if not base or "/" in base or "\n" in base or "\r" in base:
                    raise ValueError("bad Maildir base name: %r" % (base,))
                uid = self.next_uid
                if uid > MAX_UID:
                    raise OverflowError("UIDs exhausted in %s" % self.path)
                self.next_uid = uid + 1
                by_uid[uid] = base
                by_base[base] = uid
            result[base] = uid
        return result

    def remove(self, base_names):
        """Forget these base names (expunged).  Their UIDs are never reused."""
        for name in base_names:
            uid = self._by_base.pop(_base(name), None)
            if uid is not None:
                del self._by_uid[uid]
                self._ext.pop(uid, None)

    def get_extension(self, uid, key):
        """Value of record extension *key* (e.g. 'W' vsize) for *uid*, or None."""
        for field in self._ext.get(uid, ()):
            if field[0] == key:
                return field[1:]
        return None

    def set_extension(self, uid, key, value):
        """Set (or with value None, remove) record extension *key* for *uid*.

        Use it to cache e.g. W=<vsize> for files whose names lack it.
        """
        if uid not in self._by_uid:
            raise KeyError(uid)
        if len(key) != 1 or not "A" <= key <= "Z":
            raise ValueError("extension key must be one letter A-Z: %r" % key)
        fields = [f for f in self._ext.get(uid, ()) if f[0] != key]
        if value is not None:
            value = str(value)
            if any(c in value for c in " \n\r:"):
                raise ValueError("bad extension value: %r" % value)
            fields.append(key + value)
        if fields:
            self._ext[uid] = fields
        else:
            self._ext.pop(uid, None)

    # -- writing ---------------------------------------------------------

    def dumps(self, header_next=None):
        """The file contents (version 3) as bytes; *header_next* for N, else the next UID."""
        head = "3 V%d N%d G%s" % (self.uidvalidity, header_next or self.next_uid, self.guid)
        if self.header_extra:
            head += " " + " ".join(self.header_extra)
        out = [head, "\n"]
        ext = self._ext
        if ext:
            out.extend(map(self._record, self._by_uid))
        else:
            out.extend(["%d :%s\n" % item for item in self._by_uid.items()])
        return "".join(out).encode("utf-8", "surrogateescape")

    def _record(self, uid):
        fields = self._ext.get(uid)
        if fields:
            return "%d %s :%s\n" % (uid, " ".join(fields), self._by_uid[uid])
        return "%d :%s\n" % (uid, self._by_uid[uid])

    def save(self, reserve=False, release=False):
        """Write the file atomically: temp in the same dir, fsync, rename, fsync dir.

        The header's N keeps the reservation (see the module docstring); *reserve* makes a new
        one, RESERVATION above the next UID; *release* writes the exact next UID, when every
        record is being written durably (at shutdown)."""
        if reserve:
            header_next = self.next_uid + RESERVATION
        else:
            header_next = self.next_uid if release else max(self.next_uid, self.reserved)
        atomic_replace(self.path, self.dumps(header_next))
        self.reserved = header_next

    def append(self, uids):
        """Add the records of *uids* (new, above every UID in the file) at its end, without
        an fdatasync: the reservation makes that safe (module docstring).  When the UIDs
        handed out have reached it, or there is no file yet, the file is saved whole with a
        new reservation instead."""
        if self.next_uid > self.reserved:
            return self.save(reserve=True)
        data = "".join(map(self._record, uids)).encode("utf-8", "surrogateescape")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            return self.save(reserve=True)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
