# Controller API: telemetry frame, events, commands (a rejected command
# changes nothing), current requests, link loss, faults acting within the
# tick, tick-length independence, and steady-state allocation.
# Run: .venv/bin/python -m pytest tests/firmware/test_controller.py -q
import gc

from fakes import (FakeHal, IntHal, kinds, pin_counts, raises, ready, record_bytes, run, shipped, small_cell,
                   small_config)

from bmsfw.controller import Controller, ControllerError
from bmsfw.telemetry import TELEMETRY_KEYS

UAH = 3600000


def _snapshot(ctrl, hal):
    tel = ctrl.telemetry()
    frame = {}
    for k in tel:
        frame[k] = list(tel[k]) if isinstance(tel[k], list) else tel[k]
    out = ctrl.outputs
    return (frame, ctrl.state, ctrl.substate, out.request_ua, out.user_cvl_mv, out.user_dvl_mv,
            out.user_ccl_ua, out.user_dcl_ua, ctrl.event_seq, hal.record, hal.setpoint_ua, hal.relay)


# --- construction -------------------------------------------------------------------
def test_constructor_refuses_bad_arguments():
    hal = FakeHal()
    assert raises(ControllerError, Controller, hal, None, "").field == "device_id"
    assert raises(ControllerError, Controller, hal, None, 5).field == "device_id"
    assert raises(ControllerError, Controller, hal, {"area_mm2": 1}).field == "config"


def test_constructor_sets_safe_outputs_and_touches_nothing_else():
    hal = FakeHal()
    hal.relay = True
    hal.setpoint_ua = 77
    Controller(hal)
    assert hal.setpoint_ua == 0 and not hal.relay and hal.saves == 0


# --- telemetry and events ----------------------------------------------------------
def test_telemetry_is_the_same_dict_with_the_documented_keys():
    ctrl, hal = ready()
    a = ctrl.telemetry()
    faults = a["faults"]
    run(ctrl, hal, 3)
    b = ctrl.telemetry()
    assert a is b and b["faults"] is faults
    assert tuple(sorted(b)) == tuple(sorted(TELEMETRY_KEYS))
    assert b["kind"] == "telemetry" and b["device"] == "test-0001"
    for k in TELEMETRY_KEYS:
        if k not in ("kind", "device", "state", "substate", "faults"):
            assert type(b[k]) is int, k


def test_telemetry_figures_follow_the_tick():
    ctrl, hal = ready(inventory_pm=500)
    ctrl.command("charge", {"current_ua": 80})
    run(ctrl, hal, 2)
    t = ctrl.telemetry()
    assert t["setpoint_ua"] == 80 and t["current_ua"] == 80
    assert t["t_ms"] == hal.t_ms
    assert t["state"] == "READY" and t["substate"] == "CHARGING"
    assert t["target_uas"] == 20 * UAH
    assert t["cvl_mv"] == 2600 and t["dvl_mv"] == 2000
    assert t["ccl_ua"] == 100 and t["dcl_ua"] == 200
    assert abs(t["temp_dc"] - 250) <= 1


