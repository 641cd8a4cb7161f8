"""POP3 (RFC 1939) over the Maildir store, on Twisted's POP3 protocol."""

from twisted.internet.protocol import ServerFactory
from twisted.mail import pop3


class POP3Factory(ServerFactory):
    def __init__(self, portal):
        self.portal = portal

    def buildProtocol(self, addr):
        protocol = pop3.POP3()
        protocol.portal = self.portal
        protocol.factory = self
        return protocol
