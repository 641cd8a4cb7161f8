"""Encoding IMAP response data: nested lists, strings, flags, dates.

Replaces twisted.mail.imap4.collapseNestedLists for our responses because that encodes every str
as ASCII and so fails on any non-ASCII header (a Subject in UTF-8, say).  Here a string that
a quoted string cannot carry (8-bit octets, CR, LF, NUL; RFC 3501 §4.3 "quoted") goes out as a
literal, byte for byte.
"""

import time

__all__ = ["encode", "string", "flag_list", "internal_date", "uid_set", "Adjacent", "MONTHS"]

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def string(value):
    """An IMAP string for *value* (bytes, or str kept byte-exact through surrogateescape)."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    if value.isascii() and not any(c in value for c in b"\r\n\0"):
        return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(value) + value


class Adjacent(list):
    """Elements written one after another with no space and no parentheses of their own: the
    grammar's ``1*address`` (ENVELOPE) and ``1*body`` (a multipart BODYSTRUCTURE), RFC 3501 §9."""


def encode(item):
    """RFC 3501 §4 encoding of None (NIL), int, bytes/str (string), lists and Adjacent runs."""
    if item is None:
        return b"NIL"
    if isinstance(item, int):
        return b"%d" % item
    if isinstance(item, (bytes, str)):
        return string(item)
    if isinstance(item, Adjacent):
        return b"".join(encode(element) for element in item)
    return b"(" + b" ".join(encode(element) for element in item) + b")"


def flag_list(flags):
    """``(\\Seen $Label1)`` for a list of flag names (str; flags and keywords are atoms)."""
    return b"(" + " ".join(flags).encode("ascii", "replace") + b")"


def internal_date(seconds):
    """RFC 3501 §9 date-time, in UTC: ``"17-Jul-1996 09:44:25 +0000"``."""
    moment = time.gmtime(seconds)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
        moment.tm_mday, MONTHS[moment.tm_mon - 1].encode(), moment.tm_year,
        moment.tm_hour, moment.tm_min, moment.tm_sec)


def uid_set(uids):
    """A compact RFC 3501 sequence set (``1:3,7``) of *uids* in the order given, consecutive
    ascending runs as ranges: COPYUID's sets, ESEARCH's ALL."""
    runs = []
    for uid in uids:
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return b",".join(b"%d" % low if low == high else b"%d:%d" % (low, high) for low, high in runs)
