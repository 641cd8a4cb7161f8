"""Twisted's own log lines that tell an admin nothing, dropped before any log observer sees them.

twisted.names opens a UDP port per DNS query (a random source port, RFC 5452 §9.2) and Twisted
logs four lines for each ("DNSDatagramProtocol starting on N", "Starting protocol ...", "(UDP
Port N Closed)", "Stopping protocol ..."): three quarters of a day's log in the admin's trial.
Every listening port also says "... starting on N" beside our own "NAME listening on ADDRESS",
and "(TCP Port N Closed)" at shutdown.  They come through the legacy twisted.python.log API,
unconditionally, so the one place to stop them is that API's hand-off to twisted.logger
(LogPublisher._publishPublisher, the same in Debian 12's Twisted 22.4 and in today's); every
line of ours goes through twisted.logger directly and is never looked at here.
"""

import re

from twisted.python import log

__all__ = ["quiet"]

NOISE = re.compile(
    r"\((?:UDP |TCP )?Port \S+ Closed\)"
    r"|(?:Starting|Stopping) protocol <twisted\.names\.dns\.DNSDatagramProtocol object at 0x[0-9a-fA-F]+>"
    r"|.* starting on (?:\d+|'[^']*')")


def quiet(publisher=log.theLogPublisher):
    """Drop the lines NOISE matches from now on (once; calling again changes nothing)."""
    forward = publisher._publishPublisher
    if getattr(forward, "drops_twisted_noise", False):
        return

    def publish(event):
        text = event.get("log_text")
        if text is None or not NOISE.fullmatch(text):
            forward(event)

    publish.drops_twisted_noise = True
    publisher._publishPublisher = publish
