"""CONDSTORE and QRESYNC (RFC 7162) over a real socket: MODSEQ, HIGHESTMODSEQ, CHANGEDSINCE,
UNCHANGEDSINCE, SEARCH MODSEQ, VANISHED, and mod-sequences across a clean restart, a SIGKILL and
a folder that had mail before (a Dovecot takeover)."""

import os
import re
import signal
import time

import pytest

import imapclient

MODSEQ = re.compile(rb"MODSEQ \((\d+)\)")
HIGHEST = re.compile(rb"HIGHESTMODSEQ (\d+)")


def _highest(lines):
    return int(HIGHEST.search(b"".join(lines)).group(1))


def _modseqs(lines):
    """{uid: modseq} from FETCH responses with UID and MODSEQ."""
    found = {}
    for line in lines:
        uid, modseq = re.search(rb"UID (\d+)", line), MODSEQ.search(line)
        if uid and modseq:
            found[int(uid.group(1))] = int(modseq.group(1))
    return found


def _fill(session, count):
    for number in range(1, count + 1):
        message = imapclient.message(subject="m%d" % number)
        session.ok(b"APPEND INBOX {%d+}\r\n" % len(message) + message)


@pytest.fixture
def ten(session):
    _fill(session, 10)
    return session


def test_capabilities_and_highestmodseq_in_select_and_status(ten):
    capabilities = ten.ok(b"CAPABILITY")[0]
    assert b" CONDSTORE" in capabilities and b" QRESYNC" in capabilities
    status = _highest(ten.ok(b"STATUS INBOX (HIGHESTMODSEQ MESSAGES)"))
    assert status == _highest(ten.ok(b"SELECT INBOX"))
    # Each arrival took a mod-sequence: ten messages, ten distinct values, the last the highest.
    modseqs = _modseqs(ten.ok(b"FETCH 1:* (UID MODSEQ)"))
    assert len(set(modseqs.values())) == 10 and max(modseqs.values()) == status


def test_fetch_modseq_enables_condstore_and_store_reports_it(ten):
    ten.ok(b"SELECT INBOX")
    assert b"MODSEQ" not in b"".join(ten.ok(b"STORE 1 +FLAGS (\\Flagged)"))
    lines = ten.ok(b"FETCH 1 MODSEQ")
    # RFC 7162 §3.1: enabled by a command other than SELECT, the client hears HIGHESTMODSEQ.
    assert lines[0].startswith(b"* OK [HIGHESTMODSEQ ")
    before = _highest(lines)
    lines = ten.ok(b"STORE 2 +FLAGS (\\Seen)")
    assert re.match(rb"\* 2 FETCH \(FLAGS \(\\Seen \\Recent\) MODSEQ \((\d+)\)\)", lines[0])
    assert int(MODSEQ.search(lines[0]).group(1)) > before
    # .SILENT: no FLAGS, but the new MODSEQ (RFC 7162 §3.1.3); unchanged messages say nothing.
    lines = ten.ok(b"UID STORE 2:3 +FLAGS.SILENT (\\Seen)")
    assert len(lines) == 2 and re.match(rb"\* 3 FETCH \(UID 3 MODSEQ \(\d+\)\)", lines[0])


def test_changedsince_returns_only_what_changed(ten):
    ten.ok(b"SELECT INBOX (CONDSTORE)")
    since = _highest(ten.ok(b"STATUS INBOX (HIGHESTMODSEQ)"))
    ten.ok(b"STORE 3,7 +FLAGS.SILENT (\\Answered)")
    lines = ten.ok(b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % since)
    assert [line.split()[1] for line in lines[:-1]] == [b"3", b"7"]
    assert all(b"MODSEQ" in line for line in lines[:-1])
    later = max(_modseqs(lines).values())
    assert ten.ok(b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % later)[:-1] == []


