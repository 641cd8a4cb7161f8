"""The outbound queue spool: round trips, two-phase writes, and recovery from every crash state."""

import json
import os

import pytest
from zope.interface.verify import verifyObject

from mailbox_appliance.atomic import sync_dir
from mailbox_appliance.interfaces import ISpool, IStagedEntry
from mailbox_appliance.queue.spool import (
    CorruptEntry, Envelope, RecipientState, Spool, UnknownEntry, is_queue_id)

MESSAGE = (b"From: =?utf-8?q?J=C3=B6rg?= <j\xc3\xb6rg@b\xc3\xbccher.example>\r\n"
           b"Subject: 8-bit \xff\xfe\x00\r\n\r\n" + bytes(range(256)) * 8 + b"\nbare LF\r\n")


@pytest.fixture
def spool(tmp_path):
    return Spool(tmp_path / "queue")


def _ls(spool, sub):
    return sorted(os.listdir(os.path.join(spool.path, sub)))


def _stage_written(spool, sender="a@example.com", recipients=("b@example.org",)):
    staged = spool.stage(sender, list(recipients), MESSAGE)
    staged.write()
    return staged


def test_interfaces(spool):
    verifyObject(ISpool, spool)
    verifyObject(IStagedEntry, spool.stage("", ["x@example.org"], b"x"))


def test_add_load_round_trip_utf8_and_8bit(spool):
    received = {"client": "127.0.0.7", "helo": "mx.b\u00fccher.example", "user": None}
    queue_id = spool.add("j\u00f6rg@b\u00fccher.example",
                         ["\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a", "plain@example.org"],
                         MESSAGE, received_from=received, arrival=1700000000.25)
    assert is_queue_id(queue_id) and 16 <= len(queue_id) <= 20
    assert _ls(spool, "messages") == [queue_id]
    assert _ls(spool, "envelopes") == [queue_id + ".json"]
    loaded = Spool(spool.path).load()
    assert (loaded.cleaned, loaded.corrupt, loaded.recovered) == ([], [], [])
    [envelope] = loaded
    assert envelope.id == queue_id
    assert envelope.sender == "j\u00f6rg@b\u00fccher.example"
    assert [r.address for r in envelope.recipients] == [
        "\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a", "plain@example.org"]
    assert all(r.state == "pending" and r.last_reply is None for r in envelope.recipients)
    assert envelope.arrival == envelope.next_attempt == 1700000000.25
    assert (envelope.attempts, envelope.warned, envelope.dsn) == (0, False, {})
    assert envelope.received_from == received
    assert spool.read_message(queue_id) == MESSAGE
    with open(spool.message_path(queue_id), "rb") as f:
        assert f.read() == MESSAGE
    with open(spool.envelope_path(queue_id), "rb") as f:
        raw = json.loads(f.read().decode("utf-8"))
    assert raw["version"] == 1 and raw["sender"] == envelope.sender


def test_null_sender_and_load_order(spool):
    late = spool.add("", ["b@example.org"], b"late", arrival=2000.0)
    early = spool.add("a@example.com", ["b@example.org"], b"early", arrival=1000.0)
    assert [e.id for e in spool.load()] == [early, late]
    assert spool.read_envelope(late).sender == ""


def test_empty_recipients_and_bad_input(spool):
    with pytest.raises(ValueError):
        spool.stage("a@example.com", [], b"x")
    with pytest.raises(ValueError):
        spool.stage("a@example.com\r\nRCPT TO:<x>", ["b@example.org"], b"x")
    with pytest.raises(TypeError):
        spool.stage("a@example.com", "b@example.org", b"x")
    with pytest.raises(ValueError):
        spool.message_path("../../etc/passwd")
    assert _ls(spool, "messages") == _ls(spool, "envelopes") == []


def test_written_but_unpublished_is_invisible_and_cleaned(spool):
    staged = _stage_written(spool)
    assert _ls(spool, "messages") == [staged.id + ".tmp"]
    assert _ls(spool, "envelopes") == [staged.id + ".json.tmp"]
    result = Spool(spool.path).load()
    assert list(result) == []
    assert sorted(os.path.basename(p) for p in result.cleaned) == [
        staged.id + ".json.tmp", staged.id + ".tmp"]
    assert _ls(spool, "messages") == _ls(spool, "envelopes") == []


def test_discard_before_and_after_publish(spool):
    staged = _stage_written(spool)
    staged.discard()
    assert _ls(spool, "messages") == _ls(spool, "envelopes") == []
    staged = _stage_written(spool)
    staged.publish()
    staged.discard()
    assert _ls(spool, "messages") == _ls(spool, "envelopes") == []
    assert spool.load() == []


