"""The ESMTP server factory for the smtp, submission and submissions listeners."""

from twisted.mail import smtp
from zope.interface import implementer


@implementer(smtp.IMessageDelivery)
class _NoDeliveryYet:
    """Refuses every recipient with a temporary error until delivery into Maildir lands."""

    def receivedHeader(self, helo, origin, recipients):
        return None

    def validateFrom(self, helo, origin):
        return origin

    def validateTo(self, user):
        raise smtp.SMTPBadRcpt(user, code=451, resp=b"4.3.2 Delivery is not enabled yet")


class SMTPFactory(smtp.SMTPFactory):
    protocol = smtp.ESMTP

    def __init__(self, hostname, portal, tls_context):
        super().__init__(portal)
        self.domain = hostname.encode("ascii")
        self.tls_context = tls_context

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.ctx = self.tls_context
        protocol.delivery = _NoDeliveryYet()
        return protocol
