"""Folder commands (RFC 3501 §6.3): SELECT, EXAMINE, LIST, LSUB, CREATE, DELETE, RENAME,
SUBSCRIBE, UNSUBSCRIBE, STATUS, APPEND; and leaving a folder: CLOSE, UNSELECT (RFC 3691).

A mix-in for imap.server.IMAPServer, replacing Twisted's versions: theirs decode names to Unicode
(we store modified UTF-7 as sent), omit UIDNEXT, PERMANENTFLAGS and UNSEEN from SELECT, and answer
problems without a reason or response code.
"""

from datetime import datetime

from twisted.internet import defer
from twisted.mail.imap4 import IllegalClientResponse, IMAP4Server

from mailbox_appliance.maildir.flags import TooManyKeywords
from mailbox_appliance.maildir.names import FLAG_SEEN

from . import search
from .account import FolderError, canonical
from .catenate import BadURL, Catenation
from .condstore import Resync
from .literals import Literal, LiteralArguments
from .response import flag_list, string, uid_set
from .selection import Selection
from .transfer_encoding import encode_binary_parts

__all__ = ["FolderCommands"]

# LiteralArguments' astring reads {n+} literals too (RFC 7888); the final form calls it.
_astring = LiteralArguments.arg_astring
_final = IMAP4Server.arg_finalastring


# RFC 5258 §3 selection and return options (RFC 6154 §3 adds SPECIAL-USE to both).
_LIST_SELECTION = frozenset(("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"))
_LIST_RETURN = frozenset(("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"))


def _list_arguments(tokens):
    """LIST's arguments (RFC 5258 §6): [(selection options)] reference (pattern | (patterns))
    [RETURN (return options)] -> (selection, reference, patterns, returns); ValueError says
    what is wrong, for a BAD."""
    position = 0

    def options(known, what):
        nonlocal position
        end = _closing(tokens, position)
        names = tokens[position + 1:end]
        if "(" in names or any(isinstance(name, Literal) for name in names):
            raise ValueError(f"{what} options are atoms")
        chosen = frozenset(bytes(name).upper().decode("ascii", "replace") for name in names)
        if chosen - known:
            raise ValueError(f"Unknown {what} option {sorted(chosen - known)[0]}")
        position = end + 1
        return chosen

    def mailbox():
        nonlocal position
        if position >= len(tokens) or tokens[position] in ("(", ")"):
            raise ValueError("LIST wants a reference and a mailbox pattern")
        position += 1
        return folder_name(bytes(tokens[position - 1]))

    try:
        selection = options(_LIST_SELECTION, "selection") if tokens[:1] == ["("] else frozenset()
        reference = mailbox()
        if tokens[position:position + 1] == ["("]:
            end = _closing(tokens, position)
            inside = tokens[position + 1:end]
            if not inside or "(" in inside:
                raise ValueError("LIST wants one or more patterns in the parentheses")
            patterns = [folder_name(bytes(token)) for token in inside]
            position = end + 1
        else:
            patterns = [mailbox()]
        returns = frozenset()
        if position < len(tokens):
            if not (isinstance(tokens[position], bytes) and not isinstance(tokens[position], Literal)
                    and tokens[position].upper() == b"RETURN" and tokens[position + 1:position + 2] == ["("]):
                raise ValueError("Unexpected text after the LIST pattern")
            position += 1
            returns = options(_LIST_RETURN, "return")
        if position != len(tokens):
            raise ValueError("Unexpected text after the LIST arguments")
    except IndexError:
        raise ValueError("Malformed LIST arguments") from None
    if "RECURSIVEMATCH" in selection and not selection - {"RECURSIVEMATCH", "REMOTE"}:
        raise ValueError("RECURSIVEMATCH needs another selection option (RFC 5258 §3)")
    return selection, reference, patterns, returns


def _closing(tokens, position):
    """The index of the ")" closing the "(" at *position*."""
    try:
        return tokens.index(")", position)
    except ValueError:
        raise ValueError("Unbalanced parentheses in LIST") from None


def folder_name(raw):
    """A mailbox argument as text (non-ASCII octets kept, for account.check_name to refuse)."""
    return raw.decode("utf-8", "surrogateescape")