def test_unchangedsince_leaves_changed_messages_alone(office, ten):
    ten.ok(b"SELECT INBOX")
    modseqs = _modseqs(ten.ok(b"FETCH 1:3 (UID MODSEQ)"))
    other = imapclient.Session(office)
    try:
        other.ok(b"SELECT INBOX")
        other.ok(b"STORE 2 +FLAGS (\\Flagged)")
    finally:
        other.close()
    lines = ten.ok(b"STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Deleted)" % max(modseqs.values()))
    assert lines[-1].split()[2] == b"[MODIFIED" and lines[-1].split()[3] == b"2]"
    flags = ten.ok(b"FETCH 1:3 FLAGS")
    assert b"\\Deleted" in flags[0] and b"\\Deleted" not in flags[1] and b"\\Deleted" in flags[2]
    assert ten.ok(b"UID STORE 2 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)")[-1].split()[2:4] == [b"[MODIFIED", b"2]"]


def test_search_modseq_and_esearch(ten):
    ten.ok(b"SELECT INBOX (CONDSTORE)")
    seen = []
    for number in (1, 3, 2, 4):
        seen.append(_modseqs(ten.ok(b"UID STORE %d +FLAGS (\\Seen)" % number))[number])
    m1, m3, m2, m4 = seen
    assert ten.ok(b"SEARCH MODSEQ %d" % m3)[0] == b"* SEARCH 2 3 4 (MODSEQ %d)\r\n" % m4
    tag = b"t%d" % (ten.count + 1)
    assert ten.ok(b'SEARCH RETURN (MIN) 1:3 MODSEQ "/flags/\\\\seen" all 1')[0] == (
        b'* ESEARCH (TAG "%s") MIN 1 MODSEQ %d\r\n' % (tag, m1))
    tag = b"t%d" % (ten.count + 1)
    assert ten.ok(b"SEARCH RETURN (ALL) 1:3 MODSEQ 1")[0] == b'* ESEARCH (TAG "%s") ALL 1:3 MODSEQ %d\r\n' % (tag, m2)
    tag = b"t%d" % (ten.count + 1)
    assert ten.ok(b"SEARCH RETURN (ALL) 2:3 MODSEQ %d" % m4)[0] == b'* ESEARCH (TAG "%s")\r\n' % tag
    assert ten.ok(b"SEARCH MODSEQ %d" % (m4 + 1))[0] == b"* SEARCH\r\n"
    assert ten.command(b"SEARCH MODSEQ x")[-1].split()[1] == b"BAD"


@pytest.mark.parametrize("command", [
    b"FETCH 1 FLAGS (CHANGEDSINCE 0)", b"FETCH 1 FLAGS (CHANGEDSINCE x)", b"FETCH 1 FLAGS (CHANGEDSINCE)",
    b"FETCH 1 FLAGS (FOO 1)", b"STORE 1 (UNCHANGEDSINCE -1) +FLAGS (\\Seen)",
    b"FETCH 1 FLAGS (CHANGEDSINCE 99999999999999999999)",
    b"UID FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)",          # QRESYNC not enabled
    b"FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)",
    b"SELECT INBOX (QRESYNC (1 1))", b"SELECT INBOX (FOO)", b"SELECT INBOX (CONDSTORE",
])
def test_malformed_modifiers_are_bad(ten, command):
    ten.ok(b"SELECT INBOX")
    assert ten.command(command)[-1].split()[1] == b"BAD"
    ten.ok(b"NOOP")


