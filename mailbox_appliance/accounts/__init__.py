"""Accounts: domains, users and aliases, password hashes, and the one cred checker every protocol uses."""
