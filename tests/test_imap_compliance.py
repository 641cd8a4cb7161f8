"""RFC 3501 behaviour Dovecot's imaptest checks, each defect it found as a test of our own, over a
real IMAPS socket: \\Recent, keywords announced before use, nothing after BYE, ENVELOPE groups,
SEARCH HEADER "", address searches, LSUB parents, ID with long values."""

import base64
import re

import imapclient


def _deliver(office, message):
    office.smtp().sendmail("bob@example.test", ["alice@example.test"], message)


def _in_another_session(office, *commands):
    """Run *commands* in a second session with INBOX selected; the lines of each."""
    other = imapclient.Session(office)
    try:
        other.ok(b"SELECT INBOX")
        return [other.ok(command) for command in commands]
    finally:
        other.close()


def _untagged(lines):
    return [line for line in lines if line.startswith(b"* ")]


def test_appended_mail_is_recent_to_the_first_select_and_examine_does_not_take_it(session):
    for subject in ("one", "two"):
        session.ok(b"APPEND Drafts {%d+}\r\n%s" % (len(imapclient.message(subject)), imapclient.message(subject)))
    examined = session.ok(b"EXAMINE Drafts")
    assert b"* 2 RECENT\r\n" in examined
    session.ok(b"CLOSE")
    assert b'* STATUS "Drafts" (RECENT 2)\r\n' in session.ok(b"STATUS Drafts (RECENT)")
    selected = session.ok(b"SELECT Drafts")
    assert b"* 2 RECENT\r\n" in selected
    assert b"\\Recent" in b"".join(session.ok(b"FETCH 1 FLAGS"))
    assert b"* SEARCH 1 2\r\n" in session.ok(b"SEARCH NEW")
    session.ok(b"CLOSE")
    assert b'* STATUS "Drafts" (RECENT 0)\r\n' in session.ok(b"STATUS Drafts (RECENT)")


def test_mail_arriving_while_a_folder_is_selected_is_recent_there_and_only_there(office, session):
    other = imapclient.Session(office)
    try:
        other.ok(b"EXAMINE INBOX")             # watching longer, but read-only: takes no \Recent
        session.ok(b"SELECT INBOX")
        _deliver(office, imapclient.message("fresh"))
        lines = []
        for _ in range(100):                    # the folder notices new/ within its poll interval
            lines += session.ok(b"NOOP")
            if b"* 1 EXISTS\r\n" in lines:
                break
        assert b"* 1 RECENT\r\n" in lines
        assert b"* 0 RECENT\r\n" in other.ok(b"NOOP")
        assert b"\\Recent" not in b"".join(other.ok(b"FETCH 1:* FLAGS"))
    finally:
        other.close()


def test_nothing_but_bye_and_ok_after_logout(office, session):
    _deliver(office, imapclient.message("watched"))
    session.ok(b"SELECT INBOX")
    _in_another_session(office, b"STORE 1 +FLAGS (\\Flagged \\Deleted)", b"EXPUNGE")
    lines = session.command(b"LOGOUT")
    assert len(lines) == 2 and lines[0].startswith(b"* BYE ") and lines[1].startswith(b"t3 OK"), lines


def test_a_new_keyword_is_announced_with_flags_before_any_fetch_shows_it(office, session):
    _deliver(office, imapclient.message("labelled"))
    session.ok(b"SELECT INBOX")
    [stored] = _in_another_session(office, b"STORE 1 +FLAGS ($Label1)")
    assert stored[0].startswith(b"* FLAGS (") and b"$Label1" in stored[0], stored
    assert stored[1].startswith(b"* OK [PERMANENTFLAGS (") and b"$Label1" in stored[1], stored
    assert stored[2].startswith(b"* 1 FETCH (FLAGS (") and b"$Label1" in stored[2], stored
    lines = _untagged(session.ok(b"NOOP"))
    flags = next(i for i, line in enumerate(lines) if line.startswith(b"* FLAGS ("))
    fetch = next(i for i, line in enumerate(lines) if line.startswith(b"* 1 FETCH"))
    assert flags < fetch and b"$Label1" in lines[flags] and b"$Label1" in lines[fetch], lines
    assert not [line for line in _untagged(session.ok(b"NOOP")) if line.startswith(b"* FLAGS")]