def test_qresync_select_reports_what_another_session_changed(office, ten):
    assert ten.ok(b"ENABLE QRESYNC")[0] == b"* ENABLED QRESYNC\r\n"
    lines = ten.ok(b"SELECT INBOX")
    validity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(lines)).group(1))
    since = _highest(lines)
    other = imapclient.Session(office)
    try:
        other.ok(b"SELECT INBOX")
        other.ok(b"STORE 2,4 +FLAGS.SILENT (\\Deleted)")
        other.ok(b"UID EXPUNGE 2")
        other.ok(b"STORE 5 +FLAGS (\\Seen)")           # UID 6, now that UID 2 is gone
        # This session, still selected, hears the expunge as VANISHED (RFC 7162 §3.2.10).
        lines = ten.ok(b"NOOP")
        assert b"* VANISHED 2\r\n" in lines and not [line for line in lines if b"EXPUNGE" in line]
        other.ok(b"EXPUNGE")
    finally:
        other.close()
    ten.ok(b"UNSELECT")
    lines = ten.ok(b"SELECT INBOX (QRESYNC (%d %d 1:20))" % (validity, since))
    assert b"* VANISHED (EARLIER) 2,4\r\n" in lines
    changed = [line for line in lines if b" FETCH " in line]
    assert len(changed) == 1 and re.match(rb"\* 4 FETCH \(FLAGS \(\\Seen\) UID 6 MODSEQ \(", changed[0])
    # Selecting again while selected: the old folder's end is marked (RFC 7162 §3.2.11).
    lines = ten.ok(b"SELECT INBOX (QRESYNC (%d %d))" % (validity, _highest(lines)))
    assert lines[0] == b"* OK [CLOSED] Previous folder closed\r\n"
    assert not [line for line in lines if b"VANISHED" in line or b" FETCH " in line]
    # A UIDVALIDITY the client no longer matches: a plain SELECT, the client starts over.
    lines = ten.ok(b"SELECT INBOX (QRESYNC (%d %d))" % (validity + 1, since))
    assert not [line for line in lines if b"VANISHED" in line or b" FETCH " in line]


def test_own_expunge_is_vanished_with_highestmodseq(ten):
    ten.ok(b"ENABLE QRESYNC")
    ten.ok(b"SELECT INBOX")
    ten.ok(b"STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    lines = ten.ok(b"EXPUNGE")
    assert lines[0] == b"* VANISHED 1,3\r\n" and lines[-1].split()[2] == b"[HIGHESTMODSEQ"
    since = _highest(lines[-1:])
    ten.ok(b"STORE 2 +FLAGS.SILENT (\\Deleted)")
    ten.ok(b"EXPUNGE")
    lines = ten.ok(b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % since)
    assert lines[0] == b"* VANISHED (EARLIER) 4\r\n"


def test_changedsince_after_ten_changes_in_a_large_folder_is_small(office, session):
    """The answer holds the ten changes only; figures for 100,000 messages are measured by
    benchmarks/imap_scale.py."""
    inbox = os.path.join(office.data_dir, "mail", "example.test", "alice", "new")
    os.makedirs(inbox, exist_ok=True)
    for number in range(2000):
        with open(os.path.join(inbox, "%d.M%dP1.test,S=20,W=21" % (1_700_000_000 + number, number)), "wb") as handle:
            handle.write(b"Subject: x\n\nbody\n\n")
    since = _highest(session.ok(b"SELECT INBOX (CONDSTORE)"))
    for number in range(1, 2000, 200):
        session.ok(b"STORE %d +FLAGS.SILENT (\\Seen)" % number)
    lines = session.ok(b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % since)
    assert len(lines) == 11


def _restart(office, kill):
    if kill:
        office.appliance.process.send_signal(signal.SIGKILL)
        office.appliance.process.wait(20)
    else:
        assert office.appliance.stop() in (0, -signal.SIGTERM)     # test_launch says why
    office.start()


@pytest.mark.parametrize("kill", [False, True], ids=["clean stop", "SIGKILL"])
def test_modseqs_survive_a_restart_and_never_go_backwards(office, ten, kill):
    ten.ok(b"ENABLE QRESYNC")
    lines = ten.ok(b"SELECT INBOX")
    validity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(lines)).group(1))
    for number in range(1, 6):
        ten.ok(b"STORE %d +FLAGS.SILENT (\\Flagged)" % number)
    ten.ok(b"STORE 6 +FLAGS.SILENT (\\Deleted)")
    ten.ok(b"EXPUNGE")
    before = _modseqs(ten.ok(b"FETCH 1:* (UID MODSEQ)"))
    seen = _highest(ten.ok(b"STATUS INBOX (HIGHESTMODSEQ)"))
    ten.close()
    _restart(office, kill)
    after = imapclient.Session(office)
    try:
        after.ok(b"ENABLE QRESYNC")
        lines = after.ok(b"SELECT INBOX (QRESYNC (%d %d))" % (validity, seen))
        assert _highest(lines) >= seen
        changed = [line for line in lines if b" FETCH " in line]
        if kill:
            # Flags may have changed unseen around a crash: every message counts as changed,
            # above anything the client saw, and the client resyncs once.
            assert len(changed) == 9 and _highest(lines) > seen
            assert min(_modseqs(after.ok(b"FETCH 1:* (UID MODSEQ)")).values()) > seen
        else:
            assert changed == [] and not [line for line in lines if b"VANISHED" in line]
            assert _modseqs(after.ok(b"FETCH 1:* (UID MODSEQ)")) == before
            # The expunge is still remembered: a client from before it hears of UID 6.
            assert b"* VANISHED (EARLIER) 6\r\n" in after.ok(b"UID FETCH 1:* FLAGS (CHANGEDSINCE %d VANISHED)" % min(before.values()))
        after.ok(b"STORE 1 +FLAGS (\\Seen)")
        assert _highest(after.ok(b"STATUS INBOX (HIGHESTMODSEQ)")) > _highest(lines)
    finally:
        after.close()


