"""THREAD (RFC 5256 §3-4): ORDEREDSUBJECT and REFERENCES.

Why a module: both algorithms are the RFC's, step by step, over a few header fields of each
message (Date, Subject, Message-ID, References, In-Reply-To); they are pure functions of those
fields, so they are tested on their own, and the IMAP command only reads the fields and writes
the answer.  Sent dates follow RFC 5256 §2.2 (the Date field, else the INTERNALDATE); ties are
broken by sequence number.
"""

import email.utils
import re
from typing import NamedTuple, Optional

from mailbox_appliance.message import decoded

from .base_subject import base_subject
from .headers import header_values, read_header

__all__ = ["ThreadMessage", "ordered_subject", "references", "encode_threads", "read_messages", "ALGORITHMS"]

_FIELDS = frozenset((b"date", b"subject", b"message-id", b"references", b"in-reply-to"))
_MESSAGE_ID = re.compile(rb"<([^<>\s]+)>")
_WHITESPACE = re.compile(r"\s+")
# Nesting deeper than this is flattened in the answer (a hostile References chain cannot make
# the encoder recurse without end).
MAX_DEPTH = 100


class ThreadMessage(NamedTuple):
    number: int                  # what the answer lists: the sequence number or the UID
    order: int                   # the sequence number, for ties
    date: float                  # sent date, POSIX seconds
    subject: str                 # base subject, case-folded: threads group "C" and "Re: c"
    is_reply: bool               # the subject had Re:/Fwd: decorations (RFC 5256 §4 step 5)
    message_id: Optional[bytes]
    references: tuple            # Message-IDs, oldest first


def _sent_date(values, internal_date):
    try:
        parsed = email.utils.parsedate_tz(values[0].decode("ascii", "replace")) if values else None
        return float(email.utils.mktime_tz(parsed)) if parsed else internal_date
    except (ValueError, OverflowError, TypeError):
        return internal_date


def read_messages(folder, found, by_uid):
    """ThreadMessage of each (number, uid) in *found* of *folder*."""
    messages = []
    for number, uid in found:
        message = folder.messages.get(uid)
        if message is None:
            continue
        try:
            values = header_values(read_header(folder.file_path(message)), _FIELDS)
        except FileNotFoundError:
            continue                      # gone behind our back: the next refresh tells
        subject = values.get(b"subject", [b""])[0]
        base = base_subject(subject)
        message_ids = _MESSAGE_ID.findall(values.get(b"message-id", [b""])[0])
        references = _MESSAGE_ID.findall(b" ".join(values.get(b"references", [])))
        if not references:
            # RFC 5256 §4 step 1: without References, the first Message-ID of In-Reply-To.
            references = _MESSAGE_ID.findall(values.get(b"in-reply-to", [b""])[0])[:1]
        messages.append(ThreadMessage(uid if by_uid else number, number,
                                      _sent_date(values.get(b"date"), folder.internal_date(message)),
                                      base.casefold(), base != _WHITESPACE.sub(" ", decoded(subject)).strip(),
                                      message_ids[0] if message_ids else None, tuple(references)))
    return messages


def _by_date(message):
    return (message.date, message.order)


# -- ORDEREDSUBJECT (RFC 5256 §3) ---------------------------------------------------------------


def ordered_subject(messages):
    """Threads as nested lists: messages grouped by base subject, each group sorted by sent date,
    its first message the parent of the rest; groups in the order of their first messages."""
    groups = {}
    for message in sorted(messages, key=_by_date):
        groups.setdefault(message.subject, []).append(message)
    threads = sorted(groups.values(), key=lambda group: _by_date(group[0]))
    return [[group[0].number, [[message.number, []] for message in group[1:]]] for group in threads]


# -- REFERENCES (RFC 5256 §4) -------------------------------------------------------------------


class _Container:
    __slots__ = ("message", "parent", "children")

    def __init__(self, message=None):
        self.message = message
        self.parent = None
        self.children = []

    def has_descendant(self, other):
        stack = [self]
        while stack:
            node = stack.pop()
            if node is other:
                return True
            stack.extend(node.children)
        return False

    def unlink(self):
        if self.parent is not None:
            self.parent.children.remove(self)
            self.parent = None

    def link_to(self, parent):
        """Make *parent* this one's parent, unless that would make a loop (step 1)."""
        if parent is self or self.has_descendant(parent):
            return
        self.unlink()
        self.parent = parent
        parent.children.append(self)

    def first_message(self):
        """The message that stands for this container in sorting: its own, or (a dummy) its
        first child's."""
        node = self
        while node.message is None and node.children:
            node = node.children[0]
        return node.message

    def sort_key(self):
        message = self.first_message()
        return _by_date(message) if message is not None else (0.0, 0)


