"""Taking over a Dovecot mail store: `mailbox-appliance-admin import-dovecot`.

Why: an office moving from Dovecot keeps its mail, its passwords and every client's cache.  The
appliance already reads Dovecot's Maildir++ tree, ``dovecot-uidlist`` and ``dovecot-keywords`` as
they are (maildir/) and its passwd-file hashes (accounts/passwords.py), so a takeover is: find each
user's Maildir, check it can be served, add the domain and the user with the hash unchanged, and
move the Maildir into ``DATA/mail/DOMAIN/USER`` in one rename.

What it decides:

* The Dovecot tree is ``mail_location = maildir:DIR/%d/%n`` (DIR/DOMAIN/USER holding cur/ new/
  tmp/ and ``.Folder`` directories), or the same with ``maildir:~/Maildir`` under such homes.
  Other layouts (users straight under DIR, one Maildir, LAYOUT=fs, dbox) stop it with an
  explanation; it never guesses.
* Mail is moved with os.rename, never copied: across file systems it refuses and says why, and
  nothing in the Maildir is rewritten, so Dovecot can serve it again as it was.
* A user is refused, with the reason, when Dovecot may still be using the Maildir (a
  ``dovecot-uidlist.lock``), a UID list does not parse, the files belong to another system user
  than the one running this (the service's user, as the packaged command runs it), or the target
  Maildir exists.  A user already in the users file is left alone.
* Password fields keep their hash; a bare crypt(3) hash or ``{CRYPT}`` (Dovecot's passwd-file
  default scheme) is labelled with the scheme its ``$id$`` names, so ``$6$...`` becomes
  ``{SHA512-CRYPT}$6$...``: the same hash, written the way the users file needs it.
"""

import os
import pwd
from dataclasses import dataclass, field

from mailbox_appliance.accounts import files, passwords
from mailbox_appliance.accounts.addresses import is_valid_address, normalize_address, split_address
from mailbox_appliance.accounts.directory import Accounts
from mailbox_appliance.atomic import sync_dir
from mailbox_appliance.maildir.keywords import Keywords
from mailbox_appliance.maildir.layout import UnsafeFolderName, create_user_maildir, folder_path, user_maildir
from mailbox_appliance.maildir.uidlist import UidList, UidListError

__all__ = ["TakeoverError", "TakeoverReport", "take_over", "labelled_hash"]

MAILDIR_PARTS = ("cur", "new", "tmp")
UIDLIST_LOCK = "dovecot-uidlist.lock"
# crypt(3) "$id$" -> Dovecot scheme; the hash text itself is never changed.
CRYPT_IDS = {"$6$": "SHA512-CRYPT", "$5$": "SHA256-CRYPT", "$2y$": "BLF-CRYPT", "$2b$": "BLF-CRYPT",
             "$2a$": "BLF-CRYPT", "$argon2id$": "ARGON2ID", "$argon2i$": "ARGON2I"}


class TakeoverError(Exception):
    """The mail root or passwd-file cannot be taken over at all; the message says what to do."""


@dataclass
class FolderFacts:
    """One Dovecot folder as found on disk."""

    name: str
    messages: int
    unlisted: int               # files Dovecot never gave a UID (they get new ones here)
    uidvalidity: int = None     # None: no dovecot-uidlist, the folder starts a new UIDVALIDITY
    next_uid: int = None
    keywords: tuple = ()


@dataclass
class UserPlan:
    """What the takeover found and will do for one passwd-file user."""

    address: str
    stored: str                 # the {SCHEME}hash for the users file
    source: str = None          # the Dovecot Maildir, None when the user has none
    target: str = None
    folders: list = field(default_factory=list)
    problems: list = field(default_factory=list)     # each refuses the user
    notes: list = field(default_factory=list)
    skipped: bool = False       # already a user here


@dataclass
class TakeoverReport:
    """The report for the admin, and whether every user could be taken over."""

    report: str
    complete: bool              # False when any user was refused


def labelled_hash(password_field):
    """The users-file form of a Dovecot passwd-file password field (see the module docstring)."""
    scheme = passwords.scheme_of(password_field)
    bare = password_field[len(scheme) + 2:] if scheme else password_field
    if scheme not in (None, "CRYPT"):
        return password_field
    for prefix, crypt_scheme in CRYPT_IDS.items():
        if bare.startswith(prefix):
            return "{%s}%s" % (crypt_scheme, bare)
    return "{CRYPT}" + bare


