"""The user's active Sieve script applied at delivery: where each local copy goes, and what the
script sends.

Delivery asks ``SieveFilter.decide`` for each local mailbox of a message; the answer is the
folders to store it in, each with its flag letters (none when the script discarded it), and the
messages to send: redirected copies (envelope sender rewritten by SRS, srs.py), a rejection to
the sender, a vacation reply (at most once per sender per ``:days``, never to lists or robots).  The
folder the message would go to without a script (INBOX, or Junk for spam: Resolution.folder) is
what ``keep`` and the implicit keep mean, so a script sees the spam verdict and may override it.

A script never loses mail (RFC 5228 §2.10.6): a script that does not check or run, a fileinto
to a folder that does not exist (without ``:create``, RFC 5490 §3) or cannot be, and copies
beyond the user's quota all fall back to that default folder, with one log line saying why.
"""

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field

from twisted.logger import Logger
from twisted.mail import imap4

from mailbox_appliance.maildir.flags import TooManyKeywords, to_letters
from mailbox_appliance.maildir.keywords import Keywords
from mailbox_appliance.maildir.layout import (
    UnsafeFolderName, folder_path, read_subscriptions, user_maildir, write_subscriptions,
)
from mailbox_appliance.atomic import atomic_replace
from mailbox_appliance.sieve import interpreter, responses
from mailbox_appliance.sieve.grammar import SieveError
from mailbox_appliance.sieve.scripts import ScriptError

INBOX = "INBOX"


@dataclass(frozen=True)
class Outgoing:
    """A message a script sends: a redirected copy, a vacation reply or a rejection."""
    sender: str
    recipients: tuple
    message: bytes


@dataclass
class Decision:
    """Where a mailbox's copy goes ([(folder, flag letters)], none when discarded), and what the
    script sends."""
    stores: list
    outgoing: list = field(default_factory=list)


