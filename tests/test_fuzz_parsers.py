"""Fuzzing the parsers of what comes from outside (issue 20): each, given arbitrary input, either
parses it or raises its own documented error; none raises anything else or hangs.

Hypothesis generates the inputs, a few hundred per parser so that the run takes seconds, the
same ones every run (derandomized); a failure is shrunk to a small input, which is then added
below as an ``@example`` regression case.  fuzz/parsers.py runs each for as long as asked.
"""

import os

from hypothesis import HealthCheck, example, given, settings, strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from mailbox_appliance import address_list, config
from mailbox_appliance.imap.search import SearchError, parse_search
from mailbox_appliance.imap.structure import Part
from mailbox_appliance.maildir.keywords import Keywords
from mailbox_appliance.maildir.uidlist import UidList, UidListError
from mailbox_appliance.managesieve.syntax import CommandError, read_command
from mailbox_appliance.message import unstuff
from mailbox_appliance.login_throttle import LoginThrottle
from mailbox_appliance.pop3.server import POP3Factory
from mailbox_appliance.queue.envelope import CorruptEntry, Envelope
from mailbox_appliance.smtp import content
from mailbox_appliance.session_security import LoginGate
from mailbox_appliance.sieve.commands import check as check_sieve
from mailbox_appliance.sieve.grammar import SieveError
from mailbox_appliance.sieve.interpreter import Envelope as SieveEnvelope, RunError, run as run_sieve
from mailbox_appliance.smtp.syntax import SyntaxProblem, parse_path

# fuzz/parsers.py runs these for minutes: FUZZ_EXAMPLES raises the count, and the inputs are new
# each run (pytest's --hypothesis-seed picks them).
LONG_RUN = int(os.environ.get("FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=LONG_RUN or 300, deadline=None, derandomize=not LONG_RUN, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Octets biased towards what these grammars care about.
SPECIALS = b'<>@,;:\\"()[]{}.=?*%\r\n\t ' + b"\x00\xff\xc3\xa9"
octets = st.binary(max_size=400) | st.lists(st.sampled_from(
    [bytes([b]) for b in SPECIALS] + [b"a", b"From", b"Content-Type: multipart/mixed; boundary=b",
                                      b"--b", b"=?utf-8?q?x?=", b"1", b"V", b"N", b"G"]), max_size=80).map(b"".join)
text = octets.map(lambda data: data.decode("utf-8", "replace"))


@FUZZ
@given(text)
@example('"a\\')
@example("g: a, (b <c@d>;")
def test_address_lists(value):
    assert isinstance(address_list.parse(value), list)


@FUZZ
@given(octets, st.booleans())
@example(b"<@a,@b:c@d>", True)
def test_smtp_paths(argument, allow_null):
    try:
        parse_path(argument, b"FROM", allow_null)
    except SyntaxProblem:
        pass


@FUZZ
@given(octets)
def test_smtp_data(data):
    message = unstuff(data)
    content.problem(message, 1000)


@FUZZ
@given(octets)
@example(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b--")
@example(b"Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/digest; boundary=\"\"\r\n\r\n")
def test_mime_structure_and_envelope(data):
    message = Part(data)
    message.envelope()
    message.structure(extended=True)


@FUZZ
@given(octets)
@example(b"(")
@example(b"OR OR OR")
def test_imap_search_text(data):
    try:
        parse_search([data])
    except SearchError:
        pass


@FUZZ
@given(octets)
@example(b"3 V1 N2 G0123456789abcdef0123456789abcdef\n1 :x\n")
def test_dovecot_uidlist_files(tmp_path, data):
    (tmp_path / "dovecot-uidlist").write_bytes(data)
    try:
        UidList.load(str(tmp_path))
    except UidListError:
        pass


@FUZZ
@given(octets)
def test_dovecot_keywords_files(tmp_path, data):
    (tmp_path / "dovecot-keywords").write_bytes(data)
    Keywords.load(str(tmp_path))


@FUZZ
@given(octets)
@example(b'{"sender": 1}')
@example(b"[" * 5000)
def test_queue_envelopes(data):
    try:
        Envelope.from_json(data)
    except CorruptEntry:
        pass


@FUZZ
@given(text)
@example("[limits]\nmax_connections = 1e9\n")
@example("[listen]\nsmtp = tcp:25x25\n")
def test_configuration_files(tmp_path, value):
    path = os.path.join(tmp_path, "fuzzed.conf")
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(value)
    try:
        config.load(path)
    except config.ConfigError:
        pass


SIEVE_WORDS = [b"require", b'"fileinto"', b'["imap4flags", "variables", "relational", "body"]', b"if", b"elsif",
               b"else", b"{", b"}", b"(", b")", b"[", b"]", b",", b";", b" ", b"\n", b"header", b":matches",
               b":count", b'"ge"', b'"*a?${1}"', b"fileinto", b"setflag", b"set", b"not", b"anyof", b"size",
               b":over", b"10K", b"text:\n..x\n.\n", b"#c\n", b"/*", b"*/", b'"\\"', b"body", b":text"]
sieve_scripts = st.binary(max_size=300) | st.lists(st.sampled_from(SIEVE_WORDS), max_size=60).map(b"".join)


@FUZZ
@given(sieve_scripts)
@example(b'require ["variables"]; set "a" "${1}${"; if string :matches "${a}" "*${" { keep; }')
@example(b"if not not not true {}")
def test_sieve_scripts(script):
    """A script is refused with a SieveError or runs to an outcome (or a RunError)."""
    try:
        commands = check_sieve(script)
    except SieveError:
        return
    try:
        run_sieve(commands, b"Subject: a\r\n\r\nbody\r\n", SieveEnvelope("a@b.test", "c@d.test"))
    except RunError:
        pass


@FUZZ
@given(octets)
@example(b'PUTSCRIPT "a" {3+}\r\nabc\r\n')
@example(b"{99999999999+}\r\n")
def test_managesieve_commands(data):
    """ManageSieve's command reader: a command and the octets it used, None (more needed), or a
    CommandError; never past the end, never without progress."""
    try:
        command = read_command(data, 1000)
    except CommandError as problem:
        assert problem.skip is None or 0 < problem.skip <= len(data)
        return
    if command is not None:
        assert 0 < command[2] <= len(data)


def _pop3_session():
    """A POP3 session of the real factory on the built-in settings, on a clock, with no TLS: no
    password is ever checked, so the gate's portal is never asked."""
    clock = Clock()
    gate = LoginGate(None, LoginThrottle(clock, 10, 900, 900), clock)
    session = POP3Factory(config.load(None), gate, None, clock).buildProtocol(None)
    transport = StringTransport()
    session.makeConnection(transport)
    return session, transport


@FUZZ
@given(st.lists(octets, max_size=8))
@example([b"USER a\r\nPASS b\r\n", b"AUTH PLAIN\r\n*\r\n"])
def test_pop3_sessions_before_login(chunks):
    """POP3's command reader in the AUTHORIZATION state, chunk by chunk."""
    session, _transport = _pop3_session()
    for chunk in chunks:
        session.dataReceived(chunk)
    session.connectionLost(None)


def test_the_pop3_harness_runs_commands():
    session, transport = _pop3_session()
    session.dataReceived(b"CAPA\r\n")
    assert b"\r\nUIDL\r\n" in transport.value()
