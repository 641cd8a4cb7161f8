"""Prometheus metrics at ``/metrics`` on ``[listen] metrics`` (loopback 9110 by default).

Counters are counted from the appliance's own structured log events (the one line per SMTP
transaction, per queue attempt, per login), so no part of the code is instrumented twice and
the numbers always agree with the log an admin reads; gauges (queue, logged-in sessions) are
read when Prometheus scrapes.  Uses python3-prometheus-client, as Debian 12 packages it.
"""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from twisted.application.service import Service
from twisted.logger import globalLogPublisher
from twisted.web.resource import Resource

NAMESPACE = "mailbox_appliance"


class Metrics:
    """The counters, and the log observer that counts them."""

    def __init__(self, registry):
        def counter(name, text, labels=()):
            return Counter(name, text, labels, namespace=NAMESPACE, registry=registry)

        self.smtp_transactions = counter("smtp_transactions", "SMTP transactions by listener and result "
                                         "(2xx, 4xx, 5xx, or how the session ended)", ("role", "result"))
        self.local_copies = counter("local_copies", "Copies of accepted messages stored in local mailboxes")
        self.queued = counter("queued_messages", "Accepted messages queued for remote recipients")
        self.attempts = counter("delivery_attempts", "Outbound delivery attempts by outcome "
                                "(done: nothing left pending; deferred: some retried later)", ("outcome",))
        self.recipients = counter("remote_recipients", "Remote recipients by final state", ("state",))
        self.reports = counter("reports", "Reports sent to senders (bounces, delay warnings)", ("action",))
        self.logins = counter("logins", "Successful logins by protocol", ("protocol",))
        self.login_failures = counter("login_failures", "Failed logins by protocol", ("protocol",))
        self.lockouts = counter("login_lockouts", "Client addresses locked out after failed logins")
        self.junk = counter("filed_into_junk", "Messages from outside port 25's verdicts filed into Junk")

    def __call__(self, event):
        """A twisted.logger observer: every event passes here; most are not counted."""
        text = event.get("log_format")
        handler = _BY_FORMAT.get(text)
        if handler is not None:
            handler(self, event)
        elif text == "{transaction}" and "result" in event:
            self._transaction(event)

    def _transaction(self, event):
        result = str(event["result"])
        head = result.split()[0] if result else "unknown"
        if head == "refused":
            head = result.split()[1] if len(result.split()) > 1 else head
        kind = f"{head[0]}xx" if head[:3].isdigit() else head
        self.smtp_transactions.labels(event.get("role", "unknown"), kind).inc()
        if " into Junk" in result:
            self.junk.inc()
        if result.startswith("250"):
            mailboxes = event.get("mailboxes") or "-"
            if mailboxes != "-":
                self.local_copies.inc(mailboxes.count(",") + 1)
            if (event.get("remote") or "-") != "-":
                self.queued.inc()


def _done(metrics, event):
    metrics.attempts.labels("done").inc()
    metrics.recipients.labels("delivered").inc(event.get("delivered", 0))
    metrics.recipients.labels("failed").inc(event.get("failed", 0))


# The log lines counted, by their format (the strings the parts log with).
_BY_FORMAT = {
    "queue {queue_id}: {what}; done, {delivered} delivered, {failed} failed": _done,
    "queue {queue_id}: {what}; {pending} pending, next attempt in {delay:.0f}s":
        lambda metrics, event: metrics.attempts.labels("deferred").inc(),
    "queue {queue_id}: {action} report to <{sender}> for {recipients}":
        lambda metrics, event: metrics.reports.labels(str(event.get("action", "report"))).inc(),
    "{protocol} session {session} from {client}: logged in as {user}":
        lambda metrics, event: metrics.logins.labels(event.get("protocol", "unknown")).inc(),
    "{protocol} session {session} from {client}: login failed for {user}":
        lambda metrics, event: metrics.login_failures.labels(event.get("protocol", "unknown")).inc(),
    "login lockout of {client} for {seconds}s after {count} failed logins":
        lambda metrics, event: metrics.lockouts.inc(),
}


class CurrentState:
    """Read at each scrape: the queue, the logged-in sessions, the group commit's totals."""

    def __init__(self, spool, gate, committer, clock):
        self.spool, self.gate, self.committer, self.clock = spool, gate, committer, clock

    def collect(self):
        for name, text, value in (
                ("commit_rounds", "Rounds of durable writes (one fsync of each directory per round)",
                 self.committer.rounds),
                ("commit_batches", "Messages (batches of files) made durable; per round: the group commit's gain",
                 self.committer.batches),
                ("commit_seconds", "Seconds spent writing and fsyncing", self.committer.seconds)):
            yield CounterMetricFamily(f"{NAMESPACE}_{name}", text, value=value)
        ids = self.spool.committed_ids()
        yield GaugeMetricFamily(f"{NAMESPACE}_queue_messages", "Messages in the outbound queue", value=len(ids))
        age = 0.0
        if ids:
            try:
                age = max(0.0, self.clock.seconds() - self.spool.read_envelope(ids[0]).arrival)
            except (KeyError, ValueError, OSError):
                pass
        yield GaugeMetricFamily(f"{NAMESPACE}_queue_oldest_age_seconds",
                                "Age of the oldest queued message (0 when empty)", value=age)
        sessions = GaugeMetricFamily(f"{NAMESPACE}_sessions_logged_in", "Logged-in sessions by protocol",
                                     labels=["protocol"])
        counts = {}
        for session in self.gate.sessions:
            counts[session.protocol_name] = counts.get(session.protocol_name, 0) + 1
        for protocol in ("imap", "pop3", "smtp", "managesieve"):
            sessions.add_metric([protocol], counts.get(protocol, 0))
        yield sessions


class MetricsService(Service):
    """Counts from the log while the appliance runs."""

    def __init__(self, metrics):
        self.metrics = metrics

    def startService(self):
        super().startService()
        globalLogPublisher.addObserver(self.metrics)

    def stopService(self):
        globalLogPublisher.removeObserver(self.metrics)
        return super().stopService()


def build(spool, gate, committer, clock):
    """(MetricsService, the resource to serve): a registry of our own, not the process-wide one."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    registry.register(CurrentState(spool, gate, committer, clock))
    root = Resource()
    root.putChild(b"metrics", MetricsPage(registry))
    return MetricsService(metrics), root


class MetricsPage(Resource):
    """The text exposition format, made in the reactor thread (prometheus_client.twisted's
    resource runs in a thread, where the gauges would read the queue and the sessions while the
    reactor changes them; it also imports the reactor, before twistd has installed its own)."""

    isLeaf = True

    def __init__(self, registry):
        super().__init__()
        self.registry = registry

    def render_GET(self, request):
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self.registry)
