"""Every limit answers with its reply code, and the connection stays usable where RFC 5321 allows."""

import smtplib
import socket

import pytest

from conftest import Office
from rawsmtp import RawSMTP


@pytest.fixture
def small_office(tmp_path):
    office = Office(str(tmp_path), extra="[limits]\nmax_message_size = 2k\nmax_recipients = 3\nmax_connections = 4\n").start()
    yield office
    office.appliance.stop()


def _session(office):
    raw = RawSMTP(office.ports["smtp"])
    raw.command("EHLO client.example.test")
    return raw


def test_size_declared_in_mail_from_over_the_limit(small_office):
    raw = _session(small_office)
    assert raw.command("MAIL FROM:<a@remote.test> SIZE=4096")[:2] == (552, "5.3.4 Message size exceeds the limit of 2048 octets")
    assert raw.command("MAIL FROM:<a@remote.test> SIZE=100")[0] == 250
    raw.close()


def test_size_lied_about_is_caught_in_data_and_the_session_goes_on(small_office):
    raw = RawSMTP(small_office.ports["smtp"])
    raw.open_data(mail_parameters=" SIZE=100")
    raw.send(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 100 + b".\r\n")
    assert raw.reply()[:2] == (552, "5.3.4 Message exceeds the limit of 2048 octets")
    assert raw.command("NOOP")[0] == 250
    raw.close()
    assert small_office.inbox() == []


def test_recipients_over_the_limit_get_452(small_office):
    raw = _session(small_office)
    raw.command("MAIL FROM:<a@remote.test>")
    for _ in range(3):
        assert raw.command("RCPT TO:<alice@example.test>")[0] == 250
    assert raw.command("RCPT TO:<bob@example.test>")[:2] == (452, "4.5.3 Too many recipients (at most 3 per message)")
    assert raw.command("DATA")[0] == 354
    raw.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    assert raw.reply()[0] == 250
    raw.close()


def test_command_line_over_512_octets(small_office):
    raw = _session(small_office)
    assert raw.command("NOOP " + "x" * 600)[:2] == (500, "5.5.2 Line too long (RFC 5321 §4.5.3.1.4: at most 512 octets)")
    assert raw.command("NOOP")[0] == 250
    # A line sent in pieces larger than the limit before its end is refused the same way.
    raw.send(b"MAIL FROM:<" + b"a" * 70000)
    raw.send(b"@remote.test>\r\n")
    assert raw.reply()[0] == 500
    assert raw.command("MAIL FROM:<a@remote.test>")[0] == 250
    raw.close()


def test_text_line_over_998_octets_rejects_the_message(small_office):
    raw = RawSMTP(small_office.ports["smtp"])
    raw.open_data()
    raw.send(b"Subject: long\r\n\r\n" + b"y" * 999 + b"\r\n.\r\n")
    code, text = raw.reply()
    assert code == 554 and "998 octets (RFC 5322 §2.1.1)" in text
    raw.close()
    assert small_office.inbox() == []


@pytest.mark.parametrize("commands, code", [
    (["RCPT TO:<alice@example.test>"], 503),
    (["DATA"], 503),
    (["MAIL FROM:<a@remote.test>", "MAIL FROM:<a@remote.test>"], 503),
    (["MAIL FROM:<a@remote.test>", "DATA"], 503),
    (["MAIL FROM:<a@remote.test>", "RCPT TO:<nobody@example.test>", "DATA"], 554),
    (["BDAT 5"], 503),
])
def test_bad_sequence(small_office, commands, code):
    raw = _session(small_office)
    for command in commands[:-1]:
        raw.command(command)
    if commands[-1].startswith("BDAT"):
        raw.send(b"BDAT 5\r\nhello")
        reply = raw.reply()
    else:
        reply = raw.command(commands[-1])
    assert reply[0] == code and reply[1].startswith("5.5.1"), reply
    assert raw.command("NOOP")[0] == 250
    raw.close()


def test_mail_before_helo_is_503(small_office):
    raw = RawSMTP(small_office.ports["smtp"])
    assert raw.command("MAIL FROM:<a@remote.test>")[:2] == (503, "5.5.1 Send EHLO or HELO first")
    raw.close()


@pytest.mark.parametrize("line, code", [
    (b"MAIL FROM:<a@remote.test>\0", 500),
    (b"\x80\x81\xfe", 500),
    (b"GET / HTTP/1.1", 500),
    (b"MAIL FROM:a@remote.test", 501),
    (b"MAIL FROM:<a@remote.test> BODY=BINARYMIME", 555),
    (b"MAIL FROM:<a@remote.test> RET=HDRS", 555),
    (b"EHLO", 501),
])
def test_nul_garbage_and_syntax_errors(small_office, line, code):
    raw = _session(small_office)
    assert raw.command(line)[0] == code
    assert raw.command("NOOP")[0] == 250
    raw.close()


def test_too_many_errors_close_the_session(small_office):
    raw = _session(small_office)
    for _ in range(9):
        assert raw.command("garbage")[0] == 500
    assert raw.command("garbage")[:2] == (421, "4.7.0 Too many errors; closing connection")
    assert raw.closed()


