"""Routes one accepted message: local recipients into their Maildirs, remote ones into the queue.

Everything for one message is one group-commit batch (group_commit.py): the Maildir files and the
spool entry are all durable before the Deferred fires, and the SMTP server answers 250 only then.
The queue never imports this module; service.py hands the queue a deliver function for bounces.
"""

import os

from zope.interface import implementer

from mailbox_appliance.atomic import unlink_quietly
from mailbox_appliance.group_commit import ICommitJob
from mailbox_appliance.maildir import delivery as maildir_delivery
from mailbox_appliance.maildir.layout import ensure_user_maildir
from mailbox_appliance.smtp.headers import return_path


@implementer(ICommitJob)
class MaildirJob:
    """One local copy, as a group-commit job: tmp/ file, then new/, then new/ is fsynced."""

    def __init__(self, maildir, data, hostname, crlf_only=False):
        self.maildir, self.data, self.hostname, self.crlf_only = maildir, data, hostname, crlf_only
        self.tmp = None
        self.published = False

    def write(self):
        self.tmp = maildir_delivery.write_tmp(self.maildir, self.data, self.hostname, self.crlf_only)

    def publish(self):
        maildir_delivery.publish(self.tmp)
        self.published = True

    def directories(self):
        return [os.path.join(self.maildir, "new")]

    def settle(self):
        """Nothing waits for the fsync of new/."""

    def discard(self):
        if self.published:
            unlink_quietly(self.tmp.new_path)
        elif self.tmp is not None:
            maildir_delivery.discard(self.tmp)


class Delivery:
    def __init__(self, data_dir, hostname, spool, committer):
        self.data_dir = data_dir
        self.hostname = hostname
        self.spool = spool
        self.committer = committer
        # Called with each new spool entry's envelope once it is durable (the queue runner's
        # enqueued); set by service.py, which builds the runner after this.
        self.on_queued = lambda envelope: None
        self._maildirs = {}

    def new_id(self):
        return self.spool.new_id()

    def deliver(self, queue_id, sender, recipients, message, received_from, crlf_only=False):
        """Store *message* for every (address, Resolution) in *recipients*; a Deferred.
        *crlf_only*: the caller checked that every line of *message* ends in CRLF."""
        local, remote = {}, {}
        for _address, resolution in recipients:
            local.update(dict.fromkeys(resolution.local))
            remote.update(dict.fromkeys(resolution.remote))
        jobs, staged = [], None
        if local:
            # RFC 5321 §4.4: the final delivery adds Return-Path with the envelope sender.
            local_copy = return_path(sender) + message
            jobs += [MaildirJob(self._maildir(mailbox), local_copy, self.hostname, crlf_only) for mailbox in local]
        if remote:
            staged = self.spool.stage(sender, list(remote), message, received_from=received_from, entry_id=queue_id)
            jobs.append(staged)
        result = self.committer.commit(jobs)

        def stored(_):
            # No log line here: the caller's one line per transaction names the queue id.
            if staged is not None:
                self.on_queued(staged.envelope)
        return result.addCallback(stored)

    def _maildir(self, mailbox):
        path = self._maildirs.get(mailbox)
        if path is None:
            path = self._maildirs[mailbox] = ensure_user_maildir(self.data_dir, mailbox)
        return path
