"""The Sieve grammar, checker, matching and interpreter (sieve/), as pure logic: scripts from the
RFCs' own examples, and the errors a user sees when a script is refused."""

import pytest

from mailbox_appliance.sieve import responses
from mailbox_appliance.sieve.commands import check
from mailbox_appliance.sieve.filtering import SieveFilter
from mailbox_appliance.sieve.grammar import MAX_NESTING, SieveError, parse
from mailbox_appliance.sieve.interpreter import Envelope, RunError, run
from mailbox_appliance.sieve.matching import compare, matches
from mailbox_appliance.sieve.scripts import SieveScripts
from mailbox_appliance.srs import SenderRewriting

MESSAGE = (b"Return-Path: <boss@example.org>\r\n"
           b"From: Boss <Boss@Example.org>\r\nTo: alice+work@example.test, bob@example.test\r\n"
           b"Cc: \"Carol\" <carol@example.test>\r\nSubject: =?utf-8?q?Caf=C3=A9?= meeting\r\n"
           b"X-Spam-Status: Yes, score=7.2\r\nX-Spam-Score: 7.2\r\nList-Id: <team.example.org>\r\n"
           b"\r\nThe quarterly figures are attached.\r\n")
ENVELOPE = Envelope("boss@example.org", "alice+work@example.test")


def outcome(script, message=MESSAGE, envelope=ENVELOPE, **options):
    """[(folder, flags)] of *script* run on *message*."""
    return [(store.folder or "INBOX", store.flags) for store in run(check(script), message, envelope, **options).stores]


def refusal(script):
    with pytest.raises(SieveError) as refused:
        check(script)
    return refused.value


# -- grammar ---------------------------------------------------------------------------------

def test_rfc5228_example_parses():
    """RFC 5228 §9, the example script."""
    script = '''
    #
    # Example Sieve Filter
    # Declare any optional features or extension used by the script
    #
    require ["fileinto"];

    #
    # Handle messages from known mailing lists
    # Move messages from IETF filter discussion list to filter mailbox
    #
    if header :is "Sender" "owner-ietf-mta-filters@imc.org"
            {
            fileinto "filter";  # move to "filter" mailbox
            }
    #
    # Keep all messages to or from people in my company
    #
    elsif address :DOMAIN :is ["From", "To"] "example.com"
            {
            keep;               # keep in "In" mailbox
            }

    #
    # Try and catch unsolicited email.  If a message is not to me,
    # or it contains a subject known to be spam, file it away.
    #
    elsif anyof (NOT address :all :contains
                   ["To", "Cc", "Bcc"] "me@example.com",
                 header :matches "subject"
                   ["*make*money*fast*", "*university*dipl*mas*"])
            {
            fileinto "spam";   # move to "spam" mailbox
            }
    else
            {
            # Move all other (non-company) mail to "personal"
            # mailbox.
            fileinto "personal";
            }
    '''
    assert outcome(script) == [("spam", ())]


def test_strings_numbers_and_comments():
    [node] = parse('set :upper "a\\"b\\\\c\\d" text: # note\r\n..dot\r\nline\r\n.\r\n; /* x\n y */')
    assert node.arguments[1:] == [['a"b\\cd'], [".dot\r\nline\r\n"]]
    assert parse("size :over 1K;")[0].arguments[1] == 1024
    assert parse("size :under 2m;")[0].arguments[1] == 2 * 1024 * 1024


@pytest.mark.parametrize("script, line, text", [
    ('keep;\nfileinto "x";', 2, 'fileinto needs require "fileinto"'),
    ('require "notify";', 1, "the extension 'notify' is not supported here"),
    ('if true {\n  keep;\n', 3, "a block opened with '{' is not closed"),
    ('keep', 1, "expected ';' after the command 'keep'"),
    ('if header :is "a" {}', 1, "header needs 2 arguments"),
    ('if size :over "a" {}', 1, "size needs a number there"),
    ('if header :is :contains "a" "b" {}', 1, ":contains conflicts with an earlier argument of header"),
    ('\n\nif size 10 {}', 3, "size needs :over or :under"),
    ('elsif true {}', 1, "elsif must follow if or elsif"),
    ('keep;\nrequire "fileinto";', 2, "require must come before any other command"),
    ('discard "x";', 1, "discard has too many arguments"),
    ('frobnicate;', 1, "unknown command 'frobnicate'"),
    ('if header :comparator "i;fancy" "a" "b" {}', 1, "unknown comparator 'i;fancy'"),
    ('if header :count "gt" "a" "1" {}', 1, ':count needs require "relational"'),
    ('/* unclosed', 1, "a comment opened with /* is not closed"),
    ('"unclosed', 1, "a string is not closed"),
    ('keep; \x01', 1, "unexpected character"),
])
def test_a_refused_script_names_the_line_and_the_reason(script, line, text):
    refused = refusal(script)
    assert refused.line == line and text in refused.text


