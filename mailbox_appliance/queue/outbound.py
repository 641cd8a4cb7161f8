"""One delivery attempt of one message to one remote domain.

The domain's mail hosts are tried in order (queue/mx.py), each of their addresses in turn, until
one session completes; that session carries every recipient of the message at that domain.
Connection trouble, a refused greeting and 4xx replies for the whole session move on to the next
host; a 5xx for the whole session (MAIL FROM, DATA) is final for every recipient.

The result is one Outcome per recipient: delivered, or failed and whether permanently -- the one
place where retry versus bounce is decided (the runner only applies it) -- and the route it took,
for the runner's one log line per attempt.  A host given up for the next one gets a line here.
"""

from dataclasses import dataclass

from twisted.internet import defer, error
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from mailbox_appliance.queue import smtp_client
from mailbox_appliance.queue.mx import DestinationError, MailHost, host_addresses, mail_hosts

CONNECT_TIMEOUT_SECONDS = 30
# A session whose message went through is kept open this long for the next message to the same
# server (Postfix's smtp_connection_cache_time_limit is 2 s), at most this many per server.
IDLE_SESSION_SECONDS = 5
MAX_IDLE_SESSIONS_PER_HOST = 20
# RFC 5321 §4.5.3.2 asks for 5 minutes for most replies and 10 for the end of DATA; one bound
# for all keeps the code simple and errs on the patient side.
REPLY_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Relay:
    """A smart host: every remote message goes through it (``[outbound] relay_host``)."""

    host: str
    port: int
    credentials: tuple      # (user, password), or None
    require_tls: bool
    tls_context: object     # verifies the relay's certificate and name


@dataclass(frozen=True)
class Outcome:
    address: str
    delivered: bool
    permanent: bool
    reply: str
    remote_mta: str = None
    route: str = None       # "via mx1.example.org [192.0.2.1] tls=TLSv1.3", when a session was held