class SieveFilter:
    log = Logger()

    def __init__(self, data_dir, hostname, scripts, quotas, accounts, rewriting, clock=time.monotonic,
                 wall_clock=time.time):
        """*scripts* (ISieveScripts) holds the users' scripts; *quotas* (IQuotas) is asked
        before a script makes a second copy; *accounts* (IAccounts) says which addresses are
        the office's domains (a redirect of our own users' mail keeps its sender); *rewriting* (srs.SenderRewriting) gives redirects our sender."""
        self.data_dir, self.hostname, self.scripts, self.quotas = data_dir, hostname, scripts, quotas
        self.accounts, self.rewriting, self.clock, self.wall_clock = accounts, rewriting, clock, wall_clock

    def decide(self, queue_id, mailbox, sender, recipient, message, default_folder):
        """The Decision for *mailbox*'s copy of *message* (folder "" is INBOX, as in
        Resolution.folder)."""
        default = Decision([(default_folder, "")])
        local, _, domain = mailbox.rpartition("@")
        maildir = user_maildir(self.data_dir, domain, local)
        try:
            commands = self.scripts.active(mailbox)
        except (SieveError, OSError) as problem:
            return self._failed(queue_id, mailbox, maildir, default, f"its active script cannot be read: {problem}")
        if commands is None:
            return default
        def loader(location, name):
            try:
                return (self.scripts.checked(mailbox, name) if location == "personal"
                        else self.scripts.checked_global(name))
            except (ScriptError, SieveError, OSError) as problem:
                raise interpreter.RunError(f"the {location} script {name!r} cannot be included: {problem}") from None

        try:
            outcome = interpreter.run(commands, message, interpreter.Envelope(sender, recipient),
                                      lambda name: _folder(maildir, name) is not None, self.clock, loader)
        except interpreter.RunError as problem:
            return self._failed(queue_id, mailbox, maildir, default, f"its script failed: {problem}")
        if outcome.redirects and responses.loops(message, mailbox):
            self._kept(queue_id, mailbox, "a redirect loop (the message was redirected by this mailbox before)")
            return default
        if len(outcome.stores) > 1 and not self.quotas.fits(mailbox, len(message) * len(outcome.stores)):
            self._kept(queue_id, mailbox, f"{len(outcome.stores)} copies would exceed the quota")
            return default
        decision = Decision(self._placed(queue_id, mailbox, maildir, outcome.stores, default_folder))
        done = [", ".join(f"{folder or INBOX}" + (f" flags {letters}" if letters else "")
                          for folder, letters in decision.stores) or "discarded"]
        if outcome.redirects:
            forwarded = responses.redirected(message, mailbox)
            envelope_sender = sender if not sender or self.accounts.is_local_domain(sender.rpartition("@")[2]) \
                else self.rewriting.forward(sender, domain)
            decision.outgoing.append(Outgoing(envelope_sender, tuple(outcome.redirects), forwarded))
            done.append("redirected to " + ", ".join(f"<{address}>" for address in outcome.redirects))
        if outcome.reject is not None:
            if sender:
                decision.outgoing.append(Outgoing("", (sender,), responses.rejection(
                    self.hostname, sender, queue_id, mailbox, outcome.reject, message)))
            done.append(f"rejected, {'the sender told' if sender else 'no sender to tell'}")
        if outcome.vacation is not None:
            done.append(self._vacation(outcome.vacation, decision, maildir, mailbox, recipient, sender, message))
        if decision.stores != default.stores or decision.outgoing or outcome.vacation is not None:
            self.log.info("sieve {queue_id} for {mailbox}: {done}", queue_id=queue_id, mailbox=mailbox,
                          done="; ".join(done))
        return decision

    def _placed(self, queue_id, mailbox, maildir, stores, default_folder):
        placed = []
        for store in stores:
            folder = default_folder if store.folder is None else _folder(maildir, store.folder, store.create)
            if folder is None:
                # Kept as if there were no script: not marked \Seen where the user never looks.
                self._kept(queue_id, mailbox, f"no folder {store.folder!r} (fileinto :create makes it)")
                placed.append((default_folder, ""))
            else:
                placed.append((folder, _letters(maildir, folder, store.flags)))
        return list(dict.fromkeys(placed))

    def _vacation(self, vacation, decision, maildir, mailbox, recipient, sender, message):
        """Queue the vacation reply when RFC 5230 allows it; what was done, for the log line."""
        # RFC 5230 §4.5: the user's addresses are the mailbox, the address the message came to
        # (an alias, a +detail), and the script's :addresses.
        own = {mailbox, recipient, *vacation.addresses}
        refusal = responses.vacation_refusal(message, sender, own)
        if refusal is not None:
            return f"no vacation reply: {refusal}"
        state = VacationState(os.path.join(maildir, "sieve"), self.wall_clock)
        key = responses.vacation_key(vacation, sender)
        if state.answered(key):
            return f"no vacation reply: <{sender}> had one less than {vacation.days} days ago"
        state.remember(key, vacation.days)
        decision.outgoing.append(Outgoing("", (sender,), responses.vacation_reply(
            vacation, message, mailbox, sender, self.hostname)))
        return f"vacation reply to <{sender}>"

    def _failed(self, queue_id, mailbox, maildir, default, why):
        """*default*, logged; and the user told, once for each version of the script (issue
        17: a filter that silently stopped working is found out weeks later)."""
        self._kept(queue_id, mailbox, why)
        name = self.scripts.active_name(mailbox)
        try:
            version = hashlib.sha256(self.scripts.get(mailbox, name)).hexdigest()[:32]
            marker = os.path.join(maildir, "sieve", "notified")
            with contextlib.suppress(FileNotFoundError), open(marker, "rb") as handle:
                if handle.read().decode("ascii", "replace") == version:
                    return default
            atomic_replace(marker, version.encode("ascii"))
        except (ScriptError, OSError):
            return default
        default.outgoing.append(Outgoing("", (mailbox,), responses.failure_notice(self.hostname, mailbox, name, why)))
        return default

    def _kept(self, queue_id, mailbox, why):
        self.log.error("sieve {queue_id} for {mailbox}: kept in the default folder, {why}",
                       queue_id=queue_id, mailbox=mailbox, why=why)


class VacationState:
    """Whom a user's vacation has answered, and until when it stays silent to them (RFC 5230
    §4.1): ``sieve/vacation.json``, {key: unix time}, expired keys dropped at each write."""

    def __init__(self, directory, clock):
        self.path = os.path.join(directory, "vacation.json")
        self.clock = clock

    def _load(self):
        try:
            with open(self.path, "rb") as handle:
                loaded = json.loads(handle.read())
        except (OSError, ValueError):
            return {}
        return {key: until for key, until in loaded.items() if isinstance(until, (int, float))} \
            if isinstance(loaded, dict) else {}

    def answered(self, key):
        return self._load().get(key, 0) > self.clock()

    def remember(self, key, days):
        now = self.clock()
        kept = {known: until for known, until in self._load().items() if until > now}
        kept[key] = now + days * 86400
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        atomic_replace(self.path, json.dumps(kept).encode("ascii"))


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
