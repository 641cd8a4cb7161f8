"""POP3 (RFC 1939) over the same Maildir store as IMAP."""