def references(messages):
    """Threads as nested lists (see encode_threads), by the RFC 5256 §4 algorithm."""
    by_id = {}
    containers = []
    for message in sorted(messages, key=lambda m: m.order):
        container = _Container(message)
        # (1A) duplicate or missing Message-IDs get a unique one: here, no entry in by_id.
        if message.message_id is not None and (message.message_id not in by_id or by_id[message.message_id].message is None):
            known = by_id.get(message.message_id)
            if known is not None:         # a dummy made for an earlier reference: take its place
                container.children = known.children
                for child in container.children:
                    child.parent = container
                if known.parent is not None:
                    container.parent = known.parent
                    known.parent.children[known.parent.children.index(known)] = container
            by_id[message.message_id] = container
        containers.append(container)
        chain = [by_id.setdefault(reference, _Container()) for reference in message.references]
        for parent, child in zip(chain, chain[1:]):
            if child.parent is None:      # (1A) an existing link is kept
                child.link_to(parent)
        # (1B) the last reference is this message's parent, whatever 1A did.
        container.unlink()
        if chain:
            container.link_to(chain[-1])
    # (2) every parentless container under the root.
    roots = [container for container in set(by_id.values()) | set(containers) if container.parent is None]
    # (3) prune dummies.
    top = [kept for root in roots for kept in _pruned(root)]
    # (4) the root's children by sent date (a dummy by its first child's, children sorted first).
    for container in top:
        if container.message is None:
            container.children.sort(key=_Container.sort_key)
    top.sort(key=_Container.sort_key)
    # (5) merge threads with the same base subject.
    top = _merge_by_subject(top)
    # (6) sort every set of siblings, deepest first.
    for container in top:
        _sort_children(container)
    top.sort(key=_Container.sort_key)
    return [_as_list(container) for container in top]


def _pruned(root):
    """(3) The containers *root* becomes after pruning its dummies: none (an empty dummy), its
    children promoted (a dummy below the root, or at the root with one child), or itself.
    Children first, without recursion (a References chain can be thousands deep)."""
    becomes = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in node.children)
            continue
        node.children = [kept for child in node.children for kept in becomes.pop(child)]
        for child in node.children:
            child.parent = node
        if node.message is not None or (node is root and len(node.children) > 1):
            becomes[node] = [node]
        else:
            for child in node.children:
                child.parent = None
            becomes[node] = node.children
    return becomes[root]


def _thread_subject(container):
    message = container.first_message()
    return message.subject if message is not None else ""


def _merge_by_subject(top):
    table = {}
    for container in top:                                       # (5B)
        subject = _thread_subject(container)
        if not subject:
            continue
        held = table.get(subject)
        if held is None:
            table[subject] = container
        elif held.message is not None and (container.message is None or (
                held.message.is_reply and not container.message.is_reply)):
            table[subject] = container
    merged, position, absorbed = [], {}, set()
    for container in top:                                       # (5C)
        if container in absorbed:
            continue                      # already a child of a dummy made below
        subject = _thread_subject(container)
        held = table.get(subject) if subject else None
        if held is None or held is container:
            position[container] = len(merged)
            merged.append(container)
        elif held.message is None and container.message is None:
            for child in container.children:
                child.parent = held
            held.children.extend(container.children)
        elif held.message is None or (container.message.is_reply and not held.message.is_reply):
            container.parent = held
            held.children.append(container)
        else:
            dummy = _Container()
            for member in (held, container):
                member.parent = dummy
                dummy.children.append(member)
            table[subject] = dummy
            if held in position:          # the thread in the table is already placed: replace it
                position[dummy] = position.pop(held)
                merged[position[dummy]] = dummy
            else:                         # it comes later in the list: place the dummy here
                absorbed.add(held)
                position[dummy] = len(merged)
                merged.append(dummy)
    return merged


def _sort_children(container):
    stack, order = [container], []
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):                                # (6) deepest siblings first
        node.children.sort(key=_Container.sort_key)


def _as_list(container, depth=0):
    """A thread as [number, children...]: a dummy is [None, children]."""
    number = container.message.number if container.message is not None else None
    if depth >= MAX_DEPTH:
        flat, stack = [], list(container.children)
        while stack:
            node = stack.pop(0)
            if node.message is not None:
                flat.append([node.message.number, []])
            stack.extend(node.children)
        return [number, flat]
    return [number, [_as_list(child, depth + 1) for child in container.children]]


ALGORITHMS = {"ORDEREDSUBJECT": ordered_subject, "REFERENCES": references}


def encode_threads(threads):
    """RFC 5256 §4 thread-list: ``(3 6 (4 23)(44 7 96))``: a message with one child is followed
    by it after a space, with several by each in parentheses; a dummy has no number."""
    return b"".join(b"(" + _encode_node(thread) + b")" for thread in threads)


def _encode_node(node):
    parts = []
    while True:
        number, children = node
        if number is not None:
            parts.append(b"%d" % number)
        if len(children) == 1 and number is not None:
            node = children[0]
            continue
        if children:
            parts.append(b"".join(b"(" + _encode_node(child) + b")" for child in children))
        return b" ".join(parts)