def read_passwd_file(path):
    """[(line number, user name, password field)] of a Dovecot passwd-file (comments skipped)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise TakeoverError(f"cannot read the passwd-file {path}: {error}") from None
    entries = []
    for number, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#"):
            user, _, rest = line.partition(":")
            entries.append((number, user.strip(), rest.split(":", 1)[0]))
    return entries


def _is_maildir(path):
    return all(os.path.isdir(os.path.join(path, part)) for part in MAILDIR_PARTS)


def _subdirectories(path):
    with os.scandir(path) as entries:
        return sorted(entry.path for entry in entries if entry.is_dir(follow_symlinks=False))


def check_layout(mail_root):
    """Raise TakeoverError, explaining, unless *mail_root* looks like DIR/DOMAIN/USER Maildirs."""
    if not os.path.isdir(mail_root):
        raise TakeoverError(f"{mail_root} is not a directory")
    if _is_maildir(mail_root):
        raise TakeoverError(f"{mail_root} is itself one Maildir; give the directory that holds "
                            "DOMAIN/USER Maildirs (Dovecot's mail_location = maildir:DIR/%d/%n)")
    for child in _subdirectories(mail_root):
        if _is_maildir(child):
            raise TakeoverError(f"{child} is a Maildir straight under {mail_root} (mail_location "
                                "maildir:DIR/%n or DIR/%u); this command needs DIR/DOMAIN/USER: "
                                "move each user's Maildir to DIR/DOMAIN/USER first")
        for user_dir in _subdirectories(child):
            if os.path.isdir(os.path.join(user_dir, "mailboxes")) or os.path.isdir(os.path.join(user_dir, "storage")):
                raise TakeoverError(f"{user_dir} is a dbox mail store, not a Maildir; convert it first "
                                    "(doveadm backup -u USER maildir:DIR/DOMAIN/USER) and import that")


def find_source(mail_root, domain, local):
    """The user's Dovecot Maildir: DIR/DOMAIN/USER, or DIR/DOMAIN/USER/Maildir; None if neither."""
    home = os.path.join(mail_root, domain, local)
    for candidate in (home, os.path.join(home, "Maildir")):
        if _is_maildir(candidate):
            return candidate
    return None


def survey_folder(path, name):
    """FolderFacts for one Maildir folder; raises UidListError for a UID list that does not parse."""
    bases = []
    for part in ("cur", "new"):
        with os.scandir(os.path.join(path, part)) as entries:
            bases.extend(entry.name.split(":", 1)[0] for entry in entries if not entry.name.startswith("."))
    facts = FolderFacts(name, len(bases), len(bases), keywords=tuple(k for _, k in Keywords.load(path).items()))
    if os.path.exists(os.path.join(path, "dovecot-uidlist")):
        uidlist = UidList.load(path)
        facts.uidvalidity, facts.next_uid = uidlist.uidvalidity, uidlist.next_uid
        facts.unlisted = sum(1 for base in bases if uidlist.uid_for(base) is None)
    return facts


def survey_maildir(plan):
    """Fill plan.folders, and plan.problems for anything that stops the takeover of this Maildir."""
    folders = [("INBOX", plan.source)]
    for entry in sorted(os.listdir(plan.source)):
        path = os.path.join(plan.source, entry)
        if entry in MAILDIR_PARTS or not os.path.isdir(path):
            continue
        if not entry.startswith("."):
            if os.path.isdir(os.path.join(path, "cur")):
                plan.problems.append(f"folder directory {entry} has no leading '.': Dovecot's LAYOUT=fs, "
                                     "not Maildir++; the appliance serves Maildir++ only")
            continue
        try:
            folder_path(plan.source, entry[1:])
        except UnsafeFolderName as error:
            plan.notes.append(f"{entry} is not a folder the appliance can serve ({error.reason}); it stays on disk")
            continue
        if _is_maildir(path):
            folders.append((entry[1:], path))
    for name, path in folders:
        if os.path.exists(os.path.join(path, UIDLIST_LOCK)):
            plan.problems.append(f"{name}: {UIDLIST_LOCK} exists: stop Dovecot first (if it is stopped, "
                                 "the lock is stale: delete it)")
        try:
            plan.folders.append(survey_folder(path, name))
        except (UidListError, OSError) as error:
            plan.problems.append(f"{name}: {error}")


def _owner_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_owner(plan):
    """Every file must belong to the user running this: the one the appliance runs as."""
    me = os.geteuid()
    foreign = {}
    for directory, subdirectories, file_names in os.walk(plan.source):
        for name in [directory, *(os.path.join(directory, n) for n in subdirectories + file_names)]:
            uid = os.lstat(name).st_uid
            if uid != me:
                foreign[uid] = foreign.get(uid, 0) + 1
    for uid, count in sorted(foreign.items()):
        plan.problems.append(f"{count} files and directories belong to {_owner_name(uid)}, not to "
                             f"{_owner_name(me)} (the appliance's user): chown -R {_owner_name(me)}: "
                             f"{plan.source}")


