# bmsfw.telemetry: the frame's keys are TELEMETRY_FIELDS' names, and
# Telemetry.refresh (an explicit copy, so a tick allocates nothing) writes every
# key the constructor does not fix. A key added to the table but not to
# refresh(), or written by refresh() but missing from the table, fails here.
# Run: .venv/bin/python -m pytest tests/firmware/test_telemetry.py -q
from fakes import ready

from bmsfw.telemetry import TELEMETRY_FIELDS, TELEMETRY_KEYS, Telemetry

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
    assert frame["t_ms"] == hal.t_ms and frame["inventory_uas"] == ctrl.ledger.inventory_uas
