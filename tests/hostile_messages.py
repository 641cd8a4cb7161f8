"""Messages built to make a parser work hard (issue 20; the Dovecot CVE-2024-23184 class): each
function returns the message's bytes.  test_hostile_messages.py stores them and checks every
command still answers; benchmarks/hostile_messages.py prints what each command costs."""


def many_addresses(count=100_000):
    to = ", ".join(f"u{number}@x{number % 97}.test" for number in range(count))
    return f"From: a@b.test\r\nTo: {to}\r\nSubject: many addresses\r\n\r\nbody\r\n".encode()


def deep_mime(depth=5000):
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level)
                       for level in range(depth))
    closing = b"".join(b"\r\n--b%d--\r\n" % level for level in reversed(range(depth)))
    return (b"From: a@b.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + opening
            + b"Content-Type: text/plain\r\n\r\nleaf\r\n" + closing)


def many_parts(count=100_000):
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % number for number in range(count))
    return (b"From: a@b.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n")


def many_parameters(count=100_000):
    parameters = "".join(f";\r\n x{number}*{number % 10}*=utf-8''v{number}" for number in range(count))
    return (f"From: a@b.test\r\nSubject: parameters\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain{parameters}\r\n\r\nbody\r\n").encode()


def many_plain_parameters(count=100_000):
    parameters = b"".join(b";\r\n p%d=v" % number for number in range(count))
    return b"Content-Type: text/plain" + parameters + b"\r\n\r\nbody\r\n"


def folded_header(octets=20_000_000):
    line = b" " + b"y" * 70 + b"\r\n"
    return b"From: a@b.test\r\nSubject: folded\r\n" + line * (octets // len(line)) + b"To: c@d.test\r\n\r\nbody\r\n"


MESSAGES = {"addresses": many_addresses, "deep MIME": deep_mime, "parts": many_parts,
            "RFC 2231 parameters": many_parameters, "plain parameters": many_plain_parameters,
            "20 MB folded header": folded_header}

# What a client asks of each: %d is the message's sequence number.
COMMANDS = [b"FETCH %d ENVELOPE", b"FETCH %d BODYSTRUCTURE", b"FETCH %d BODY.PEEK[HEADER.FIELDS (TO)]",
            b"FETCH %d BODY.PEEK[1.1.1]", b"FETCH %d BODY.PEEK[1.MIME]", b"SEARCH %d TO u5", b"SEARCH %d HEADER X-Foo bar",
            b"SEARCH %d TEXT zzz", b"SORT (TO SUBJECT) UTF-8 %d", b"THREAD REFERENCES UTF-8 %d"]


def stored_office(directory):
    """An appliance in *directory* with every message of MESSAGES in alice's INBOX, in order;
    (office, her session with INBOX selected)."""
    from conftest import Office
    import imapclient

    office = Office(directory, extra="[limits]\nmax_message_size = 40M\n").start()
    session = imapclient.Session(office)
    session.sock.settimeout(600)
    for build in MESSAGES.values():
        message = build()
        session.ok(b"APPEND INBOX {%d+}\r\n" % len(message) + message)
    session.ok(b"SELECT INBOX")
    return office, session