def test_max_connections(small_office):
    held = [RawSMTP(small_office.ports["smtp"]) for _ in range(4)]
    extra = RawSMTP(small_office.ports["smtp"])
    assert extra.greeting[:2] == (421, "4.7.0 Too many connections; try again later")
    assert extra.closed()
    held.pop().close()
    # The freed slot is usable again once the server has seen the close.
    assert held[0].command("NOOP")[0] == 250
    for _ in range(50):
        fresh = RawSMTP(small_office.ports["submission"])
        if fresh.greeting[0] == 220:
            break
        fresh.close()
    assert fresh.greeting[0] == 220
    for raw in held + [fresh]:
        raw.close()


def test_disconnect_in_the_middle_of_data_stores_nothing(small_office):
    raw = RawSMTP(small_office.ports["smtp"])
    raw.open_data()
    raw.send(b"Subject: cut\r\n\r\nhalf a mess")
    raw.close()
    assert small_office.appliance.wait_for_log(r"result=disconnected")
    assert small_office.inbox() == []
    client = smtplib.SMTP("127.0.0.1", small_office.ports["smtp"], timeout=30)
    assert client.noop()[0] == 250
    client.quit()


def test_probing_many_addresses_closes_the_session(small_office):
    raw = _session(small_office)
    raw.command("MAIL FROM:<a@remote.test>")
    for number in range(19):
        assert raw.command(f"RCPT TO:<guess{number}@example.test>")[0] == 550
    assert raw.command("RCPT TO:<guess19@example.test>")[0] == 550
    assert raw.reply()[:2] == (421, "4.7.0 Too many refused recipients; closing connection")
    assert raw.closed()


@pytest.mark.parametrize("framing", ["DATA", "BDAT"])
def test_nul_in_the_message_is_refused_and_the_session_goes_on(small_office, framing):
    raw = _session(small_office)
    raw.command("MAIL FROM:<a@remote.test>")
    raw.command("RCPT TO:<alice@example.test>")
    message = b"Subject: nul\r\n\r\nbefore\0after\r\n"
    if framing == "DATA":
        assert raw.command("DATA")[0] == 354
        raw.send(message + b".\r\n")
    else:
        raw.send(b"BDAT %d LAST\r\n" % len(message) + message)
    assert raw.reply() == (554, "5.6.0 Message contains a NUL octet, which SMTP text may not (RFC 2045 §2.8)")
    assert raw.command("NOOP")[0] == 250
    raw.close()
    assert small_office.inbox() == []


def test_oversized_data_in_many_reads_is_read_to_its_end_and_never_as_commands(small_office):
    """Past the limit the message is dropped as it arrives, and what follows in the body (lines
    that look like commands, an end marker split across reads) is still the body."""
    raw = RawSMTP(small_office.ports["smtp"])
    raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw.open_data()
    raw.send(b"Subject: huge\r\n\r\n")
    smuggled = b"NOOP\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n"
    for piece in range(100):
        raw.send((b"z" * 70 + b"\r\n") * 14 + (smuggled if piece % 10 == 9 else b""))
    raw.send(b"last line\r\n.")
    raw.send(b"\r")
    raw.send(b"\n")
    # The first reply since DATA: had a body line been read as a command, its reply came first.
    assert raw.reply() == (552, "5.3.4 Message exceeds the limit of 2048 octets")
    assert raw.command("NOOP") == (250, "2.0.0 OK")
    raw.close()
    assert small_office.inbox() == [] and small_office.inbox("bob") == []


def _bdat_session(office):
    raw = _session(office)
    assert raw.command("MAIL FROM:<a@remote.test>")[0] == 250
    assert raw.command("RCPT TO:<alice@example.test>")[0] == 250
    return raw


def test_bdat_over_the_limit_is_consumed_and_refused(small_office):
    raw = _bdat_session(small_office)
    chunk = b"x" * 70 + b"\r\n"
    raw.send(b"BDAT %d\r\n" % (len(chunk) * 20) + chunk * 20)
    assert raw.reply()[0] == 250
    # The second chunk takes the message past 2048 octets: refused once it is all read.
    raw.send(b"BDAT %d LAST\r\n" % (len(chunk) * 20) + chunk * 20)
    assert raw.reply() == (552, "5.3.4 Message exceeds the limit of 2048 octets")
    assert raw.command("NOOP") == (250, "2.0.0 OK")
    # The transaction is over: another chunk has no MAIL to belong to.
    raw.send(b"BDAT 3 LAST\r\nabc")
    assert raw.reply() == (503, "5.5.1 Send MAIL first")
    raw.close()
    assert small_office.inbox() == []


def test_data_and_rcpt_between_bdat_chunks_are_503(small_office):
    raw = _bdat_session(small_office)
    raw.send(b"BDAT 16\r\nSubject: x\r\n\r\nab")
    assert raw.reply()[0] == 250
    assert raw.command("DATA") == (503, "5.5.1 DATA is not allowed after BDAT")
    assert raw.command("RCPT TO:<bob@example.test>") == (503, "5.5.1 RCPT is not allowed between BDAT chunks")
    raw.send(b"BDAT 5 LAST\r\nc\r\n\r\n")
    code, text = raw.reply()
    assert code == 250, text
    raw.close()
    stored = small_office.inbox()
    assert len(stored) == 1 and stored[0].endswith(b"Subject: x\r\n\r\nabc\r\n\r\n")
    assert small_office.inbox("bob") == []
