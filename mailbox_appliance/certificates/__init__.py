"""Certificates by ACME (RFC 8555): issued, renewed and put in use without a restart."""
