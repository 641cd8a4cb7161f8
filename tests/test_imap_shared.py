"""State shared across sessions and restarts: flags, new mail (also in IDLE), expunges, UIDs."""

import imapclient
from conftest import Office


def untagged_until(session, predicate):
    """Untagged lines until one satisfies *predicate*; bounded by the socket timeout, no sleep."""
    session.sock.settimeout(5)
    lines = []
    while not lines or not predicate(lines[-1]):
        lines.append(imapclient.read_response(session.reader))
    return lines


def test_two_sessions_see_each_others_changes(office):
    office.smtp().sendmail("bob@example.test", ["alice@example.test"], imapclient.message("one"))
    phone, laptop = imapclient.Session(office), imapclient.Session(office)
    phone.ok(b"SELECT INBOX")
    laptop.ok(b"SELECT INBOX")
    phone.ok(b"STORE 1 +FLAGS.SILENT (\\Seen $Work)")
    assert b"* 1 FETCH (FLAGS (\\Seen $Work) UID 1)\r\n" in laptop.ok(b"NOOP")
    office.smtp().sendmail("bob@example.test", ["alice@example.test"], imapclient.message("two"))
    lines = laptop.ok(b"NOOP") + phone.ok(b"NOOP")
    assert lines.count(b"* 2 EXISTS\r\n") == 2, lines
    phone.ok(b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    phone.ok(b"EXPUNGE")
    # No EXPUNGE while answering FETCH (RFC 3501 §7.4.1) ...
    assert not any(line.endswith(b"EXPUNGE\r\n") for line in laptop.ok(b"FETCH 1 (FLAGS)"))
    # ... but at the next command that allows it.
    assert b"* 1 EXPUNGE\r\n" in laptop.ok(b"NOOP")
    assert laptop.ok(b"FETCH 1 (UID)")[0] == b"* 1 FETCH (UID 2)\r\n"


def test_idle_reports_mail_delivered_over_smtp(office):
    session = imapclient.Session(office)
    session.ok(b"SELECT INBOX")
    session.sock.sendall(b"idle IDLE\r\n")
    assert session.reader.readline().startswith(b"+")
    office.smtp().sendmail("bob@example.test", ["alice@example.test"], imapclient.message("pushed"))
    lines = untagged_until(session, lambda line: line.endswith(b"EXISTS\r\n"))
    assert lines[-1] == b"* 1 EXISTS\r\n"
    session.sock.sendall(b"DONE\r\n")
    assert imapclient.read_until_tagged(session.reader, b"idle")[-1].startswith(b"idle OK")


def test_idle_reports_flags_changed_by_another_session(office):
    office.smtp().sendmail("bob@example.test", ["alice@example.test"], imapclient.message("one"))
    watcher, other = imapclient.Session(office), imapclient.Session(office)
    watcher.ok(b"SELECT INBOX")
    other.ok(b"SELECT INBOX")
    watcher.sock.sendall(b"idle IDLE\r\n")
    assert watcher.reader.readline().startswith(b"+")
    other.ok(b"STORE 1 +FLAGS (\\Flagged)")
    lines = untagged_until(watcher, lambda line: b"FETCH" in line)
    assert b"\\Flagged" in lines[-1]
    watcher.sock.sendall(b"DONE\r\n")
    imapclient.read_until_tagged(watcher.reader, b"idle")


def test_uids_survive_a_restart(tmp_path):
    office = Office(str(tmp_path)).start()
    try:
        for subject in ("a", "b", "c"):
            office.smtp().sendmail("bob@example.test", ["alice@example.test"], imapclient.message(subject))
        client = imapclient.login(office)
        client.select("INBOX")
        validity = client.untagged_responses["UIDVALIDITY"]
        client.store("2", "+FLAGS", "(\\Deleted)")
        client.expunge()
        client.store("1", "+FLAGS", "($Keep)")
        client.logout()
    finally:
        office.appliance.stop()
    office.start()
    try:
        client = imapclient.login(office)
        client.select("INBOX")
        assert client.untagged_responses["UIDVALIDITY"] == validity
        assert client.untagged_responses["UIDNEXT"] == [b"4"]
        assert client.uid("SEARCH", "ALL")[1] == [b"1 3"]
        assert client.uid("SEARCH", "KEYWORD", "$Keep")[1] == [b"1"]
        client.logout()
    finally:
        office.appliance.stop()
