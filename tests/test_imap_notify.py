"""NOTIFY (RFC 5465) over a real socket: STATUS for folders not selected when another session
or SMTP changes them, the selected folder's changes pushed between commands, folder and
subscription changes as LIST, and the errors."""

import pytest

import imapclient


def _untagged(lines):
    return [line for line in lines if line.startswith(b"* ")]


def _next_line(session):
    """The next line the server sends unasked (bounded by the socket's timeout)."""
    return session.reader.readline()


@pytest.fixture
def watcher(office, session):
    session.ok(b"CREATE Projects")
    message = imapclient.message()
    session.ok(b"APPEND Projects {%d+}\r\n" % len(message) + message)
    return session


def test_notify_is_advertised(session):
    assert b" NOTIFY" in session.ok(b"CAPABILITY")[0]


@pytest.mark.parametrize("events, items", [
    (b"MessageExpunge", rb"MESSAGES 1"),
    (b"MessageNew", rb"MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+"),
    (b"FlagChange", rb"UIDVALIDITY \d+ HIGHESTMODSEQ \d+"),
])
def test_set_status_tells_where_each_folder_stands(watcher, events, items):
    import re
    lines = _untagged(watcher.ok(b"NOTIFY SET STATUS (MAILBOXES Projects (" + events + b"))"))
    assert len(lines) == 1 and re.fullmatch(rb'\* STATUS "Projects" \(' + items + rb'\)\r\n', lines[0]), lines
    assert _untagged(watcher.ok(b"NOTIFY SET (MAILBOXES Projects (MessageNew MessageExpunge FlagChange))")) == []


def test_changes_elsewhere_arrive_as_status_without_a_command(office, watcher):
    watcher.ok(b"SELECT INBOX")
    watcher.ok(b"NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (PERSONAL (MessageNew MessageExpunge FlagChange))")
    other = imapclient.Session(office)
    try:
        other.ok(b"SELECT Projects")
        other.ok(b"STORE 1 +FLAGS (\\Flagged)")
        line = _next_line(watcher)
        assert line.startswith(b'* STATUS "Projects" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY ') and b"HIGHESTMODSEQ" in line
        office.smtp().sendmail("bob@example.test", ["alice@example.test"], imapclient.message(subject="new"))
        # New mail in the selected INBOX: EXISTS at once, with no command from the client.
        assert _next_line(watcher) == b"* 1 EXISTS\r\n"
        other.ok(b"STORE 1 +FLAGS.SILENT (\\Deleted)")
        other.ok(b"EXPUNGE")
        # RECENT for the new mail, STATUS for the \\Deleted flag, then for the expunge.
        lines = [_next_line(watcher) for _ in range(3)]
        assert lines[0] == b"* 1 RECENT\r\n" and lines[-1].startswith(b'* STATUS "Projects" (MESSAGES 0 ')
    finally:
        other.close()
    watcher.ok(b"NOTIFY NONE")
    assert _untagged(watcher.ok(b"NOOP")) == []


def test_folder_and_subscription_changes_are_listed(office, watcher):
    watcher.ok(b"NOTIFY SET (PERSONAL (MailboxName SubscriptionChange))")
    other = imapclient.Session(office)
    try:
        other.ok(b"CREATE Fresh")
        assert _next_line(watcher) == b'* LIST () "." "Fresh"\r\n'
        other.ok(b"SUBSCRIBE Fresh")
        assert _next_line(watcher) == b'* LIST (\\Subscribed) "." "Fresh"\r\n'
        other.ok(b"RENAME Fresh Stale")
        assert _next_line(watcher) == b'* LIST () "." "Stale" ("OLDNAME" ("Fresh"))\r\n'
        other.ok(b"DELETE Stale")
        assert _next_line(watcher) == b'* LIST (\\NonExistent) "." "Stale"\r\n'
    finally:
        other.close()
    assert _untagged(watcher.ok(b"NOOP")) == []


@pytest.mark.parametrize("command, answer", [
    (b"NOTIFY", b"BAD"), (b"NOTIFY SET", b"BAD"), (b"NOTIFY SET (PERSONAL)", b"BAD"),
    (b"NOTIFY SET (NOWHERE (MessageNew))", b"BAD"), (b"NOTIFY SET (PERSONAL (Bogus))", b"BAD"),
    (b"NOTIFY SET (PERSONAL (MessageNew)", b"BAD"), (b"NOTIFY SET (MAILBOXES (MessageNew))", b"BAD"),
    (b"NOTIFY SET (PERSONAL (AnnotationChange))", b"NO"),
])
def test_malformed_notify(session, command, answer):
    assert session.command(command)[-1].split()[1] == answer
    session.ok(b"NOOP")