def test_nesting_and_size_are_bounded():
    deep = "if true {" * (MAX_NESTING + 1) + "}" * (MAX_NESTING + 1)
    assert "nested more than" in refusal(deep).text
    assert "nested more than" in refusal("if " + "not " * 100 + "true {}").text
    assert "larger than" in refusal(b"#" * (1024 * 1024 + 1)).text
    assert "not UTF-8" in refusal(b"keep;\n# \xff\n").text


# -- matching --------------------------------------------------------------------------------

@pytest.mark.parametrize("value, pattern, captured", [
    ("Hello World", "*o w*", ["Hell", "orld"]),
    ("abc", "a?c", ["b"]),
    ("a*b", "a\\*b", []),
    ("axb", "a\\*b", None),
    ("", "*", [""]),
    ("pizza@example.com", "*@*.com", ["pizza", "example"]),
])
def test_matches_captures_each_wildcard(value, pattern, captured):
    assert matches("i;ascii-casemap", value, pattern) == captured


def test_matches_is_not_exponential():
    assert matches("i;octet", "a" * 5000, "*a" * 200 + "b") is None


def test_relational_comparisons():
    assert compare("i;ascii-numeric", "gt", "10", "9") and not compare("i;octet", "gt", "10", "9")
    assert compare("i;ascii-numeric", "gt", "x", "99999")        # no digits: positive infinity
    assert compare("i;ascii-casemap", "eq", "ABC", "abc")


# -- the interpreter -------------------------------------------------------------------------

def test_no_action_is_the_implicit_keep():
    assert outcome("") == [("INBOX", ())]


def test_fileinto_cancels_the_implicit_keep_and_copy_does_not():
    assert outcome('require "fileinto"; fileinto "Work";') == [("Work", ())]
    assert outcome('require ["fileinto", "copy"]; fileinto :copy "Work";') == [("Work", ()), ("INBOX", ())]


def test_stores_into_one_folder_are_one():
    assert outcome('require "fileinto"; fileinto "Work"; fileinto "Work"; keep; keep;') == [("Work", ()), ("INBOX", ())]


def test_discard_and_stop():
    assert outcome("discard;") == []
    assert outcome('require "fileinto"; if true { stop; } fileinto "never";') == [("INBOX", ())]


def test_header_tests_decode_and_fold_case():
    assert outcome('require "fileinto"; if header :contains "subject" "CAFÉ" { fileinto "x"; }') == [("INBOX", ())]
    assert outcome('require "fileinto"; if header :contains "subject" "Café" { fileinto "x"; }') == [("x", ())]
    assert outcome('require "fileinto"; if header :contains "SUBJECT" "MEETING" { fileinto "x"; }') == [("x", ())]
    assert outcome('require "fileinto"; if header :comparator "i;octet" :contains "subject" "MEETING" '
                   '{ fileinto "x"; }') == [("INBOX", ())]
    assert outcome('require "fileinto"; if exists ["List-Id", "Subject"] { fileinto "lists"; }') == [("lists", ())]
    assert outcome('require "fileinto"; if exists ["List-Id", "X-Nope"] { fileinto "lists"; }') == [("INBOX", ())]


def test_address_parts_and_subaddress():
    script = 'require ["fileinto", "subaddress", "envelope"]; if {test} {{ fileinto "hit"; }}'
    for test, hit in (('address :domain :is "from" "example.org"', True),
                      ('address :localpart :is "from" "boss"', True),
                      ('address :all :is "cc" "carol@example.test"', True),
                      ('address :user :is "to" "alice"', True),
                      ('address :detail :is "to" "work"', True),
                      ('address :detail :is "to" ""', False),            # bob has no detail
                      ('envelope :detail :is "to" "work"', True),
                      ('envelope :domain :is "from" "example.org"', True),
                      ('envelope :all :is "from" "nobody@example.org"', False)):
        assert outcome(script.format(test=test)) == [("hit" if hit else "INBOX", ())], test


