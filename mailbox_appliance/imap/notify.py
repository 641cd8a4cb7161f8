"""NOTIFY (RFC 5465): a session asks to hear of changes in folders it has not selected, and of
folders made, renamed, deleted or (un)subscribed, without polling each with STATUS.

A mix-in for imap.server.IMAPServer.  Each watched folder gets a _Watch, an IFolderListener on
the folder's one shared maildir.mailbox.Folder that answers a change with an unsolicited STATUS
(RFC 5465 §5.1-5.3); name changes come through the FolderRegistry's name watchers (§5.4, §5.5).
The selected folder keeps RFC 3501's untagged EXISTS, EXPUNGE and FETCH, pushed at once
between commands when the client asked for SELECTED events.

Not done: MessageNew's fetch attributes for the selected folder are accepted and not sent (the
client then fetches as it would after EXISTS); metadata and annotation events are refused
with BADEVENT, as §3.1 asks for events a server does not offer.
"""

from zope.interface import implementer

from twisted.mail.imap4 import IllegalClientResponse, IMAP4Server

from mailbox_appliance.interfaces import IFolderListener

from .account import FolderError, canonical
from .condstore import parse_list
from .response import string

__all__ = ["Notify"]

_MESSAGE_EVENTS = ("messagenew", "messageexpunge", "flagchange")
_NAME_EVENTS = ("mailboxname", "subscriptionchange")
_NOT_OFFERED = ("annotationchange", "mailboxmetadatachange", "servermetadatachange")
# What a STATUS for a non-selected folder carries for each event (RFC 5465 §5.1-5.3).
_STATUS_ITEMS = {"messagenew": ("MESSAGES", "UIDNEXT", "UIDVALIDITY"), "messageexpunge": ("MESSAGES",),
                 "flagchange": ("UIDVALIDITY", "HIGHESTMODSEQ")}
_STATUS_ORDER = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ")
MAX_WATCHED_FOLDERS = 500


def _text(token):
    if isinstance(token, list):
        raise IllegalClientResponse("Expected a mailbox name")
    return canonical(bytes(token).decode("utf-8", "surrogateescape"))


class _Plan:
    """A parsed NOTIFY SET: the selected folder's events and [(filter, names, events)]."""

    def __init__(self, line):
        words = line.split(None, 1)
        self.status = bool(words) and words[0].upper() == b"STATUS"
        rest = words[1] if self.status and len(words) > 1 else line
        self.selected = None
        self.groups = []
        while rest:
            group, rest = parse_list(rest)
            if group is None:
                raise IllegalClientResponse("NOTIFY SET wants (filter events) groups")
            self._group(group)
        if not self.groups and self.selected is None:
            raise IllegalClientResponse("NOTIFY SET wants at least one (filter events) group")

    def _group(self, group):
        if len(group) < 2 or isinstance(group[0], list):
            raise IllegalClientResponse("An event group is (filter events)")
        kind = group[0].lower().decode("ascii", "replace")
        names = ()
        if kind in ("subtree", "mailboxes"):
            if len(group) != 3:
                raise IllegalClientResponse("%s wants mailbox names, then events" % kind.upper())
            names = tuple(_text(name) for name in (group[1] if isinstance(group[1], list) else [group[1]]))
        elif kind not in ("selected", "selected-delayed", "inboxes", "personal", "subscribed") or len(group) != 2:
            raise IllegalClientResponse("Unknown NOTIFY filter %s" % kind.upper())
        events = self._events(group[-1])
        if kind.startswith("selected"):
            self.selected = events
        else:
            self.groups.append((kind, names, events))

    @staticmethod
    def _events(value):
        if not isinstance(value, list):
            if value.upper() == b"NONE":
                return frozenset()
            raise IllegalClientResponse("Events are a parenthesised list or NONE")
        events, refused = set(), []
        for index, word in enumerate(value):
            if isinstance(word, list):
                if index and value[index - 1].lower() == b"messagenew":
                    continue          # MessageNew's fetch attributes (see the module docstring)
                raise IllegalClientResponse("Unexpected list among the events")
            name = word.lower().decode("ascii", "replace")
            if name in _MESSAGE_EVENTS + _NAME_EVENTS:
                events.add(name)
            elif name in _NOT_OFFERED:
                refused.append(word)
            else:
                raise IllegalClientResponse("Unknown event %s" % name)
        if refused:
            raise _BadEvent()
        return frozenset(events)

    def events_for(self, name, subscribed):
        """The events asked for the non-selected folder *name*: the first group it falls in."""
        for kind, names, events in self.groups:
            if (kind == "personal" or (kind == "inboxes" and name == "INBOX")
                    or (kind == "subscribed" and name in subscribed) or (kind == "mailboxes" and name in names)
                    or (kind == "subtree" and any(name == top or name.startswith(top + ".") for top in names))):
                return events
        return frozenset()


class _BadEvent(Exception):
    """An event this server does not offer (RFC 5465 §3.1: NO [BADEVENT])."""


