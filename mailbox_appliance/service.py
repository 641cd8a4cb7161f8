"""makeService(settings): one MultiService holding every listener of the appliance."""

import os
import platform
import signal

import twisted
from twisted.application import service
from twisted.cred.portal import Portal
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

from mailbox_appliance import __version__, metrics, tls
from mailbox_appliance.accounts.checker import PasswordChecker
from mailbox_appliance.accounts.directory import Accounts
from mailbox_appliance.accounts.last_login import LastLogins
from mailbox_appliance.admin_channel import AdminChannel
from mailbox_appliance.certificates.renewal import AcmeCertificates
from mailbox_appliance.connection_limit import BUSY_LINES, ConnectionLimit, LimitedFactory
from mailbox_appliance.flow_control import LOGIN_DEADLINE_SECONDS
from mailbox_appliance.delivery import Delivery
from mailbox_appliance.group_commit import GroupCommitter
from mailbox_appliance.imap.parsed_messages import ParsedMessages
from mailbox_appliance.imap.server import IMAPFactory
from mailbox_appliance.login_throttle import LoginThrottle
from mailbox_appliance.maildrop.pickup import Pickup
from mailbox_appliance.managesieve.server import ManageSieveFactory
from mailbox_appliance.maildir.mailbox import FolderRegistry
from mailbox_appliance.pop3.server import POP3Factory
from mailbox_appliance.queue.control import QueueControl
from mailbox_appliance.queue.dkim_signing import Signer
from mailbox_appliance.queue.mx import make_resolver
from mailbox_appliance.queue.outbound import Outbound, Relay
from mailbox_appliance.queue.runner import QueueRunner
from mailbox_appliance.queue.schedule import Schedule
from mailbox_appliance.queue.spool import Spool
from mailbox_appliance.quota import Quotas
from mailbox_appliance.realm import MailRealm
from mailbox_appliance.session_security import LoginGate
from mailbox_appliance.spam.dnsbl import Blocklists
from mailbox_appliance.srs import SenderRewriting
from mailbox_appliance.web.site import ConfigurationResource, RedirectResource, site
from mailbox_appliance.spam.learning import LearningQueue
from mailbox_appliance.spam.rspamd import Rspamd
from mailbox_appliance.status import ApplianceStatus
from mailbox_appliance.smtp.inbound_checks import InboundChecks
from mailbox_appliance.smtp.policy import Policy
from mailbox_appliance.smtp.sender_auth import SenderAuthentication
from mailbox_appliance.smtp.server import SMTPFactory
from mailbox_appliance.sieve.filtering import SieveFilter
from mailbox_appliance.sieve.scripts import SieveScripts


class StartupError(Exception):
    """The appliance cannot start; the message is one line naming what to fix."""


class ListenerService(service.Service):
    """Listens on one endpoint string; binds in privilegedStartService so low ports work.

    A listener that cannot bind stops the start-up with one line naming it, the endpoint and the
    reason, instead of a traceback and a half-started server.
    """

    log = Logger()

    def __init__(self, name, endpoint_description, factory, reactor):
        self.setName(name)
        self.endpoint_description = endpoint_description
        self.factory = factory
        self.reactor = reactor
        self.port = None

    def privilegedStartService(self):
        super().privilegedStartService()
        endpoint = serverFromString(self.reactor, self.endpoint_description)
        outcome = []
        endpoint.listen(self.factory).addBoth(outcome.append)
        if not outcome or isinstance(outcome[0], Failure):
            reason = outcome[0].getErrorMessage() if outcome else "no answer from the endpoint"
            raise SystemExit(
                f"mailbox-appliance: cannot listen for {self.name} on {self.endpoint_description}: {reason}"
            )
        self.port = outcome[0]

    def startService(self):
        super().startService()
        self.log.info("{listener} listening on {address} ({endpoint})",
                      listener=self.name, address=_address(self.port), endpoint=self.endpoint_description)

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()


def _address(port):
    """host:port of a listening port (its path, for a UNIX socket)."""
    address = port.getHost()
    return f"{address.host}:{address.port}" if hasattr(address, "port") else str(address)


class SaveFoldersOnStop(service.Service):
    """At shutdown, after the listeners: every open folder's whole state to disk, so clients
    keep their mod-sequences across a restart (maildir/modseq.py)."""

    def __init__(self, folders):
        self.folders = folders

    def stopService(self):
        super().stopService()
        self.folders.save_all()


class ReloadOnHangup(service.Service):
    """SIGHUP (``systemctl reload``) re-reads the users, aliases and domains files at once.

    They are also re-read whenever they change; the signal is for an admin who wants to be sure,
    and without a handler SIGHUP would end the process.
    """

    log = Logger()

    def __init__(self, accounts, reactor):
        self.accounts = accounts
        self.reactor = reactor

    def startService(self):
        super().startService()
        signal.signal(signal.SIGHUP, lambda number, frame: self.reactor.callFromThread(self.reload))

    def reload(self):
        self.accounts.reload()
        self.log.info("SIGHUP: users, aliases and domains files re-read")


