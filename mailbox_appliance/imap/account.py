"""One user's folders as IMAP sees them: LIST, CREATE, DELETE, RENAME, SUBSCRIBE, and opening.

The hierarchy separator is "." because the folders are Maildir++ directories named
``.Parent.Child``: with "." the IMAP name and the directory name are the same text, exactly as
Dovecot's Maildir++ default presents them, so a user moving from Dovecot sees the same names and
the same subscriptions.  (The cost: "." cannot appear inside one level of a name.)  Names are
stored as the client sends them, in modified UTF-7 (RFC 3501 §5.1.3), as Dovecot stores them.

Every name from a client goes through maildir.layout.folder_path, which refuses anything that
would leave the user's own Maildir; the refusal's reason is what the client reads.
"""

import os
import re
import secrets
import shutil

from twisted.logger import Logger
from zope.interface import implementer

from mailbox_appliance.atomic import sync_dir
from mailbox_appliance.interfaces import IMailAccount
from mailbox_appliance.maildir.layout import (
    SPECIAL_FOLDERS, UnsafeFolderName, check_folder_name, folder_path, make_maildir, read_subscriptions,
    write_subscriptions,
)

SEPARATOR = "."
_MUTF7 = re.compile(r"(?:[\x20-\x25\x27-\x7e]|&-|&[A-Za-z0-9+,]+-)*")
INBOX = "INBOX"


class FolderError(Exception):
    """A folder command that cannot be done; ``code`` is an RFC 5530 response code or None."""

    def __init__(self, reason, code=None):
        super().__init__(reason)
        self.reason = reason
        self.code = code


def canonical(name):
    """INBOX in any case is INBOX (RFC 3501 §5.1); other names are case-sensitive."""
    return INBOX if name.upper() == INBOX else name


def check_name(name):
    """Refuse names that are not 7-bit modified UTF-7 (RFC 3501 §5.1.3) or that Maildir++ cannot
    hold; returns the canonical name."""
    if not name.isascii():
        raise FolderError("Folder names must be 7-bit: send modified UTF-7 (RFC 3501 section 5.1.3)",
                          "CANNOT")
    try:
        # Twisted's codec is lenient ("a&" decodes), so also demand the RFC 3501 §5.1.3 shape and
        # the one canonical spelling.
        valid = (_MUTF7.fullmatch(name) is not None
                 and name.encode("ascii").decode("imap4-utf-7").encode("imap4-utf-7") == name.encode("ascii"))
    except ValueError:
        valid = False
    if not valid:
        raise FolderError("Folder name is not valid modified UTF-7", "CANNOT")
    name = canonical(name)
    if name.split(SEPARATOR, 1)[0].upper() == INBOX and name != INBOX:
        raise FolderError("INBOX has no sub-folders here; create the folder at the top level", "CANNOT")
    return name


def _parents(name):
    """"A" and "A.B" for "A.B.C"."""
    levels = name.split(SEPARATOR)
    return [SEPARATOR.join(levels[:i]) for i in range(1, len(levels))]


def _listing_order(name):
    return (name != INBOX, name)


def _matcher(reference, pattern):
    """Whether a name matches LIST's reference and pattern; INBOX in any case (RFC 3501 §5.1)."""
    matches = pattern_matcher(reference + pattern)
    inbox_matches = pattern_matcher((reference + pattern).upper())
    return lambda name: matches(name) or (name == INBOX and inbox_matches(name))


def pattern_matcher(pattern):
    """A predicate for RFC 3501 §6.3.8 wildcards: * matches anything, % anything but the
    separator.

    Why not a regular expression: ``.*`` per "*" backtracks, and "**...**x" cost minutes of
    CPU per LIST.  Here the pattern is an NFA run over the name once, its set of live positions
    a bit mask (Shift-And): linear in the name, a few big-integer operations per character.
    """
    tokens = []
    for character in pattern:
        if character in "*%" and tokens and tokens[-1] in "*%":
            # Runs of wildcards collapse: "**" is "*", and "*" swallows a "%" beside it.
            tokens[-1] = "*" if "*" in (character, tokens[-1]) else "%"
        else:
            tokens.append(character)
    star = percent = 0
    literal = {}
    for position, token in enumerate(tokens):
        bit = 1 << position
        if token == "*":
            star |= bit
        elif token == "%":
            percent |= bit
        else:
            literal[token] = literal.get(token, 0) | bit
    wildcard, accept = star | percent, 1 << len(tokens)

    def closure(state):
        return state | ((state & wildcard) << 1)   # a wildcard may match nothing

    def matches(name):
        state = closure(1)
        for character in name:
            state = closure(((state & literal.get(character, 0)) << 1) | (state & star)
                            | (state & percent if character != SEPARATOR else 0))
            if not state:
                return False
        return bool(state & accept)

    return matches


