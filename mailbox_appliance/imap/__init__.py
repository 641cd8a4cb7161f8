"""IMAP4rev1 (RFC 3501) over the Maildir store, on Twisted's IMAP4Server."""
