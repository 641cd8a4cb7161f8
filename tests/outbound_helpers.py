"""What the queue tests share: an appliance wired to the loopback internet of outbound_world, a
submission as alice, and the reports (bounces, delay notices) in her INBOX."""

import email
import email.policy

from conftest import Office

MESSAGE = (b"From: alice@example.test\r\nTo: friend@good.test\r\nSubject: quarterly report\r\n"
           b"Message-ID: <q3@example.test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n"
           b"Figures attached.\r\n")


def office_for(world, directory, extra=""):
    """An Office (not started) whose queue resolves and delivers through *world*."""
    return Office(str(directory), extra=extra, resolver=world.resolver, smtp_port=world.smtp_port)


def submit(office, recipients, message=MESSAGE, sender="alice@example.test"):
    client = office.smtp("submission", login="alice@example.test")
    client.sendmail(sender, recipients, message)
    client.quit()


def reports(office):
    """alice's INBOX, parsed: the bounces and delay notices sent to her."""
    return [email.message_from_bytes(stored, policy=email.policy.default) for stored in office.inbox("alice")]