def test_a_folder_taken_over_starts_above_any_client_state(office, session):
    """A Maildir with mail and no mod-sequence file (from Dovecot, or before this feature): the
    counter starts at the time in microseconds, above what Dovecot's counter could have reached."""
    inbox = os.path.join(office.data_dir, "mail", "example.test", "alice", "cur")
    os.makedirs(inbox, exist_ok=True)
    with open(os.path.join(inbox, "1700000000.M1P1.test,S=20,W=21:2,S"), "wb") as handle:
        handle.write(b"Subject: x\n\nbody\n\n")
    with open(os.path.join(os.path.dirname(inbox), "dovecot-uidlist"), "w") as handle:
        handle.write("3 V1234 N8 G%s\n7 :1700000000.M1P1.test,S=20,W=21\n" % ("0" * 32))
    started = time.time() * 1_000_000
    highest = _highest(session.ok(b"SELECT INBOX"))
    assert highest >= started
    assert _modseqs(session.ok(b"FETCH 1 (UID MODSEQ)")) == {7: highest}


def test_sigkill_during_flag_changes_never_sends_highestmodseq_backwards(office, ten):
    """A client stores flags as fast as it can and reads every MODSEQ it is told; the appliance is
    killed in the middle. After the restart HIGHESTMODSEQ is above everything the client saw."""
    ten.ok(b"SELECT INBOX (CONDSTORE)")
    seen = 0
    ten.sock.sendall(b"".join(b"s%d STORE %d %sFLAGS.SILENT (\\Flagged)\r\n" % (n, n % 10 + 1, b"+-"[n % 2:n % 2 + 1])
                              for n in range(2000)))
    for _ in range(200):                       # some answers in: the rest are in flight
        line = ten.reader.readline()
        if MODSEQ.search(line):
            seen = max(seen, int(MODSEQ.search(line).group(1)))
    office.appliance.process.send_signal(signal.SIGKILL)
    office.appliance.process.wait(20)
    for line in iter(ten.reader.readline, b""):  # whatever the kernel still held for us
        if MODSEQ.search(line):
            seen = max(seen, int(MODSEQ.search(line).group(1)))
    assert seen
    office.start()
    after = imapclient.Session(office)
    try:
        assert _highest(after.ok(b"SELECT INBOX")) > seen
        assert min(_modseqs(after.ok(b"FETCH 1:* (UID MODSEQ)")).values()) > seen
    finally:
        after.close()
