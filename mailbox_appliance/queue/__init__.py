"""Outbound mail queue: durable spool, retry scheduler, MX delivery and bounces."""