def test_the_null_sender_is_the_empty_string():
    script = 'require ["fileinto", "envelope"]; if envelope :is "from" "" { fileinto "bounces"; }'
    assert outcome(script, envelope=Envelope("", "alice@example.test")) == [("bounces", ())]


def test_size_and_body():
    assert outcome('require "fileinto"; if size :over 100 { fileinto "big"; }') == [("big", ())]
    assert outcome('require "fileinto"; if size :under 100 { fileinto "small"; }') == [("INBOX", ())]
    assert outcome('require ["fileinto", "body"]; if body :contains "quarterly" { fileinto "b"; }') == [("b", ())]
    assert outcome('require ["fileinto", "body"]; if body :raw :contains "Subject" { fileinto "b"; }') == [("INBOX", ())]
    multipart = (b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
                 b"--x\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\naW52b2ljZQ==\r\n--x--\r\n")
    assert outcome('require ["fileinto", "body"]; if body :content "application" :contains "invoice" '
                   '{ fileinto "pdf"; }', multipart) == [("pdf", ())]
    assert outcome('require ["fileinto", "body"]; if body :text :contains "invoice" { fileinto "pdf"; }',
                   multipart) == [("INBOX", ())]


def test_imap4flags():
    """RFC 5232 §7's example, and the implicit keep carrying the flags."""
    assert outcome('require "imap4flags"; setflag "\\\\Seen"; addflag ["\\\\Flagged", "\\\\seen"];') == [
        ("INBOX", ("\\Seen", "\\Flagged"))]
    assert outcome('require ["imap4flags", "fileinto"]; addflag "a b"; removeflag "a"; fileinto "x"; '
                   'keep :flags "\\\\Answered";') == [("x", ("b",)), ("INBOX", ("\\Answered",))]
    assert outcome('require ["imap4flags", "fileinto"]; addflag "$x"; if hasflag :is "$X" { fileinto "y"; }') == [
        ("y", ("$x",))]


def test_variables_and_match_values():
    script = ('require ["fileinto", "variables"]; '
              'if header :matches "List-Id" "<*.example.org>" { set :upperfirst "list" "${1}"; '
              'fileinto "Lists.${list}"; }')
    assert outcome(script) == [("Lists.Team", ())]
    assert outcome('require ["fileinto", "variables"]; set "a" "x"; set :length "n" "${a}${a}"; '
                   'if string :is "${n}" "2" { fileinto "two"; }') == [("two", ())]


def test_relational_counts():
    script = 'require ["fileinto", "relational", "comparator-i;ascii-numeric"]; if {test} {{ fileinto "hit"; }}'
    assert outcome(script.format(test='address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "3"')) == [
        ("hit", ())]
    assert outcome(script.format(test='header :value "gt" :comparator "i;ascii-numeric" "x-spam-score" "5"')) == [
        ("hit", ())]
    assert outcome(script.format(test='header :value "gt" :comparator "i;ascii-numeric" "x-spam-score" "8"')) == [
        ("INBOX", ())]
    # RFC 4790 §9.1.1: a value without leading digits is positive infinity.
    assert outcome(script.format(test='header :value "gt" :comparator "i;ascii-numeric" "x-spam-status" "8"')) == [
        ("hit", ())]
    assert outcome(script.format(test='address :count "gt" ["to", "cc"] "3"')) == [("INBOX", ())]


def test_mailboxexists():
    script = 'require ["fileinto", "mailbox"]; if mailboxexists "Work" { fileinto "Work"; }'
    assert outcome(script, folder_exists=lambda name: name == "Work") == [("Work", ())]
    assert outcome(script, folder_exists=lambda name: False) == [("INBOX", ())]


def test_too_many_actions_is_an_error():
    with pytest.raises(RunError):
        run(check('require "fileinto";' + "".join(f'fileinto "f{n}";' for n in range(40))), MESSAGE, ENVELOPE)


def test_a_slow_run_is_stopped():
    ticks = iter(range(0, 1000, 2))
    with pytest.raises(RunError, match="longer than"):
        run(check('if header :matches "subject" "*a*" { keep; }' * 10), MESSAGE, ENVELOPE, clock=lambda: next(ticks))


