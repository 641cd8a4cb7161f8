"""When each user last logged in, and how: ``DATA/last-login`` (JSON), for `user list`.

``{"alice@example.com": [UNIX_TIME, "imap", "192.0.2.7"], ...}``.  The running appliance records
every successful login in memory and writes the file at most once a minute, and at stop, so a
busy morning of phones reconnecting costs one small write a minute; a crash loses at most that
minute, which is fine for what is only the admin's information.
"""

import json
import os

from twisted.application import service
from twisted.logger import Logger

from mailbox_appliance.atomic import atomic_replace

__all__ = ["LastLogins", "read", "FILE_NAME"]

FILE_NAME = "last-login"
SAVE_AFTER_SECONDS = 60


def read(data_dir):
    """{address: (time, protocol, client address)} as last written; {} when there is none."""
    try:
        with open(os.path.join(data_dir, FILE_NAME), encoding="utf-8") as handle:
            entries = json.load(handle)
    except (FileNotFoundError, ValueError):
        return {}
    if not isinstance(entries, dict):
        return {}
    return {address: tuple(entry) for address, entry in entries.items()
            if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], (int, float))}


class LastLogins(service.Service):
    log = Logger()

    def __init__(self, data_dir, clock):
        self.path = os.path.join(data_dir, FILE_NAME)
        self.clock = clock
        self._entries = {address: list(entry) for address, entry in read(data_dir).items()}
        self._timer = None

    def record(self, address, protocol, client):
        self._entries[address] = [int(self.clock.seconds()), protocol, client]
        if self._timer is None:
            self._timer = self.clock.callLater(SAVE_AFTER_SECONDS, self.save)

    def save(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        try:
            atomic_replace(self.path, json.dumps(self._entries, sort_keys=True).encode("utf-8"), mode=0o640)
        except OSError as error:
            self.log.warn("cannot write {path}: {error}", path=self.path, error=error.strerror)

    def stopService(self):
        super().stopService()
        if self._timer is not None:
            self.save()
