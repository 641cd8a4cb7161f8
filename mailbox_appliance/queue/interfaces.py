"""The queue spool seam: what the SMTP server and the queue runner ask of the on-disk queue."""

from zope.interface import Attribute, Interface

from mailbox_appliance.group_commit import ICommitJob


class IStagedEntry(ICommitJob):
    """One message being written into the spool, in steps a writer can batch: write() the
    message and envelope under temporary names, publish() renames the message, then the
    envelope (the commit point); discard() after publish() takes the entry back out."""

    id = Attribute("The entry's queue id (str).")
    envelope = Attribute("The Envelope that will be committed.")


class ISpool(Interface):
    """The durable outbound queue under DATA/queue."""

    path = Attribute("The spool directory (str).")

    def new_id():
        """A fresh unique queue id (str), to name a message before it is staged."""

    def stage(sender, recipients, data, received_from=None, arrival=None, entry_id=None):
        """Prepare an entry in memory and return an IStagedEntry; ValueError if no recipients.

        *entry_id* is an id from new_id(); by default a new one is made.
        """

    def add(sender, recipients, data, received_from=None, arrival=None):
        """Queue one message durably (stage, write, publish, fsync); return its id."""

    def load(repair=True):
        """Every committed Envelope, oldest first, after repairing crash leftovers.

        The returned list also has .cleaned, .corrupt and .recovered; never raises for a bad entry.
        """

    def update(envelope):
        """Atomically and durably rewrite the envelope of an existing entry."""

    def rewrite(envelope):
        """update() as an ICommitJob, for a group committer; its write() raises UnknownEntry
        when the entry is gone."""

    def remove(queue_id):
        """Delete an entry, envelope first, then its message."""

    def removal(queue_id):
        """remove() as an ICommitJob, for a group committer; its write() raises UnknownEntry
        when the entry is gone."""

    def message_path(queue_id):
        """The path of the entry's message file."""

    def read_message(queue_id):
        """The entry's message bytes."""

    def read_envelope(queue_id):
        """The entry's Envelope (CorruptEntry if its file is damaged)."""

    def move_aside(queue_id, reason):
        """Move the entry into corrupt/ with its reason; it is never retried."""