def test_redirect_reject_and_vacation_decisions():
    def outcome_of(script):
        return run(check(script), MESSAGE, ENVELOPE)

    redirected = outcome_of('redirect "a@x.test"; redirect "A@x.test"; redirect "b@x.test";')
    assert redirected.redirects == ["a@x.test", "b@x.test"] and redirected.stores == []
    kept = run(check('require "copy"; redirect :copy "a@x.test";'), MESSAGE, ENVELOPE)
    assert kept.redirects == ["a@x.test"] and [store.folder for store in kept.stores] == [None]
    with pytest.raises(RunError, match="more than 4 redirects"):
        outcome_of("".join(f'redirect "r{n}@x.test";' for n in range(5)))
    with pytest.raises(RunError, match="not one mail address"):
        outcome_of('redirect "a@x.test, b@y.test";')
    rejected = outcome_of('require "reject"; reject "go away";')
    assert rejected.reject == "go away" and rejected.stores == []
    with pytest.raises(RunError, match="reject cannot be combined"):
        outcome_of('require ["reject", "fileinto"]; reject "no"; fileinto "x";')
    away = outcome_of('require "vacation"; vacation :days 0 :addresses ["me@x.test"] "Away";').vacation
    assert (away.reason, away.days, away.addresses) == ("Away", 1, ("me@x.test",))


@pytest.mark.parametrize("message, sender, reason", [
    (MESSAGE, "", "the sender is <>"),
    (MESSAGE, "owner-team@example.org", "is a list or system address"),
    (MESSAGE, "MAILER-DAEMON@example.org", "is a list or system address"),
    (b"Auto-Submitted: auto-replied\r\nTo: alice@example.test\r\n\r\nx", "a@b.test", "sent automatically"),
    (b"Precedence: bulk\r\nTo: alice@example.test\r\n\r\nx", "a@b.test", "bulk or list mail"),
    (MESSAGE, "boss@example.org", "through a mailing list"),                 # List-Id
    (b"To: someone@else.test\r\n\r\nx", "a@b.test", "none of the user's addresses"),
    (b"Auto-Submitted: no\r\nTo: Alice <ALICE@example.test>\r\n\r\nx", "a@b.test", None),
])
def test_when_a_vacation_reply_is_not_sent(message, sender, reason):
    refusal = responses.vacation_refusal(message, sender, {"alice@example.test"})
    assert refusal is None if reason is None else reason in refusal


def test_srs_round_trip_forgery_and_age(tmp_path):
    now = [1_800_000_000.0]
    rewriting = SenderRewriting(str(tmp_path), clock=lambda: now[0])
    address = rewriting.forward("bob@remote.test", "example.test")
    assert address.startswith("SRS0=") and address.endswith("=remote.test=bob@example.test")
    assert rewriting.reverse(address) == "bob@remote.test"
    assert rewriting.reverse(address.lower()) == "bob@remote.test"            # case folded on the way
    assert rewriting.reverse(address.replace("bob@", "eve@")) is None          # forged
    assert rewriting.reverse("alice@example.test") is None
    assert SenderRewriting(str(tmp_path), clock=lambda: now[0]).reverse(address) == "bob@remote.test"  # key kept
    now[0] += 22 * 86400
    assert rewriting.reverse(address) is None                                  # too old


def test_date_and_index():
    """RFC 5260: parts of Date: in a chosen zone; :index picks one of several Received fields."""
    message = (b"Received: from c by b; Tue, 1 Dec 2026 10:00:00 +0000\r\n"
               b"Received: from d by c; Tue, 1 Dec 2026 09:00:00 +0000\r\n"
               b"Date: Mon, 30 Nov 2026 23:30:00 -0500\r\nSubject: x\r\n\r\nbody\r\n")
    script = 'require ["fileinto", "date", "index", "relational"]; if {test} {{ fileinto "hit"; }}'
    for test, hit in (('date :zone "+0000" "date" "date" "2026-12-01"', True),
                      ('date :originalzone "date" "date" "2026-11-30"', True),
                      ('date :zone "+0000" "date" "weekday" "2"', True),                 # a Tuesday there
                      ('date :originalzone "date" "zone" "-0500"', True),
                      ('date :zone "+0000" :value "ge" "date" "hour" "04"', True),
                      ('header :index 2 :contains "received" "from d"', True),
                      ('header :index 1 :last :contains "received" "from d"', True),
                      ('header :index 3 :contains "received" "from"', False),
                      ('date "subject" "year" "2026"', False),                          # not a date
                      ('currentdate :value "ge" "year" "2025"', True)):
        assert outcome(script.format(test=test), message) == [("hit" if hit else "INBOX", ())], test
    assert "unknown date part" in refusal('require "date"; if date "date" "fortnight" "1" {}').text
    assert ":last needs :index" in refusal('require "index"; if header :last "a" "b" {}').text


