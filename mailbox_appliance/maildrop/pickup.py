"""The pickup: delivers what local programs dropped into the maildrop directory (entry.py).

Once a second (and at start, for what was dropped while the appliance was stopped) the directory
is listed and each complete entry delivered, oldest first, one at a time: its recipients resolved
as SMTP's would be (aliases, quotas), bare names given the primary domain (headers.py), the
message stored durably (IDelivery), and only then the file removed.  A crash in between delivers
it again at the next start; nothing is lost.  Recipients that do not exist, or whose mailbox is
full, are reported to the sender (RFC 3464), as a local program has no SMTP reply to read.

One log line per message, with its queue id and the local user who sent it.
"""

import os
import pwd
import time

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from mailbox_appliance.maildrop import entry as maildrop_entry
from mailbox_appliance.maildrop import headers
from mailbox_appliance.message import to_crlf
from mailbox_appliance.smtp.headers import add_missing_date_and_message_id

SCAN_INTERVAL_SECONDS = 1
# After a delivery fails (a full disk): wait this long before the next try.
RETRY_AFTER_SECONDS = 60
# An entry still being written this long after it was begun was abandoned (its writer killed).
ABANDONED_AFTER_SECONDS = 86400

LINE = ("pickup {queue_id} from local user {login} (uid {uid}): from=<{sender}> to={recipients} size={size} "
        "result={result} mailboxes={mailboxes} remote={remote}")


def _user(uid):
    """(login name, full name) of local user *uid*; the name stands in for one unknown here."""
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return f"uid{uid}", None
    return entry.pw_name, entry.pw_gecos.split(",")[0] or None


def _addresses(addresses):
    return ",".join(f"<{address}>" for address in addresses) or "-"


