"""CONTEXT=SEARCH (RFC 5267 §4): SEARCH RETURN (PARTIAL), RETURN (UPDATE) kept current across
STORE, delivery, expunge and another session's changes, CANCELUPDATE; over a real socket."""

import pytest

import imapclient


def _untagged(lines):
    return [line for line in lines if line.startswith(b"* ")]


@pytest.fixture
def five(office, session):
    smtp = office.smtp()
    for number in range(1, 6):
        smtp.sendmail("bob@example.test", ["alice@example.test"],
                      imapclient.message(subject="s%d" % number, body="body %d\r\n" % number))
    smtp.quit()
    session.ok(b"SELECT INBOX")
    return session


def _tag(session):
    return b"t%d" % (session.count + 1)


def test_context_search_is_advertised(session):
    assert b" CONTEXT=SEARCH" in session.ok(b"CAPABILITY")[0]


def test_partial_returns_a_window_of_the_result(five):
    tag = _tag(five)
    assert _untagged(five.ok(b"SEARCH RETURN (PARTIAL 2:4) ALL")) == [b'* ESEARCH (TAG "%s") PARTIAL (2:4 2:4)\r\n' % tag]
    tag = _tag(five)
    assert _untagged(five.ok(b"SEARCH RETURN (PARTIAL 4:2) ALL")) == [b'* ESEARCH (TAG "%s") PARTIAL (2:4 2:4)\r\n' % tag]
    tag = _tag(five)
    assert _untagged(five.ok(b"UID SEARCH RETURN (COUNT PARTIAL 1:9) 2:5")) == [
        b'* ESEARCH (TAG "%s") UID COUNT 4 PARTIAL (1:9 2:5)\r\n' % tag]
    tag = _tag(five)
    assert _untagged(five.ok(b"SEARCH RETURN (PARTIAL 6:9) ALL")) == [b'* ESEARCH (TAG "%s") PARTIAL (6:9 NIL)\r\n' % tag]


@pytest.mark.parametrize("options", [b"PARTIAL 1", b"PARTIAL 1:*", b"PARTIAL *:1", b"PARTIAL 0:3", b"PARTIAL",
                                     b"PARTIAL 1:99999999999"])
def test_malformed_partial_is_bad(five, options):
    assert five.command(b"SEARCH RETURN (" + options + b") ALL")[-1].split()[1] == b"BAD"
    five.ok(b"NOOP")


def test_update_follows_store_and_expunge_until_cancelled(five):
    tag = _tag(five)
    assert _untagged(five.ok(b"SEARCH RETURN (UPDATE) BODY body SEEN")) == [b'* ESEARCH (TAG "%s")\r\n' % tag]
    lines = five.ok(b"STORE 1,2,5 +FLAGS (\\Seen)")
    assert b'* ESEARCH (TAG "%s") ADDTO (1 1:2,5)\r\n' % tag in lines
    lines = five.ok(b"STORE 1,2 -FLAGS (\\Seen)")
    assert b'* ESEARCH (TAG "%s") REMOVEFROM (1 1:2)\r\n' % tag in lines
    five.ok(b"STORE 3:5 +FLAGS.SILENT (\\Deleted)")
    lines = _untagged(five.ok(b"EXPUNGE"))
    # The removal is numbered as the client still numbers the messages: before the EXPUNGEs.
    assert lines[0] == b'* ESEARCH (TAG "%s") REMOVEFROM (1 5)\r\n' % tag
    assert lines[1:] == [b"* 5 EXPUNGE\r\n", b"* 4 EXPUNGE\r\n", b"* 3 EXPUNGE\r\n"]
    five.ok(b'CANCELUPDATE "%s"' % tag)
    assert not [line for line in five.ok(b"STORE 1 +FLAGS (\\Seen)") if b"ESEARCH" in line]
    assert five.command(b'CANCELUPDATE "%s"' % tag)[-1].split()[1] == b"BAD"


def test_uid_update_with_all_follows_another_session_and_new_mail(office, five):
    five.ok(b"STORE 1,2 +FLAGS (\\Seen)")
    tag = _tag(five)
    assert _untagged(five.ok(b"UID SEARCH RETURN (UPDATE ALL) OR SEEN SUBJECT s4")) == [
        b'* ESEARCH (TAG "%s") UID ALL 1:2,4\r\n' % tag]
    other = imapclient.Session(office)
    try:
        other.ok(b"SELECT INBOX")
        other.ok(b"STORE 3 +FLAGS (\\Seen)")
        other.ok(b"STORE 1 -FLAGS (\\Seen)")
        lines = five.ok(b"NOOP")
        assert b'* ESEARCH (TAG "%s") UID REMOVEFROM (1 1)\r\n' % tag in lines
        assert b'* ESEARCH (TAG "%s") UID ADDTO (2 3)\r\n' % tag in lines
        office.smtp().sendmail("bob@example.test", ["alice@example.test"], imapclient.message(subject="s4 again"))
        # The new message is judged when the session next hears of the folder, as IDLE does.
        five.sock.sendall(b"i IDLE\r\n")
        assert five.reader.readline().startswith(b"+ ")
        pushed = []
        while not pushed or b"ESEARCH" not in pushed[-1]:
            pushed.append(five.reader.readline())
        assert pushed[-1] == b'* ESEARCH (TAG "%s") UID ADDTO (4 6)\r\n' % tag
        assert b"* 6 EXISTS\r\n" in pushed
        five.sock.sendall(b"DONE\r\n")
        imapclient.read_until_tagged(five.reader, b"i")
        other.ok(b"STORE 2 +FLAGS.SILENT (\\Deleted)")
        other.ok(b"EXPUNGE")
        assert b'* ESEARCH (TAG "%s") UID REMOVEFROM (1 2)\r\n' % tag in five.ok(b"NOOP")
    finally:
        other.close()


def test_updates_end_with_the_selection(five):
    tag = _tag(five)
    five.ok(b"SEARCH RETURN (UPDATE) SEEN")
    five.ok(b"SELECT INBOX")
    assert not [line for line in five.ok(b"STORE 1 +FLAGS (\\Seen)") if b"ESEARCH" in line]
    assert five.command(b'CANCELUPDATE "%s"' % tag)[-1].split()[1] == b"BAD"


def test_a_session_keeps_a_bounded_number_of_searches(five):
    for _ in range(10):
        assert not [line for line in five.ok(b"SEARCH RETURN (UPDATE) SEEN") if b"NOUPDATE" in line]
    tag = _tag(five)
    assert b'* OK [NOUPDATE "%s"] Too many searches kept\r\n' % tag in five.ok(b"SEARCH RETURN (UPDATE) SEEN")


def test_sort_refuses_update(five):
    assert five.command(b"SORT RETURN (UPDATE) (DATE) UTF-8 ALL")[-1].split()[1] == b"BAD"
    tag = _tag(five)
    assert _untagged(five.ok(b"SORT RETURN (PARTIAL 1:2) (REVERSE SUBJECT) UTF-8 ALL")) == [
        b'* ESEARCH (TAG "%s") PARTIAL (1:2 5,4)\r\n' % tag]