def _append_date(raw):
    """RFC 3501 §9 date-time of APPEND, e.g. ``17-Jul-1996 02:44:25 -0700``, as POSIX time."""
    try:
        return datetime.strptime(raw.decode("ascii").strip(), "%d-%b-%Y %H:%M:%S %z").timestamp()
    except (UnicodeDecodeError, ValueError):
        raise IllegalClientResponse("Bad date-time %r" % raw) from None


class FolderCommands:

    def open_folder(self, tag, raw_name, missing="NONEXISTENT"):
        """The Folder named by a command's argument, or None once NO is answered.

        *missing* is the response code for a folder that does not exist: TRYCREATE where RFC
        3501 asks for it (APPEND §6.3.11, COPY §6.4.7).
        """
        try:
            return self.account.open(folder_name(raw_name))
        except FolderError as error:
            self.refuse(tag, error.reason, missing if error.code == "NONEXISTENT" else error.code)
            return None

    # -- SELECT and EXAMINE (RFC 3501 §6.3.1, §6.3.2) -----------------------------------------

    def deselect(self):
        if self.selection is not None:
            self.selection.close()
            self.selection = None
        if self.state == "select":
            self.state = "auth"

    def _select(self, tag, raw_name, parameters, readonly):
        was_selected = self.selection is not None
        self.deselect()               # RFC 3501 §6.3.1: even a failed SELECT leaves the old one
        if was_selected:
            # RFC 7162 §3.2.11: the client learns where the old folder's responses end.
            self.sendPositiveResponse(None, b"[CLOSED] Previous folder closed")
        folder = self.open_folder(tag, raw_name)
        if folder is None:
            return
        folder.refresh()
        if parameters["condstore"] or parameters["qresync"]:
            self.condstore = True     # RFC 7162 §3.1.8: SELECT (CONDSTORE) enables it
        selection = Selection(folder, readonly, self.push_updates)
        selection.condstore, selection.qresync = self.condstore, self.qresync
        flags, permanent_flags = selection.flag_lines()
        self.sendLine(flags)
        self.sendUntaggedResponse(b"%d EXISTS" % len(selection.uids))
        self.sendUntaggedResponse(b"%d RECENT" % len(selection.recent))
        first_unseen = next((number for number, uid in enumerate(selection.uids, 1)
                             if FLAG_SEEN not in folder.messages[uid].letters), None)
        if first_unseen is not None:
            self.sendPositiveResponse(None, b"[UNSEEN %d] First unseen" % first_unseen)
        self.sendPositiveResponse(None, b"[UIDVALIDITY %d] UIDs valid" % folder.uidvalidity)
        self.sendPositiveResponse(None, b"[UIDNEXT %d] Predicted next UID" % folder.next_uid)
        self.sendPositiveResponse(None, b"[HIGHESTMODSEQ %d] Highest" % folder.highest_modseq)  # RFC 7162 §3.1.2.1
        self.sendLine(permanent_flags)
        self.selection = selection
        self.state = "select"
        if parameters["qresync"]:
            self.resync_selection(parameters["qresync"])
        self.sendPositiveResponse(tag, b"[READ-ONLY] EXAMINE completed" if readonly
                                  else b"[READ-WRITE] SELECT completed")

    def do_SELECT(self, tag, name, parameters):
        self._select(tag, name, parameters, readonly=False)

    def do_EXAMINE(self, tag, name, parameters):
        self._select(tag, name, parameters, readonly=True)

    auth_SELECT = select_SELECT = (do_SELECT, _astring, Resync.arg_select_parameters)
    auth_EXAMINE = select_EXAMINE = (do_EXAMINE, _astring, Resync.arg_select_parameters)

    def do_CLOSE(self, tag):
        # RFC 3501 §6.4.2: expunge silently, unless the folder is read-only.
        if not self.selection.readonly:
            self.selection.folder.expunge(origin=self.selection)
        self.deselect()
        self.sendPositiveResponse(tag, b"CLOSE completed")

    def do_UNSELECT(self, tag):
        self.deselect()
        self.sendPositiveResponse(tag, b"UNSELECT completed")

    select_CLOSE = (do_CLOSE,)
    select_UNSELECT = (do_UNSELECT,)

    # -- LIST and LSUB (RFC 3501 §6.3.8, §6.3.9) ----------------------------------------------

    def do_LIST(self, tag, pieces):
        try:
            selection, reference, patterns, returns = _list_arguments(search.tokenize(pieces))
        except ValueError as problem:
            self.sendBadResponse(tag, str(problem).encode("ascii", "replace"))
            return
        if patterns == [""] and not selection and not returns:
            # RFC 3501 §6.3.8: an empty pattern asks for the separator and root.
            self.sendUntaggedResponse(b'LIST (\\Noselect) "." ""')
        for name, attributes, child_info in self.account.list(reference, patterns, selection, returns):
            extended = b' ("CHILDINFO" ("SUBSCRIBED"))' if child_info else b""
            self.send_untagged(b"LIST " + flag_list(attributes) + b' "." ' + string(name) + extended)
        self.sendPositiveResponse(tag, b"LIST completed")

    def do_LSUB(self, tag, reference, pattern):
        for name, attributes in self.account.lsub(folder_name(reference), folder_name(pattern)):
            self.send_untagged(b"LSUB " + flag_list(attributes) + b' "." ' + string(name))
        self.sendPositiveResponse(tag, b"LSUB completed")

    auth_LIST = select_LIST = (do_LIST, LiteralArguments.arg_text_with_literals)
    auth_LSUB = select_LSUB = (do_LSUB, _astring, _final)

    # -- CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE ---------------------------------------

    def _folder_change(self, tag, done, change, *names):
        try:
            change(*(folder_name(name) for name in names))
        except FolderError as error:
            self.refuse(tag, error.reason, error.code)
        else:
            self.sendPositiveResponse(tag, done)

    def do_CREATE(self, tag, name):
        self._folder_change(tag, b"CREATE completed", self.account.create, name)

    def do_DELETE(self, tag, name):
        if self.selection is not None and self.selection.folder is self._open_quietly(name):
            self.deselect()
        self._folder_change(tag, b"DELETE completed", self.account.delete, name)

    def do_RENAME(self, tag, old, new):
        self._folder_change(tag, b"RENAME completed", self.account.rename, old, new)

    def do_SUBSCRIBE(self, tag, name):
        self._folder_change(tag, b"SUBSCRIBE completed", self.account.subscribe, name)

    def do_UNSUBSCRIBE(self, tag, name):
        self._folder_change(tag, b"UNSUBSCRIBE completed", self.account.unsubscribe, name)

    def _open_quietly(self, name):
        try:
            return self.account.open(folder_name(name))
        except FolderError:
            return None

    auth_CREATE = select_CREATE = (do_CREATE, _final)
    auth_DELETE = select_DELETE = (do_DELETE, _final)
    auth_RENAME = select_RENAME = (do_RENAME, _astring, _final)
    auth_SUBSCRIBE = select_SUBSCRIBE = (do_SUBSCRIBE, _final)
    auth_UNSUBSCRIBE = select_UNSUBSCRIBE = (do_UNSUBSCRIBE, _final)

    # -- STATUS (RFC 3501 §6.3.10) ------------------------------------------------------------

    def do_STATUS(self, tag, raw_name, items):
        folder = self.open_folder(tag, raw_name)
        if folder is None:
            return
        folder.refresh()
        values = {
            b"MESSAGES": lambda: len(folder.messages),
            b"RECENT": lambda: folder.recent_count,
            b"UIDNEXT": lambda: folder.next_uid,
            b"UIDVALIDITY": lambda: folder.uidvalidity,
            b"UNSEEN": lambda: sum(FLAG_SEEN not in m.letters for m in folder.messages.values()),
            b"APPENDLIMIT": lambda: self.factory.max_message_size,      # RFC 7889 §5
            b"HIGHESTMODSEQ": lambda: folder.highest_modseq,            # RFC 7162 §3.1.6
            b"SIZE": lambda: sum(map(folder.stored_size, folder.messages.values())),   # RFC 8438
        }
        answer = []
        for item in items:
            if isinstance(item, list):               # nested: STATUS INBOX (MESSAGES (UNSEEN))
                raise IllegalClientResponse("STATUS items are atoms")
            item = bytes(item).upper()
            if item not in values:
                raise IllegalClientResponse("Unknown STATUS item %r" % item)
            if item == b"HIGHESTMODSEQ":
                self.enable_condstore()
            answer.append(b"%s %d" % (item, values[item]()))
        self.send_untagged(b"STATUS " + string(canonical(folder_name(raw_name)))
                           + b" (" + b" ".join(answer) + b")")
        self.sendPositiveResponse(tag, b"STATUS completed")

    auth_STATUS = select_STATUS = (do_STATUS, _astring, IMAP4Server.arg_plist)

    # -- APPEND (RFC 3501 §6.3.11, APPENDUID RFC 4315 §3) -------------------------------------

    def do_APPEND(self, tag, raw_name, messages):
        """APPEND, of one message or several (RFC 3502 MULTIAPPEND), each a literal or a
        CATENATE (RFC 4469): all are stored, or none."""
        folder = self.open_folder(tag, raw_name, missing="TRYCREATE")
        if folder is None:
            return
        try:
            prepared = [(folder.flag_letters([bytes(f).decode("ascii", "replace") for f in flags or ()]),
                         None if date is None else _append_date(date), content)
                        for flags, date, content in messages]
        except TooManyKeywords:
            self.refuse(tag, "No more keywords fit in this folder", "LIMIT")
            return
        limit = self.factory.max_message_size
        try:
            contents = [content.assemble(self.account, limit, self.factory.parsed_messages)
                        if isinstance(content, Catenation) else content.read()
                        for _letters, _date, content in prepared]
        except BadURL as error:
            self.sendNegativeResponse(tag, b"[BADURL " + string(error.url) + b"] " + error.reason.encode())
            return
        except OverflowError:
            self.refuse(tag, "Message larger than %d octets" % limit, "TOOBIG")
            return
        if not self.quota_allows(tag, sum(map(len, contents))):
            return
        contents = [encode_binary_parts(content) for content in contents]
        if any(b"\0" in content for content in contents):
            # RFC 3516 §4.4: binary content is kept as base64 (transfer_encoding.py); a NUL
            # left over is in a header, where nothing can carry it.
            self.refuse(tag, "A NUL octet in a header cannot be stored", "UNKNOWN-CTE")
            return
        size = sum(map(len, contents))
        storing = folder.append([(content, letters, internal_date)
                                 for (letters, internal_date, _literal), content in zip(prepared, contents)])
        storing.addCallback(self._appended, tag, folder, size)
        storing.addErrback(self.command_failed, tag)

    def _appended(self, uids, tag, folder, size):
        self.quota_charge(size)
        self.sendPositiveResponse(tag, b"[APPENDUID %d %s] APPEND completed" % (folder.uidvalidity, uid_set(uids)))

    def arg_append_messages(self, line):
        """APPEND's messages: one or more of [(flags)] [date-time] and a literal or
        ``CATENATE (part ...)`` (RFC 3502 §6.3.11, RFC 4469 §5), each read as it comes;
        [(flags, date, literal file or Catenation)]."""
        messages = []

        def one(line):
            flags, line = IMAP4Server.opt_plist(self, line)
            date, line = IMAP4Server.opt_datetime(self, line)
            if line[:10].upper() == b"CATENATE (":
                return part(line[10:], flags, date, Catenation())
            return defer.maybeDeferred(self.arg_literal, line).addCallback(read, flags, date)

        def part(line, flags, date, catenation):
            # cat-part = "TEXT" SP literal / "URL" SP astring, separated by SP, up to ")".
            if line[:1] == b")" and catenation.parts:
                return read((catenation, line[1:]), flags, date)
            kind, _, rest = line.partition(b" ")
            kind = kind.upper()
            if kind == b"TEXT":
                room = self.factory.max_message_size - catenation.text_size
                reading = defer.maybeDeferred(self.arg_literal, rest, room)
                reading.addCallback(lambda result: (result[0].read(), result[1]))
            elif kind == b"URL":
                reading = defer.maybeDeferred(self.arg_list_astring, rest)
            else:
                raise IllegalClientResponse("CATENATE wants TEXT literal or URL string parts, closed by \")\"")

            def add(result):
                value, rest = result
                catenation.add(kind.decode("ascii").lower(), bytes(value))
                return part(rest[1:] if rest[:1] == b" " else rest, flags, date, catenation)
            return reading.addCallback(add)

        def read(result, flags, date):
            content, rest = result
            messages.append((flags, date, content))
            if rest.strip():
                return one(rest.lstrip(b" "))
            return messages, b""

        return one(line)

    auth_APPEND = select_APPEND = (do_APPEND, _astring, arg_append_messages)
