"""Every seam between the appliance's parts, as zope.interface interfaces, in one place.

A part depends on the interfaces here, not on the module that implements them; service.py wires
the implementations together (docs/architecture.md draws the picture):

- accounts: IAccounts (domains, users, aliases), asked by SMTP policy, delivery and the checker;
- avatars: the realm hands an authenticated login an ISender (SMTP AUTH) or an IMailUser (IMAP,
  POP3);
- delivery: IDelivery takes an accepted message from SMTP, and a report from the queue;
- durable writes: ICommitJob, the unit of work of the group committer;
- the queue: ISpool and IStagedEntry, the on-disk queue as delivery and the runner use it;
- the store: IFolderListener, how one folder's shared state tells every session of a change, and
  IMailAccount, one user's folders as the IMAP server asks for them;
- spam filtering: ISpamLearning, where IMAP hands the messages a user moves into or out of Junk.
"""

from zope.interface import Attribute, Interface

# -- accounts ------------------------------------------------------------------------------------


class IAccounts(Interface):
    """Domains, users and aliases of this appliance, always as currently on disk."""

    hostname = Attribute("This server's own host name (str).")
    primary_domain = Attribute("The first configured domain: where <Postmaster> goes (str).")

    def domains():
        """The set of domains this appliance delivers for (lower-case str)."""

    def is_local_domain(domain):
        """True when mail for *domain* is delivered here."""

    def password_hash(address):
        """The stored ``{SCHEME}hash`` of the user *address*, or None if there is no such user."""

    def user_entry(address):
        """The user's line of the users file (accounts.files.UserEntry: hash, quota, the rest),
        or None if there is no such user."""

    def resolve(address):
        """Expand *address* through aliases, subaddressing and catch-alls.

        Returns a Resolution (local mailbox addresses, remote addresses), or None when the address
        is in a local domain but matches no user or alias.
        """

    def may_send_as(user, address):
        """True when the authenticated *user* may use *address* as envelope or header sender."""


class IQuotas(Interface):
    """Each user's storage limit and use (quota.py); sizes in octets."""

    def limit(address):
        """The user's limit, or None for none."""

    def usage(address):
        """Octets the user's mail takes now."""

    def fits(address, size):
        """True when *size* more octets stay within the user's limit."""

    def full(address):
        """True when the user is at or over the limit."""

    def charge(address, size):
        """Count *size* octets just stored (negative: removed) without counting again."""

    def forget(address):
        """Count the user's use again at the next question (after expunges and deletions)."""


# -- avatars (realm.py) --------------------------------------------------------------------------


class ISender(Interface):
    """Who an authenticated SMTP client is (RFC 4954): the identity its mail is sent as."""

    address = Attribute("The user's address, normalised (str).")


class IMailUser(Interface):
    """A user of the mail store, logged in over IMAP or POP3."""

    address = Attribute("The user's address, normalised (str).")
    maildir = Attribute("The user's Maildir (str path); it exists.")
    folders = Attribute("The process's one maildir.mailbox.FolderRegistry, shared by every session.")


# -- delivery ------------------------------------------------------------------------------------


class IDelivery(Interface):
    """Where an accepted message goes: local recipients into their Maildirs, remote ones into the
    queue, all durably before the returned Deferred fires (so SMTP may answer 250)."""

    def new_id():
        """A fresh queue id (str), to name a message (Received field, log lines) before it is stored."""

    def deliver(queue_id, sender, recipients, message, received_from, crlf_only=False):
        """Store *message* (bytes, CRLF line ends) for every ``(address, Resolution)`` in
        *recipients*; a Deferred firing once every copy is durable, or failing with nothing stored.

        *received_from* is the dict the queue keeps about the submitting session (client, helo,
        user, tls, session); *crlf_only* says the caller checked every line ends in CRLF.
        """

    def deliver_report(recipient, message):
        """Store a delivery report (RFC 3464) for *recipient*, from the null sender; a Deferred
        firing with its queue id, or None when *recipient* is a local address that no longer
        exists (the report is dropped and logged).  A report queued for a remote recipient has
        ``{"session": "queue"}`` as its origin, which is how the queue knows to DKIM-sign it."""


