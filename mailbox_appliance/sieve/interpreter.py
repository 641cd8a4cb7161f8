"""Running a checked Sieve script on one message (RFC 5228 §2.10): the actions it asks for.

The interpreter only decides; filtering.py does what it decided.  The result is the folders to
store the message in (each with its IMAP flags), or none when the script discarded it, and what
to send: redirects, a rejection, a vacation reply.  The implicit keep (RFC 5228 §2.10.2) stores
it in INBOX unless fileinto, redirect, reject or discard cancelled it; two stores into one folder
are one, as are two redirects to one address (§2.10.3).

Bounds, so a hostile script cannot stall delivery: MAX_ACTIONS actions, header values decoded
only to message.MAX_DECODED_OCTETS, the body read for ``body`` only to MAX_BODY_OCTETS, and
MAX_SECONDS of time per run; past any of them the run is an error, and an error keeps the
message in INBOX (§2.10.6).
"""

import datetime
import email
import email.policy
import email.utils
import re
import time
from dataclasses import dataclass, field

from mailbox_appliance import address_list
from mailbox_appliance.message import decoded, field_values, header_block
from mailbox_appliance.sieve.matching import compare, fold, matches, numeric

MAX_ACTIONS = 32
MAX_REDIRECTS = 4
MAX_INCLUDE_DEPTH = 8                 # scripts included inside included scripts (RFC 6609 §3.2)
MAX_INCLUDES = 32                     # includes run in all
MAX_BODY_OCTETS = 1024 * 1024
MAX_SECONDS = 1.0
MAX_VARIABLE_OCTETS = 4096            # RFC 5229 §6: an implementation may truncate values
SUBADDRESS_SEPARATOR = "+"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*|[0-9]+)\}")
_MATCH_TYPES = (":is", ":contains", ":matches", ":count", ":value")


class RunError(Exception):
    """The script could not finish: the message is kept in INBOX, and the reason logged."""


@dataclass(frozen=True)
class Envelope:
    sender: str          # "" for the null sender
    recipient: str       # the address as the client gave it (alice+tag@example.test)


@dataclass
class Store:
    folder: str          # the folder's name as the script wrote it; None for keep (the default folder)
    flags: tuple = ()
    create: bool = False


@dataclass(frozen=True)
class Vacation:
    """RFC 5230 §4: what to answer, and how often (days) per sender."""
    reason: str
    days: int = 7
    subject: str = None
    sender: str = None         # :from
    addresses: tuple = ()
    mime: bool = False
    handle: str = None


@dataclass
class Outcome:
    stores: list = field(default_factory=list)
    redirects: list = field(default_factory=list)
    reject: str = None
    vacation: Vacation = None
    actions: int = 0


class _Stop(Exception):
    """The stop command (RFC 5228 §3.3)."""


class _Return(Exception):
    """The return command (RFC 6609 §3.2): the end of the included script."""


class _Variables:
    """One script's variables (RFC 5229); the names it declared ``global`` (RFC 6609 §3.3) are
    the run's shared ones, seen by every script that declares them."""

    def __init__(self, shared):
        self.local, self.shared, self.global_names = {}, shared, set()

    def get(self, name, default=""):
        return (self.shared if name in self.global_names else self.local).get(name, default)

    def __setitem__(self, name, value):
        (self.shared if name in self.global_names else self.local)[name] = value


def _requires(commands, extension):
    return any(node.name == "require" and extension in node.positional[0] for node in commands)


