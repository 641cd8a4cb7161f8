"""/metrics on the metrics listener, parsed with prometheus_client's own parser after real SMTP,
IMAP and queue traffic (issue 18)."""

import imaplib
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import PASSWORD, Office
from imapclient import connect, message


@pytest.fixture
def office(tmp_path):
    running = Office(str(tmp_path)).start()
    yield running
    running.appliance.stop()


def scrape(office):
    """{(sample name, labels as a sorted tuple): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{office.ports['metrics']}/metrics", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode("utf-8")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_counters_follow_the_traffic(office):
    before = scrape(office)
    assert before[("mailbox_appliance_queue_messages", ())] == 0
    client = office.smtp("smtp")
    client.sendmail("a@remote.test", ["alice@example.test", "sales@example.test"], message("one"))
    client.quit()
    submission = office.smtp("submission", login="alice@example.test")
    submission.sendmail("alice@example.test", ["friend@remote.test"], message("two", sender="alice@example.test"))
    submission.quit()
    imap = connect(office, "imaps")
    with pytest.raises(imaplib.IMAP4.error):
        imap.login("alice@example.test", "wrong password")
    imap.login("alice@example.test", PASSWORD)
    office.appliance.wait_for_log(r"imap session \S+ from 127\.0\.0\.1: logged in as alice@example\.test")
    after = scrape(office)
    assert after[("mailbox_appliance_smtp_transactions_total", (("result", "2xx"), ("role", "inbound")))] == 1
    assert after[("mailbox_appliance_smtp_transactions_total", (("result", "2xx"), ("role", "submission")))] == 1
    assert after[("mailbox_appliance_local_copies_total", ())] == 2        # alice, and bob through sales@
    assert after[("mailbox_appliance_queued_messages_total", ())] == 1
    assert after[("mailbox_appliance_queue_messages", ())] == 1
    assert after[("mailbox_appliance_queue_oldest_age_seconds", ())] >= 0
    assert after[("mailbox_appliance_login_failures_total", (("protocol", "imap"),))] == 1
    assert after[("mailbox_appliance_logins_total", (("protocol", "imap"),))] >= 1
    assert after[("mailbox_appliance_sessions_logged_in", (("protocol", "imap"),))] == 1
    # One per accepted message, and the queue's record of its attempt.
    batches = after[("mailbox_appliance_commit_batches_total", ())]
    assert batches >= 2 and 1 <= after[("mailbox_appliance_commit_rounds_total", ())] <= batches
    assert after[("mailbox_appliance_commit_seconds_total", ())] > 0
    imap.logout()


def test_only_metrics_is_served(office):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{office.ports['metrics']}/other", timeout=30)
    assert refused.value.code == 404
