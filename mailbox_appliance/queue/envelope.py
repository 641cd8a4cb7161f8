"""The queue entry's envelope: who sent it, to whom, and how far delivery got.

One JSON document per queued message (format version 1).  It is the only file
the queue runner rewrites; the message bytes beside it never change.  Every
field is validated on the way in and out, so a damaged or foreign file is
reported as CorruptEntry (naming the file) instead of surfacing later as an
odd TypeError in the delivery code.
"""

import json
import math
from dataclasses import dataclass, field

__all__ = ["VERSION", "STATES", "CorruptEntry", "RecipientState", "Envelope"]

VERSION = 1
STATES = ("pending", "delivered", "failed")

_FIELDS = {"version", "id", "sender", "arrival", "received_from", "recipients",
           "attempts", "next_attempt", "warned", "dsn"}
_RECIPIENT_FIELDS = {"address", "state", "last_reply", "remote_mta"}


class CorruptEntry(ValueError):
    """A queue file that cannot be understood; *path* names it, *reason* says why."""

    def __init__(self, path, reason):
        self.path = path
        self.reason = reason
        super().__init__("corrupt queue entry %s: %s" % (path, reason))


def _check_address(value, what):
    # Addresses end up in SMTP commands: CR, LF or NUL would let a damaged
    # envelope inject commands, and lone surrogates cannot be written as UTF-8.
    if not isinstance(value, str):
        raise ValueError("%s must be a str, not %s" % (what, type(value).__name__))
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError("%s contains CR, LF or NUL: %r" % (what, value))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("%s is not valid UTF-8: %r" % (what, value)) from None


def _check_time(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ValueError("%s must be a finite number, not %r" % (what, value))
    return float(value)


@dataclass
class RecipientState:
    """One recipient and its delivery state: pending, delivered, or failed."""
    address: str
    state: str = "pending"
    # The last answer about this recipient: "451 4.3.0 text" from a server, or our own words for
    # a DNS or connection failure; and the server that gave it (for the bounce's Remote-MTA).
    last_reply: str | None = None
    remote_mta: str | None = None

    def validate(self):
        _check_address(self.address, "recipient address")
        if self.state not in STATES:
            raise ValueError("recipient state must be one of %s, not %r"
                             % ("|".join(STATES), self.state))
        for name in ("last_reply", "remote_mta"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ValueError("%s must be a str or null" % name)

    def to_dict(self):
        return {"address": self.address, "state": self.state,
                "last_reply": self.last_reply, "remote_mta": self.remote_mta}

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise ValueError("a recipient must be an object")
        if set(data) != _RECIPIENT_FIELDS:
            raise ValueError("recipient fields must be %s, got %s"
                             % (sorted(_RECIPIENT_FIELDS), sorted(data)))
        recipient = cls(data["address"], data["state"], data["last_reply"], data["remote_mta"])
        recipient.validate()
        return recipient


@dataclass
class Envelope:
    """A queued message's envelope (JSON format version 1).

    *sender* is "" for the null sender <>.  *received_from* is an optional
    dict such as {"client": "192.0.2.1", "helo": "mx.example", "user": None}.
    *dsn* is reserved for RFC 3461 options (RET, ENVID, NOTIFY) and empty for
    now.  The runner mutates recipients/attempts/next_attempt/warned and hands
    the envelope back to ISpool.update.
    """
    id: str
    sender: str
    recipients: list
    arrival: float
    attempts: int = 0
    next_attempt: float | None = None
    warned: bool = False
    received_from: dict | None = None
    dsn: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.next_attempt is None:
            self.next_attempt = self.arrival

    def pending(self):
        """The recipients still to be tried."""
        return [r for r in self.recipients if r.state == "pending"]

    def validate(self):
        """Raise ValueError unless every field has a legal type and value."""
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("id must be a non-empty str")
        _check_address(self.sender, "sender")
        if not isinstance(self.recipients, list) or not self.recipients:
            raise ValueError("an entry needs at least one recipient")
        for recipient in self.recipients:
            if not isinstance(recipient, RecipientState):
                raise ValueError("recipients must be RecipientState objects")
            recipient.validate()
        self.arrival = _check_time(self.arrival, "arrival")
        self.next_attempt = _check_time(self.next_attempt, "next_attempt")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) \
                or self.attempts < 0:
            raise ValueError("attempts must be an int >= 0, not %r" % (self.attempts,))
        if not isinstance(self.warned, bool):
            raise ValueError("warned must be a bool")
        if self.received_from is not None:
            if not isinstance(self.received_from, dict):
                raise ValueError("received_from must be an object or null")
            for key, value in self.received_from.items():
                if not isinstance(key, str) or not (
                        value is None or isinstance(value, str)
                        or (isinstance(value, int) and not isinstance(value, bool))):
                    raise ValueError("received_from maps str to str, int or null")
        if not isinstance(self.dsn, dict):
            raise ValueError("dsn must be an object")

    def to_dict(self):
        self.validate()
        return {"version": VERSION, "id": self.id, "sender": self.sender,
                "arrival": self.arrival, "received_from": self.received_from,
                "recipients": [r.to_dict() for r in self.recipients],
                "attempts": self.attempts, "next_attempt": self.next_attempt,
                "warned": self.warned, "dsn": self.dsn}

    def to_json(self):
        """The envelope as a JSON str (UTF-8 addresses kept readable)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False,
                          indent=1) + "\n"

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise ValueError("the envelope must be a JSON object")
        version = data.get("version")
        if version != VERSION or isinstance(version, bool):
            raise ValueError("unknown envelope version %r (this code reads %d)"
                             % (version, VERSION))
        if set(data) != _FIELDS:
            raise ValueError("envelope fields must be %s, got %s"
                             % (sorted(_FIELDS), sorted(data)))
        if not isinstance(data["recipients"], list):
            raise ValueError("recipients must be a list")
        envelope = cls(
            id=data["id"], sender=data["sender"],
            recipients=[RecipientState.from_dict(r) for r in data["recipients"]],
            arrival=data["arrival"], attempts=data["attempts"],
            next_attempt=data["next_attempt"], warned=data["warned"],
            received_from=data["received_from"], dsn=data["dsn"])
        envelope.validate()
        return envelope

    @classmethod
    def from_json(cls, text, path=None):
        """Parse *text* (str or UTF-8 bytes); raise CorruptEntry naming *path*."""
        where = path if path is not None else "<envelope>"
        try:
            if isinstance(text, (bytes, bytearray)):
                text = bytes(text).decode("utf-8")
            data = json.loads(text)
            return cls.from_dict(data)
        except (ValueError, TypeError, RecursionError) as e:
            # json.JSONDecodeError and UnicodeDecodeError are ValueErrors too.
            raise CorruptEntry(where, str(e)) from e
