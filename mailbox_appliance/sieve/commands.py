"""What a Sieve script may say: the commands and tests we run, their arguments, and the
extension each needs (RFC 5228 §3-5 and the extensions' RFCs).  ``check`` turns parsed nodes
into checked ones or raises a SieveError naming the line, so that a script that is stored
(ManageSieve PUTSCRIPT, ``admin sieve put``) is one that runs.

Each checked Node gets ``tagged`` ({":tag": value or True}) and ``positional`` (its other
arguments in order).
"""

from dataclasses import dataclass, field

from mailbox_appliance.sieve.grammar import SieveError, Tag, parse
from mailbox_appliance.sieve.matching import COMPARATORS, RELATIONS

# The extensions a script may require (CAPABILITY's SIEVE list, in this order).
EXTENSIONS = ("fileinto", "reject", "ereject", "envelope", "vacation", "imap4flags", "copy", "body", "variables",
              "relational", "subaddress", "mailbox", "date", "index", "include", "comparator-i;ascii-numeric")
# RFC 5260 §4: what the date tests can compare.
DATE_PARTS = ("year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601", "std11",
              "zone", "weekday")

STRING, STRINGS, NUMBER = "string", "string-list", "number"


@dataclass(frozen=True)
class Argument:
    """A tagged argument: what follows the tag (None for a flag), the extension it needs."""
    takes: str = None
    extension: str = None
    group: str = None         # tags of one group exclude each other (":is" and ":contains")


@dataclass(frozen=True)
class Spec:
    kind: str                                  # "action", "control" or "test"
    positional: tuple = ()                     # STRING, STRINGS or NUMBER; "?" suffix: optional
    tags: dict = field(default_factory=dict)
    extension: str = None
    tests: str = None                          # None, "one" or "list"
    block: bool = False


COMPARATOR = {":comparator": Argument(STRING)}
MATCH_TYPE = {":is": Argument(group="match"), ":contains": Argument(group="match"),
              ":matches": Argument(group="match"),
              ":count": Argument(STRING, "relational", "match"), ":value": Argument(STRING, "relational", "match")}
ADDRESS_PART = {":all": Argument(group="part"), ":localpart": Argument(group="part"),
                ":domain": Argument(group="part"), ":user": Argument(None, "subaddress", "part"),
                ":detail": Argument(None, "subaddress", "part")}
FLAGS = {":flags": Argument(STRINGS, "imap4flags")}
INDEX = {":index": Argument(NUMBER, "index"), ":last": Argument(None, "index")}
MATCHING = {**COMPARATOR, **MATCH_TYPE}

SPECS = {
    "require": Spec("control", (STRINGS,)),
    "if": Spec("control", tests="one", block=True),
    "elsif": Spec("control", tests="one", block=True),
    "else": Spec("control", block=True),
    "stop": Spec("control"),
    "include": Spec("control", (STRING,), {":personal": Argument(group="location"), ":global": Argument(group="location"),
                                           ":once": Argument(), ":optional": Argument()}, "include"),
    "return": Spec("control", extension="include"),
    "global": Spec("control", (STRINGS,), extension="include"),
    "keep": Spec("action", tags=FLAGS),
    "discard": Spec("action"),
    "fileinto": Spec("action", (STRING,), {**FLAGS, ":copy": Argument(None, "copy"),
                                            ":create": Argument(None, "mailbox")}, "fileinto"),
    "redirect": Spec("action", (STRING,), {":copy": Argument(None, "copy")}),
    "reject": Spec("action", (STRING,), extension="reject"),
    "ereject": Spec("action", (STRING,), extension="ereject"),
    "vacation": Spec("action", (STRING,), {":days": Argument(NUMBER), ":subject": Argument(STRING),
                                           ":from": Argument(STRING), ":addresses": Argument(STRINGS),
                                           ":mime": Argument(), ":handle": Argument(STRING)}, "vacation"),
    "setflag": Spec("action", ("string?", STRINGS), extension="imap4flags"),
    "addflag": Spec("action", ("string?", STRINGS), extension="imap4flags"),
    "removeflag": Spec("action", ("string?", STRINGS), extension="imap4flags"),
    "set": Spec("action", (STRING, STRING), {name: Argument(group=group) for name, group in (
        (":lower", "case"), (":upper", "case"), (":lowerfirst", "first"), (":upperfirst", "first"),
        (":quotewildcard", "quote"), (":length", "length"))}, "variables"),
    "address": Spec("test", (STRINGS, STRINGS), {**MATCHING, **ADDRESS_PART, **INDEX}),
    "envelope": Spec("test", (STRINGS, STRINGS), {**MATCHING, **ADDRESS_PART}, "envelope"),
    "header": Spec("test", (STRINGS, STRINGS), {**MATCHING, **INDEX}),
    "date": Spec("test", (STRING, STRING, STRINGS), {**MATCHING, **INDEX, ":zone": Argument(STRING, group="zone"),
                                                     ":originalzone": Argument(group="zone")}, "date"),
    "currentdate": Spec("test", (STRING, STRINGS), {**MATCHING, ":zone": Argument(STRING)}, "date"),
    "exists": Spec("test", (STRINGS,)),
    "size": Spec("test", (NUMBER,), {":over": Argument(group="size"), ":under": Argument(group="size")}),
    "allof": Spec("test", tests="list"),
    "anyof": Spec("test", tests="list"),
    "not": Spec("test", tests="one"),
    "true": Spec("test"),
    "false": Spec("test"),
    "body": Spec("test", (STRINGS,), {**MATCHING, ":raw": Argument(group="transform"),
                                      ":content": Argument(STRINGS, group="transform"),
                                      ":text": Argument(group="transform")}, "body"),
    "string": Spec("test", (STRINGS, STRINGS), MATCHING, "variables"),
    "hasflag": Spec("test", ("string-list?", STRINGS), MATCHING, "imap4flags"),
    "mailboxexists": Spec("test", (STRINGS,), extension="mailbox"),
}


