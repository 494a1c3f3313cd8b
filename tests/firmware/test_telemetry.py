# bmsfw.telemetry: the frame's keys are TELEMETRY_FIELDS' names, and
# Telemetry.refresh (an explicit copy, so a tick allocates nothing) writes every
# key the constructor does not fix. A key added to the table but not to
# refresh(), or written by refresh() but missing from the table, fails here.
# Run: .venv/bin/python -m pytest tests/firmware/test_telemetry.py -q
from fakes import ready

from bmsfw import states
from bmsfw.telemetry import (EVENT_FIELDS, EVENT_KEYS, MAX_DETAIL, MAX_PENDING, TELEMETRY_FIELDS,
                             TELEMETRY_KEYS, Events, Telemetry, make_event)

_FIXED = {"kind": "telemetry", "device": "tel-0001", "target_uas": 720000000}


class _Unset:
    pass


def test_keys_are_the_field_table_in_order():
    assert TELEMETRY_KEYS == tuple(field[0] for field in TELEMETRY_FIELDS)
    assert len(set(TELEMETRY_KEYS)) == len(TELEMETRY_KEYS)
    for field in TELEMETRY_FIELDS:
        assert len(field) == 2 and (field[1] is None or field[1] in "BHIhiq"), field


def test_refresh_writes_every_key_the_constructor_does_not_fix():
    ctrl, hal = ready()
    tel = Telemetry("tel-0001", 720000000)
    frame = tel.frame
    assert sorted(frame) == sorted(TELEMETRY_KEYS)
    unset = _Unset()
    for key in TELEMETRY_KEYS:
        if key in _FIXED:
            assert frame[key] == _FIXED[key], key
        else:
            frame[key] = unset
    frame["faults"] = []
    tel.refresh(ctrl)
    assert tel.refresh(ctrl) is frame
    assert sorted(frame) == sorted(TELEMETRY_KEYS)
    for key in TELEMETRY_KEYS:
        assert frame[key] is not unset, key
    # and it copies the controller's own figures
    assert frame["state"] == "READY" and frame["substate"] == "RESTING"
    assert frame["t_ms"] == hal.t_ms and frame["inventory_uas"] == ctrl.ledger.uas("inventory")


def test_event_frames_have_the_event_keys_then_the_kind_s_own():
    assert sorted(EVENT_FIELDS) == sorted(states.EVENT_KINDS)
    ev = make_event("d", 1, 2, "STATE", "x")
    assert sorted(ev) == sorted(EVENT_KEYS)
    events = Events("dev-1")
    for i, kind in enumerate(states.EVENT_KINDS):
        values = [100 + j for j in range(len(EVENT_FIELDS[kind]))]
        events.emit(1000 + i, kind, "why", *values)
    out = events.pop()
    assert [e["event"] for e in out] == list(states.EVENT_KINDS)
    for ev in out:
        own = EVENT_FIELDS[ev["event"]]
        assert sorted(ev) == sorted(EVENT_KEYS + own)
        assert [ev[k] for k in own] == [100 + j for j in range(len(own))]
        assert ev["kind"] == "event" and ev["device"] == "dev-1" and ev["detail"] == "why"
    assert [e["seq"] for e in out] == list(range(1, len(out) + 1)) and events.seq == len(out)


def test_events_queue_drops_the_oldest_and_reuses_two_lists():
    events = Events("dev-1")
    for i in range(MAX_PENDING + 3):
        events.emit(i, "COMMAND", "x" * (MAX_DETAIL + 5), "stop")
    first = events.pop()
    assert len(first) == MAX_PENDING and events.dropped == 3
    assert first[0]["seq"] == 4 and len(first[0]["detail"]) == MAX_DETAIL
    empty = events.pop()
    assert empty == [] and empty is first              # emptied by the next pop
    events.emit(0, "COMMAND", "", "rest")
    again = events.pop()
    assert again is not first and [e["command"] for e in again] == ["rest"]
    assert events.pop() is again and again == []