def test_events_have_consecutive_seq_and_frame_fields():
    ctrl, hal = shipped()
    ctrl.command("formation/start", {})
    ctrl.command("stop", {})
    evs = ctrl.pop_events()
    seqs = [e["seq"] for e in evs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for e in evs:
        assert e["kind"] == "event" and e["device"] == "test-0001"
        assert type(e["t_ms"]) is int and isinstance(e["detail"], str)
    assert [e["event"] for e in evs] == ["STATE", "COMMAND", "STATE", "COMMAND"]
    assert ctrl.telemetry()["event_seq"] == seqs[-1]


def test_pop_events_reuses_its_list_and_empties():
    ctrl, hal = shipped()
    ctrl.command("stop", {})
    first = ctrl.pop_events()
    assert len(first) == 2
    second = ctrl.pop_events()
    assert second == []
    ctrl.command("rest", {})
    third = ctrl.pop_events()
    assert len(third) == 2
    # two lists, alternating: the caller consumes one before the next pop
    assert len(set([id(first), id(second), id(third)])) == 2


# --- commands: valid -----------------------------------------------------------------------
def test_charge_with_duration_stops_by_itself():
    ctrl, hal = ready()
    assert ctrl.command("charge", {"current_ua": 60, "duration_s": 5}) == (True, "OK")
    run(ctrl, hal, 4)
    assert hal.setpoint_ua == 60
    run(ctrl, hal, 2)
    assert hal.setpoint_ua == 0 and ctrl.substate == "RESTING"


def test_charge_request_is_clamped_to_ccl():
    ctrl, hal = ready()
    ctrl.command("charge", {"current_ua": 2000})
    run(ctrl, hal, 1)
    assert hal.setpoint_ua == 100 and ctrl.ccl_ua == 100


def test_discharge_request_is_clamped_to_dcl():
    ctrl, hal = ready()
    ctrl.command("discharge", {"current_ua": 2000})
    run(ctrl, hal, 1)
    assert hal.setpoint_ua == -200


def test_set_limits_tightens_and_is_persisted():
    ctrl, hal = ready()
    assert ctrl.command("set_limits", {"ccl_ua": 40, "dvl_mv": 2100}) == (True, "OK")
    ctrl.command("charge", {"current_ua": 100})
    run(ctrl, hal, 1)
    assert hal.setpoint_ua == 40 and ctrl.telemetry()["dvl_mv"] == 2100
    ctrl2 = Controller(hal, small_config(), "test-0001")
    assert ctrl2.outputs.user_ccl_ua == 40 and ctrl2.outputs.user_dvl_mv == 2100


# --- commands: invalid change nothing ----------------------------------------------------
def _refused(ctrl, hal, name, args, code):
    before = _snapshot(ctrl, hal)
    assert ctrl.command(name, args) == (False, code), (name, args)
    assert _snapshot(ctrl, hal) == before, (name, args)
    assert ctrl.pop_events() == []


def test_bad_commands_are_refused_and_change_nothing():
    ctrl, hal = ready()
    ctrl.pop_events()
    _refused(ctrl, hal, "explode", {}, "UNKNOWN_COMMAND")
    _refused(ctrl, hal, 5, {}, "UNKNOWN_COMMAND")
    _refused(ctrl, hal, "charge", [], "BAD_ARGS")
    _refused(ctrl, hal, "charge", {}, "BAD_ARGS")
    _refused(ctrl, hal, "charge", {"current_ua": "50"}, "BAD_ARGS")
    _refused(ctrl, hal, "charge", {"current_ua": 50.0}, "BAD_ARGS")
    _refused(ctrl, hal, "charge", {"current_ua": True}, "BAD_ARGS")
    _refused(ctrl, hal, "charge", {"current_ua": 50, "volts": 2}, "BAD_ARGS")
    _refused(ctrl, hal, "charge", {"current_ua": 0}, "OUT_OF_RANGE")
    _refused(ctrl, hal, "charge", {"current_ua": -5}, "OUT_OF_RANGE")
    _refused(ctrl, hal, "discharge", {"current_ua": 2049}, "OUT_OF_RANGE")
    _refused(ctrl, hal, "charge", {"current_ua": 50, "duration_s": 0}, "OUT_OF_RANGE")
    _refused(ctrl, hal, "charge", {"current_ua": 50, "duration_s": "5"}, "BAD_ARGS")
    _refused(ctrl, hal, "rest", {"now": 1}, "BAD_ARGS")
    _refused(ctrl, hal, "set_limits", {}, "BAD_ARGS")
    _refused(ctrl, hal, "set_limits", {"ccl": 5}, "BAD_ARGS")
    _refused(ctrl, hal, "set_limits", {"cvl_mv": 2700}, "OUT_OF_RANGE")
    _refused(ctrl, hal, "set_limits", {"dvl_mv": 1900}, "OUT_OF_RANGE")
    _refused(ctrl, hal, "set_limits", {"cvl_mv": 2200, "dvl_mv": 2300}, "OUT_OF_RANGE")
    _refused(ctrl, hal, "set_limits", {"ccl_ua": -1}, "OUT_OF_RANGE")
    _refused(ctrl, hal, "formation/start", {}, "NOT_ALLOWED_IN_STATE")
    _refused(ctrl, hal, "reset_fault", {}, "NOT_ALLOWED_IN_STATE")


def test_loosening_limits_is_refused():
    ctrl, hal = ready()
    ctrl.command("set_limits", {"cvl_mv": 2500, "ccl_ua": 50, "dcl_ua": 50, "dvl_mv": 2100})
    ctrl.pop_events()
    _refused(ctrl, hal, "set_limits", {"cvl_mv": 2550}, "WOULD_LOOSEN_LIMITS")
    _refused(ctrl, hal, "set_limits", {"dvl_mv": 2050}, "WOULD_LOOSEN_LIMITS")
    _refused(ctrl, hal, "set_limits", {"ccl_ua": 60}, "WOULD_LOOSEN_LIMITS")
    _refused(ctrl, hal, "set_limits", {"dcl_ua": 60}, "WOULD_LOOSEN_LIMITS")
    assert ctrl.command("set_limits", {"ccl_ua": 30}) == (True, "OK")
    ctrl.clear_user_limits()
    run(ctrl, hal, 1)
    assert ctrl.telemetry()["cvl_mv"] == 2600


def test_commands_in_the_wrong_state_change_nothing():
    ctrl, hal = shipped()
    ctrl.pop_events()
    _refused(ctrl, hal, "charge", {"current_ua": 10}, "NOT_ALLOWED_IN_STATE")
    _refused(ctrl, hal, "rest", {}, "NOT_ALLOWED_IN_STATE")
    hal.vcell_override_mv = 2800
    run(ctrl, hal, 3)
    ctrl.pop_events()
    assert ctrl.state == "FAULT"
    _refused(ctrl, hal, "charge", {"current_ua": 10}, "FAULT_ACTIVE")
    _refused(ctrl, hal, "formation/start", {}, "FAULT_ACTIVE")
    _refused(ctrl, hal, "stop", {}, "FAULT_ACTIVE")
    _refused(ctrl, hal, "reset_fault", {}, "FAULT_ACTIVE")


# --- current requests -----------------------------------------------------------------------
def test_request_current_is_clamped_and_only_in_ready():
    ctrl, hal = ready()
    assert ctrl.request_current_ua(500)
    run(ctrl, hal, 1)
    assert hal.setpoint_ua == 100
    assert ctrl.request_current_ua(-500)
    run(ctrl, hal, 1)
    assert hal.setpoint_ua == -200
    assert ctrl.request_current_ua(0)
    run(ctrl, hal, 1)
    assert hal.setpoint_ua == 0
    ctrl2, hal2 = shipped()
    assert ctrl2.request_current_ua(50) is False
    run(ctrl2, hal2, 1)
    assert hal2.setpoint_ua == 0


def test_request_current_refuses_bad_values():
    ctrl, hal = ready()
    assert raises(ControllerError, ctrl.request_current_ua, 1.5).field == "current_ua"
    assert raises(ControllerError, ctrl.request_current_ua, True).field == "current_ua"
    assert raises(ControllerError, ctrl.request_current_ua, 5000).field == "current_ua"
    assert ctrl.outputs.request_ua == 0


def test_discharge_that_reaches_dvl_is_closed_until_charged():
    ctrl, hal = ready(inventory_pm=500)                  # 10 µAh counted
    hal.cell.voltage_fn = lambda cell, i: 2005 if i < 0 else 2300 + i // 2
    ctrl.request_current_ua(-100)
    run(ctrl, hal, 5)
    assert hal.setpoint_ua == 0                          # empty by voltage ...
    # ... with half the target counted: not a fault by itself (an empty cell
    # whose loss was misjudged looks the same); the estimate learns from the
    # knee and the crack watch holds a rest whose voltage decides
    assert ctrl.faults == () and ctrl.est.li_eu == 0 and ctrl.crack.rests == 1
    ctrl2, hal2 = ready(inventory_pm=60)                 # 1.2 µAh counted: near the reserve
    hal2.cell.voltage_fn = lambda cell, i: 2005 if i < 0 else 2300 + i // 2
    ctrl2.request_current_ua(-100)
    run(ctrl2, hal2, 5)
    assert ctrl2.state == "READY" and ctrl2.dcl_ua == 0   # not a crack: little was counted
    ctrl2.request_current_ua(0)
    run(ctrl2, hal2, 5)
    assert ctrl2.dcl_ua == 0                             # still closed at rest, voltage recovered
    ctrl2.request_current_ua(50)
    run(ctrl2, hal2, 5)
    assert ctrl2.dcl_ua == 0                             # the knee said empty: 0.07 µAh is not above the reserve
    run(ctrl2, hal2, 300)
    assert ctrl2.dcl_ua > 0                              # charged past the reserve again: open


def test_discharge_stops_at_the_lithium_reserve():
    ctrl, hal = ready(inventory_pm=100)                 # 2 µAh, reserve 1 µAh
    ctrl.request_current_ua(-200)
    run(ctrl, hal, 3600, until=lambda c: c.dcl_ua == 0)
    assert ctrl.dcl_ua == 0 and ctrl.state == "READY"
    run(ctrl, hal, 2)
    assert hal.setpoint_ua == 0
    assert ctrl.ledger.uas("inventory") >= ctrl.reserve_uas - 200 * 1000


def test_charge_stops_at_target_plus_margin():
    ctrl, hal = ready(inventory_pm=900)
    ctrl.request_current_ua(100)
    run(ctrl, hal, 3600, until=lambda c: c.ccl_ua == 0)
    run(ctrl, hal, 2)
    assert hal.setpoint_ua == 0
    assert ctrl.ledger.uas("inventory") <= ctrl.target_uas + ctrl.target_uas // 100


# --- faults act within the tick ------------------------------------------------------------
def test_fault_sets_current_zero_and_opens_relay_in_the_same_tick():
    ctrl, hal = ready()
    ctrl.request_current_ua(100)
    run(ctrl, hal, 2)
    assert hal.relay and hal.setpoint_ua == 100
    hal.ntc_open = True
    hal.step(1000)
    ctrl.tick()
    assert ctrl.state == "FAULT" and not hal.relay and hal.setpoint_ua == 0
    ctrl2, hal2 = ready()
    ctrl2.request_current_ua(100)
    run(ctrl2, hal2, 2)
    hal2.current_gain = 0.1                              # the source stops delivering
    hal2.step(1000)
    ctrl2.tick()                                         # seen, debouncing
    assert ctrl2.state == "READY"
    hal2.step(1000)
    ctrl2.tick()
    assert ctrl2.state == "FAULT" and ctrl2.faults == ("SENSOR",)
    assert not hal2.relay and hal2.setpoint_ua == 0


def test_link_lost_latches_at_once_and_reset_recovers():
    ctrl, hal = ready()
    ctrl.request_current_ua(-50)
    run(ctrl, hal, 2)
    ctrl.report_link_lost()
    assert ctrl.state == "FAULT" and ctrl.faults == ("LINK_LOST",)
    assert hal.setpoint_ua == 0 and not hal.relay
    evs = ctrl.pop_events()
    assert [e["fault"] for e in kinds(evs, "FAULT")] == ["LINK_LOST"]
    ctrl.report_link_lost()                              # again: nothing new
    assert ctrl.pop_events() == []
    assert ctrl.command("reset_fault", {}) == (True, "OK")
    run(ctrl, hal, 2)
    assert ctrl.state == "READY"


def test_invalid_record_is_treated_as_absent_and_reported():
    good = record_bytes("READY", "RESTING", inventory_uas=10 * UAH)
    bad = bytearray(good)
    bad[12] ^= 0xFF
    hal = FakeHal(cell=small_cell(10 * UAH), record=bytes(bad))
    ctrl = Controller(hal, small_config(), "test-0001")
    assert ctrl.store.status == "INVALID"
    evs = run(ctrl, hal, 2)
    assert "record invalid" in kinds(evs, "STATE")[0]["detail"]
    assert ctrl.ledger.uas("inventory") == 0               # nothing taken from the bad record


# --- time ----------------------------------------------------------------------------------------
def test_tick_length_is_measured_not_assumed():
    counts = []
    for dt_ms in (100, 1000, 2500):
        ctrl, hal = ready()
        ctrl.request_current_ua(50)
        hal.step(dt_ms)
        ctrl.tick()                                     # the request takes effect
        start = ctrl.ledger.uas("inventory")
        run(ctrl, hal, 100, dt_ms=dt_ms)
        counts.append(ctrl.ledger.uas("inventory") - start)
    assert counts[0] == counts[1] == counts[2] == 50 * 100000


def test_no_counting_while_the_relay_is_open():
    ctrl, hal = shipped()
    hal.current_offset_ua = 3                           # shunt offset with the relay open
    run(ctrl, hal, 100)
    assert ctrl.ledger.uas("inventory") == 0


# --- allocation ---------------------------------------------------------------------------------
def test_steady_state_tick_allocates_nothing():
    cfg = small_config()
    inv = cfg.target_uas() // 2
    hal = IntHal(cell=small_cell(inv), record=record_bytes("READY", "RESTING", inventory_uas=inv))
    ctrl = Controller(hal, cfg, "test-0001")
    run(ctrl, hal, 20)
    assert (ctrl.state, ctrl.substate) == ("READY", "RESTING")
    tel = ctrl.telemetry()
    ticks = range(500)
    try:
        import tracemalloc
    except ImportError:
        tracemalloc = None
    if tracemalloc is not None:
        # CPython: ints above 256 are objects, so count what stays allocated
        # by bmsfw code (a growing list or a new dict would show).
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for _ in ticks:
            hal.step(1000)
            ctrl.tick()
            ctrl.telemetry()
            ctrl.pop_events()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = 0
        for stat in after.compare_to(before, "filename"):
            if "bmsfw" in str(stat.traceback):
                grown += stat.size_diff
        # a few bytes of int churn (each int attribute above 256 holds one
        # object: the estimator's and crack watch's remainders add some), not
        # 500 ticks' worth of anything
        assert grown <= 512, grown
    else:
        # MicroPython: small ints are not objects; a tick must not take a
        # single byte of heap (no gc.collect() here: the heap must not move).
        free = gc.mem_free()
        for _ in ticks:
            hal.step(1000)
            ctrl.tick()
            ctrl.telemetry()
            ctrl.pop_events()
        assert gc.mem_free() == free, free - gc.mem_free()
    assert ctrl.telemetry() is tel
    assert ctrl.state == "READY"


def test_shunt_offset_is_zeroed_before_formation_counts_charge():
    hal = FakeHal(cell=small_cell())
    hal.current_offset_ua = 4
    ctrl = Controller(hal, small_config(nucleation_uas=3600000), "test-0001")
    run(ctrl, hal, 3)                  # boot and SHIPPED with the relay open, then 10 µA set
    assert ctrl.state == "FORMING" and hal.setpoint_ua == 10
    start = ctrl.ledger.uas("plated")
    run(ctrl, hal, 100)
    # 10 µA really flows (plus the offset the zero removes): 100 s x 10 µA
    assert ctrl.ledger.uas("plated") - start == 100 * 10 * 1000


def test_stuck_vcell_is_a_sensor_fault_after_two_silent_current_steps():
    ctrl, hal = ready()
    hal.stuck[0] = pin_counts(2300)                      # VCELL frozen
    ctrl.request_current_ua(100)
    run(ctrl, hal, 3)
    assert ctrl.state == "READY"                         # one silent step is not enough
    ctrl.request_current_ua(-100)
    events = run(ctrl, hal, 3)
    assert ctrl.state == "FAULT" and ctrl.faults == ("SENSOR",)
    assert kinds(events, "FAULT")[0]["detail"] == "VCELL stuck"
    hal.stuck.clear()
    run(ctrl, hal, 1)
    assert ctrl.command("reset_fault", {}) == (False, "FAULT_ACTIVE")   # no step since: unproven


def test_a_moving_vcell_passes_the_stuck_check():
    ctrl, hal = ready()
    for request in (100, -100, 100, 0, -100, 0):
        ctrl.request_current_ua(request)
        run(ctrl, hal, 3)
    assert ctrl.state == "READY" and ctrl.faults == ()


def test_limits_never_exceed_the_usable_source_range():
    # a 250 cm² cell: the plating table asks for 25 mA, the bench source gives 2 mA
    ctrl, hal = ready(area_mm2=25000)
    assert ctrl.ccl_ua == 2000 and ctrl.dcl_ua == 2000
    ctrl.request_current_ua(2048)
    run(ctrl, hal, 3)
    assert hal.setpoint_ua == 2000 and ctrl.state == "READY"