class _Run:
    def __init__(self, commands, message, envelope, folder_exists, clock, loader):
        self.message, self.envelope, self.folder_exists = message, envelope, folder_exists
        self.clock, self.loader = clock, loader
        self.deadline = clock() + MAX_SECONDS
        self.shared = {}
        self.variables = _Variables(self.shared)
        self.match_values = []
        self.including, self.included, self.includes = [], set(), 0
        self.flags = []
        self.keep = True              # the implicit keep
        self.outcome = Outcome()
        self.uses_variables = _requires(commands, "variables")

    # -- commands ----------------------------------------------------------------------------

    def block(self, commands):
        taken = False                 # whether the last if/elsif in this chain ran its block
        for node in commands:
            self.tick()
            if node.name == "if":
                taken = self.test(node.tests[0])
                if taken:
                    self.block(node.block)
            elif node.name in ("elsif", "else"):
                if not taken and (node.name == "else" or self.test(node.tests[0])):
                    taken = True
                    self.block(node.block)
            else:
                getattr(self, "do_" + node.name)(node)

    def do_require(self, node):
        """Checked before the run."""

    def do_stop(self, node):
        raise _Stop()

    def do_return(self, node):
        # RFC 6609 §3.2: in the top-level script, return ends it as stop does.
        raise _Return() if self.including else _Stop()

    def do_global(self, node):
        self.variables.global_names.update(name.lower() for name in self.strings(node.positional[0]))

    def do_include(self, node):
        """RFC 6609 §3.2: run another of the user's scripts (or a global one) here."""
        name = self.expand(node.positional[0])
        key = ("global" if ":global" in node.tagged else "personal", name)
        if ":once" in node.tagged and key in self.included:
            return
        if key in self.including:
            raise RunError(f"the script {name!r} includes itself")
        self.includes += 1
        if len(self.including) >= MAX_INCLUDE_DEPTH or self.includes > MAX_INCLUDES:
            raise RunError(f"more than {MAX_INCLUDE_DEPTH} nested or {MAX_INCLUDES} includes")
        commands = self.loader(*key)
        if commands is None:
            if ":optional" in node.tagged:
                return
            raise RunError(f"there is no {key[0]} script {name!r} to include")
        self.included.add(key)
        saved = self.variables, self.match_values, self.uses_variables
        self.variables, self.match_values = _Variables(self.shared), []
        self.uses_variables = _requires(commands, "variables")
        self.including.append(key)
        try:
            self.block(commands)
        except _Return:
            pass
        finally:
            self.including.pop()
            self.variables, self.match_values, self.uses_variables = saved

    def do_keep(self, node):
        self.store(None, node)

    def do_discard(self, node):
        self.action()
        self.keep = False

    def do_fileinto(self, node):
        self.store(self.expand(node.positional[0]), node, create=":create" in node.tagged)
        if ":copy" not in node.tagged:
            self.keep = False

    def do_redirect(self, node):
        address = self.expand(node.positional[0]).strip()
        if "@" not in address or any(character in address for character in "<>\r\n \t,"):
            raise RunError(f"redirect to {address!r}: not one mail address")
        self.action()
        if address.lower() not in (known.lower() for known in self.outcome.redirects):
            if len(self.outcome.redirects) >= MAX_REDIRECTS:
                raise RunError(f"more than {MAX_REDIRECTS} redirects")
            self.outcome.redirects.append(address)
        if ":copy" not in node.tagged:
            self.keep = False

    def do_reject(self, node):
        # RFC 5429 §2.1: a reject and a keep or fileinto of the same message contradict.
        if self.outcome.stores or self.outcome.vacation is not None:
            raise RunError("reject cannot be combined with keep, fileinto or vacation")
        self.action()
        self.outcome.reject = self.expand(node.positional[0])
        self.keep = False

    do_ereject = do_reject

    def do_vacation(self, node):
        if self.outcome.reject is not None or self.outcome.vacation is not None:
            raise RunError("one vacation per message, and none with reject (RFC 5230 §4.7)")
        self.action()
        tagged = node.tagged
        self.outcome.vacation = Vacation(
            reason=self.expand(node.positional[0]),
            # RFC 5230 §4.1: at least one day; we allow no more than a year.
            days=min(max(tagged.get(":days", 7), 1), 365),
            subject=self.expand(tagged[":subject"]) if ":subject" in tagged else None,
            sender=self.expand(tagged[":from"]) if ":from" in tagged else None,
            addresses=tuple(self.strings(tagged.get(":addresses", []))),
            mime=":mime" in tagged,
            handle=self.expand(tagged[":handle"]) if ":handle" in tagged else None)

    def do_setflag(self, node):
        self.set_flags(node, lambda current, given: given)

    def do_addflag(self, node):
        self.set_flags(node, lambda current, given: current + [flag for flag in given if flag.lower() not in
                                                                 {known.lower() for known in current}])

    def do_removeflag(self, node):
        self.set_flags(node, lambda current, given: [flag for flag in current if flag.lower() not in
                                                     {removed.lower() for removed in given}])

    def do_set(self, node):
        name, value = node.positional[0].lower(), self.expand(node.positional[1])
        for modifier in (":lower", ":upper", ":lowerfirst", ":upperfirst", ":quotewildcard", ":length"):
            if modifier in node.tagged:
                value = _MODIFIERS[modifier](value)
        self.variables[name] = value[:MAX_VARIABLE_OCTETS]

    def set_flags(self, node, change):
        variable, given = node.positional
        given = _flag_list(self.expand(flag) for flag in given)
        if variable is None:
            self.flags = change(self.flags, given)
        else:
            name = variable.lower()
            self.variables[name] = " ".join(change(_flag_list([self.variables.get(name, "")]), given))

    def store(self, folder, node, create=False):
        if self.outcome.reject is not None:
            raise RunError("reject cannot be combined with keep or fileinto")
        if node is not _IMPLICIT_KEEP:
            self.action()
        flags = (_flag_list(self.expand(flag) for flag in node.tagged[":flags"]) if ":flags" in node.tagged
                 else list(self.flags))
        for existing in self.outcome.stores:
            if existing.folder == folder:
                existing.flags = tuple(dict.fromkeys(existing.flags + tuple(flags)))
                existing.create = existing.create or create
                return
        self.outcome.stores.append(Store(folder, tuple(flags), create))

    def action(self):
        self.outcome.actions += 1
        if self.outcome.actions > MAX_ACTIONS:
            raise RunError(f"more than {MAX_ACTIONS} actions")

    def tick(self):
        if self.clock() > self.deadline:
            raise RunError(f"the script ran longer than {MAX_SECONDS} s")

    # -- tests -------------------------------------------------------------------------------

    def test(self, node):
        self.tick()
        return getattr(self, "test_" + node.name)(node)

    def test_true(self, node):
        return True

    def test_false(self, node):
        return False

    def test_not(self, node):
        return not self.test(node.tests[0])

    def test_allof(self, node):
        return all(self.test(test) for test in node.tests)

    def test_anyof(self, node):
        return any(self.test(test) for test in node.tests)

    def test_exists(self, node):
        return all(field_values(self.header, name.lower().encode("utf-8")) for name in self.strings(node.positional[0]))

    def test_size(self, node):
        limit = node.positional[0]
        return len(self.message) > limit if ":over" in node.tagged else len(self.message) < limit

    def fields(self, node, names):
        """The values of the fields *names*, in order; with :index (RFC 5260 §6) only the Nth of
        each name (from the end with :last)."""
        found = []
        for name in self.strings(names):
            values = field_values(self.header, name.lower().encode("utf-8"))
            if ":index" in node.tagged:
                index = node.tagged[":index"]
                position = len(values) - index if ":last" in node.tagged else index - 1
                values = [values[position]] if 0 <= position < len(values) else []
            found += values
        return found

    def test_header(self, node):
        # RFC 5228 §5.7: the value without its leading and trailing white space.
        values = [decoded(value).strip() for value in self.fields(node, node.positional[0])]
        return self.match(node, values, node.positional[1])

    def test_date(self, node):
        """RFC 5260 §4: a part of a date field, in :zone, the field's own (:originalzone) or ours."""
        values = []
        for value in self.fields(node, [node.positional[0]]):
            try:
                moment = email.utils.parsedate_to_datetime(decoded(value).strip())
            except (TypeError, ValueError, IndexError):
                continue                        # RFC 5260 §4.1: an unparsable date never matches
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.timezone.utc)
            if ":originalzone" not in node.tagged:
                moment = moment.astimezone(_zone(node.tagged.get(":zone")))
            values.append(_date_part(moment, node.positional[1].lower()))
        return self.match(node, values, node.positional[2])

    def test_currentdate(self, node):
        now = datetime.datetime.now(datetime.timezone.utc).astimezone(_zone(node.tagged.get(":zone")))
        return self.match(node, [_date_part(now, node.positional[0].lower())], node.positional[1])

    def test_address(self, node):
        values = []
        for value in self.fields(node, node.positional[0]):
            for entry in address_list.parse(decoded(value)):
                if entry.host is not None:
                    values.append(_address_part(node, entry.mailbox or "", entry.host))
        return self.match(node, [value for value in values if value is not None], node.positional[1])

    def test_envelope(self, node):
        values = []
        for part in self.strings(node.positional[0]):
            address = {"from": self.envelope.sender, "to": self.envelope.recipient}.get(part.lower())
            if address is None:
                continue
            if address == "":
                # RFC 5228 §5.4: the null reverse-path matches "" whatever the address part.
                values.append("")
            else:
                local, _, domain = address.rpartition("@")
                values.append(_address_part(node, local, domain))
        return self.match(node, [value for value in values if value is not None], node.positional[1])

    def test_body(self, node):
        return self.match(node, [self.body(node)], node.positional[0])

    def test_string(self, node):
        return self.match(node, self.strings(node.positional[0]), node.positional[1])

    def test_hasflag(self, node):
        variables, wanted = node.positional
        if variables is None:
            current = self.flags
        else:
            current = _flag_list(self.variables.get(name.lower(), "") for name in variables)
        return self.match(node, current, wanted)

    def test_mailboxexists(self, node):
        return all(self.folder_exists(name) for name in self.strings(node.positional[0]))

    def match(self, node, values, keys):
        """RFC 5228 §2.7: true when any value matches any key; ${0}... set by :matches."""
        keys = self.strings(keys)
        match_type = next((name for name in _MATCH_TYPES if name in node.tagged), ":is")
        comparator = node.tagged.get(":comparator", "i;ascii-casemap")
        if match_type == ":count":
            return any(compare("i;ascii-numeric", node.tagged[":count"], str(len(values)), key) for key in keys)
        for value in values:
            for key in keys:
                self.tick()
                if match_type == ":matches":
                    captured = matches(comparator, value, key)
                    if captured is not None:
                        self.match_values = [value] + captured
                        return True
                elif match_type == ":value":
                    if compare(comparator, node.tagged[":value"], value, key):
                        return True
                elif match_type == ":contains":
                    if fold(comparator, key) in fold(comparator, value):
                        return True
                elif comparator == "i;ascii-numeric":
                    if numeric(value) == numeric(key):
                        return True
                elif fold(comparator, value) == fold(comparator, key):
                    return True
        return False

    # -- strings and the message -------------------------------------------------------------

    def strings(self, values):
        return [self.expand(value) for value in values]

    def expand(self, text):
        """RFC 5229 §3: ${name} and ${N} in a string, when the script requires variables."""
        if not self.uses_variables or "${" not in text:
            return text

        def value(found):
            name = found.group(1).lower()
            if name.isdigit():
                index = int(name)
                return self.match_values[index] if index < len(self.match_values) else ""
            return self.variables.get(name, "")
        return _VARIABLE.sub(value, text)

    @property
    def header(self):
        return header_block(self.message)

    def body(self, node):
        """The text the body test reads (RFC 5173 §5): the raw body, or the text of its parts."""
        header = header_block(self.message)
        raw = self.message[len(header) + 2:len(header) + 2 + MAX_BODY_OCTETS]
        if ":raw" in node.tagged:
            return raw.decode("utf-8", "replace")
        wanted = [kind.lower() for kind in node.tagged.get(":content", ["text"])]
        parsed = email.message_from_bytes(self.message[:len(header) + 2 + MAX_BODY_OCTETS], policy=email.policy.compat32)
        texts = []
        for part in parsed.walk():
            if part.is_multipart():
                continue
            kind = part.get_content_type()
            if not any(want == "" or kind == want or kind.split("/")[0] == want for want in wanted):
                continue
            payload = part.get_payload(decode=True) or b""
            texts.append(payload.decode(part.get_content_charset() or "utf-8", "replace")
                         if _known_charset(part.get_content_charset()) else payload.decode("utf-8", "replace"))
        return "\n".join(texts)