@implementer(IMailAccount)
class MaildirAccount:
    log = Logger()

    def __init__(self, address, maildir, registry):
        self.address = address
        self.maildir = maildir
        self.registry = registry

    def _path(self, name):
        try:
            return folder_path(self.maildir, check_name(name))
        except UnsafeFolderName as error:
            raise FolderError(error.reason[:1].upper() + error.reason[1:], "CANNOT") from None

    def _existing(self, name):
        path = self._path(name)
        if not os.path.isdir(os.path.join(path, "cur")):
            raise FolderError(f"No folder named {name}", "NONEXISTENT")
        return path

    def folders(self):
        """Every folder's IMAP name: INBOX and each well-formed ``.Name`` directory."""
        found = [INBOX]
        with os.scandir(self.maildir) as entries:
            for entry in entries:
                if entry.name.startswith(".") and entry.is_dir():
                    name = entry.name[1:]
                    try:
                        if entry.is_symlink():
                            folder_path(self.maildir, name)
                        else:
                            check_folder_name(name)
                    except UnsafeFolderName:
                        continue          # "..", or a half-deleted leftover: not a folder
                    found.append(name)
        return found

    def list(self, reference, patterns, selection=frozenset(), returns=frozenset()):
        """LIST (RFC 3501 §6.3.8) with RFC 5258's LIST-EXTENDED options.

        *patterns* is one or more patterns; *selection* may hold SUBSCRIBED, RECURSIVEMATCH
        (with SUBSCRIBED), SPECIAL-USE (RFC 6154 §3) and REMOTE (nothing is remote here);
        *returns* may hold SUBSCRIBED, CHILDREN and SPECIAL-USE.  Returns [(name, attributes,
        child info)], INBOX first; child info is True where RECURSIVEMATCH found a subscribed
        descendant that no pattern matches (RFC 5258 §3.5, CHILDINFO).
        """
        patterns = [pattern for pattern in patterns if pattern]
        if not patterns:
            return []
        real = set(self.folders())
        known = set(real)
        for name in real:                 # parents of A.B.C that are no folder themselves
            known.update(_parents(name))
        subscribed = set(self.subscriptions()) if "SUBSCRIBED" in selection | returns else set()
        matchers = [_matcher(reference, pattern) for pattern in patterns]

        def matches(name):
            return any(match(name) for match in matchers)

        child_info = set()
        if "SUBSCRIBED" in selection:
            chosen = {name for name in subscribed if matches(name)}
            if "RECURSIVEMATCH" in selection:
                for name in subscribed - chosen:
                    child_info.update(parent for parent in _parents(name) if matches(parent))
                chosen |= child_info
        else:
            chosen = {name for name in known if matches(name)}
        if "SPECIAL-USE" in selection:
            chosen = {name for name in chosen if name in SPECIAL_FOLDERS}
        result = []
        for name in sorted(chosen, key=_listing_order):
            attributes = []
            if name not in known:
                attributes.append("\\NonExistent")               # RFC 5258 §3.4: a subscription only
            else:
                if name not in real:
                    attributes.append("\\Noselect")
                # RFC 3348 CHILDREN; INBOX has no children here (account.check_name).
                children = name != INBOX and any(other.startswith(name + SEPARATOR) for other in known)
                attributes.append("\\HasChildren" if children else "\\HasNoChildren")
                if name in SPECIAL_FOLDERS:
                    attributes.append(SPECIAL_FOLDERS[name])      # RFC 6154 §2
            if name in subscribed:
                attributes.append("\\Subscribed")
            result.append((name, attributes, name in child_info))
        return result

    def lsub(self, reference, pattern):
        """RFC 3501 §6.3.9: the subscribed names matching (\\Noselect for one that is no folder
        now), and, where a "%" stops at the parent of a subscribed name that is not subscribed
        itself, that parent as \\Noselect."""
        if not pattern:
            return []
        subscribed = set(self.subscriptions())
        real = set(self.folders())
        matches = _matcher(reference, pattern)
        found = {name: [] if name in real else ["\\Noselect"] for name in subscribed if matches(name)}
        if "%" in pattern:
            for name in subscribed:
                for parent in _parents(name):
                    if parent not in subscribed and matches(parent):
                        found.setdefault(parent, ["\\Noselect"])
        return [(name, found[name]) for name in sorted(found, key=_listing_order)]

    def create(self, name):
        # RFC 3501 §6.3.3: a trailing separator only says the client means to add children.
        name = name[:-1] if name.endswith(SEPARATOR) else name
        path = self._path(name)
        if name == INBOX or os.path.isdir(path):
            raise FolderError(f"Folder {name} already exists", "ALREADYEXISTS")
        make_maildir(path, folder=True)
        self.log.info("{user}: created folder {name}", user=self.address, name=name)
        self.registry.names_changed(self.maildir, self, "create", name)

    def delete(self, name):
        if canonical(name) == INBOX:
            raise FolderError("INBOX cannot be deleted", "CANNOT")
        path = self._existing(name)
        # Move it out of sight in one rename (into the root's tmp/, same file system), then
        # remove: a crash in between leaves only a directory in tmp/, never half a folder.
        graveyard = os.path.join(self.maildir, "tmp", "deleted." + secrets.token_hex(8))
        os.rename(path, graveyard)
        sync_dir(self.maildir)
        self.registry.forget(path)
        shutil.rmtree(graveyard, ignore_errors=True)
        self.log.info("{user}: deleted folder {name}", user=self.address, name=name)
        self.registry.names_changed(self.maildir, self, "delete", name)

    def rename(self, old, new):
        if INBOX in (canonical(old), canonical(new)):
            raise FolderError("Renaming INBOX, or to INBOX, is not supported", "CANNOT")
        source = self._existing(old)
        target = self._path(new)
        if os.path.exists(target):
            raise FolderError(f"Folder {new} already exists", "ALREADYEXISTS")
        if new.startswith(old + SEPARATOR):
            raise FolderError("A folder cannot be moved below itself", "CANNOT")
        # RFC 3501 §6.3.5: inferior hierarchical names are renamed too.
        moves = [(source, target)]
        for name in self.folders():
            if name.startswith(old + SEPARATOR):
                moves.append((self._path(name), self._path(new + name[len(old):])))
        for _from, to in moves:
            if os.path.exists(to):
                raise FolderError(f"Folder {os.path.basename(to)[1:]} already exists", "ALREADYEXISTS")
        for from_path, to_path in moves:
            os.rename(from_path, to_path)
            self.registry.forget(from_path)
        sync_dir(self.maildir)
        subscribed = self.subscriptions()
        if any(s == old or s.startswith(old + SEPARATOR) for s in subscribed):
            self._write_subscriptions(
                new + s[len(old):] if s == old or s.startswith(old + SEPARATOR) else s for s in subscribed)
        self.log.info("{user}: renamed folder {source} to {target}", user=self.address, source=old, target=new)
        self.registry.names_changed(self.maildir, self, "rename", new, old)

    def subscriptions(self):
        return [SEPARATOR.join(levels) for levels in read_subscriptions(self.maildir)]

    def _write_subscriptions(self, names):
        write_subscriptions(self.maildir, [tuple(name.split(SEPARATOR)) for name in dict.fromkeys(names)])

    def subscribe(self, name):
        # RFC 3501 §6.3.6 lets a server refuse names that do not exist; we do.
        name = canonical(name)
        self._existing(name)
        subscribed = self.subscriptions()
        if name not in subscribed:
            self._write_subscriptions([*subscribed, name])
            self.registry.names_changed(self.maildir, self, "subscribe", name)

    def unsubscribe(self, name):
        name = canonical(name)
        subscribed = self.subscriptions()
        if name not in subscribed:
            raise FolderError(f"Not subscribed to {name}", "NONEXISTENT")
        self._write_subscriptions(s for s in subscribed if s != name)
        self.registry.names_changed(self.maildir, self, "unsubscribe", name)

    def open(self, name):
        return self.registry.open(self._existing(name))
