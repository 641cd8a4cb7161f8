"""Maildir++ storage as Dovecot lays it out: unique names, atomic delivery, UID list and keywords."""
