"""THREAD (RFC 5256): the two algorithms as pure functions, and the command over a socket."""

import pytest

import imapclient
from mailbox_appliance.imap.thread import ThreadMessage, encode_threads, ordered_subject, references


def _message(number, date, subject="", reply=False, message_id=None, refs=()):
    return ThreadMessage(number, number, float(date), subject, reply, message_id, tuple(refs))


def test_references_follows_links_breaks_loops_and_sorts_by_date():
    # <b> says a -> c -> b, <c> says b -> c: the loop is not made; c, older than a, comes first.
    messages = [_message(1, 300, message_id=b"a"), _message(2, 100, message_id=b"b", refs=[b"a", b"c"]),
                _message(3, 200, message_id=b"c", refs=[b"b"])]
    assert encode_threads(references(messages)) == b"(3 2)(1)"


@pytest.mark.parametrize("picked, expected", [
    ((1, 2, 3, 4), b"(1 (2 4)(3))"),
    ((3, 4), b"(1)(2)"),                    # the parents are gone: dummies with one child pruned
    ((3, 4, 5), b"(1)((2)(3))"),            # two children of a missing message stay together
])
def test_references_with_missing_parents(picked, expected):
    replies = {1: (), 2: (b"1",), 3: (b"1",), 4: (b"2",), 5: (b"2",)}
    messages = [_message(number, 100 + original, message_id=b"%d" % original, refs=replies[original])
                for number, original in enumerate(picked, 1)]
    assert encode_threads(references(messages)) == expected


def test_references_merges_threads_by_base_subject_and_keeps_duplicates_apart():
    messages = [_message(1, 100, "lunch", message_id=b"x"), _message(2, 200, "lunch", True, message_id=b"y"),
                _message(3, 300, "other", message_id=b"x")]       # a duplicate Message-ID
    assert encode_threads(references(messages)) == b"(1 2)(3)"


def test_ordered_subject_groups_by_base_subject_under_the_oldest():
    messages = [_message(1, 100, "a"), _message(2, 200, "c"), _message(3, 300, "b"), _message(4, 400, "c", True),
                _message(5, 150, "c", True), _message(6, 500, "b", True)]
    assert encode_threads(ordered_subject(messages)) == b"(1)(5 (2)(4))(3 6)"


def test_a_deep_chain_is_encoded_without_recursing_forever():
    chain = [_message(n, n, message_id=b"%d" % n, refs=[b"%d" % (n - 1)] if n > 1 else []) for n in range(1, 3001)]
    encoded = encode_threads(references(chain))
    assert encoded.startswith(b"(1 2 3 ") and encoded.count(b"(") <= 3001


def test_thread_command(office):
    office.smtp().sendmail("bob@example.test", ["alice@example.test"],
                           b"Message-ID: <p@x>\r\nSubject: plans\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nA\r\n")
    office.smtp().sendmail("bob@example.test", ["alice@example.test"],
                           b"Message-ID: <q@x>\r\nSubject: Re: plans\r\nIn-Reply-To: <p@x>\r\n"
                           b"Date: Mon, 1 Jan 2024 11:00:00 +0000\r\n\r\nB\r\n")
    session = imapclient.Session(office)
    try:
        assert b"THREAD=REFERENCES" in session.ok(b"CAPABILITY")[0]
        session.ok(b"SELECT INBOX")
        assert session.ok(b"THREAD REFERENCES UTF-8 ALL")[0] == b"* THREAD (1 2)\r\n"
        assert session.ok(b"THREAD ORDEREDSUBJECT US-ASCII ALL")[0] == b"* THREAD (1 2)\r\n"
        assert session.ok(b"UID THREAD REFERENCES UTF-8 ALL")[0] == b"* THREAD (1 2)\r\n"
        assert session.ok(b"THREAD REFERENCES UTF-8 SUBJECT nothing")[0] == b"* THREAD\r\n"
        assert session.command(b"THREAD NONSENSE UTF-8 ALL")[-1].split()[1] == b"BAD"
    finally:
        session.close()
