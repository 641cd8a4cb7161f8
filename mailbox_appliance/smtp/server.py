"""The ESMTP server factory for the smtp (25), submission (587) and submissions (465) listeners."""

from twisted.internet.protocol import ServerFactory

from mailbox_appliance.smtp.policy import Policy
from mailbox_appliance.smtp.protocol import SessionSettings, SMTPServer


class SMTPFactory(ServerFactory):
    def __init__(self, role, settings, accounts, quotas, checks, gate, delivery, tls_context, clock, rewriting=None):
        """*delivery* is the IDelivery accepted mail goes to; *gate* the LoginGate for AUTH;
        *checks* the smtp.inbound_checks.InboundChecks of mail from outside; *rewriting* the
        srs.SenderRewriting whose addresses port 25 takes back (bounces of redirected mail)."""
        limits = settings.limits
        self.session_settings = SessionSettings(
            role=role,
            hostname=settings.server.hostname,
            max_message_size=limits.max_message_size,
            max_recipients=limits.max_recipients,
            # On 465 TLS is already there: STARTTLS is not offered (RFC 8314 §3.3).
            tls_context=None if role == "submissions" else tls_context,
            implicit_tls=role == "submissions",
            message_dir=settings.data_path("tmp"),
            max_commands_before_login=limits.max_commands_before_login,
        )
        self.policy = Policy(role, accounts, quotas, checks, rewriting)
        self.gate = gate
        self.delivery = delivery
        self.clock = clock

    def buildProtocol(self, addr):
        protocol = SMTPServer(self.session_settings, self.policy, self.delivery, self.gate, self.clock)
        protocol.factory = self
        return protocol
