"""mailbox-appliance: an all-in-one mail server for a small office, on Twisted."""

from importlib import metadata

try:
    __version__ = metadata.version("mailbox-appliance")
except metadata.PackageNotFoundError:     # run from a source tree that was never installed
    __version__ = "unknown"
