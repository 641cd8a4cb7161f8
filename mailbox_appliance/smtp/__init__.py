"""ESMTP servers (RFC 5321) for inbound mail (25) and submission (587, 465), and their policy."""
