import atexit
import functools
import os
import re
import smtplib
import ssl
import tempfile

import pytest

from appliance import Appliance, write_config
from mailbox_appliance.accounts import passwords
from mailbox_appliance.maildir.names import delivery_order

PASSWORD = "correct horse"
# The field smtp/sender_auth.py puts on top of mail from port 25 (folded lines included).
OUR_VERDICT = re.compile(rb"Authentication-Results: mail\.example\.test;[^\r]*\r\n(?:[ \t][^\r]*\r\n)*")
USERS = ("alice@example.test", "bob@example.test")
ALIASES = (
    "sales@example.test: alice@example.test, bob@example.test",
    "partners@example.test: alice@example.test, someone@remote.test",
    "@catchall.test: bob@example.test",
)


@functools.cache
def failing_dns():
    """host:port of a DNS server answering SERVFAIL to everything, one for the whole run: remote
    mail stays queued and port 25's sender checks are temperrors, at once (a server that did not
    answer would make every lookup wait for its timeout)."""
    from outbound_world import start_dns

    process, address = start_dns(tempfile.mkdtemp(prefix="dns-"), {"servfail_all": True})
    atexit.register(process.kill)
    return address


@functools.cache
def _password_hash():
    return passwords.hash_password(PASSWORD)


def unverified_tls():
    """A client context for the appliance's self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Office:
    """A configured appliance directory: users, aliases, and where their mail lands."""

    def __init__(self, directory, extra="", resolver=None, smtp_port=9):
        """*resolver* and *smtp_port* are where the queue looks up and delivers remote mail; by
        default a loopback port where nothing answers, so remote mail stays queued."""
        self.directory = directory
        self.data_dir = os.path.join(directory, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        with open(os.path.join(self.data_dir, "users"), "w") as handle:
            handle.writelines(f"{user}:{_password_hash()}\n" for user in USERS)
        with open(os.path.join(self.data_dir, "aliases"), "w") as handle:
            handle.writelines(line + "\n" for line in ALIASES)
        outbound = f"[outbound]\nresolver = {resolver or failing_dns()}\nsmtp_port = {smtp_port}\n"
        self.config_path = write_config(directory, extra=outbound + extra, domains="example.test, catchall.test")
        self.appliance = None

    def start(self, env=None):
        self.appliance = Appliance(self.config_path, env=env)
        return self

    @property
    def ports(self):
        return self.appliance.ports

    def inbox(self, user="alice", folder="", verdict=False):
        """Every message file in the user's INBOX (or folder) new/ and cur/, as bytes, each
        directory's in delivery order (the order their UIDs follow); without the
        Authentication-Results field port 25 adds (tests of sender checks ask for *verdict*)."""
        base = os.path.join(self.data_dir, "mail", "example.test", user, folder)
        found = []
        for sub in ("new", "cur"):
            directory = os.path.join(base, sub)
            if os.path.isdir(directory):
                for name in sorted(os.listdir(directory), key=delivery_order):
                    with open(os.path.join(directory, name), "rb") as handle:
                        stored = handle.read()
                    found.append(stored if verdict else OUR_VERDICT.sub(b"", stored, count=1))
        return found

    def queued(self):
        """The spool's committed entries."""
        from mailbox_appliance.queue.spool import Spool

        return list(Spool(os.path.join(self.data_dir, "queue")).load(repair=False))

    def smtp(self, listener="smtp", login=None):
        """An smtplib client, EHLO'd; STARTTLS on 25/587 when *login* is given; logged in."""
        if listener == "submissions":
            client = smtplib.SMTP_SSL("127.0.0.1", self.ports[listener], context=unverified_tls(), timeout=30)
        else:
            client = smtplib.SMTP("127.0.0.1", self.ports[listener], timeout=30)
        client.ehlo("client.example.test")
        if login is not None:
            if listener != "submissions":
                client.starttls(context=unverified_tls())
                client.ehlo("client.example.test")
            client.login(login, PASSWORD)
        return client


@pytest.fixture
def office(tmp_path):
    running = Office(str(tmp_path)).start()
    yield running
    running.appliance.stop()


@pytest.fixture
def session(office):
    """alice's IMAP session over implicit TLS, logged in (imapclient.Session)."""
    from imapclient import Session

    running = Session(office)
    yield running
    running.close()


@pytest.fixture
def config_path(tmp_path):
    return write_config(str(tmp_path))


@pytest.fixture
def appliance(config_path):
    running = Appliance(config_path)
    yield running
    running.stop()


@pytest.fixture
def world(tmp_path):
    """A DNS server and SMTP peers on loopback (outbound_world.py), for the queue's tests."""
    from outbound_world import World

    world = World(str(tmp_path))
    yield world
    world.stop()


@pytest.fixture
def connected_office(tmp_path, world):
    """A running appliance whose queue delivers into *world*."""
    from outbound_helpers import office_for

    office = office_for(world, tmp_path).start()
    yield office
    office.appliance.stop()