class Outbound:
    log = Logger()

    def __init__(self, reactor, resolver, port, hostname, tls_context, relay=None,
                 reply_timeout=REPLY_TIMEOUT_SECONDS):
        self.reactor = reactor
        self.relay = relay
        self._idle = {}          # (address, port) -> [(Session, expiry timer)]
        self.resolver = resolver
        self.port = port
        self.hostname = hostname
        self.tls_context = tls_context
        self.reply_timeout = reply_timeout

    def destination(self, address):
        """Recipients with the same destination share one session: their domain, or the relay."""
        return self.relay.host if self.relay is not None else address.rpartition("@")[2].lower()

    @defer.inlineCallbacks
    def attempt(self, queue_id, domain, sender, recipients, message):
        """Try once to deliver *message* to *recipients* (all at *domain*); {address: Outcome}."""
        try:
            hosts = yield self._hosts(domain)
        except DestinationError as problem:
            return self._all(recipients, False, problem.permanent,
                             f"{'550' if problem.permanent else '451'} {problem}", None, "not tried")
        failure = None
        for host in hosts:
            for address in host.addresses:
                try:
                    results, tls_version = yield self._session(address, sender, recipients, message)
                except smtp_client.SessionFailure as problem:
                    route = f"via {host.name} [{address}]"
                    if problem.permanent:
                        return self._all(recipients, False, True, problem.text, host.name, route)
                    self.log.info("delivery {queue_id} to {recipients} {route}: {result}",
                                  queue_id=queue_id, recipients=",".join(f"<{r}>" for r in recipients),
                                  route=route, result=problem.text)
                    failure = problem
                    continue
                route = f"via {host.name} [{address}] tls={tls_version}"
                return {rcpt: Outcome(rcpt, 200 <= reply.code < 300, reply.permanent, reply.text, host.name, route)
                        for rcpt, reply in results.items()}
        return self._all(recipients, False, False, f"451 4.4.1 No mail host of {domain} answered: {failure.text}",
                         hosts[-1].name)

    @defer.inlineCallbacks
    def _hosts(self, domain):
        if self.relay is None:
            hosts = yield mail_hosts(self.resolver, domain)
            return hosts
        addresses = yield host_addresses(self.resolver, self.relay.host)
        if not addresses:
            raise DestinationError(False, "4.4.3", f"No address found for relay_host {self.relay.host}")
        return [MailHost(self.relay.host, addresses)]

    @defer.inlineCallbacks
    def _session(self, address, sender, recipients, message):
        """One transaction with the server at *address*: on an idle session left open by an
        earlier message if there is one, else on a new connection."""
        port = self.relay.port if self.relay else self.port
        key = (address, port)
        while self._idle.get(key):
            session, timer = self._idle[key].pop()
            if not self._idle[key]:
                del self._idle[key]
            timer.cancel()
            try:
                result = yield self._transact(key, session, sender, recipients, message)
                return result
            except smtp_client.SessionFailure:
                continue      # the server closed it meanwhile: not this host's failure, try anew
        session = yield self._connect(address, port)
        result = yield self._transact(key, session, sender, recipients, message)
        return result

    @defer.inlineCallbacks
    def _connect(self, address, port):
        endpoint_class = TCP6ClientEndpoint if ":" in address else TCP4ClientEndpoint
        endpoint = endpoint_class(self.reactor, address, port, timeout=CONNECT_TIMEOUT_SECONDS)
        reader = smtp_client.ReplyReader(self.reactor, self.reply_timeout)
        factory = Factory.forProtocol(lambda: reader)
        factory.noisy = False  # one log line per attempt is ours; "Starting factory" is noise
        try:
            yield endpoint.connect(factory)
        except Exception as problem:
            raise smtp_client.SessionFailure(_connect_problem(problem, address, port)) from None
        relay = self.relay
        try:
            if relay is None:
                session = yield smtp_client.open_session(reader, self.hostname, self.tls_context)
            else:
                session = yield smtp_client.open_session(reader, self.hostname, relay.tls_context,
                                                         require_tls=relay.require_tls, credentials=relay.credentials)
        except smtp_client.SessionFailure:
            reader.transport.abortConnection()      # a refused greeting or AUTH leaves it open
            raise
        return session

    @defer.inlineCallbacks
    def _transact(self, key, session, sender, recipients, message):
        keep = len(self._idle.get(key, ())) < MAX_IDLE_SESSIONS_PER_HOST
        results, reusable = yield smtp_client.transact(session, sender, recipients, message, then_quit=not keep)
        if reusable and session.reader.has_unread_replies():
            # A server that answered more than it was asked would answer the next message's
            # commands with stale replies: do not reuse it.
            smtp_client.close_session(session)
            reusable = False
        if reusable:
            timer = self.reactor.callLater(IDLE_SESSION_SECONDS, self._expire, key, session)
            self._idle.setdefault(key, []).append((session, timer))
        return results, session.tls_version

    def _expire(self, key, session):
        remaining = [(idle, timer) for idle, timer in self._idle.get(key, []) if idle is not session]
        if remaining:
            self._idle[key] = remaining
        else:
            self._idle.pop(key, None)
        smtp_client.close_session(session)

    @staticmethod
    def _all(recipients, delivered, permanent, reply, remote_mta, route=None):
        return {rcpt: Outcome(rcpt, delivered, permanent, reply, remote_mta, route) for rcpt in recipients}


def _connect_problem(problem, address, port):
    """Why a connection failed, as an admin reads it (never a Python class name)."""
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    if isinstance(problem, error.ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(problem, (error.TimeoutError, error.TCPTimedOutError)):
        return f"no answer from {where} within {CONNECT_TIMEOUT_SECONDS} s"
    if isinstance(problem, error.NoRouteError):
        return f"no route to {where}"
    return f"cannot connect to {where}: {str(problem).strip().rstrip('.') or 'connection failed'}"