# -- durable writes (group_commit.py) ------------------------------------------------------------


class ICommitJob(Interface):
    """One file change made durable by the group committer, in steps it can batch."""

    def write():
        """Write what is new under temporary names with atomic.create_synced (durable once the
        committer's round has synced); nothing is visible yet."""

    def publish():
        """Make the change visible (renames, unlinks); no fsync."""

    def directories():
        """Directories to fsync, once per batch, after publish."""

    def settle():
        """What may happen only once the batch is durable; called after the fsyncs."""

    def discard():
        """Take back what write() and publish() did, as far as possible: the batch failed."""


# -- the queue (queue/spool.py) ------------------------------------------------------------------


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

    def watch(callback):
        """Call *callback(envelope)* for every entry announce()d from now on: how the queue
        runner hears of new mail without delivery knowing the runner."""

    def announce(envelope):
        """Tell the watchers that the entry of *envelope* is committed (durable)."""

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


# -- the store (maildir/, imap/) -----------------------------------------------------------------


class IFolderListener(Interface):
    """Told about every change to a folder, whoever made it: a session, SMTP delivery, or another
    program writing the Maildir.  Each gets UIDs, never sequence numbers: sequence numbers belong
    to a session's own view (RFC 3501 §2.3.1.2), which it updates when the protocol allows.
    """

    def messages_added(uids, recent):
        """New messages with these ascending UIDs; *recent* is the subset this listener is the
        first to see (RFC 3501 §2.3.2 \\Recent)."""

    def messages_expunged(uids):
        """These messages were removed from the folder."""

    def flags_changed(uids):
        """The flags or keywords of these messages changed."""


class IMailAccount(Interface):
    """The folders of one user, by IMAP name."""

    address = Attribute("The user's address (str).")

    def list(reference, patterns, selection=frozenset(), returns=frozenset()):
        """[(name, attributes, child info)] matching the LIST patterns and RFC 5258 options,
        INBOX first."""

    def lsub(reference, pattern):
        """[(name, attributes)] of the subscriptions matching the LSUB pattern, INBOX first."""

    def create(name):
        """Create the folder *name*; raises FolderError."""

    def delete(name):
        """Delete the folder *name* and its messages; its sub-folders stay; raises FolderError."""

    def rename(old, new):
        """Rename *old* and every folder below it; raises FolderError."""

    def subscribe(name):
        """Add *name* to the subscriptions."""

    def unsubscribe(name):
        """Remove *name* from the subscriptions."""

    def open(name):
        """The shared maildir.mailbox.Folder for *name*; raises FolderError."""


# -- spam filtering (spam/) ----------------------------------------------------------------------


class ISpamLearning(Interface):
    """Where what users teach the spam filter goes (a message moved into or out of Junk)."""

    def learn(kind, path):
        """Teach *kind* ("spam" or "ham") with the message file at *path*; returns at once,
        never fails the command that taught it."""


class ISieveScripts(Interface):
    """Each user's Sieve scripts (sieve/scripts.py): names are RFC 5804 script names, scripts
    UTF-8 bytes, checked before they are stored."""

    def list(address):
        """[(name, active)] of the user's scripts, by name."""

    def get(address, name):
        """The script's bytes."""

    def put(address, name, script):
        """Store *script* as *name* (replacing one of that name); raises SieveError when it does
        not check."""

    def activate(address, name):
        """Make *name* the active script; None: none."""

    def active_name(address):
        """The name of the active script, or None."""

    def delete(address, name):
        """Remove a script that is not the active one."""

    def rename(address, old, new):
        """Rename a script (the active one stays active)."""

    def active(address):
        """The active script's checked commands, or None."""

    def checked(address, name):
        """The checked commands of one of the user's scripts, or None."""

    def checked_global(name):
        """The checked commands of a global script (DATA/sieve-global/NAME.sieve), or None."""