def makeService(settings, reactor=None):
    """Build the appliance for *settings*; raises StartupError with a one-line reason.

    Every shared object is made here, once, and handed to the parts that use it: the accounts,
    the login gate (portal, checker, throttle), the folder registry (through the realm), the
    group committer, the spool, delivery and the queue runner (docs/architecture.md).
    """
    if reactor is None:
        from twisted.internet import reactor
    Logger(namespace="mailbox_appliance").info(
        "mailbox-appliance {version} starting (Twisted {twisted}, Python {python}), configuration: {path}",
        version=__version__, twisted=twisted.__version__, python=platform.python_version(),
        path=settings.path or "built-in defaults")
    from mailbox_appliance.accounts.files import FileFormatError

    try:
        # Mail is private: the data directory is the service user's alone (and its group's).
        os.makedirs(settings.server.data_dir, mode=0o750, exist_ok=True)
        # Messages still arriving over SMTP, past what is kept in memory (smtp/message_buffer.py).
        os.makedirs(settings.data_path("tmp"), mode=0o700, exist_ok=True)
        # Local programs' mail (maildrop/): the service user's alone unless the admin (or the
        # Debian package) made it writable for others.
        os.makedirs(settings.server.maildrop, mode=0o700, exist_ok=True)
        accounts = Accounts.from_settings(settings)
        tls_context = tls.context_factory(settings, Logger(namespace="mailbox_appliance.tls"))
    except FileFormatError as error:
        raise StartupError(str(error)) from None
    except OSError as error:
        raise StartupError(f"cannot create {error.filename}: {error.strerror}") from None
    except tls.TLSError as error:
        raise StartupError(f"{settings.path or 'built-in defaults'}: {error}") from None
    data_dir = settings.server.data_dir
    quotas = Quotas(data_dir, accounts, settings.limits.default_quota, reactor)
    committer = GroupCommitter(reactor)
    folders = FolderRegistry(reactor, committer, on_removed=quotas.folder_emptied)
    realm = MailRealm(data_dir, folders)
    limits = settings.limits
    throttle = LoginThrottle(reactor, limits.login_failures, limits.login_lockout, limits.login_lockout)
    checker = PasswordChecker(accounts, reactor)
    last_logins = LastLogins(data_dir, reactor)
    gate = LoginGate(Portal(realm, [checker]), throttle, reactor, last_logins.record)
    spool = Spool(settings.data_path("queue"))
    challenges = {}        # ACME http-01: token -> key authorization, served by the http listener
    certificates = AcmeCertificates(settings, accounts, tls_context, challenges, reactor) if settings.tls.acme else None

    def mta_sts_mode():
        """RFC 8461 §5: senders enforce only a certificate they can verify: not the self-signed one."""
        public = not settings.tls.create_self_signed or (certificates is not None and certificates.ours is not None)
        return "enforce" if public else "testing"

    scripts = SieveScripts(data_dir)
    rewriting = SenderRewriting(data_dir)
    filters = SieveFilter(data_dir, settings.server.hostname, scripts, quotas, accounts, rewriting)
    delivery = Delivery(data_dir, settings.server.hostname, accounts, spool, committer, quotas, filters)
    # One DNS resolver (cached): the queue's MX lookups and port 25's sender checks.
    resolver = make_resolver(settings.outbound.resolver)
    runner = _queue_runner(settings, accounts, spool, committer, delivery, reactor, resolver)
    checks, learning = _inbound_checks(settings, accounts, resolver, reactor)
    sender_auth = checks.sender_auth
    parsed_messages = ParsedMessages()

    def smtp(role):
        return SMTPFactory(role, settings, accounts, quotas, checks, gate, delivery, tls_context, reactor, rewriting)

    # listener name -> (protocol, factory maker)
    factories = {
        "smtp": ("smtp", lambda: smtp("inbound")),
        "submission": ("smtp", lambda: smtp("submission")),
        "submissions": ("smtp", lambda: smtp("submissions")),
        "imap": ("imap", lambda: IMAPFactory(settings, gate, quotas, learning, parsed_messages, tls_context, reactor)),
        "imaps": ("imap", lambda: IMAPFactory(settings, gate, quotas, learning, parsed_messages, tls_context, reactor,
                                              implicit_tls=True)),
        "pop3": ("pop3", lambda: POP3Factory(settings, gate, tls_context, reactor)),
        "pop3s": ("pop3", lambda: POP3Factory(settings, gate, tls_context, reactor, implicit_tls=True)),
        "managesieve": ("managesieve", lambda: ManageSieveFactory(settings, gate, scripts, tls_context, reactor)),
        "https": ("http", lambda: site(ConfigurationResource(settings.server.hostname, accounts, bound,
                                                             mta_sts_mode))),
        "http": ("http", lambda: site(RedirectResource(settings.server.hostname, accounts, bound, challenges))),
        "metrics": ("http", lambda: site(metrics_page)),
    }
    connections = ConnectionLimit(limits.max_connections, limits.max_connections_per_address,
                                  limits.max_connection_rate, reactor)
    appliance = service.MultiService()
    # Added first, so stopped last: the folders are saved once no session can change them.
    SaveFoldersOnStop(folders).setServiceParent(appliance)
    last_logins.setServiceParent(appliance)
    # First, so SIGHUP is handled before any listener says it is listening.
    ReloadOnHangup(accounts, reactor).setServiceParent(appliance)
    # Before the listeners too: once the appliance says it is listening, the admin can reach it.
    listeners = []

    def bound():
        return [(listener.name, _address(listener.port)) for listener in listeners if listener.port is not None]

    status = ApplianceStatus(__version__, gate, checker, spool, runner.recent_problems, bound, reactor)
    counting, metrics_page = metrics.build(spool, gate, committer, reactor)
    counting.setServiceParent(appliance)
    commands = {**QueueControl(runner, spool).commands(), **status.commands()}
    AdminChannel(data_dir, commands, reactor).setServiceParent(appliance)
    # Its checker processes start before the listeners, and stop after them.
    sender_auth.setServiceParent(appliance)
    for name, endpoint, implicit_tls in settings.listen.enabled():
        protocol, make_factory = factories[name]
        factory = make_factory()
        factory.noisy = False
        # Port 25's sessions and the web's never log in; everybody else's must, within the deadline.
        login_deadline = None if name in ("smtp", "https", "http", "metrics") else LOGIN_DEADLINE_SECONDS
        factory = LimitedFactory(factory, connections, name, BUSY_LINES[protocol], reactor,
                                 implicit_tls=implicit_tls, login_deadline=login_deadline,
                                 flow_control=protocol != "http")
        if implicit_tls:
            factory = TLSMemoryBIOFactory(tls_context, False, factory)
            # The listener's own log line says what matters; Twisted's "Starting factory" is noise.
            factory.noisy = False
        listener = ListenerService(name, endpoint, factory, reactor)
        listener.setServiceParent(appliance)
        listeners.append(listener)
    if certificates is not None:
        # After the listeners: the CA's validation comes to the http listener.
        certificates.setServiceParent(appliance)
    runner.setServiceParent(appliance)
    Pickup(settings.server.maildrop, accounts, Policy("local", accounts, quotas), delivery, settings.server.hostname,
           limits.max_message_size, reactor).setServiceParent(appliance)
    if learning is not None:
        learning.setServiceParent(appliance)
    return appliance


