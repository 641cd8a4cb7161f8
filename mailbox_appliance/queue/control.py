"""The admin's queue commands, as the running appliance answers them over the admin channel
(admin_channel.py): ``queue flush``, ``queue retry ID``, ``queue delete ID``, ``queue bounce ID``.

Each says what was done, in one line for the admin; the runner (queue/runner.py) does the work.
``queue list`` needs no running appliance: the admin command reads the spool itself.
"""

from mailbox_appliance.admin_channel import CommandError
from mailbox_appliance.queue.spool import CorruptEntry, UnknownEntry


class QueueControl:
    def __init__(self, runner, spool):
        self.runner = runner
        self.spool = spool

    def commands(self):
        """The admin channel's command table for the queue."""
        return {"queue flush": self.flush, "queue retry": self.retry,
                "queue delete": self.delete, "queue bounce": self.bounce}

    def flush(self):
        count = self.runner.flush()
        return f"flush: {count} queued message{'' if count == 1 else 's'} being tried now"

    def retry(self, queue_id):
        self._envelope(queue_id)
        self.runner.retry(queue_id)
        return f"retry {queue_id}: being tried now"

    def delete(self, queue_id):
        return self._give_up(queue_id, bounce=False)

    def bounce(self, queue_id):
        return self._give_up(queue_id, bounce=True)

    def _give_up(self, queue_id, bounce):
        envelope = self._envelope(queue_id)
        recipients = ", ".join(f"<{r.address}>" for r in envelope.pending()) or "no pending recipient"
        if self.runner.in_flight(queue_id):
            # Its failure, if any, is logged by the runner; the admin has had the answer.
            self.runner.give_up(queue_id, bounce).addErrback(lambda _: None)
            return (f"{queue_id} is being delivered right now; the {'bounce' if bounce else 'delete'} "
                    "follows when that attempt ends")
        if not bounce:
            done = f"deleted {queue_id} (from <{envelope.sender}> to {recipients})"
        elif envelope.sender:
            done = f"bounced {queue_id} to <{envelope.sender}> ({recipients})"
        else:
            done = f"removed {queue_id} ({recipients}); its sender is <>, so no report is sent"
        return self.runner.give_up(queue_id, bounce).addCallback(lambda _: done)

    def _envelope(self, queue_id):
        try:
            return self.spool.read_envelope(queue_id)
        except (UnknownEntry, CorruptEntry, ValueError):
            raise CommandError(f"no queued message {queue_id}; see: queue list") from None