@implementer(IFolderListener)
class _Watch:
    """One watched non-selected folder: a change becomes an unsolicited STATUS."""

    def __init__(self, session, name, folder, events):
        self.session, self.name, self.folder, self.events = session, name, folder, events
        self.items = [item for item in _STATUS_ORDER if any(item in _STATUS_ITEMS[e] for e in events if e in _STATUS_ITEMS)]

    def status_line(self):
        folder = self.folder
        values = {"MESSAGES": len(folder.messages), "UIDNEXT": folder.next_uid,
                  "UIDVALIDITY": folder.uidvalidity, "HIGHESTMODSEQ": folder.highest_modseq}
        return b"STATUS " + string(self.name) + b" (" + b" ".join(
            b"%s %d" % (item.encode(), values[item]) for item in self.items) + b")"

    def _changed(self, event):
        selection = self.session.selection
        if event in self.events and (selection is None or selection.folder is not self.folder):
            self.session.send_untagged(self.status_line())

    def messages_added(self, uids, recent):
        self._changed("messagenew")

    def messages_expunged(self, uids):
        self._changed("messageexpunge")

    def flags_changed(self, uids):
        self._changed("flagchange")


class Notify:
    notify_plan = None
    _watches = ()

    def do_NOTIFY(self, tag, line):
        words = line.split(None, 1)
        verb = words[0].upper() if words else b""
        if verb == b"NONE" and len(words) == 1:
            self.stop_notify()
            self.sendPositiveResponse(tag, b"NOTIFY completed")
            return
        if verb != b"SET" or len(words) < 2:
            raise IllegalClientResponse("NOTIFY SET (filter events) ... or NOTIFY NONE")
        try:
            plan = _Plan(words[1])
        except _BadEvent:
            self.sendNegativeResponse(tag, b"[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName "
                                           b"SubscriptionChange)] Event not offered")
            return
        self.stop_notify()
        self.notify_plan = plan
        subscribed = set(self.account.subscriptions())
        watches = []
        for name in self.account.folders():
            events = plan.events_for(name, subscribed) & set(_MESSAGE_EVENTS)
            if events and len(watches) < MAX_WATCHED_FOLDERS:
                try:
                    folder = self.account.open(name)
                except FolderError:
                    continue
                watches.append(_Watch(self, name, folder, events))
        self._watches = watches
        for watch in watches:
            watch.folder.add_listener(watch, claim=False)
            selection = self.selection
            if plan.status and (selection is None or selection.folder is not watch.folder):
                # RFC 5465 §3.1: with STATUS, where each watched folder stands now.
                self.send_untagged(watch.status_line())
        self.account.registry.watch_names(self.account.maildir, self)
        self.sendPositiveResponse(tag, b"NOTIFY completed")

    auth_NOTIFY = select_NOTIFY = (do_NOTIFY, IMAP4Server.arg_line)

    def stop_notify(self):
        for watch in self._watches:
            watch.folder.remove_listener(watch)
        self._watches = ()
        if self.notify_plan is not None:
            self.account.registry.unwatch_names(self.account.maildir, self)
            self.notify_plan = None

    def notify_selected(self):
        """Whether the selected folder's changes go out at once between commands (§5)."""
        return bool(self.notify_plan and self.notify_plan.selected)

    def names_changed(self, origin, event, name, old_name=None):
        """From the FolderRegistry: *event* (create, delete, rename, subscribe, unsubscribe)
        on folder *name* by the session of *origin* (a MaildirAccount) or another of this user
        (RFC 5465 §5.4, §5.5).  A folder made under a watched filter is watched from now on;
        the LIST goes to the other sessions."""
        plan = self.notify_plan
        subscribed = set(self.account.subscriptions())
        events = plan.events_for(name, subscribed) | (plan.events_for(old_name, subscribed) if old_name else frozenset())
        if event in ("create", "rename") and events & set(_MESSAGE_EVENTS) and len(self._watches) < MAX_WATCHED_FOLDERS:
            try:
                watch = _Watch(self, name, self.account.open(name), events & set(_MESSAGE_EVENTS))
            except FolderError:
                pass
            else:
                self._watches = [*self._watches, watch]
                watch.folder.add_listener(watch, claim=False)
        if origin is self.account:
            return
        if event in ("subscribe", "unsubscribe"):
            if "subscriptionchange" in events:
                attributes = b"(\\Subscribed)" if event == "subscribe" else b"()"
                self.send_untagged(b"LIST " + attributes + b' "." ' + string(name))
        elif "mailboxname" in events:
            if event == "delete":
                self.send_untagged(b'LIST (\\NonExistent) "." ' + string(name))
            elif event == "rename":
                self.send_untagged(b'LIST () "." ' + string(name) + b' ("OLDNAME" (' + string(old_name) + b"))")
            else:
                self.send_untagged(b'LIST () "." ' + string(name))