def test_envelope_shows_groups_comment_names_and_routes(office, session):
    _deliver(office, b"From: user@domain (Real Name)\r\n"
                     b"Sender: <@route:user@domain>\r\n"
                     b"To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\r\n"
                     b"Cc: undisclosed-recipients:;\r\n"
                     b"Subject: groups\r\n\r\nbody\r\n")
    session.ok(b"SELECT INBOX")
    [answer] = _untagged(session.ok(b"FETCH 1 ENVELOPE"))
    assert b'(("Real Name" NIL "user" "domain")) ((NIL "@route" "user" "domain")) (("Real Name" NIL "user" "domain")) ' \
           b'((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")(NIL NIL "g2" "d2.org")(NIL NIL NIL NIL)' \
           b'(NIL NIL "group2" NIL)(NIL NIL "g3" "d3.org")(NIL NIL NIL NIL)) ' \
           b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL' in answer, answer


def _search(session, criteria):
    [answer] = [line for line in session.ok(b"SEARCH " + criteria) if line.startswith(b"* SEARCH")]
    return [int(number) for number in answer.split()[2:]]


def test_search_header_with_an_empty_string_finds_the_field_and_addresses_match_names_and_groups(office, session):
    _deliver(office, b"From: RealFrom <user-from@domain.org>\r\nCc: x@y.org\r\nSubject: one\r\n\r\nbody\r\n")
    _deliver(office, b"From: user-from@domain.org (CommentName)\r\nTo: groupname: member@domain.org;\r\n"
                     b"Subject: two\r\n\r\nbody\r\n")
    _deliver(office, b"From: =?utf-8?q?J=C3=BCrgen?= <jm@domain.org>\r\nSubject: three\r\n\r\nbody\r\n")
    session.ok(b"SELECT INBOX")
    assert _search(session, b'HEADER Cc ""') == [1]
    assert _search(session, b'HEADER To ""') == [2]
    assert _search(session, b'HEADER Subject ""') == [1, 2, 3]
    assert _search(session, b"FROM realfrom") == [1]
    assert _search(session, b"FROM commentname") == [2]
    assert _search(session, b"FROM ser-fro") == [1, 2]
    assert _search(session, b"TO groupname") == [2]
    assert _search(session, b"TO member") == [2]
    assert _search(session, b'CHARSET UTF-8 FROM "J\xc3\xbcrgen"') == [3]


def test_sort_by_cc_takes_a_groups_name_as_its_first_mailbox(office, session):
    _deliver(office, b"Cc: zed@domain.org\r\nSubject: a\r\n\r\nbody\r\n")
    _deliver(office, b"Cc: middle: aaa@domain.org;\r\nSubject: b\r\n\r\nbody\r\n")
    _deliver(office, b"Cc: (comment) alpha@domain.org\r\nSubject: c\r\n\r\nbody\r\n")
    session.ok(b"SELECT INBOX")
    [answer] = [line for line in session.ok(b"SORT (CC) US-ASCII ALL") if line.startswith(b"* SORT")]
    assert answer.split()[2:] == [b"3", b"2", b"1"]


def test_lsub_shows_an_unsubscribed_parent_as_noselect_where_percent_stops(session):
    for name in (b"Work", b"Work.Mine", b"Work.Team", b"Work.Team.Plans", b"Work.Old", b"Work.Old.Archive"):
        session.ok(b"CREATE " + name)
    for name in (b"Work.Mine", b"Work.Team.Plans", b"Work.Old.Archive"):
        session.ok(b"SUBSCRIBE " + name)
    assert _lsub(session, b"Work.%") == {b"Work.Mine": b"", b"Work.Team": b"\\Noselect", b"Work.Old": b"\\Noselect"}
    assert _lsub(session, b"*Plans") == {b"Work.Team.Plans": b""}
    assert _lsub(session, b"Work.*") == {b"Work.Mine": b"", b"Work.Old.Archive": b"", b"Work.Team.Plans": b""}