def test_include_return_and_global_variables():
    """RFC 6609's shapes: a personal script included once, return, a global variable."""
    library = {
        ("personal", "lists"): 'require ["fileinto", "include", "variables"]; global "folder"; '
                               'if header :contains "list-id" "team" { fileinto "${folder}"; return; } '
                               'fileinto "never";',
        ("global", "spam"): 'require ["fileinto"]; if header :contains "x-spam-status" "Yes" { fileinto "Junk"; }',
        ("personal", "loop"): 'require "include"; include "loop";',
    }

    def loader(location, name):
        found = library.get((location, name))
        return None if found is None else check(found)

    def result(script):
        return [(store.folder or "INBOX", store.flags) for store in
                run(check(script), MESSAGE, ENVELOPE, loader=loader).stores]

    assert result('require ["include", "variables"]; global "folder"; set "folder" "Team"; include "lists"; '
                  'include :once "lists"; include :global "spam";') == [("Team", ()), ("Junk", ())]
    assert result('require "include"; include :optional "missing"; return; discard;') == [("INBOX", ())]
    with pytest.raises(RunError, match="no personal script 'missing'"):
        run(check('require "include"; include "missing";'), MESSAGE, ENVELOPE, loader=loader)
    with pytest.raises(RunError, match="includes itself"):
        run(check('require "include"; include "loop";'), MESSAGE, ENVELOPE, loader=loader)
    assert 'global needs require "variables"' in refusal('require "include"; global "x";').text


def test_rfc5230_and_rfc5232_examples():
    """RFC 5230 §4.1 (vacation with :days and :addresses) and RFC 5232 §7 (flags)."""
    vacation = run(check('''require ["vacation"];
        if header :contains "subject" "cyrus" {
            vacation :days 7 :addresses ["alice@example.test", "a@example.test"]
            "I'm out -- send mail to cyrus-bugs";
        } else {
            vacation :days 7 :addresses ["alice@example.test"] "I'm out -- call me at +1 304 555 0123";
        }'''), MESSAGE, ENVELOPE)
    assert vacation.vacation.reason.startswith("I'm out -- call me") and vacation.vacation.days == 7
    flags = run(check('''require ["imap4flags", "fileinto"];
        if header :contains "from" "boss@example.org" {
            setflag "\\\\Flagged";
            fileinto "Boss";
        } elsif header :contains "Subject" "Important" {
            addflag "\\\\Flagged";
        }'''), MESSAGE, ENVELOPE)
    assert [(store.folder, store.flags) for store in flags.stores] == [("Boss", ("\\Flagged",))]


def test_keep_means_the_folder_the_verdict_chose(tmp_path):
    """A spam verdict files into Junk (Resolution.folder): keep and the implicit keep follow it;
    fileinto "INBOX" takes the message out of it."""
    scripts = SieveScripts(str(tmp_path))
    script_filter = SieveFilter(str(tmp_path), "mail.example.test", scripts, None, None, None)
    assert script_filter.decide("q1", "alice@example.test", "a@b.test", "alice@example.test", MESSAGE,
                                "Junk").stores == [("Junk", "")]
    scripts.put("alice@example.test", "rules", b'require "imap4flags"; addflag "\\\\Seen"; keep;')
    scripts.activate("alice@example.test", "rules")
    assert script_filter.decide("q2", "alice@example.test", "a@b.test", "alice@example.test", MESSAGE,
                                "Junk").stores == [("Junk", "S")]
    scripts.put("alice@example.test", "rules", b'require "fileinto"; fileinto "INBOX";')
    assert script_filter.decide("q3", "alice@example.test", "a@b.test", "alice@example.test", MESSAGE,
                                "Junk").stores == [("", "")]
