"""The seam between one folder's shared state and the sessions watching it."""

from zope.interface import Interface


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