def _lsub(session, pattern):
    """{name: attributes} of LSUB "" *pattern*."""
    return {line.rsplit(b" ", 1)[1].strip().strip(b'"'): line.split(b"(", 1)[1].split(b")", 1)[0]
            for line in _untagged(session.ok(b'LSUB "" ' + pattern))}


def test_id_with_thirty_long_values_is_answered(office):
    sock, reader = imapclient.raw(office)
    try:
        pairs = b" ".join(b'"f%02d%s" "%s"' % (n, b"x" * 27, b"v" * 1024) for n in range(30))
        sock.sendall(b"a ID (" + pairs + b' "too-long-field-name-over-thirty-octets" "ignored")\r\n')
        lines = imapclient.read_until_tagged(reader, b"a")
        assert lines[0].startswith(b"* ID (") and lines[-1].startswith(b"a OK"), lines
        sock.sendall(b"b NOOP\r\n")
        assert imapclient.read_until_tagged(reader, b"b")[-1].startswith(b"b OK")
    finally:
        sock.close()


def test_an_over_long_command_line_gets_bye_before_the_close(office):
    sock, reader = imapclient.raw(office)
    try:
        sock.sendall(b"a NOOP " + b"x" * 70_000 + b"\r\n")
        line = reader.readline()
        assert re.match(rb"\* BYE Command line too long \(at most 65536 octets\)\r\n", line), line
        assert reader.readline() == b""
    finally:
        sock.close()


def test_a_folder_made_again_at_once_gets_a_new_uidvalidity(session):
    """RFC 3501 §2.3.1.1: UIDs of the old folder must not be taken for the new one's."""
    seen = set()
    for _ in range(3):                        # well within one second
        session.ok(b"CREATE Again")
        session.ok(b"APPEND Again {%d+}\r\n%s" % (len(imapclient.message("x")), imapclient.message("x")))
        [status] = _untagged(session.ok(b"STATUS Again (UIDVALIDITY UIDNEXT)"))
        seen.add(re.search(rb"UIDVALIDITY (\d+)", status).group(1))
        session.ok(b"DELETE Again")
    assert len(seen) == 3


def _fetch_section(session, section):
    """The octets of BODY.PEEK[section] of message 1."""
    [answer] = _untagged(session.ok(b"FETCH 1 BODY.PEEK[%s]" % section))
    literal = re.search(rb"\{(\d+)\}\r\n", answer)
    return answer[literal.end():literal.end() + int(literal.group(1))]


def test_sections_of_a_message_that_is_itself_message_rfc822(office, session):
    inner = b"From: sub@domain.org\r\nSubject: submsg\r\n\r\nHello world\r\n"
    middle = b"From: user2@domain.org\r\nContent-Type: message/rfc822\r\n\r\n" + inner
    _deliver(office, b"From: user@domain.org\r\nMime-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n" + middle)
    session.ok(b"SELECT INBOX")
    assert _fetch_section(session, b"1") == middle
    assert _fetch_section(session, b"1.1") == inner
    assert _fetch_section(session, b"1.1.1") == b"Hello world\r\n"
    assert _fetch_section(session, b"1.HEADER") == b"From: user2@domain.org\r\nContent-Type: message/rfc822\r\n\r\n"
    assert _fetch_section(session, b"1.1.HEADER") == b"From: sub@domain.org\r\nSubject: submsg\r\n\r\n"
    assert _fetch_section(session, b"1.1.TEXT") == b"Hello world\r\n"


