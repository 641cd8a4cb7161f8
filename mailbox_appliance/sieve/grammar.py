"""The Sieve grammar (RFC 5228 §8): a script's text into a tree of commands, or a SieveError
naming the line.

A script is at most MAX_SCRIPT_OCTETS, nested at most MAX_NESTING deep (blocks and tests alike),
so neither the parser nor the interpreter can be made to recurse without bound.
"""

import re
from dataclasses import dataclass, field

MAX_SCRIPT_OCTETS = 1024 * 1024
MAX_NESTING = 32
# RFC 5228 §2.4.1: a number may carry a K, M or G quantifier (powers of 2).
QUANTIFIERS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<hash_comment>\#[^\n]*)
  | (?P<bracket_comment>/\*.*?\*/)
  | (?P<multiline>text:[ \t]*(?:\#[^\n]*)?\r?\n(?P<lines>(?:.*?\n)??)\.\r?\n)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>[0-9]+)(?P<quantifier>[KMGkmg]?)(?![A-Za-z0-9_])
  | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<identifier>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punctuation>[\[\](){},;])
""", re.VERBOSE | re.DOTALL)
_KINDS = ("space", "hash_comment", "bracket_comment", "multiline", "string", "number", "tag", "identifier",
          "punctuation")


class SieveError(Exception):
    """A script that cannot be run; *line* is where the problem is (1-based)."""

    def __init__(self, line, text):
        super().__init__(f"line {line}: {text}")
        self.line, self.text = line, text


@dataclass
class Tag:
    name: str             # lower-case, with its colon: ":contains"
    line: int


@dataclass
class Node:
    """A command (with a block or none) or a test: its identifier (lower-case), its positional
    and tagged arguments in order (Tag, int, or a list of str), its tests, its block."""
    name: str
    line: int
    arguments: list = field(default_factory=list)
    tests: list = field(default_factory=list)
    block: list = None


def _tokens(text):
    """(kind, value, line) for each token; comments and white space left out."""
    position, line = 0, 1
    while position < len(text):
        found = _TOKEN.match(text, position)
        if found is None:
            if text.startswith("/*", position):
                raise SieveError(line, "a comment opened with /* is not closed")
            if text.startswith('"', position):
                raise SieveError(line, "a string is not closed")
            if text.startswith("text:", position):
                raise SieveError(line, "a multi-line text: string does not end with a line holding only \".\"")
            raise SieveError(line, f"unexpected character {text[position]!r}")
        kind = next(name for name in _KINDS if found.group(name) is not None)
        if kind == "string":
            yield "string", _unquote(found.group("string")[1:-1]), line
        elif kind == "multiline":
            yield "string", _undot(found.group("lines")), line
        elif kind == "number":
            yield "number", int(found.group("number")) * QUANTIFIERS[found.group("quantifier").upper()], line
        elif kind in ("tag", "identifier"):
            yield kind, found.group(kind).lower(), line
        elif kind == "punctuation":
            yield "punctuation", found.group(kind), line
        line += found.group(0).count("\n")
        position = found.end()
    yield "end", None, line


def _unquote(quoted):
    # RFC 5228 §2.4.2: \" and \\ stand for " and \; any other backslash is dropped.
    return re.sub(r"\\(.)", r"\1", quoted, flags=re.DOTALL)


def _undot(lines):
    # RFC 5228 §2.4.2: a line of a multi-line string that starts with "." has it doubled.
    return re.sub(r"(?m)^\.\.", ".", lines).replace("\r\n", "\n").replace("\n", "\r\n")


class _Parser:
    def __init__(self, text):
        self.tokens = _tokens(text)
        self.kind, self.value, self.line = next(self.tokens)

    def advance(self):
        taken = (self.kind, self.value, self.line)
        self.kind, self.value, self.line = next(self.tokens)
        return taken

    def expect(self, punctuation, what):
        if self.kind != "punctuation" or self.value != punctuation:
            raise SieveError(self.line, f"expected {punctuation!r} {what}, found {self.shown()}")
        self.advance()

    def shown(self):
        return "the end of the script" if self.kind == "end" else repr(self.value)

    def commands(self, depth, closing=None):
        found = []
        while not (self.kind == "end" or (self.kind == "punctuation" and self.value == closing)):
            if self.kind != "identifier":
                raise SieveError(self.line, f"expected a command, found {self.shown()}")
            found.append(self.command(depth))
        if closing is not None and self.kind == "end":
            raise SieveError(self.line, "a block opened with '{' is not closed")
        return found

    def command(self, depth):
        if depth > MAX_NESTING:
            raise SieveError(self.line, f"nested more than {MAX_NESTING} deep")
        _, name, line = self.advance()
        node = Node(name, line)
        self.arguments(node, depth)
        if self.kind == "punctuation" and self.value == "{":
            self.advance()
            node.block = self.commands(depth + 1, "}")
            self.advance()
        else:
            self.expect(";", f"after the command {name!r}")
        return node

    def arguments(self, node, depth):
        while True:
            if self.kind == "number":
                node.arguments.append(self.advance()[1])
            elif self.kind == "tag":
                _, name, line = self.advance()
                node.arguments.append(Tag(name, line))
            elif self.kind == "string":
                node.arguments.append([self.advance()[1]])
            elif self.kind == "punctuation" and self.value == "[":
                node.arguments.append(self.string_list())
            else:
                break
        if self.kind == "identifier":
            node.tests = [self.test(depth + 1)]
        elif self.kind == "punctuation" and self.value == "(":
            self.advance()
            node.tests = [self.test(depth + 1)]
            while self.kind == "punctuation" and self.value == ",":
                self.advance()
                node.tests.append(self.test(depth + 1))
            self.expect(")", "to close the list of tests")

    def string_list(self):
        self.advance()
        strings = []
        while True:
            if self.kind != "string":
                raise SieveError(self.line, f"expected a string in the list, found {self.shown()}")
            strings.append(self.advance()[1])
            if self.kind == "punctuation" and self.value == ",":
                self.advance()
                continue
            self.expect("]", "to close the string list")
            return strings

    def test(self, depth):
        if depth > MAX_NESTING:
            raise SieveError(self.line, f"nested more than {MAX_NESTING} deep")
        if self.kind != "identifier":
            raise SieveError(self.line, f"expected a test, found {self.shown()}")
        _, name, line = self.advance()
        node = Node(name, line)
        self.arguments(node, depth)
        return node


def parse(script):
    """The commands of *script* (str, or UTF-8 bytes); raises SieveError."""
    if isinstance(script, bytes):
        if len(script) > MAX_SCRIPT_OCTETS:
            raise SieveError(1, f"the script is larger than {MAX_SCRIPT_OCTETS} octets")
        try:
            script = script.decode("utf-8")
        except UnicodeDecodeError as problem:
            raise SieveError(script[:problem.start].count(b"\n") + 1, "the script is not UTF-8") from None
    elif len(script.encode("utf-8", "surrogatepass")) > MAX_SCRIPT_OCTETS:
        raise SieveError(1, f"the script is larger than {MAX_SCRIPT_OCTETS} octets")
    parser = _Parser(script)
    return parser.commands(1)
