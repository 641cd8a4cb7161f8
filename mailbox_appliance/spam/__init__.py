"""Spam filtering beside the sender checks: an rspamd to ask (rspamd.py), the messages users
teach it with (learning.py), and DNS blocklists for when there is no rspamd (dnsbl.py)."""