def test_a_folded_boundary_parameter_is_unfolded(office, session):
    _deliver(office, b'From: user@domain.org\r\nMime-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="foo\r\n bar"\r\n'
                     b"\r\n--foo bar\r\nContent-Type: text/x-myown; charset=us-ascii\r\n\r\nhello\r\n\r\n--foo bar--\r\n")
    session.ok(b"SELECT INBOX")
    [answer] = _untagged(session.ok(b"FETCH 1 BODY"))
    assert b'(BODY (("TEXT" "X-MYOWN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 7 1) "MIXED"))' in answer, answer
    assert _fetch_section(session, b"1") == b"hello\r\n"
    assert _fetch_section(session, b"1.MIME") == b"Content-Type: text/x-myown; charset=us-ascii\r\n\r\n"


def test_esearch_and_esort_return_options(office, session):
    for subject in ("a", "b", "c", "d", "e"):
        _deliver(office, imapclient.message(subject))
    session.ok(b"SELECT INBOX")
    session.ok(b"STORE 2,4 +FLAGS (\\Seen)")
    assert b"ESEARCH" in session.ok(b"CAPABILITY")[0] and b"ESORT" in session.ok(b"CAPABILITY")[0]
    tag = b"t%d" % (session.count + 1)
    assert _untagged(session.ok(b"SEARCH RETURN (MIN MAX COUNT ALL) SEEN")) == \
        [b'* ESEARCH (TAG "%s") MIN 2 MAX 4 COUNT 2 ALL 2,4\r\n' % tag]
    tag = b"t%d" % (session.count + 1)
    assert _untagged(session.ok(b"SEARCH RETURN () ALL")) == [b'* ESEARCH (TAG "%s") ALL 1:5\r\n' % tag]
    tag = b"t%d" % (session.count + 1)
    assert _untagged(session.ok(b"UID SEARCH RETURN (MIN COUNT) 1000")) == [b'* ESEARCH (TAG "%s") UID COUNT 0\r\n' % tag]
    tag = b"t%d" % (session.count + 1)
    assert _untagged(session.ok(b"SORT RETURN (MIN MAX ALL) (REVERSE SUBJECT) US-ASCII 1:4")) == \
        [b'* ESEARCH (TAG "%s") MIN 4 MAX 1 ALL 4,3,2,1\r\n' % tag]
    assert session.command(b"SEARCH RETURN (SAVE) ALL")[-1].split()[1] == b"BAD"
    assert session.command(b"SEARCH RETURN MIN ALL")[-1].split()[1] == b"BAD"


def test_sasl_ir_and_appendlimit(office):
    session = imapclient.Session(office, login=False)
    try:
        capabilities = session.ok(b"CAPABILITY")[0]
        assert b" SASL-IR" in capabilities and b" APPENDLIMIT=" in capabilities
        credentials = base64.b64encode(b"\0alice@example.test\0" + imapclient.PASSWORD.encode())
        assert session.command(b"AUTHENTICATE PLAIN " + credentials)[-1].split()[1] == b"OK"
        limit = re.search(rb"APPENDLIMIT=(\d+)", session.ok(b"CAPABILITY")[0]).group(1)
        assert _untagged(session.ok(b"STATUS INBOX (APPENDLIMIT)")) == \
            [b'* STATUS "INBOX" (APPENDLIMIT %s)\r\n' % limit]
    finally:
        session.close()


def _listed(session, arguments):
    """{name: (attributes, extended data)} of LIST *arguments*."""
    result = {}
    for line in _untagged(session.ok(b"LIST " + arguments)):
        match = re.match(rb'\* LIST \(([^)]*)\) "\." "([^"]*)"( .*)?\r\n', line)
        assert match, line
        result[match.group(2).decode()] = (set(match.group(1).decode().split()), (match.group(3) or b"").strip())
    return result


