"""Where a message's octets wait while DATA or BDAT is still arriving.

Up to IN_MEMORY_OCTETS in memory; past that in a temporary file in ``DATA/tmp``, unlinked from the
start (nothing is left on disk after a crash, and nothing there is ever mail we accepted: a message
is accepted only once delivery has stored it).  Issue 21 #12: 20 sessions each sending 24 MB
without the final dot held 600 MB of memory; now each holds at most IN_MEMORY_OCTETS.
"""

import tempfile

# Most mail is smaller than this and never touches the disk before delivery writes it.
IN_MEMORY_OCTETS = 256 * 1024


class MessageBuffer:
    """The octets of one message so far.  ``size`` counts every octet appended; ``failed`` is the
    OSError (a full disk) that made it stop keeping them, or None."""

    def __init__(self, directory):
        self.directory = directory
        self.size = 0
        self.failed = None
        self._memory = bytearray()
        self._file = None

    def append(self, octets):
        self.size += len(octets)
        if self.failed is not None:
            return
        try:
            if self._file is not None:
                self._file.write(octets)
                return
            self._memory += octets
            if len(self._memory) > IN_MEMORY_OCTETS:
                self._file = tempfile.TemporaryFile(dir=self.directory)
                self._file.write(self._memory)
                self._memory = bytearray()
        except OSError as error:
            self.failed = error
            self.close()

    def getvalue(self):
        """Every octet appended, as bytes."""
        if self._file is None:
            return bytes(self._memory)
        self._file.seek(0)
        return self._file.read()

    def close(self):
        """Let go of the octets (the file's space is freed with it)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._memory = bytearray()
