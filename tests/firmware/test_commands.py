# bmsfw.commands: the names (as the MQTT bridge imports them), and check() in
# the documented order: name, argument types, ranges, state, limits. Pure:
# an Outputs object stands for the controller's present limits.
# Run: .venv/bin/python -m pytest tests/firmware/test_commands.py -q
from fakes import FakeHal

from bmsfw import commands
from bmsfw.commands import COMMANDS, LIMIT_KEYS, MAX_DURATION_S, check, request_error, state_code
from bmsfw.config import Config
from bmsfw.outputs import Outputs
from bmsfw.states import STATES

C = Config()        # source_max_ua 2048, cutoffs 2000..2600 mV


def _out():
    return Outputs(FakeHal(), C)


def _check(name, args=None, state="READY", out=None):
    return check(name, args, state, C, out if out is not None else _out())


def test_names_and_bounds_the_bridge_imports():
    assert COMMANDS == ("formation/start", "charge", "discharge", "rest", "stop", "reset_fault", "set_limits")
    assert LIMIT_KEYS == ("cvl_mv", "dvl_mv", "ccl_ua", "dcl_ua")
    assert MAX_DURATION_S == 1000000
    assert COMMANDS == tuple(row[0] for row in commands.TABLE)
    for row in commands.TABLE:
        assert row[1] is None or all(s in STATES for s in row[1]), row


def test_unknown_names():
    for name in ("fly", "", None, 5, ["charge"], "CHARGE"):
        assert _check(name) == "UNKNOWN_COMMAND", name


def test_argument_shapes():
    assert _check("rest", []) == "BAD_ARGS"
    assert _check("rest", "x") == "BAD_ARGS"
    assert _check("rest", {"now": 1}) == "BAD_ARGS"
    assert _check("rest", None) == "OK" and _check("rest", {}) == "OK"
    assert _check("charge") == "BAD_ARGS"                                   # current_ua missing
    assert _check("charge", {"current_ua": 10, "speed": 1}) == "BAD_ARGS"
    assert _check("charge", {"current_ua": 1.5}) == "BAD_ARGS"
    assert _check("charge", {"current_ua": True}) == "BAD_ARGS"             # bools are not ints
    assert _check("discharge", {"current_ua": 10, "duration_s": "1"}) == "BAD_ARGS"
    assert _check("set_limits", {}) == "BAD_ARGS"
    assert _check("set_limits", {"cvl": 2500}) == "BAD_ARGS"
    assert _check("set_limits", {"cvl_mv": 2500.0}) == "BAD_ARGS"


def test_current_ranges_at_and_beyond_both_ends():
    assert _check("charge", {"current_ua": 1}) == "OK"
    assert _check("charge", {"current_ua": 2048}) == "OK"
    assert _check("charge", {"current_ua": 0}) == "OUT_OF_RANGE"
    assert _check("discharge", {"current_ua": 2049}) == "OUT_OF_RANGE"
    assert _check("charge", {"current_ua": -5}) == "OUT_OF_RANGE"
    assert _check("charge", {"current_ua": 10, "duration_s": MAX_DURATION_S}) == "OK"
    assert _check("charge", {"current_ua": 10, "duration_s": MAX_DURATION_S + 1}) == "OUT_OF_RANGE"
    assert _check("charge", {"current_ua": 10, "duration_s": 0}) == "OUT_OF_RANGE"


def test_states_each_command_is_allowed_in():
    allowed = {"formation/start": ("SHIPPED", "SAFE"), "charge": ("READY",), "discharge": ("READY",),
               "rest": ("READY", "SAFE"), "stop": ("SHIPPED", "FORMING", "READY"),
               "reset_fault": ("FAULT",), "set_limits": STATES}
    for name in COMMANDS:
        args = {"current_ua": 10} if name in ("charge", "discharge") else None
        if name == "set_limits":
            args = {"ccl_ua": 10}
        for state in STATES:
            got = _check(name, args, state)
            if state in allowed[name]:
                assert got == "OK", (name, state, got)
            elif state == "FAULT":
                assert got == "FAULT_ACTIVE", (name, state, got)
            else:
                assert got == "NOT_ALLOWED_IN_STATE", (name, state, got)


def test_argument_errors_come_before_the_state():
    assert _check("charge", {"current_ua": 0}, "FAULT") == "OUT_OF_RANGE"
    assert _check("stop", {"x": 1}, "FAULT") == "BAD_ARGS"
    assert _check("reset_fault", {"x": 1}, "READY") == "BAD_ARGS"


def test_set_limits_ranges_and_only_tightening():
    assert _check("set_limits", {"cvl_mv": 2600, "dvl_mv": 2000}) == "OK"
    assert _check("set_limits", {"cvl_mv": 2601}) == "OUT_OF_RANGE"
    assert _check("set_limits", {"dvl_mv": 1999}) == "OUT_OF_RANGE"
    assert _check("set_limits", {"ccl_ua": -1}) == "OUT_OF_RANGE"
    assert _check("set_limits", {"dcl_ua": 2049}) == "OUT_OF_RANGE"
    assert _check("set_limits", {"cvl_mv": 2100, "dvl_mv": 2100}) == "OUT_OF_RANGE"   # dvl < cvl
    out = _out()
    out.set_user_limits({"cvl_mv": 2400, "dvl_mv": 2100, "ccl_ua": 50, "dcl_ua": 60})
    assert _check("set_limits", {"dvl_mv": 2450}, out=out) == "OUT_OF_RANGE"        # against user cvl
    assert _check("set_limits", {"cvl_mv": 2500}, out=out) == "WOULD_LOOSEN_LIMITS"
    assert _check("set_limits", {"dvl_mv": 2050}, out=out) == "WOULD_LOOSEN_LIMITS"
    assert _check("set_limits", {"ccl_ua": 51}, out=out) == "WOULD_LOOSEN_LIMITS"
    assert _check("set_limits", {"dcl_ua": 61}, out=out) == "WOULD_LOOSEN_LIMITS"
    assert _check("set_limits", {"cvl_mv": 2300, "ccl_ua": 40}, out=out) == "OK"
    assert _check("set_limits", {"ccl_ua": 10}, "FAULT", out) == "OK"            # any state


def test_state_code():
    assert state_code("READY", ("READY",)) == "OK"
    assert state_code("FAULT", ("READY",)) == "FAULT_ACTIVE"
    assert state_code("SAFE", ("READY",)) == "NOT_ALLOWED_IN_STATE"
    assert state_code("SAFE", ()) == "NOT_ALLOWED_IN_STATE"


def test_request_error():
    assert request_error(0, 2048) == "" and request_error(-2048, 2048) == ""
    assert request_error(2049, 2048) == "beyond ±2048 uA"
    assert request_error(-2049, 2048) == "beyond ±2048 uA"
    assert request_error(1.0, 2048) == "must be an int"
    assert request_error(False, 2048) == "must be an int"
