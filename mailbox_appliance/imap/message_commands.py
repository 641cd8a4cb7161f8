"""Message commands of the selected state (RFC 3501 §6.4): FETCH, STORE, SEARCH, COPY, EXPUNGE,
their UID forms, UID EXPUNGE (RFC 4315), MOVE (RFC 6851), SORT and THREAD (RFC 5256), BINARY
(RFC 3516: FETCH BINARY[...] and BINARY.SIZE; the attributes are parsed in fetch_items.py).

A mix-in for imap.server.IMAPServer replacing Twisted's versions, which read every message object
to answer FETCH FLAGS, returned whole bodies labelled as partial, never set \\Seen for BODY[], and
searched by fetching everything.  Here FLAGS, UID and RFC822.SIZE come from file names; a message
is read only when the client asks for its contents.
"""

import re

from twisted.mail.imap4 import IllegalClientResponse, IMAP4Server

from mailbox_appliance.accounts.directory import JUNK
from mailbox_appliance.maildir.flags import TooManyKeywords
from mailbox_appliance.maildir.layout import special_folder
from mailbox_appliance.maildir.names import FLAG_SEEN

from . import search, sort, thread, transfer_encoding
from .condstore import Resync
from .fetch_items import parse_fetch_items
from .literals import LiteralArguments
from .response import flag_list, internal_date, string, uid_set
from .selection import BadSequence, parse_sequence_set
from .structure import SectionError

__all__ = ["MessageCommands"]

_CHARSETS = {None: "us-ascii", b"US-ASCII": "us-ascii", b"UTF-8": "utf-8"}
# RFC 4731 §3.1; RFC 5267 §4: UPDATE, CONTEXT (a hint), PARTIAL low:high.
_RETURN_OPTIONS = frozenset((b"MIN", b"MAX", b"ALL", b"COUNT", b"UPDATE", b"CONTEXT", b"PARTIAL"))
_PARTIAL_RANGE = re.compile(rb"([1-9][0-9]{0,9}):([1-9][0-9]{0,9})\Z")


def _esearch(tag, numbers, options, uid, ordered):
    """``ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n ALL set PARTIAL (l:h set)`` for *numbers*
    (RFC 4731 §3.1, RFC 5267 §4.4): an empty result has only its COUNT and PARTIAL.  For SORT
    (*ordered*, RFC 5267 §3.2) MIN and MAX are the first and last in sort order and ALL and
    PARTIAL keep that order."""
    parts = [b"ESEARCH (TAG " + string(tag) + b")"] + ([b"UID"] if uid else [])
    if numbers:
        first, last = (numbers[0], numbers[-1]) if ordered else (min(numbers), max(numbers))
        if b"MIN" in options:
            parts.append(b"MIN %d" % first)
        if b"MAX" in options:
            parts.append(b"MAX %d" % last)
    if b"COUNT" in options:
        parts.append(b"COUNT %d" % len(numbers))
    if numbers and b"ALL" in options:
        parts.append(b"ALL " + uid_set(numbers))
    if b"PARTIAL" in options:
        low, high = options[b"PARTIAL"]
        chosen = numbers[low - 1:high]
        parts.append(b"PARTIAL (%d:%d %s)" % (low, high, uid_set(chosen) if chosen else b"NIL"))
    return b" ".join(parts)


def _literal(data):
    """A string for a FETCH response: literal8 (RFC 3516 §4.2) when it holds a NUL, which a
    literal may not (RFC 3501 §4.3)."""
    if not data:
        return b'""'
    return (b"~{%d}\r\n" if b"\0" in data else b"{%d}\r\n") % len(data) + data