def _existing_ancestor(path):
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def plan_user(mail_root, data_dir, accounts, user, password_field):
    """A UserPlan for one passwd-file entry."""
    address = normalize_address(user)
    plan = UserPlan(address, labelled_hash(password_field))
    if not is_valid_address(address):
        plan.problems.append("not a user@domain name (Dovecot's %d is empty for it): not supported")
        return plan
    local, domain = split_address(address)
    plan.source = find_source(mail_root, domain, local)
    if accounts.password_hash(address) is not None:
        plan.skipped = True
        plan.notes.append("already a user here: left alone" + (f"; its Dovecot mail stays in {plan.source}"
                                                                  if plan.source else ""))
        return plan
    if not password_field:
        plan.problems.append("no password in the passwd-file")
    plan.target = user_maildir(data_dir, domain, local)
    if os.path.exists(plan.target):
        plan.problems.append(f"{plan.target} exists already; nothing is merged: move it away first")
    if plan.source is None:
        plan.notes.append("no Dovecot Maildir: a new empty one is made")
        return plan
    survey_maildir(plan)
    check_owner(plan)
    if os.stat(plan.source).st_dev != os.stat(_existing_ancestor(plan.target)).st_dev:
        plan.problems.append(f"{plan.source} and {data_dir} are on different file systems, and mail is "
                             "moved, never copied: copy the Dovecot tree onto the data_dir's file system "
                             "yourself (cp -a) and import from that copy")
    return plan


def _describe(plan, dry_run):
    scheme = passwords.scheme_of(plan.stored)
    support = "supported" if passwords.is_supported(plan.stored) else "NOT supported here: set a new one with user passwd"
    lines = [f"{plan.address}: password {scheme} ({support})"]
    if plan.source:
        lines.append(f"  Dovecot Maildir {plan.source}")
    for facts in plan.folders:
        uids = (f"UIDVALIDITY {facts.uidvalidity}, next UID {facts.next_uid}" if facts.uidvalidity
                else "no dovecot-uidlist: new UIDVALIDITY")
        lines.append(f"  {facts.name}: {facts.messages} message(s), {uids}, keywords: "
                     f"{' '.join(facts.keywords) or '-'}"
                     + (f"; {facts.unlisted} without a UID yet" if facts.unlisted and facts.uidvalidity else ""))
    lines.extend(f"  note: {note}" for note in plan.notes)
    lines.extend(f"  REFUSED: {problem}" for problem in plan.problems)
    if not (plan.problems or plan.skipped):
        verb = "would move" if dry_run else "moved"
        lines.append(f"  {verb} to {plan.target}" if plan.source else f"  {'would add' if dry_run else 'added'}")
    return lines


def _carry_out(plan, settings):
    parent = os.path.dirname(plan.target)
    if plan.source is None:
        create_user_maildir(plan.target)
    else:
        made = _existing_ancestor(parent)
        os.makedirs(parent, mode=0o700, exist_ok=True)
        sync_dir(made)
        os.rename(plan.source, plan.target)
        sync_dir(os.path.dirname(plan.source))
        sync_dir(parent)
    # Only once the mail is in place does the user exist: nothing is delivered into a half-move.
    files.edit(settings.accounts.users_file, files.USERS, plan.address, f"{plan.address}:{plan.stored}")


def _strays(mail_root, users):
    """Dovecot Maildirs under *mail_root* whose (local part, domain) is not in *users*."""
    for domain_dir in _subdirectories(mail_root):
        domain = os.path.basename(domain_dir)
        for home in _subdirectories(domain_dir):
            local = os.path.basename(home)
            if (local, domain) not in users and find_source(mail_root, domain, local):
                yield home


def take_over(settings, mail_root, passwd_file, dry_run=False):
    """Survey (and unless *dry_run*, import) the Dovecot store; an TakeoverReport with the report."""
    mail_root = os.path.abspath(mail_root)
    check_layout(mail_root)
    accounts = Accounts.from_settings(settings)
    plans = [plan_user(mail_root, settings.server.data_dir, accounts, user, password)
             for _, user, password in read_passwd_file(passwd_file)]
    ready = [plan for plan in plans if not (plan.problems or plan.skipped)]
    domains = sorted({split_address(plan.address)[1] for plan in ready} - accounts.domains())
    if not dry_run:
        for domain in domains:
            files.edit(settings.accounts.domains_file, files.DOMAINS, domain, domain)
        for plan in ready:
            _carry_out(plan, settings)
    lines = [f"{'DRY RUN, nothing changed: ' if dry_run else ''}Dovecot mail root {mail_root}, "
             f"passwd-file {passwd_file}, {len(plans)} users"]
    if domains:
        lines.append(f"{'would add' if dry_run else 'added'} domains: {', '.join(domains)}")
    for plan in plans:
        lines.extend(_describe(plan, dry_run))
    lines.extend(f"{path}: no user in the passwd-file: left where it is"
                 for path in _strays(mail_root, {split_address(plan.address) for plan in plans}))
    return TakeoverReport("\n".join(lines), complete=not any(plan.problems for plan in plans))