def _inbound_checks(settings, accounts, resolver, reactor):
    """Port 25's checks of mail from outside (sender authentication always; rspamd and DNS
    blocklists when configured), and the queue of what users teach rspamd (None without it)."""
    filtering = settings.filter
    sender_auth = SenderAuthentication(settings.outbound.resolver, settings.server.hostname, reactor,
                                       accounts.is_local_domain, filtering.dmarc_reject)
    rspamd = Rspamd(reactor, filtering.rspamd, filtering.rspamd_controller) if filtering.rspamd else None
    blocklists = Blocklists(resolver, filtering.dnsbl) if filtering.dnsbl else None
    learning = LearningQueue(settings.data_path("learning"), rspamd, reactor) if rspamd else None
    return InboundChecks(sender_auth, rspamd, blocklists), learning


def _queue_runner(settings, accounts, spool, committer, delivery, reactor, resolver):
    """The outbound queue, delivering with MX lookups and reporting failures through *delivery*."""
    log = Logger(namespace="mailbox_appliance.queue")
    settings_out = settings.outbound
    relay = None
    if settings_out.relay_host:
        credentials = (settings_out.relay_user, settings_out.relay_password) if settings_out.relay_user else None
        relay = Relay(settings_out.relay_host, settings_out.relay_port, credentials, settings_out.relay_require_tls,
                      tls.verifying_client_context(settings_out.relay_host))
    outbound = Outbound(reactor, resolver, settings_out.smtp_port,
                        settings.server.hostname, tls.client_context_factory(), relay)

    signer = Signer(settings.server.data_dir)
    for domain in sorted(set(accounts.domains()) - set(signer.keys())):
        log.warn("domain {domain} has no DKIM key: its mail is sent unsigned; "
                 "create one with: mailbox-appliance-admin dkim keygen {domain}", domain=domain)
    return QueueRunner(spool, committer, Schedule.from_settings(settings.outbound), outbound, delivery,
                       settings.server.hostname, reactor, signer)
