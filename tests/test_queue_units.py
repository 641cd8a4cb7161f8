"""Pure logic of the queue: the retry schedule, dot-stuffing, DSN status codes, MX ordering."""

import random

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.names import dns, error

from mailbox_appliance.queue import dsn
from mailbox_appliance.queue.mx import CachingResolver, DestinationError, mail_hosts
from mailbox_appliance.queue.schedule import Schedule
from mailbox_appliance.message import dot_stuff


def test_schedule_backs_off_then_repeats_its_last_delay():
    schedule = Schedule((300, 600, 1200), max_lifetime=5 * 86400, warn_after=4 * 3600)
    assert [schedule.next_attempt(attempts, 1000) - 1000 for attempts in (0, 1, 2, 3, 4, 9)] == \
        [0, 300, 600, 1200, 1200, 1200]
    assert not schedule.expired(0, 5 * 86400 - 1) and schedule.expired(0, 5 * 86400)
    assert schedule.should_warn(0, False, 4 * 3600) and not schedule.should_warn(0, True, 9 * 3600)
    assert not schedule.should_warn(0, False, 4 * 3600 - 1)


@pytest.mark.parametrize("message, wire", [
    (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
    (b".a\r\n", b"..a\r\n.\r\n"),
    (b"x\r\n.\r\n..\r\n", b"x\r\n..\r\n...\r\n.\r\n"),
    (b"no final line end", b"no final line end\r\n.\r\n"),
    (b"", b".\r\n"),
])
def test_dot_stuffing(message, wire):
    assert dot_stuff(message) == wire


@pytest.mark.parametrize("reply, permanent, status", [
    ("550 5.1.1 user unknown", True, "5.1.1"),
    ("451-4.7.1 greylisted", False, "4.7.1"),
    ("554 no enhanced code", True, "5.0.0"),
    (None, False, "4.0.0"),
])
def test_status_of(reply, permanent, status):
    assert dsn.status_of(reply, permanent) == status


class _Zone:
    """A resolver answering from a dict, as twisted.names' IResolver does."""

    def __init__(self, mx=None, a=None, fail=None):
        self.mx, self.a, self.fail = mx or {}, a or {}, fail

    def lookupMailExchange(self, name):
        if self.fail:
            return defer.fail(self.fail)
        records = [dns.RRHeader(name, dns.MX, payload=dns.Record_MX(preference, exchange))
                   for preference, exchange in self.mx.get(name, [])]
        return defer.succeed((records, [], []))

    def lookupAddress(self, name):
        return defer.succeed(([dns.RRHeader(name, dns.A, payload=dns.Record_A(address))
                               for address in self.a.get(name, [])], [], []))

    def lookupIPV6Address(self, name):
        return defer.succeed(([], [], []))


def _hosts(resolver, domain, rng=random):
    outcome = []
    mail_hosts(resolver, domain, rng).addBoth(outcome.append)
    return outcome[0]


def test_mx_order_is_by_preference_and_shuffled_among_equals():
    zone = _Zone(mx={"d.test": [(20, "c.d.test"), (10, "a.d.test"), (10, "b.d.test")]},
                 a={"a.d.test": ["127.0.0.1"], "b.d.test": ["127.0.0.2"], "c.d.test": ["127.0.0.3"]})
    seen = {tuple(host.name for host in _hosts(zone, "d.test", random.Random(seed))) for seed in range(20)}
    assert seen == {("a.d.test", "b.d.test", "c.d.test"), ("b.d.test", "a.d.test", "c.d.test")}


def test_no_mx_uses_the_domain_and_null_mx_is_permanent():
    assert [host.addresses for host in _hosts(_Zone(a={"d.test": ["127.0.0.9"]}), "d.test")] == [("127.0.0.9",)]
    null = _hosts(_Zone(mx={"d.test": [(0, "")]}), "d.test")
    assert null.check(DestinationError) and null.value.permanent and null.value.status == "5.1.10"


@pytest.mark.parametrize("problem, permanent", [(error.DNSNameError(), True), (error.DNSServerError(), False),
                                                (error.DNSQueryTimeoutError(None), False)])
def test_dns_failures(problem, permanent):
    outcome = _hosts(_Zone(fail=problem), "d.test")
    assert outcome.check(DestinationError) and outcome.value.permanent is permanent


def test_address_literals():
    assert _hosts(_Zone(), "[127.0.0.7]")[0].addresses == ("127.0.0.7",)
    assert _hosts(_Zone(), "[IPv6:::1]")[0].addresses == ("::1",)
    assert _hosts(_Zone(), "[not-an-ip]").value.permanent


def test_an_address_lookup_that_fails_is_temporary_not_a_bounce():
    class Broken(_Zone):
        def lookupAddress(self, name):
            return defer.fail(error.DNSServerError())

    outcome = _hosts(Broken(), "d.test")
    assert outcome.check(DestinationError) and not outcome.value.permanent


class _CountingUpstream:
    """A DNS server's answers without the network: one TXT record, TTL 60, counted."""

    def __init__(self):
        self.asked = 0

    def query(self, query, timeout=None):
        self.asked += 1
        record = dns.RRHeader(query.name.name, dns.TXT, ttl=60, payload=dns.Record_TXT(b"v=spf1 -all", ttl=60))
        return defer.succeed(([record], [], []))


def test_answers_are_cached_for_their_ttl():
    clock, upstream = Clock(), _CountingUpstream()
    resolver = CachingResolver(upstream, clock)
    answers = []
    for _ in range(3):
        resolver.lookupText("example.test").addCallback(answers.append)
    assert upstream.asked == 1 and len(answers) == 3
    assert [record.payload.data for record in answers[2][0]] == [[b"v=spf1 -all"]]
    resolver.lookupText("other.test")
    assert upstream.asked == 2
    clock.advance(61)
    resolver.lookupText("example.test")
    assert upstream.asked == 3
