"""Checks on the octets of a message received over SMTP, before it is accepted.

Each check runs over the whole message in C (bytes.count, bytes.splitlines, len), with no
per-line Python loop.  (A regular expression for the long-line check, [^\r\n]{999}, restarts at
every octet and cost 40 ms on a 100 KB message; these checks together cost about 0.2 ms.)
"""

# RFC 5322 §2.1.1 and RFC 5321 §4.5.3.1.6: a text line is at most 998 octets before its CRLF.
MAX_TEXT_LINE_OCTETS = 998


def problem(message, max_size):
    """None when the message may be accepted, else (code, status, text) for the refusal."""
    if len(message) > max_size:
        return 552, "5.3.4", f"Message exceeds the limit of {max_size} octets"
    if b"\0" in message:
        # RFC 2045 §2.7-2.8: neither 7bit nor 8bit data (8BITMIME, RFC 6152) contains NUL; only
        # BINARYMIME (RFC 3030), which is not offered, would.  IMAP could not hand it on either
        # (RFC 3501 §4.3: no NUL in a literal).
        return 554, "5.6.0", "Message contains a NUL octet, which SMTP text may not (RFC 2045 §2.8)"
    # bytes.splitlines ends a line at CRLF, and also at a bare CR or LF, and drops the line ends.
    # With every line ended by CRLF the message is its lines plus two octets per line end; a bare
    # CR or LF (a one-octet line end) makes it shorter.  (Counting the CRLFs instead cost as much
    # again as splitting.)
    lines = message.splitlines()
    line_ends = len(lines) if message.endswith((b"\r", b"\n")) else max(0, len(lines) - 1)
    if sum(map(len, lines)) + 2 * line_ends != len(message):
        # RFC 5321 §2.3.8: CR and LF only ever as CRLF.  A bare one is how SMTP smuggling hides a
        # second message from servers that end DATA on it; refuse rather than pass it on.
        return 554, "5.6.0", "Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 §2.3.8)"
    if lines and max(map(len, lines)) > MAX_TEXT_LINE_OCTETS:
        return 554, "5.6.0", f"Message has a line over {MAX_TEXT_LINE_OCTETS} octets (RFC 5322 §2.1.1)"
    return None
