"""Sieve (RFC 5228): users' mail filters, run at delivery.

``grammar.py`` reads a script into commands, ``commands.py`` checks them against the commands and
extensions we implement, ``matching.py`` holds comparators and match types, ``interpreter.py``
runs a checked script on one message and returns its actions, ``scripts.py`` keeps each user's
scripts on disk and ``filtering.py`` applies the active one at delivery.
"""
