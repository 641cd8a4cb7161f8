"""The IMAP4 server factory for the imap (STARTTLS) and imaps (implicit TLS) listeners."""

from twisted.internet.protocol import ServerFactory
from twisted.mail import imap4


class IMAPFactory(ServerFactory):
    def __init__(self, portal, tls_context):
        self.portal = portal
        self.tls_context = tls_context

    def buildProtocol(self, addr):
        protocol = imap4.IMAP4Server(contextFactory=self.tls_context)
        protocol.portal = self.portal
        protocol.factory = self
        return protocol
