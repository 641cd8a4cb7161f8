"""Delivery (IDelivery): one accepted message to its local recipients' Maildirs and its remote
recipients' queue entry, durably, before anyone is told it is stored.

Everything for one message is one group-commit batch (group_commit.py): the Maildir files and the
spool entry are all durable before the Deferred fires, and the SMTP server answers 250 only then.
The queue hands its reports (bounces, delay notices) to the same IDelivery, which it is given at
construction; it hears of new entries through the spool (ISpool.watch), so this module never
knows the queue runner.
"""

import os

from twisted.logger import Logger
from zope.interface import implementer

from mailbox_appliance.atomic import unlink_quietly
from mailbox_appliance.interfaces import ICommitJob, IDelivery
from mailbox_appliance.maildir import new_mail
from mailbox_appliance.maildir.layout import ensure_user_maildir, folder_path, make_maildir
from mailbox_appliance.message import return_path

# What the queue records as the origin of its own reports; the queue signs these with DKIM.
REPORT_ORIGIN = {"client": "localhost", "helo": None, "user": None, "session": "queue"}


@implementer(ICommitJob)
class MaildirJob:
    """One local copy, as a group-commit job: tmp/ file, then new/ (cur/ with flag *letters*),
    then that directory is fsynced."""

    def __init__(self, maildir, data, hostname, crlf_only=False, letters=""):
        self.maildir, self.data, self.hostname, self.crlf_only = maildir, data, hostname, crlf_only
        self.letters = letters
        self.tmp = None
        self.published = False

    def write(self):
        self.tmp = new_mail.write_tmp(self.maildir, self.data, self.hostname, self.crlf_only, self.letters)

    def publish(self):
        new_mail.publish(self.tmp)
        self.published = True

    def directories(self):
        return [os.path.join(self.maildir, "cur" if self.letters else "new")]

    def settle(self):
        """Nothing waits for the fsync of new/."""

    def discard(self):
        if self.published:
            unlink_quietly(self.tmp.new_path)
        elif self.tmp is not None:
            new_mail.discard(self.tmp)


@implementer(IDelivery)
class Delivery:
    log = Logger()

    def __init__(self, data_dir, hostname, accounts, spool, committer, quotas, filters=None):
        """*accounts* (IAccounts) resolves report recipients; *spool* (ISpool) takes remote
        recipients; *committer* (group_commit.GroupCommitter) makes every write durable;
        *quotas* (IQuotas) is charged for each local copy (the SMTP policy checked it fits,
        in this same reactor turn; a report is never refused); *filters*
        (sieve.filtering.SieveFilter) says where each local copy goes, and what its user's
        script sends."""
        self.data_dir = data_dir
        self.hostname = hostname
        self.accounts = accounts
        self.spool = spool
        self.committer = committer
        self.quotas = quotas
        self.filters = filters
        self._maildirs = {}

    def new_id(self):
        return self.spool.new_id()

    def deliver(self, queue_id, sender, recipients, message, received_from, crlf_only=False):
        local, remote = {}, {}                  # mailbox -> (address, folder); remote addresses
        for address, resolution in recipients:
            for mailbox in resolution.local:
                local.setdefault(mailbox, (address, resolution.folder))
            remote.update(dict.fromkeys(resolution.remote))
        jobs, staged, charged = [], [], {}

        def store(mailbox, folder, data, letters=""):
            jobs.append(MaildirJob(self._maildir(mailbox, folder), data, self.hostname, crlf_only, letters))
            charged[mailbox] = charged.get(mailbox, 0) + len(data)
            self.quotas.charge(mailbox, len(data))

        if local:
            # RFC 5321 §4.4: the final delivery adds Return-Path with the envelope sender.
            local_copy = return_path(sender) + message
            for mailbox, (address, folder) in local.items():
                if self.filters is None:
                    store(mailbox, folder, local_copy)
                    continue
                # The script sees (and forwards) the message as it came, without our Return-Path.
                decision = self.filters.decide(queue_id, mailbox, sender, address, message, folder)
                for store_folder, letters in decision.stores:
                    store(mailbox, store_folder, local_copy, letters)
                for outgoing in decision.outgoing:
                    self._send(outgoing, mailbox, store, staged)
        if remote:
            staged.append(self.spool.stage(sender, list(remote), message, received_from=received_from,
                                           entry_id=queue_id))
        result = self.committer.commit(jobs + staged)

        def not_stored(failure):
            for mailbox, size in charged.items():
                self.quotas.charge(mailbox, -size)
            return failure

        def stored(_):
            # No log line here: the caller's one line per transaction names the queue id.
            for entry in staged:
                self.spool.announce(entry.envelope)
        return result.addCallbacks(stored, not_stored)

    def _send(self, outgoing, mailbox, store, staged):
        """What *mailbox*'s Sieve script sends, in the same commit as the message: local
        recipients' copies straight into their default folder (their own scripts do not run on
        it, so two scripts cannot bounce mail between them), a queue entry for the rest.  The
        queue signs it with the user's DKIM key when its From: is theirs (a vacation reply)."""
        remote = []
        for recipient in outgoing.recipients:
            resolution = self.accounts.resolve(recipient)
            if resolution is None:
                remote.append(recipient)
                continue
            for target in resolution.local:
                store(target, resolution.folder, return_path(outgoing.sender) + outgoing.message)
            remote += resolution.remote
        if remote:
            origin = {"client": "localhost", "helo": None, "user": mailbox, "session": "sieve"}
            staged.append(self.spool.stage(outgoing.sender, remote, outgoing.message, received_from=origin))

    def deliver_report(self, recipient, message):
        resolution = self.accounts.resolve(recipient)
        if resolution is None:
            self.log.warn("report to <{recipient}> dropped: no such local address", recipient=recipient)
            return None
        queue_id = self.new_id()
        result = self.deliver(queue_id, "", [(recipient, resolution)], message, REPORT_ORIGIN)

        def stored(_):
            self.log.info("report {queue_id} to <{recipient}> stored", queue_id=queue_id, recipient=recipient)
            return queue_id
        return result.addCallback(stored)

    def _maildir(self, mailbox, folder=""):
        """The Maildir (or Maildir++ *folder* of it, made if the user removed it) to store into."""
        path = self._maildirs.get((mailbox, folder))
        if path is None:
            path = ensure_user_maildir(self.data_dir, mailbox)
            if folder:
                path = folder_path(path, folder)
                if not os.path.isdir(os.path.join(path, "new")):
                    make_maildir(path, folder=True)
            self._maildirs[(mailbox, folder)] = path
        return path