def test_list_extended_selection_and_return_options(session):
    assert b"LIST-EXTENDED" in session.ok(b"CAPABILITY")[0]
    for name in (b"T", b"T.one", b"T.two", b"T.two.one", b"T.three", b"T.four.five", b"T.four.fifty2",
                 b"T.six", b"T.eight.eight", b"T.eight.nine"):
        session.ok(b"CREATE " + name)
    for name in (b"T.one", b"T.two.one", b"T.six", b"T.eight.eight", b"T.eight.nine"):
        session.ok(b"SUBSCRIBE " + name)
    session.ok(b"DELETE T.six")
    assert set(_listed(session, b'"" (T.*2 T.three)')) == {"T.three", "T.four.fifty2"}
    subscribed = _listed(session, b'(SUBSCRIBED) "" T.*')
    assert set(subscribed) == {"T.one", "T.two.one", "T.six", "T.eight.eight", "T.eight.nine"}
    assert "\\Subscribed" in subscribed["T.one"][0]
    assert subscribed["T.six"][0] == {"\\Subscribed", "\\NonExistent"}
    recursive = _listed(session, b'(SUBSCRIBED RECURSIVEMATCH) "" T.two% RETURN (CHILDREN)')
    assert recursive == {"T.two": ({"\\HasChildren"}, b'("CHILDINFO" ("SUBSCRIBED"))')}
    # A subscribed child that a pattern matches itself is listed instead of its parent's CHILDINFO.
    assert set(_listed(session, b'(SUBSCRIBED RECURSIVEMATCH) "" (T.two T.two.one)')) == {"T.two.one"}
    returned = _listed(session, b'"" T.% RETURN (CHILDREN SUBSCRIBED)')
    assert "\\Subscribed" in returned["T.one"][0] and "\\HasNoChildren" in returned["T.one"][0]
    assert returned["T.two"][0] == {"\\HasChildren"} and "\\Subscribed" not in returned["T.three"][0]
    assert set(_listed(session, b'(SPECIAL-USE) "" *')) == {"Sent", "Drafts", "Trash", "Junk", "Archive"}
    for bad in (b'(IMAPTEST) "" ""', b'(RECURSIVEMATCH) "" ""', b'"" "" RETURN (IMAPTEST)', b'"" (T.one', b'"" T extra'):
        assert session.command(b"LIST " + bad)[-1].split()[1] == b"BAD", bad
    assert session.ok(b'LIST "" ""')[0] == b'* LIST (\\Noselect) "." ""\r\n'


def test_a_command_pipelined_behind_logout_is_not_run(office):
    sock, reader = imapclient.raw(office)
    try:
        sock.sendall(b"a LOGOUT\r\nb NOOP\r\nc CAPABILITY\r\n")
        assert reader.read().splitlines() == [b"* BYE Logging out", b"a OK LOGOUT completed"]
    finally:
        sock.close()


def test_multiappend_stores_all_messages_or_none(session):
    assert b"MULTIAPPEND" in session.ok(b"CAPABILITY")[0]
    first, second = imapclient.message("first"), imapclient.message("second")
    lines = session.ok(b"APPEND Drafts (\\Seen) {%d+}\r\n%s {%d+}\r\n%s" % (len(first), first, len(second), second))
    assert re.match(rb"t\d+ OK \[APPENDUID \d+ 1:2\] APPEND completed", lines[-1]), lines
    # The second message is over the size limit: refused before its octets, and the first not kept.
    session.sock.sendall(b"x APPEND Drafts {%d+}\r\n%s {99999999999}\r\n" % (len(first), first))
    assert imapclient.read_until_tagged(session.reader, b"x")[-1].startswith(b"x NO [TOOBIG]")
    assert b"* STATUS \"Drafts\" (MESSAGES 2)\r\n" in session.ok(b"STATUS Drafts (MESSAGES)")
    assert session.command(b"APPEND Drafts {3+}\r\nabc junk")[-1].split()[1] == b"BAD"