def _zone(text):
    """A fixed offset from RFC 5260's "+hhmm", or the local zone (None)."""
    if text and len(text) == 5 and text[0] in "+-" and text[1:].isdigit():
        minutes = int(text[1:3]) * 60 + int(text[3:])
        return datetime.timezone(datetime.timedelta(minutes=minutes if text[0] == "+" else -minutes))
    return None


def _date_part(moment, part):
    """RFC 5260 §4.2's date parts of *moment*."""
    offset = moment.utcoffset() or datetime.timedelta()
    sign, minutes = ("-" if offset < datetime.timedelta() else "+"), abs(int(offset.total_seconds())) // 60
    zone = f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    return {
        "year": f"{moment.year:04d}", "month": f"{moment.month:02d}", "day": f"{moment.day:02d}",
        "date": moment.strftime("%Y-%m-%d"), "hour": f"{moment.hour:02d}", "minute": f"{moment.minute:02d}",
        "second": f"{moment.second:02d}", "time": moment.strftime("%H:%M:%S"),
        "julian": str((moment.date() - datetime.date(1858, 11, 17)).days),
        "iso8601": moment.isoformat(), "std11": email.utils.format_datetime(moment), "zone": zone,
        "weekday": str((moment.weekday() + 1) % 7),
    }[part]