class Pickup(service.Service):
    log = Logger()

    def __init__(self, directory, accounts, policy, delivery, hostname, max_message_size, reactor):
        """*accounts* (IAccounts) resolves recipients; *policy* (smtp.policy.Policy) leaves out
        full mailboxes and writes reports; *delivery* (IDelivery) stores."""
        self.directory = directory
        self.accounts = accounts
        self.policy = policy
        self.delivery = delivery
        self.hostname = hostname
        self.max_message_size = max_message_size
        self.reactor = reactor
        self._loop = None
        self._scanning = None
        self._resume_at = 0

    def startService(self):
        super().startService()
        self._loop = task.LoopingCall(self.scan)
        self._loop.clock = self.reactor
        self._loop.start(SCAN_INTERVAL_SECONDS, now=True).addErrback(
            lambda failure: self.log.failure("pickup stopped", failure))

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        # An entry being delivered is finished first: its file is removed only once stored.
        return self._scanning

    def scan(self):
        """Deliver every complete entry now there; a Deferred firing when done (None when a scan
        is already running, or after a failure until RETRY_AFTER_SECONDS have passed)."""
        if self._scanning is not None or self.reactor.seconds() < self._resume_at:
            return None
        try:
            names = sorted(entry.name for entry in os.scandir(self.directory))
        except OSError as error:
            self.log.error("pickup: cannot list {directory}: {error}", directory=self.directory, error=error.strerror)
            self._resume_at = self.reactor.seconds() + RETRY_AFTER_SECONDS
            return None
        self._remove_abandoned(name for name in names if not maildrop_entry.is_complete(name))
        complete = [name for name in names if maildrop_entry.is_complete(name)]
        if not complete:
            return None
        self._scanning = self._take_all(complete)
        self._scanning.addBoth(self._scanned)
        return self._scanning

    def _scanned(self, result):
        self._scanning = None
        return result

    @defer.inlineCallbacks
    def _take_all(self, names):
        for name in names:
            if not self.running:
                return
            try:
                yield self._take(os.path.join(self.directory, name))
            except Exception:
                self.log.failure("pickup: {name} not delivered; tried again in {seconds} s",
                                 name=name, seconds=RETRY_AFTER_SECONDS)
                self._resume_at = self.reactor.seconds() + RETRY_AFTER_SECONDS
                return

    @defer.inlineCallbacks
    def _take(self, path):
        try:
            entry = maildrop_entry.read(path, self.max_message_size)
        except FileNotFoundError:
            return
        except (maildrop_entry.Refused, PermissionError) as refusal:
            self._refuse(path, refusal)
            return
        login, full_name = _user(entry.uid)
        domain = self.accounts.primary_domain
        sender = self._sender(entry.sender, login, domain)
        recipients = list(dict.fromkeys(headers.qualify(address, domain) for address in entry.recipients))
        queue_id = self.delivery.new_id()
        message = self._prepared(entry, sender or f"{login}@{domain}", entry.full_name or full_name, queue_id,
                                 recipients)
        resolved, unknown = [], []
        for address in recipients:
            resolution = self.accounts.resolve(address)
            if resolution is None:
                unknown.append(address)
            else:
                resolved.append((address, resolution))
        resolved, full = self.policy.without_full_mailboxes(resolved, sender, len(message))
        if resolved:
            origin = {"client": "local", "helo": None, "user": login, "session": "pickup"}
            yield self.delivery.deliver(queue_id, sender, resolved, message, origin, crlf_only=True)
        os.unlink(path)
        result = "delivered" if resolved else "not delivered"
        if unknown or full:
            result += f" (unknown {_addresses(unknown)}, full {_addresses(full)})"
        self.log.info(LINE, queue_id=queue_id, login=login, uid=entry.uid, sender=sender,
                      recipients=_addresses(recipients), size=len(message), result=result,
                      mailboxes=_addresses(dict.fromkeys(m for _, resolution in resolved for m in resolution.local)),
                      remote=_addresses(dict.fromkeys(a for _, resolution in resolved for a in resolution.remote)))
        if (unknown or full) and sender:
            yield self._report(sender, queue_id, message, full, unknown)

    def _report(self, sender, queue_id, message, full, unknown):
        """The sender hears which recipients did not get the message (the message is stored, and
        its file gone: a report that cannot be stored is logged, never retried as a second copy)."""
        report = self.policy.failure_report(sender, queue_id, message, full, unknown)
        return defer.maybeDeferred(self.delivery.deliver_report, sender, report).addErrback(
            lambda failure: self.log.failure("pickup: report on {queue_id} to <{sender}> not stored", failure,
                                             queue_id=queue_id, sender=sender))

    @staticmethod
    def _sender(given, login, domain):
        """The envelope sender: -f's address ("" for <>), else the local user's."""
        if given is None:
            return f"{login}@{domain}"
        return headers.qualify(given, domain) if given else ""

    def _prepared(self, entry, author, full_name, queue_id, recipients):
        """The message as stored: our Received field on top; bare names qualified; From:, Date:
        and Message-ID: added when missing."""
        domain = self.accounts.primary_domain
        message = headers.qualified_fields(to_crlf(entry.message), domain)
        message = headers.with_from(message, author, full_name)
        message = add_missing_date_and_message_id(message, self.hostname)
        return headers.local_received(self.hostname, entry.uid, queue_id, recipients) + message

    def _refuse(self, path, reason):
        """An entry not made by the sendmail command (or unreadable): logged with its owner, and
        removed, so it is neither delivered nor read again."""
        try:
            owner = os.lstat(path).st_uid
            os.unlink(path)
        except OSError:
            return
        reason = reason.strerror if isinstance(reason, OSError) else str(reason)
        self.log.warn("pickup: {name} from uid {uid} removed, not delivered: {reason}",
                      name=os.path.basename(path), uid=owner, reason=reason)

    def _remove_abandoned(self, names):
        limit = time.time() - ABANDONED_AFTER_SECONDS
        for name in names:
            path = os.path.join(self.directory, name)
            try:
                if os.lstat(path).st_mtime < limit:
                    os.unlink(path)
                    self.log.warn("pickup: {name}, begun over a day ago and never finished, removed", name=name)
            except OSError:
                continue
