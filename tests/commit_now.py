"""A group committer for tests of the Maildir layer without a reactor: each batch is committed at
once, in the caller's thread, with group_commit.GroupCommitter's steps, and an already-fired
Deferred is returned."""

from twisted.internet import defer

from mailbox_appliance.atomic import sync_dir


class CommitNow:
    def commit(self, jobs):
        for job in jobs:
            job.write()
        for job in jobs:
            job.publish()
        for directory in {d for job in jobs for d in job.directories()}:
            sync_dir(directory)
        for job in jobs:
            job.settle()
        return defer.succeed(None)