def _known_charset(name):
    try:
        return name is not None and bool("".encode(name))
    except LookupError:
        return False


def _address_part(node, local, domain):
    """RFC 5228 §2.7.4 and RFC 5233: the part of an address a test compares; None when it asks
    for a :detail the address does not have."""
    if ":localpart" in node.tagged:
        return local
    if ":domain" in node.tagged:
        return domain
    if ":user" in node.tagged:
        return local.split(SUBADDRESS_SEPARATOR, 1)[0]
    if ":detail" in node.tagged:
        return local.split(SUBADDRESS_SEPARATOR, 1)[1] if SUBADDRESS_SEPARATOR in local else None
    return f"{local}@{domain}" if domain else local


def _flag_list(strings):
    """RFC 5232 §3: flags are space-separated within strings; duplicates go (case-insensitive)."""
    seen, flags = set(), []
    for text in strings:
        for flag in text.split():
            if flag.lower() not in seen:
                seen.add(flag.lower())
                flags.append(flag)
    return flags


_MODIFIERS = {
    ":lower": str.lower, ":upper": str.upper,
    ":lowerfirst": lambda value: value[:1].lower() + value[1:],
    ":upperfirst": lambda value: value[:1].upper() + value[1:],
    ":quotewildcard": lambda value: re.sub(r"([*?\\])", r"\\\1", value),
    ":length": lambda value: str(len(value)),
}


def run(commands, message, envelope, folder_exists=lambda name: True, clock=time.monotonic,
        loader=lambda location, name: None):
    """The Outcome of checked *commands* on *message* (CRLF bytes) with *envelope*; raises
    RunError (the caller keeps the message in INBOX and logs why).  *loader(location, name)*
    gives the checked commands of a script to include ("personal" or "global"), or None."""
    state = _Run(commands, message, envelope, folder_exists, clock, loader)
    try:
        state.block(commands)
    except _Stop:
        pass
    except RecursionError as problem:       # checked scripts nest at most grammar.MAX_NESTING
        raise RunError("the script nests too deep") from problem
    if state.keep:
        state.store(None, _IMPLICIT_KEEP)
    return state.outcome


class _ImplicitKeep:
    """Stands for the keep no command asked for: no action counted, the current flags
    (RFC 5232 §5)."""
    tagged = {}


_IMPLICIT_KEEP = _ImplicitKeep()