class MessageCommands:

    # -- arguments ----------------------------------------------------------------------------

    def arg_seqset(self, line):
        """A sequence set as [(low, high)] ranges (selection.parse_sequence_set)."""
        text, _, rest = line.partition(b" ")
        try:
            return parse_sequence_set(text), rest
        except BadSequence as error:
            raise IllegalClientResponse(str(error)) from None

    def arg_flaglist(self, line):
        """STORE's flags (RFC 3501 §9 store-att-flags); none at all after FLAGS is BAD (Twisted's
        own raised TypeError on it: a fuzzing run found "STORE 1 +FLAGS")."""
        if line is None:
            raise IllegalClientResponse("Missing flag list")
        return IMAP4Server.arg_flaglist(self, line)

    def _messages(self, tag, ranges, by_uid, among=None):
        """[(number, uid)] named by *ranges* (of those in *among*, if given), or None once BAD
        is answered."""
        try:
            if among is not None:
                return self.selection.resolve_among(ranges, by_uid, among)
            return self.selection.resolve(ranges, by_uid)
        except BadSequence as error:
            self.sendBadResponse(tag, str(error).encode())
            return None

    # -- FETCH (RFC 3501 §6.4.5, §7.4.2) ------------------------------------------------------

    def do_FETCH(self, tag, ranges, query, modifiers, uid=False):
        changed_since = modifiers.get(b"CHANGEDSINCE")
        if b"VANISHED" in modifiers and not (uid and self.qresync and changed_since is not None):
            # RFC 7162 §3.2.6: only UID FETCH, with CHANGEDSINCE, once QRESYNC is enabled.
            self.sendBadResponse(tag, b"VANISHED needs UID FETCH with CHANGEDSINCE and ENABLE QRESYNC")
            return
        if changed_since is None:
            chosen = self._messages(tag, ranges, uid)
        else:
            # RFC 7162 §3.1.4: only what changed since; found from the mod-sequences first.
            messages = self.selection.folder.messages
            changed = [u for u, message in messages.items() if message.modseq > changed_since]
            chosen = self._messages(tag, ranges, uid, among=changed)
        if chosen is None:
            return
        if changed_since is not None or any(item.kind == "modseq" for item in query):
            self.enable_condstore()
        folder = self.selection.folder
        marks_seen = not self.selection.readonly and any(item.marks_seen() for item in query)
        batch = [line + b"\r\n" for line in self.selection.keyword_lines()]
        if b"VANISHED" in modifiers:
            vanished = self.vanished_earlier(folder, changed_since, ranges)
            if vanished is not None:
                batch.append(b"* " + vanished + b"\r\n")
        kinds = {item.kind for item in query}
        with_uid = uid or "uid" in kinds
        makers, flags, modseq = self._item_makers(query)
        for number, message_uid in chosen:
            message = folder.messages.get(message_uid)
            if message is None:
                continue              # expunged elsewhere; this session hears of it later
            if marks_seen and FLAG_SEEN not in message.letters:
                self.selection.set_letters([message_uid], {FLAG_SEEN}, 1)
                flags_too = True
            else:
                flags_too = False
            with_modseq = changed_since is not None or (flags_too and self.condstore)
            items = [b"UID %d" % message_uid] if with_uid else []
            if flags_too and "flags" not in kinds:
                items.append(flags(message))
            if with_modseq and "modseq" not in kinds:
                items.append(modseq(message))
            try:
                items += [make(message) for make in makers]
            except transfer_encoding.UnknownEncoding as unknown:
                self.transport.write(b"".join(batch))
                self.sendNegativeResponse(tag, b"[UNKNOWN-CTE] Content-Transfer-Encoding %s of message %d "
                                               b"cannot be decoded" % (str(unknown).encode("ascii", "replace"), number))
                return
            batch.append(b"* %d FETCH (%s)\r\n" % (number, b" ".join(items)))
            if len(batch) >= 1000:
                self.transport.write(b"".join(batch))
                batch = []
        self.transport.write(b"".join(batch))
        folder.save(rewrite=False)
        self.sendPositiveResponse(tag, b"FETCH completed")

    def _item_makers(self, query):
        """For each item of *query* but UID, the function of a message that gives its bytes, and
        the ones for FLAGS and MODSEQ, which a command may imply: chosen once per command, not
        once per message (choosing was a quarter of a 100,000-message UID FETCH 1:* FLAGS)."""
        folder = self.selection.folder
        last = [None, None]               # the message parsed last and its Part: its items share it
        flag_items = {}                   # FLAGS encoded once per combination of flags

        def whole(message):
            if last[0] is not message:
                last[:] = [message, self.factory.parsed_messages.get(folder, message)]
            return last[1]

        def flags(message):
            key = (message.letters, message.uid in self.selection.recent)
            item = flag_items.get(key)
            if item is None:
                item = flag_items[key] = b"FLAGS " + flag_list(self.selection.flags_of(message.uid))
            return item

        def modseq(message):
            return b"MODSEQ (%d)" % message.modseq

        makers = {
            "modseq": modseq,
            "flags": flags,
            "internaldate": lambda message: b"INTERNALDATE " + internal_date(folder.internal_date(message)),
            "rfc822size": lambda message: b"RFC822.SIZE %d" % folder.rfc822_size(message),
            "envelope": lambda message: b"ENVELOPE " + whole(message).encoded("envelope"),
            "bodystructure": lambda message: b"BODYSTRUCTURE " + whole(message).encoded("bodystructure"),
            "body": lambda message: b"BODY " + whole(message).encoded("body"),
            "rfc822": lambda message: b"RFC822 " + string(whole(message).data),
            "rfc822header": lambda message: b"RFC822.HEADER " + string(whole(message).header),
            "rfc822text": lambda message: b"RFC822.TEXT " + string(whole(message).body),
        }

        def section(item):
            return lambda message: self._section_item(whole(message), item)
        return [makers.get(item.kind) or section(item) for item in query if item.kind != "uid"], flags, modseq

    def _section_item(self, message, item):
        try:
            data = item.octets(message)
        except SectionError:
            data = b""                # RFC 3501 §6.4.5 leaves it open; an empty string is safe
        if item.kind == "binarysize":
            return item.label() + b" %d" % len(data)
        if item.partial is not None:
            # RFC 3501 §6.4.5: octets origin..origin+length; the reply names only the origin.
            origin, length = item.partial
            data = data[origin:origin + length]
        return item.label() + b" " + _literal(data)

    def arg_fetch_items(self, line):
        return parse_fetch_items(line)

    select_FETCH = (do_FETCH, arg_seqset, arg_fetch_items, Resync.arg_fetch_modifiers)

    # -- STORE (RFC 3501 §6.4.6) --------------------------------------------------------------

    def do_STORE(self, tag, ranges, modifiers, mode, flags, uid=False):
        if self.selection.readonly:
            self.sendNegativeResponse(tag, b"[READ-ONLY] The folder was opened with EXAMINE")
            return
        mode = mode.upper()
        if mode.removesuffix(b".SILENT") not in (b"FLAGS", b"+FLAGS", b"-FLAGS"):
            raise IllegalClientResponse("STORE wants FLAGS, +FLAGS or -FLAGS (optionally .SILENT)")
        chosen = self._messages(tag, ranges, uid)
        if chosen is None:
            return
        folder = self.selection.folder
        try:
            letters = folder.flag_letters([bytes(flag).decode("ascii", "replace") for flag in flags])
        except TooManyKeywords:
            self.refuse(tag, "No more keywords fit in this folder", "LIMIT")
            return
        unchanged_since = modifiers.get(b"UNCHANGEDSINCE")
        modified = []
        if unchanged_since is not None:
            # RFC 7162 §3.1.3: a message changed since then is left alone and named in MODIFIED.
            self.enable_condstore()
            modified = [(n, u) for n, u in chosen if u in folder.messages and folder.messages[u].modseq > unchanged_since]
            left_alone = set(modified)
            chosen = [entry for entry in chosen if entry not in left_alone]
        direction = {b"+": 1, b"-": -1}.get(mode[:1], 0)
        changed = set(self.selection.set_letters([message_uid for _n, message_uid in chosen], letters, direction))
        folder.save(rewrite=False)
        for line in self.selection.keyword_lines():
            self.sendLine(line)
        silent = mode.endswith(b".SILENT")
        for number, message_uid in chosen:
            # .SILENT: no FLAGS, but a CONDSTORE client still hears the new MODSEQ (§3.1.3).
            if message_uid in folder.messages and (not silent or (self.condstore and message_uid in changed)):
                self.sendUntaggedResponse(self.selection.flag_update(number, message_uid, with_uid=uid, flags=not silent))
        if modified:
            failed = uid_set([u if uid else n for n, u in modified])
            self.sendPositiveResponse(tag, b"[MODIFIED %s] Conditional STORE failed" % failed)
        else:
            self.sendPositiveResponse(tag, b"STORE completed")

    select_STORE = (do_STORE, arg_seqset, Resync.arg_store_modifiers, IMAP4Server.arg_atom, arg_flaglist)

    # -- SEARCH (RFC 3501 §6.4.4) -------------------------------------------------------------

    def _predicate(self, tag, charset, pieces):
        """The search keys as a predicate (search.parse_search), or None once answered."""
        charset = charset.upper() if charset else None
        if charset not in _CHARSETS:
            self.sendNegativeResponse(tag, b"[BADCHARSET (US-ASCII UTF-8)] Unknown charset")
            return None
        try:
            return search.parse_search(pieces, _CHARSETS[charset])
        except search.SearchError as error:
            self.sendBadResponse(tag, str(error).encode())
            return None

    def _search(self, tag, charset, pieces):
        """[(number, uid)] matching the search keys, or None once the command is answered."""
        predicate = self._predicate(tag, charset, pieces)
        return None if predicate is None else search.run(self.selection, predicate)

    def _answer_numbers(self, tag, name, found, uid, options, reads_modseq=False):
        """SEARCH or SORT's answer: the numbers (or UIDs) in *found*'s order, or with RETURN
        *options* one ESEARCH response (RFC 4731 §3.1, RFC 5267 §3.2).  A search with MODSEQ
        also names the highest mod-sequence of what it returns (RFC 7162 §3.1.5, §3.1.11)."""
        numbers = [message_uid if uid else number for number, message_uid in found]
        modseq = b""
        if reads_modseq:
            self.enable_condstore()
        returned = [entry for entry in found if entry[1] in self.selection.folder.messages] if reads_modseq else []
        if returned:
            if options is not None and not options.keys() & {b"ALL", b"COUNT", b"PARTIAL"}:
                returned = ([returned[0]] if b"MIN" in options else []) + ([returned[-1]] if b"MAX" in options else [])
            messages = self.selection.folder.messages
            modseq = b"%d" % max(messages[u].modseq for _n, u in returned)
        if options is None:
            line = b" ".join([name, *(b"%d" % n for n in numbers)])
            self.sendUntaggedResponse(line + b" (MODSEQ " + modseq + b")" if modseq else line)
        else:
            line = _esearch(tag, numbers, options, uid, ordered=name == b"SORT")
            self.sendUntaggedResponse(line + b" MODSEQ " + modseq if modseq else line)
        self.sendPositiveResponse(tag, name + b" completed")

    def arg_return_options(self, line):
        """The optional ``RETURN (option ...)`` before SEARCH or SORT's arguments (RFC 4731 §3.1,
        RFC 5267 §3-4): {option name: its argument or None} (``RETURN ()`` means ALL), or None.
        PARTIAL's range is (low, high), given either way round (RFC 5267 §4.4)."""
        if not line:
            raise IllegalClientResponse("Missing search criteria")
        if line[:7].upper() != b"RETURN ":
            return None, line
        rest = line[7:].lstrip(b" ")
        end = rest.find(b")")
        if not rest.startswith(b"(") or end < 0:
            raise IllegalClientResponse("RETURN wants a parenthesised list of options")
        words = iter(rest[1:end].split())
        options = {}
        for word in words:
            option = word.upper()
            if option not in _RETURN_OPTIONS:
                raise IllegalClientResponse("Unknown RETURN option %s" % option.decode("ascii", "replace"))
            options[option] = None
            if option == b"PARTIAL":
                match = _PARTIAL_RANGE.match(next(words, b""))
                if match is None:
                    raise IllegalClientResponse("PARTIAL wants a range low:high of positions from 1")
                options[option] = tuple(sorted(int(bound) for bound in match.groups()))
        return options or {b"ALL": None}, rest[end + 1:].lstrip(b" ")

    def do_SEARCH(self, tag, options, charset, pieces, uid=False):
        predicate = self._predicate(tag, charset, pieces)
        if predicate is None:
            return
        found = search.run(self.selection, predicate)
        if options is not None and b"UPDATE" in options:
            # RFC 5267 §4.2: keep the result current, or say NOUPDATE.
            kept = self.selection.searches.keep(tag, search.judge(self.selection, predicate), uid,
                                                [message_uid for _n, message_uid in found])
            if not kept:
                self.sendPositiveResponse(None, b"[NOUPDATE " + string(tag) + b"] Too many searches kept")
        self._answer_numbers(tag, b"SEARCH", found, uid, options, predicate.reads_modseq)

    def do_CANCELUPDATE(self, tag, line):
        """RFC 5267 §4.3: stop the updates of the searches these tags made."""
        try:
            tags = [bytes(token) for token in search.tokenize([line]) if not isinstance(token, str)]
        except search.SearchError:
            tags = []
        if not tags:
            raise IllegalClientResponse("CANCELUPDATE wants the tags of searches made with RETURN (UPDATE)")
        unknown = self.selection.searches.cancel(tags)
        if unknown:
            self.sendBadResponse(tag, b"No search kept for tag " + string(unknown[0]))
            return
        self.sendPositiveResponse(tag, b"CANCELUPDATE completed")

    select_CANCELUPDATE = (do_CANCELUPDATE, IMAP4Server.arg_line)

    select_SEARCH = (do_SEARCH, arg_return_options, IMAP4Server.opt_charset, LiteralArguments.arg_text_with_literals)

    # -- SORT (RFC 5256 §3) -------------------------------------------------------------------

    def do_SORT(self, tag, options, criteria, charset, pieces, uid=False):
        if options is not None and b"UPDATE" in options:
            self.sendBadResponse(tag, b"RETURN (UPDATE) is for SEARCH; CONTEXT=SORT is not offered")
            return
        try:
            keys = sort.parse_criteria(criteria)
        except sort.SortError as error:
            self.sendBadResponse(tag, str(error).encode())
            return
        predicate = self._predicate(tag, charset, pieces)     # RFC 5256 §3: the charset is required
        if predicate is not None:
            found = sort.sort_messages(self.selection, search.run(self.selection, predicate), keys)
            self._answer_numbers(tag, b"SORT", found, uid, options, predicate.reads_modseq)

    select_SORT = (do_SORT, arg_return_options, IMAP4Server.arg_plist, IMAP4Server.arg_atom,
                   LiteralArguments.arg_text_with_literals)

    # -- THREAD (RFC 5256 §3-4) ---------------------------------------------------------------

    def do_THREAD(self, tag, algorithm, charset, pieces, uid=False):
        threader = thread.ALGORITHMS.get(algorithm.upper().decode("ascii", "replace"))
        if threader is None:
            self.sendBadResponse(tag, b"Unknown threading algorithm; use ORDEREDSUBJECT or REFERENCES")
            return
        found = self._search(tag, charset, pieces)     # RFC 5256 §3: the charset is required
        if found is None:
            return
        threads = thread.encode_threads(threader(thread.read_messages(self.selection.folder, found, uid)))
        self.sendUntaggedResponse(b"THREAD " + threads if threads else b"THREAD")
        self.sendPositiveResponse(tag, b"THREAD completed")

    select_THREAD = (do_THREAD, IMAP4Server.arg_atom, IMAP4Server.arg_atom, LiteralArguments.arg_text_with_literals)

    # -- COPY, MOVE (RFC 3501 §6.4.7; COPYUID RFC 4315 §3; RFC 6851) --------------------------

    def _copy(self, tag, ranges, raw_name, by_uid, adds=True):
        """Copy the messages; returns (source uids, new uids, uidvalidity), or None if answered.
        A copy that *adds* to the user's mail (COPY, not MOVE) must fit the quota."""
        chosen = self._messages(tag, ranges, by_uid)
        if chosen is None:
            return None
        target = self.open_folder(tag, raw_name, missing="TRYCREATE")
        if target is None:
            return None
        source = self.selection.folder
        messages = [source.messages[u] for _n, u in chosen if u in source.messages]
        size = sum(map(source.stored_size, messages)) if adds else 0
        if adds and not self.quota_allows(tag, size):
            return None
        copied = target.copy_in(source, messages)
        self.quota_charge(size)
        self._teach_spam_filter(source, target, messages)
        return [m.uid for m in messages], copied, target.uidvalidity

    def _teach_spam_filter(self, source, target, messages):
        """Into Junk is spam; out of Junk is ham, unless into Trash (deleting spam is not calling
        it good).  Handed over at once, before a MOVE removes the originals."""
        learning = self.factory.learning
        if learning is None:
            return
        was, now = special_folder(source.path), special_folder(target.path)
        kind = "spam" if now == JUNK != was else "ham" if was == JUNK and now not in (JUNK, "Trash") else None
        if kind is not None:
            for message in messages:
                learning.learn(kind, source.file_path(message))

    def do_COPY(self, tag, ranges, raw_name, uid=False):
        copied = self._copy(tag, ranges, raw_name, uid)
        if copied is None:
            return
        old, new, validity = copied
        code = b"[COPYUID %d %s %s] " % (validity, uid_set(old), uid_set(new)) if old else b""
        self.sendPositiveResponse(tag, code + b"COPY completed")

    def do_MOVE(self, tag, ranges, raw_name, uid=False):
        if self.selection.readonly:
            self.sendNegativeResponse(tag, b"[READ-ONLY] The folder was opened with EXAMINE")
            return
        copied = self._copy(tag, ranges, raw_name, uid, adds=False)
        if copied is None:
            return
        old, new, validity = copied
        if old:
            # RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
            self.sendPositiveResponse(None, b"[COPYUID %d %s %s] Moved" % (validity, uid_set(old), uid_set(new)))
            self.selection.folder.remove(old)
        self.sendPositiveResponse(tag, b"MOVE completed")

    select_COPY = (do_COPY, arg_seqset, IMAP4Server.arg_finalastring)
    select_MOVE = (do_MOVE, arg_seqset, IMAP4Server.arg_finalastring)

    # -- EXPUNGE (RFC 3501 §6.4.3), UID EXPUNGE (RFC 4315 §2.1) -------------------------------

    def do_EXPUNGE(self, tag, ranges=None):
        if self.selection.readonly:
            self.sendNegativeResponse(tag, b"[READ-ONLY] The folder was opened with EXAMINE")
            return
        only = None if ranges is None else [u for _n, u in self.selection.resolve(ranges, by_uid=True)]
        # The session hears of its own expunge like any other: as EXPUNGE lines before the OK.
        self.selection.folder.expunge(only)
        # The client cannot learn the new HIGHESTMODSEQ from EXPUNGE or VANISHED responses.
        code = b"[HIGHESTMODSEQ %d] " % self.selection.folder.highest_modseq if self.condstore else b""
        self.sendPositiveResponse(tag, code + b"EXPUNGE completed")

    select_EXPUNGE = (do_EXPUNGE,)

    def do_UID(self, tag, command, line):
        command = command.upper()
        if command == b"EXPUNGE":
            if not line:
                raise IllegalClientResponse("UID EXPUNGE wants one UID set")
            ranges, rest = self.arg_seqset(line)
            if rest:
                raise IllegalClientResponse("UID EXPUNGE wants one UID set")
            self._command = (b"EXPUNGE", True)
            self.do_EXPUNGE(tag, ranges)
        elif command in (b"COPY", b"MOVE", b"FETCH", b"STORE", b"SEARCH", b"SORT", b"THREAD"):
            self.dispatchCommand(tag, command, line, uid=True)
        else:
            raise IllegalClientResponse("UID %s is not a command" % command.decode("ascii", "replace"))

    select_UID = (do_UID, IMAP4Server.arg_atom, IMAP4Server.arg_line)
