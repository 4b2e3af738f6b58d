"""The event spool: order, partial drains, restarts, torn lines, appends during a drain."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gatebridge.spool import Spool


def events(n, start=0):
    return [{"gate_id": 1, "seq": i} for i in range(start, start + n)]


def test_drain_writes_everything_in_order_and_leaves_nothing(tmp_path):
    spool = Spool(tmp_path / "events.jsonl")
    for event in events(5):
        spool.append(event)
    assert spool.pending() == 5
    written = []
    assert spool.drain(written.append) == 5
    assert [e["seq"] for e in written] == [0, 1, 2, 3, 4]
    assert all(len(e["spool_id"]) == 32 for e in written)
    assert spool.pending() == 0
    assert list(tmp_path.iterdir()) == []
    assert spool.drain(written.append) == 0


def test_a_failing_writer_keeps_the_rest_for_the_next_drain(tmp_path):
    spool = Spool(tmp_path / "events.jsonl")
    for event in events(5):
        spool.append(event)
    written = []

    def flaky(event):
        if event["seq"] == 2 and not getattr(flaky, "recovered", False):
            raise ConnectionError("database went away again")
        written.append(event["seq"])

    assert not Spool(tmp_path / "other.jsonl")  # nothing waits in a new spool
    with pytest.raises(ConnectionError):
        spool.drain(flaky)
    assert written == [0, 1] and spool.pending() == 3 and spool  # half-drained: waits
    spool.append({"gate_id": 1, "seq": 5})
    flaky.recovered = True
    assert spool.drain(flaky) == 4
    # No event twice, none lost, still in order (the one appended meanwhile comes last).
    assert written == [0, 1, 2, 3, 4, 5] and not spool


def test_what_is_left_survives_a_restart(tmp_path):
    path = tmp_path / "events.jsonl"
    spool = Spool(path)
    for event in events(4):
        spool.append(event)
    first = []
    assert spool.drain(first.append, limit=1) == 1
    spool.append({"gate_id": 1, "seq": 4})
    del spool
    reopened = Spool(path)
    assert reopened.pending() == 4
    rest = []
    assert reopened.drain(rest.append) == 4
    assert [e["seq"] for e in first + rest] == [0, 1, 2, 3, 4]


def test_a_line_torn_by_a_crash_is_skipped_and_later_events_kept(tmp_path):
    path = tmp_path / "events.jsonl"
    spool = Spool(path)
    spool.append({"seq": 0})
    with path.open("ab") as f:
        f.write(b'{"seq": 1, "gate')  # the process died mid-write
    reopened = Spool(path)
    reopened.append({"seq": 2})
    written = []
    assert reopened.drain(written.append) == 2
    assert [e["seq"] for e in written] == [0, 2]
    assert reopened.skipped == 1


def test_events_appended_while_draining_are_drained_after_in_order(tmp_path):
    spool = Spool(tmp_path / "events.jsonl")
    for event in events(3):
        spool.append(event)
    written = []

    def write(event):
        written.append(event["seq"])
        if event["seq"] < 3:
            spool.append({"seq": event["seq"] + 10})

    assert spool.drain(write) == 6
    assert written == [0, 1, 2, 10, 11, 12]


def test_values_are_plain_json_with_aware_datetimes_as_iso(tmp_path):
    path = tmp_path / "events.jsonl"
    spool = Spool(path, fsync=False)
    at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    spool_id = spool.append({"at": at, "plate": "А777АА99", "spool_id": "fixed"})
    assert spool_id == "fixed"
    line = json.loads(path.read_text(encoding="utf-8"))
    assert line == {"at": "2026-11-23T10:00:00+00:00", "plate": "А777АА99", "spool_id": "fixed"}
    with pytest.raises(TypeError):
        spool.append({"bad": object()})
