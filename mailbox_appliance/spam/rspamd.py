"""An rspamd over its HTTP protocol (https://rspamd.com/doc/developers/protocol.html): /checkv2
on the normal worker for a verdict, /learnspam and /learnham on the controller.

rspamd is a service beside us that may be down, slow or restarting: every request has a time
limit and its failure is an RspamdUnavailable, which the callers turn into "no verdict" (SMTP:
the message is delivered without one) or "later" (learning).
"""

import json
from dataclasses import dataclass
from io import BytesIO
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, _HTTP11ClientFactory, readBody
from twisted.web.http_headers import Headers

__all__ = ["Rspamd", "RspamdResult", "RspamdUnavailable", "controller_url"]

# The bound: a scan that takes longer is no verdict, the message goes on without one.
TIMEOUT = 10
# rspamd's default port of the controller, which learns (the normal worker, 11333, scans).
CONTROLLER_PORT = 11334


class _QuietFactory(_HTTP11ClientFactory):
    """The pool's connection factory without its "Starting factory" log line per connection
    (HTTPConnectionPool has no public way to say so; its _factory has been there since 12.1)."""

    noisy = False


class RspamdUnavailable(Exception):
    """rspamd did not answer in time, or not with a usable reply."""


@dataclass(frozen=True)
class RspamdResult:
    """rspamd's verdict: *action* ("no action", "greylist", "add header", "rewrite subject",
    "soft reject", "reject"), the score against the reject score, the symbols that fired
    (highest scores first) and its message for the SMTP client, if any."""

    action: str
    score: float
    required_score: float
    symbols: tuple
    smtp_message: str = ""


def controller_url(check_url):
    """The controller beside a normal worker: the same host on rspamd's controller port."""
    parts = urlsplit(check_url)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{CONTROLLER_PORT}"


class Rspamd:

    def __init__(self, reactor, check_url, controller=None, timeout=TIMEOUT):
        self.reactor = reactor
        self.check_url = check_url.rstrip("/")
        self.controller = (controller or controller_url(check_url)).rstrip("/")
        self.timeout = timeout
        pool = HTTPConnectionPool(reactor)
        pool.maxPersistentPerHost = 8
        pool._factory = _QuietFactory
        self.agent = Agent(reactor, pool=pool)

    def check(self, message, ip, helo, mail_from, recipients, user=None, queue_id=None):
        """A Deferred RspamdResult for *message* (bytes) with its envelope (RFC 5321 terms)."""
        headers = {b"IP": [ip], b"Helo": [helo or ""], b"From": [mail_from or ""], b"Rcpt": list(recipients),
                   b"Pass": ["all"]}
        if user:
            headers[b"User"] = [user]
        if queue_id:
            headers[b"Queue-Id"] = [queue_id]
        return self._post(self.check_url + "/checkv2", message, headers).addCallback(_result)

    def learn(self, kind, message):
        """Teach rspamd *message* as "spam" or "ham": a Deferred firing with True when learnt (or
        learnt before), False when rspamd will not learn it (too short, no classifier: trying
        again would not help); RspamdUnavailable when it should be tried again later."""
        return self._post(f"{self.controller}/learn{kind}", message, {}).addCallback(_learnt)

    def _post(self, url, body, headers):
        fields = Headers({name: [value.encode("utf-8") if isinstance(value, str) else value for value in values]
                          for name, values in headers.items()})
        requesting = self.agent.request(b"POST", url.encode("ascii"), fields, FileBodyProducer(BytesIO(body)))
        requesting.addCallback(lambda response: readBody(response).addCallback(lambda text: (response.code, text)))
        timer = self.reactor.callLater(self.timeout, requesting.cancel)

        def done(outcome):
            if timer.active():
                timer.cancel()
            return outcome

        def failed(failure):
            if failure.check(defer.CancelledError):
                raise RspamdUnavailable(f"no answer from {url} within {self.timeout}s")
            raise RspamdUnavailable(f"{url}: {failure.getErrorMessage()}")

        return requesting.addBoth(done).addErrback(failed)


def _result(reply):
    code, text = reply
    try:
        if code != 200:
            raise ValueError(f"HTTP {code}")
        answer = json.loads(text)
        symbols = sorted(answer.get("symbols", {}).values(), key=lambda symbol: -float(symbol.get("score", 0)))
        return RspamdResult(
            action=str(answer["action"]), score=float(answer["score"]),
            required_score=float(answer.get("required_score", 0)),
            symbols=tuple(str(symbol["name"]) for symbol in symbols),
            smtp_message=str(answer.get("messages", {}).get("smtp_message", "")))
    except (ValueError, KeyError, TypeError, AttributeError) as problem:
        raise RspamdUnavailable(f"unusable reply from rspamd: {problem}") from None


def _learnt(reply):
    code, _text = reply
    if code >= 500:
        raise RspamdUnavailable(f"HTTP {code} from rspamd's controller")
    # 200 learnt, 208 learnt before; 204 and 4xx: it will not learn this one (too few tokens,
    # no Bayes classifier, refused): asking again would get the same answer.
    return code in (200, 208)