def test_read_only_load_changes_nothing(spool):
    staged = _stage_written(spool)
    with open(os.path.join(spool.envelopes_dir, "junk.txt"), "w") as f:
        f.write("?")
    result = spool.load(repair=False)
    assert list(result) == [] and len(result.cleaned) == 2
    assert result.corrupt == [("junk.txt", "unexpected file in envelopes/")]
    assert _ls(spool, "messages") == [staged.id + ".tmp"]
    assert "junk.txt" in _ls(spool, "envelopes")


# -- crash simulations: each intermediate state built by hand ------------------

def test_crash_between_renames_message_in_place_envelope_still_temp(spool):
    staged = _stage_written(spool)
    os.rename(os.path.join(spool.messages_dir, staged.id + ".tmp"),
              spool.message_path(staged.id))
    result = Spool(spool.path).load()
    assert list(result) == [] and result.corrupt == []
    assert sorted(os.path.basename(p) for p in result.cleaned) == [
        staged.id, staged.id + ".json.tmp"]
    assert _ls(spool, "messages") == _ls(spool, "envelopes") == []


def test_crash_after_commit_message_rename_not_durable_is_rolled_forward(spool):
    # The envelope rename reached the disk, the message's did not: its fsynced
    # temp is still there, so load finishes the rename.
    staged = _stage_written(spool)
    os.rename(os.path.join(spool.envelopes_dir, staged.id + ".json.tmp"),
              spool.envelope_path(staged.id))
    result = spool.load()
    assert [e.id for e in result] == [staged.id]
    assert result.recovered == [staged.id] and result.cleaned == []
    assert spool.read_message(staged.id) == MESSAGE


def test_envelope_without_message_is_moved_aside(spool):
    keep = spool.add("a@example.com", ["b@example.org"], b"keep me")
    lost = spool.add("a@example.com", ["c@example.org"], b"lost")
    os.unlink(spool.message_path(lost))
    result = spool.load()
    assert [e.id for e in result] == [keep]
    assert result.corrupt == [(lost, "message file missing")]
    assert _ls(spool, "corrupt") == [lost + ".json", lost + ".reason"]
    with open(os.path.join(spool.corrupt_dir, lost + ".reason")) as f:
        assert "message file missing" in f.read()
    assert _ls(spool, "envelopes") == [keep + ".json"]


@pytest.mark.parametrize("content, reason", [
    (b"{\"version\": 1, \"id\": ", "Expecting value"),
    (b"\xff\xfe not utf-8", "utf-8"),
    (b"[]", "JSON object"),
    (None, "unknown envelope version 2"),
    (None, "recipient state"),
])
def test_garbage_or_unknown_envelope_is_moved_aside_with_its_message(spool, content, reason):
    keep = spool.add("a@example.com", ["b@example.org"], b"keep me", arrival=1.0)
    bad = spool.add("a@example.com", ["c@example.org"], b"bad one", arrival=2.0)
    path = spool.envelope_path(bad)
    if content is None:
        with open(path) as f:
            data = json.load(f)
        if "version" in reason:
            data["version"] = 2
        else:
            data["recipients"][0]["state"] = "bounced"
        content = json.dumps(data).encode()
    with open(path, "wb") as f:
        f.write(content)
    with pytest.raises(CorruptEntry) as info:
        spool.read_envelope(bad)
    assert path in str(info.value)
    result = spool.load()
    assert [e.id for e in result] == [keep]
    [(name, why)] = result.corrupt
    assert name == bad and reason in why
    assert _ls(spool, "corrupt") == [bad, bad + ".json", bad + ".reason"]
    assert _ls(spool, "messages") == [keep]
    with open(os.path.join(spool.corrupt_dir, bad), "rb") as f:
        assert f.read() == b"bad one"
    assert spool.load().corrupt == []


def test_leftover_update_temp_is_cleaned_and_old_envelope_kept(spool):
    queue_id = spool.add("a@example.com", ["b@example.org"], b"x")
    temp = spool.envelope_path(queue_id) + ".tmp.0123456789abcdef"
    with open(temp, "w") as f:
        f.write("{half")
    result = spool.load()
    assert [e.id for e in result] == [queue_id] and result.cleaned == [temp]
    assert not os.path.exists(temp)


def test_stray_files_moved_aside(spool):
    for sub, name in (("messages", "README"), ("envelopes", "notes.json")):
        with open(os.path.join(spool.path, sub, name), "w") as f:
            f.write("?")
    result = spool.load()
    assert sorted(n for n, _ in result.corrupt) == ["README", "notes.json"]
    assert _ls(spool, "corrupt") == ["README", "notes.json"]


# -- updates and removal ---------------------------------------------------