def check(script):
    """The checked commands of *script* (text or bytes); raises SieveError."""
    commands = parse(script)
    required = set()
    leading = 0
    while leading < len(commands) and commands[leading].name == "require":
        node = commands[leading]
        _check_node(node, "control", required)
        for name in node.positional[0]:
            if name not in EXTENSIONS:
                raise SieveError(node.line, f"the extension {name!r} is not supported here "
                                            f"(supported: {', '.join(EXTENSIONS)})")
            required.add(name)
        leading += 1
    _check_block(commands[leading:], required)
    return commands


def _check_block(commands, required):
    previous = None
    for node in commands:
        if node.name == "require":
            raise SieveError(node.line, "require must come before any other command")
        if node.name in ("elsif", "else") and previous not in ("if", "elsif"):
            raise SieveError(node.line, f"{node.name} must follow if or elsif")
        _check_node(node, "command", required)
        previous = node.name


def _check_node(node, role, required):
    spec = SPECS.get(node.name)
    if spec is None or (role == "test") != (spec.kind == "test"):
        what = "test" if role == "test" else "command"
        raise SieveError(node.line, f"unknown {what} {node.name!r}")
    if spec.extension is not None and spec.extension not in required:
        raise SieveError(node.line, f"{node.name} needs require \"{spec.extension}\"")
    node.tagged, node.positional = {}, []
    arguments = list(node.arguments)
    groups = {}
    while arguments and isinstance(arguments[0], Tag):
        tag = arguments.pop(0)
        argument = spec.tags.get(tag.name)
        if argument is None:
            raise SieveError(tag.line, f"{node.name} has no argument {tag.name}")
        if argument.extension is not None and argument.extension not in required:
            raise SieveError(tag.line, f"{tag.name} needs require \"{argument.extension}\"")
        if tag.name in node.tagged or (argument.group and groups.get(argument.group, tag.name) != tag.name):
            raise SieveError(tag.line, f"{tag.name} conflicts with an earlier argument of {node.name}")
        groups[argument.group] = tag.name
        node.tagged[tag.name] = _take(node, arguments, argument.takes, tag.name) if argument.takes else True
    _check_tag_values(node, required)
    optional = sum(kind.endswith("?") for kind in spec.positional)
    if len(arguments) < len(spec.positional) - optional:
        raise SieveError(node.line, f"{node.name} needs {len(spec.positional) - optional} arguments")
    skipped = len(spec.positional) - len(arguments)
    for kind in spec.positional:
        if kind.endswith("?") and skipped > 0:
            skipped -= 1
            node.positional.append(None)
            continue
        node.positional.append(_take(node, arguments, kind.rstrip("?"), node.name))
    if arguments:
        raise SieveError(node.line, f"{node.name} has too many arguments")
    if node.name in ("date", "currentdate") and node.positional[-2].lower() not in DATE_PARTS:
        raise SieveError(node.line, f"unknown date part {node.positional[-2]!r} (one of {', '.join(DATE_PARTS)})")
    expected = {None: 0, "one": 1}.get(spec.tests)
    if expected is not None and len(node.tests) != expected:
        raise SieveError(node.line, f"{node.name} takes {'one test' if expected else 'no test'}")
    if spec.tests == "list" and not node.tests:
        raise SieveError(node.line, f"{node.name} needs a list of tests")
    for test in node.tests:
        _check_node(test, "test", required)
    if spec.block != (node.block is not None):
        raise SieveError(node.line, f"{node.name} {'needs a block' if spec.block else 'takes no block; end it with ;'}")
    if node.block is not None:
        _check_block(node.block, required)


def _take(node, arguments, kind, name):
    if not arguments:
        raise SieveError(node.line, f"{name} needs a {kind} after it")
    value = arguments.pop(0)
    if kind == NUMBER and isinstance(value, int):
        return value
    if kind == STRINGS and isinstance(value, list):
        return value
    if kind == STRING and isinstance(value, list) and len(value) == 1:
        return value[0]
    raise SieveError(node.line, f"{name} needs a {kind} there")


def _check_tag_values(node, required):
    comparator = node.tagged.get(":comparator")
    if comparator is not None and comparator not in COMPARATORS:
        raise SieveError(node.line, f"unknown comparator {comparator!r}")
    if comparator == "i;ascii-numeric" and "comparator-i;ascii-numeric" not in required:
        raise SieveError(node.line, "i;ascii-numeric needs require \"comparator-i;ascii-numeric\"")
    for relational in (":count", ":value"):
        if node.tagged.get(relational, "eq") not in RELATIONS:
            raise SieveError(node.line, f"{relational} takes one of {', '.join(RELATIONS)}")
    if node.name == "size" and not (":over" in node.tagged or ":under" in node.tagged):
        raise SieveError(node.line, "size needs :over or :under")
    if ":last" in node.tagged and ":index" not in node.tagged:
        raise SieveError(node.line, ":last needs :index (RFC 5260 §6)")
    if node.name == "global" and "variables" not in required:
        raise SieveError(node.line, 'global needs require "variables" too (RFC 6609 §3.3)')
    if node.tagged.get(":index", 1) < 1:
        raise SieveError(node.line, ":index counts from 1")