def test_update_persists_recipient_state_and_attempts(spool):
    queue_id = spool.add("a@example.com", ["b@example.org", "c@example.net", "d@x.example"], b"m")
    [envelope] = spool.load()
    envelope.recipients[0].state = "delivered"
    envelope.recipients[0].last_reply = "250 2.0.0 ok"
    envelope.recipients[1].state = "failed"
    envelope.recipients[1].last_reply = "550 5.1.1 no such user\n550 really"
    envelope.recipients[2].last_reply = "451 4.3.0 try later"
    envelope.attempts = 3
    envelope.next_attempt = 1234567890.5
    envelope.warned = True
    spool.update(envelope)
    assert _ls(spool, "envelopes") == [queue_id + ".json"]
    [again] = Spool(spool.path).load()
    assert again == envelope
    assert [r.state for r in again.pending()] == ["pending"]
    envelope.recipients[0].state = "lost"
    with pytest.raises(ValueError):
        spool.update(envelope)
    assert spool.read_envelope(queue_id) == again


def test_update_and_remove_of_unknown_entry(spool):
    queue_id = spool.add("a@example.com", ["b@example.org"], b"m")
    envelope = spool.read_envelope(queue_id)
    spool.remove(queue_id)
    assert _ls(spool, "messages") == _ls(spool, "envelopes") == []
    assert spool.load() == []
    with pytest.raises(UnknownEntry):
        spool.update(envelope)
    with pytest.raises(UnknownEntry):
        spool.remove(queue_id)
    with pytest.raises(UnknownEntry):
        spool.read_message(queue_id)
    assert _ls(spool, "envelopes") == []


def test_crash_during_remove_leaves_orphan_message_that_is_cleaned(spool):
    queue_id = spool.add("a@example.com", ["b@example.org"], b"m")
    os.unlink(spool.envelope_path(queue_id))   # remove() step 1 only
    result = spool.load()
    assert list(result) == [] and result.cleaned == [spool.message_path(queue_id)]
    assert _ls(spool, "messages") == []


def test_move_aside_by_runner(spool):
    queue_id = spool.add("a@example.com", ["b@example.org"], b"m")
    spool.move_aside(queue_id, "loops back to us\n(twice)")
    assert spool.load() == []
    assert _ls(spool, "corrupt") == [queue_id, queue_id + ".json", queue_id + ".reason"]
    with open(os.path.join(spool.corrupt_dir, queue_id + ".reason")) as f:
        assert f.read().endswith(" loops back to us (twice)\n")
    with pytest.raises(UnknownEntry):
        spool.move_aside(queue_id, "again")


# -- ids and batches ---------------------------------------------------------

def test_ids_unique_sortable_and_safe(spool):
    ids = [spool.stage("a@example.com", ["b@example.org"], b"").id for _ in range(10000)]
    assert len(set(ids)) == 10000
    assert ids == sorted(ids)
    assert all(is_queue_id(i) and i.isalnum() and i == i.lower() for i in ids)
    assert _ls(spool, "messages") == []


def test_batch_of_50_group_commit(spool):
    batch = [spool.stage("s%d@example.com" % i, ["r%d@\u00e9xample.org" % i, "x@example.net"],
                         MESSAGE + b"%d" % i, received_from={"client": "127.0.0.%d" % i})
             for i in range(50)]
    for staged in batch:
        staged.write()
    for staged in batch:
        staged.publish()
    directories = []
    for staged in batch:
        for directory in staged.directories():
            if directory not in directories:
                directories.append(directory)
    assert directories == [spool.messages_dir, spool.envelopes_dir]
    for directory in directories:
        sync_dir(directory)
    loaded = Spool(spool.path).load()
    assert [e.id for e in loaded] == [s.id for s in batch]
    for i, (staged, envelope) in enumerate(zip(batch, loaded)):
        assert envelope == staged.envelope
        assert spool.read_message(envelope.id) == MESSAGE + b"%d" % i
    assert loaded.cleaned == loaded.corrupt == []


# -- the envelope on its own ---------------------------------------------------

def test_envelope_json_validation_names_the_file():
    envelope = Envelope("1j0qau0hr1f8r21kli", "", [RecipientState("b@example.org")], 5.0)
    assert Envelope.from_json(envelope.to_json()) == envelope
    data = json.loads(envelope.to_json())
    for key, value in (("attempts", True), ("arrival", "soon"), ("warned", 0),
                       ("recipients", []), ("extra", 1), ("dsn", None)):
        broken = dict(data, **{key: value})
        with pytest.raises(CorruptEntry) as info:
            Envelope.from_json(json.dumps(broken), "/q/envelopes/x.json")
        assert info.value.path == "/q/envelopes/x.json"
        assert "/q/envelopes/x.json" in str(info.value)


def test_stage_with_id_chosen_beforehand(spool):
    queue_id = spool.new_id()
    staged = spool.stage("a@example.com", ["b@example.org"], b"m", entry_id=queue_id)
    staged.write()
    staged.publish()
    assert [e.id for e in spool.load()] == [queue_id]
    with pytest.raises(ValueError):
        spool.stage("a@example.com", ["b@example.org"], b"m", entry_id=queue_id)
    with pytest.raises(ValueError):
        spool.stage("a@example.com", ["b@example.org"], b"m", entry_id="../x")
