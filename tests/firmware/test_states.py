# The state table (bmsfw.states.TRANSITIONS), one test per transition, each
# driven through the real Controller on the fake HAL.
# Run: .venv/bin/python -m pytest tests/firmware/test_states.py -q
from fakes import (FakeHal, kinds, ready, record_bytes, run, shipped, small_cell, small_config)

from bmsfw import states
from bmsfw.controller import Controller
from bmsfw.states import FAULTS, STATES, SUBSTATES, TRANSITIONS, next_state

UAH = 3600000


def _boot(cell_mv=None, record=None, **cfg):
    hal = FakeHal(cell=small_cell(), record=record)
    if cell_mv is not None:
        hal.vcell_override_mv = cell_mv
    ctrl = Controller(hal, small_config(**cfg), "test-0001")
    events = run(ctrl, hal, 2)
    return ctrl, hal, events


def _state_events(events):
    return [(e["from"], e["to"]) for e in kinds(events, "STATE")]


# --- the table itself ---------------------------------------------------------
def test_table_uses_only_defined_names():
    for row in TRANSITIONS:
        assert row[0] in STATES and row[3] in STATES
        assert row[1] is None or row[1] in SUBSTATES
        assert row[4] is None or row[4] in SUBSTATES


def test_table_has_no_duplicate_rows():
    keys = [(r[0], r[1], r[2]) for r in TRANSITIONS]
    for k in keys:
        assert keys.count(k) == 1, k


def test_every_operating_state_can_fault_and_fault_leaves_only_by_reset():
    for s in (states.BOOT, states.SHIPPED, states.FORMING, states.READY, states.SAFE):
        assert next_state(s, "", states.FAULT_LATCHED)[3] == states.FAULT
    leaving = [r for r in TRANSITIONS if r[0] == states.FAULT]
    assert [r[2] for r in leaving] == [states.RESET_FAULT]


def test_every_action_of_the_table_is_dispatched_and_none_unused():
    from bmsfw.controller import ACTIONS
    assert set(ACTIONS) == set(row[5] for row in TRANSITIONS)
    for name in ACTIONS:
        assert ACTIONS[name] is None or callable(ACTIONS[name]), name


def test_only_resume_forming_leaves_the_substate_to_the_record():
    assert [r[2] for r in TRANSITIONS if r[4] is None] == [states.RESUME_FORMING]


def test_unknown_event_means_nothing():
    assert next_state(states.READY, states.RESTING, states.NUCLEATED) is None
    assert next_state(states.FAULT, "", states.STOP) is None


def test_names_are_unique_upper_case():
    for group in (STATES, FAULTS, states.EVENT_KINDS, SUBSTATES[1:]):
        for name in group:
            assert name == name.upper() and " " not in name
            assert list(group).count(name) == 1


# --- BOOT ---------------------------------------------------------------------------
def test_boot_to_shipped_when_precursor_found():
    ctrl, hal, events = _boot(auto_form=False)
    assert ctrl.state == "SHIPPED" and ctrl.substate == ""
    assert _state_events(events) == [("BOOT", "SHIPPED")]
    assert not hal.relay and hal.setpoint_ua == 0


def test_boot_waits_with_relay_open_before_reading_the_ocv():
    hal = FakeHal(cell=small_cell())
    ctrl = Controller(hal, small_config(boot_settle_ms=5000), "test-0001")
    run(ctrl, hal, 4)
    assert ctrl.state == "BOOT" and not hal.relay
    run(ctrl, hal, 1)
    assert ctrl.state != "BOOT"


def test_boot_to_forming_when_record_says_forming():
    rec = record_bytes("FORMING", "PLATE", plated_uas=5 * UAH, inventory_uas=5 * UAH, flags=1)
    ctrl, hal, events = _boot(cell_mv=2300, record=rec)
    assert (ctrl.state, ctrl.substate) == ("FORMING", "PLATE")
    assert ctrl.ledger.uas("plated") >= 5 * UAH
    assert hal.relay and hal.setpoint_ua > 0


def test_boot_to_ready_when_formed_cell_and_record_ready():
    ctrl, hal = ready(inventory_pm=500)
    assert (ctrl.state, ctrl.substate) == ("READY", "RESTING")
    # SOC is the estimator's: lithium above the 1 µAh reserve over the 19 µAh window
    assert ctrl.telemetry()["soc_pm"] == 473


def test_boot_to_ready_when_formed_cell_has_no_record():
    ctrl, hal, events = _boot(cell_mv=2300)
    assert ctrl.state == "READY"
    assert "without record" in kinds(events, "STATE")[0]["detail"]
    assert ctrl.dcl_ua == 0            # inventory unknown: counted from 0, no discharge


def test_boot_to_safe_when_record_says_safe():
    rec = record_bytes("SAFE", "", resume_state="FORMING", resume_substate="PLATE", flags=1)
    ctrl, hal, events = _boot(cell_mv=2300, record=rec)
    assert ctrl.state == "SAFE" and not hal.relay


def test_boot_to_fault_when_ocv_is_a_short():
    ctrl, hal, events = _boot(cell_mv=10)
    assert ctrl.state == "FAULT" and ctrl.faults == ("SHORT",)
    assert hal.setpoint_ua == 0 and not hal.relay
    assert [e["fault"] for e in kinds(events, "FAULT")] == ["SHORT"]


def test_boot_to_fault_when_no_cell():
    ctrl, hal, events = _boot(cell_mv=4096)
    assert ctrl.state == "FAULT" and "NO_CELL" in ctrl.faults


def test_boot_to_fault_when_formed_record_but_precursor_voltage():
    rec = record_bytes("READY", "RESTING", inventory_uas=10 * UAH)
    ctrl, hal, events = _boot(record=rec)
    assert ctrl.state == "FAULT" and ctrl.faults == ("CRACK_SUSPECTED",)


def test_boot_to_fault_when_faults_were_latched_before_reset():
    rec = record_bytes("FAULT", "", resume_state="READY", resume_substate="RESTING",
                       fault_mask=1 << FAULTS.index("OVERCURRENT"), inventory_uas=10 * UAH)
    ctrl, hal, events = _boot(cell_mv=2300, record=rec)
    assert ctrl.state == "FAULT" and ctrl.faults == ("OVERCURRENT",)


# --- SHIPPED ---------------------------------------------------------------------------
def test_shipped_to_forming_when_precursor_found():
    ctrl, hal, events = _boot(auto_form=True)
    assert _state_events(events) == [("BOOT", "SHIPPED"), ("SHIPPED", "FORMING")]
    assert (ctrl.state, ctrl.substate) == ("FORMING", "NUCLEATE")


def test_shipped_to_forming_on_formation_start():
    ctrl, hal = shipped()
    assert ctrl.state == "SHIPPED"
    assert ctrl.command("formation/start", {}) == (True, "OK")
    assert (ctrl.state, ctrl.substate) == ("FORMING", "NUCLEATE")
    run(ctrl, hal, 2)
    assert hal.relay and hal.setpoint_ua == 10      # 10 µA/cm² on 1 cm²


def test_shipped_to_fault_when_fault_latched():
    ctrl, hal = shipped()
    hal.ntc_open = True
    events = run(ctrl, hal, 3)
    assert ctrl.state == "FAULT" and ctrl.faults == ("SENSOR",)
    assert ("SHIPPED", "FAULT") in _state_events(events)


def test_shipped_to_safe_on_stop():
    ctrl, hal = shipped()
    assert ctrl.command("stop", {}) == (True, "OK")
    assert ctrl.state == "SAFE"


# --- FORMING -----------------------------------------------------------------------------
def test_forming_nucleate_to_plate_when_nucleated():
    ctrl, hal, events = _boot(auto_form=True)
    run(ctrl, hal, 3600, until=lambda c: c.substate == "PLATE")
    assert ctrl.substate == "PLATE"
    # the nucleation charge was counted and the plateau seen first
    assert ctrl.ledger.uas("plated") >= ctrl.config.nucleation_uas
    assert ctrl.formation.plateau_seen
    run(ctrl, hal, 2)
    assert hal.setpoint_ua == 100


def test_forming_plate_to_verify_when_target_reached():
    rec = record_bytes("FORMING", "PLATE", plated_uas=19 * UAH, inventory_uas=19 * UAH, flags=1)
    hal = FakeHal(cell=small_cell(19 * UAH), record=rec)
    ctrl = Controller(hal, small_config(), "test-0001")
    run(ctrl, hal, 3600, until=lambda c: c.substate == "VERIFY")
    assert ctrl.substate == "VERIFY"
    assert ctrl.ledger.uas("plated") >= ctrl.target_uas


def test_forming_verify_to_ready_when_formation_done():
    target = 20 * UAH
    rec = record_bytes("FORMING", "VERIFY", plated_uas=target, inventory_uas=target, flags=1)
    hal = FakeHal(cell=small_cell(target), record=rec)
    ctrl = Controller(hal, small_config(), "test-0001")
    events = run(ctrl, hal, 3600, until=lambda c: c.state == "READY")
    assert (ctrl.state, ctrl.substate) == ("READY", "RESTING")
    done = kinds(events, "FORMATION_DONE")
    assert len(done) == 1 and done[0]["ce_ppm"] >= 990000


def test_forming_to_fault_when_no_plating():
    hal = FakeHal(cell=small_cell(plates=False))
    ctrl = Controller(hal, small_config(), "test-0001")
    run(ctrl, hal, 7200, until=lambda c: c.state == "FAULT")
    assert ctrl.faults == ("NO_PLATING",)


def test_forming_to_safe_on_stop():
    ctrl, hal, events = _boot(auto_form=True)
    assert ctrl.command("stop", {}) == (True, "OK")
    assert ctrl.state == "SAFE" and hal.setpoint_ua == 0 and not hal.relay


# --- READY -------------------------------------------------------------------------------------
def test_ready_resting_to_charging_on_charge():
    ctrl, hal = ready()
    assert ctrl.command("charge", {"current_ua": 50}) == (True, "OK")
    run(ctrl, hal, 1)
    assert ctrl.substate == "CHARGING" and hal.setpoint_ua == 50


def test_ready_resting_to_discharging_on_discharge():
    ctrl, hal = ready()
    ctrl.command("discharge", {"current_ua": 50})
    run(ctrl, hal, 1)
    assert ctrl.substate == "DISCHARGING" and hal.setpoint_ua == -50


def test_ready_charging_to_resting_on_rest():
    ctrl, hal = ready()
    ctrl.command("charge", {"current_ua": 50})
    run(ctrl, hal, 1)
    assert ctrl.command("rest", {}) == (True, "OK")
    run(ctrl, hal, 1)
    assert ctrl.substate == "RESTING" and hal.setpoint_ua == 0


def test_ready_to_fault_when_fault_latched():
    ctrl, hal = ready()
    hal.vcell_override_mv = 2800
    events = run(ctrl, hal, 3)
    assert ctrl.state == "FAULT" and ctrl.faults == ("OVERVOLTAGE",)
    assert ("READY", "FAULT") in _state_events(events)


def test_ready_to_safe_on_stop():
    ctrl, hal = ready()
    ctrl.command("charge", {"current_ua": 50})
    run(ctrl, hal, 1)
    assert ctrl.command("stop", {}) == (True, "OK")
    assert ctrl.state == "SAFE" and hal.setpoint_ua == 0 and not hal.relay


# --- FAULT and SAFE ---------------------------------------------------------------------------
def test_fault_to_boot_on_reset_fault_when_cause_gone():
    ctrl, hal = ready()
    hal.vcell_override_mv = 2800
    run(ctrl, hal, 3)
    assert ctrl.command("reset_fault", {}) == (False, "FAULT_ACTIVE")    # still over
    assert ctrl.state == "FAULT"
    hal.vcell_override_mv = None
    run(ctrl, hal, 1)                 # the cause is judged on the latest measurement
    assert ctrl.state == "FAULT"      # still latched although the cause is gone
    assert ctrl.command("reset_fault", {}) == (True, "OK")
    assert ctrl.state == "BOOT" and ctrl.faults == ()
    run(ctrl, hal, 2)
    assert ctrl.state == "READY"


def test_safe_to_boot_on_rest():
    ctrl, hal = ready()
    ctrl.command("stop", {})
    assert ctrl.command("rest", {}) == (True, "OK")
    assert ctrl.state == "BOOT"
    run(ctrl, hal, 2)
    assert ctrl.state == "READY"


def test_safe_to_boot_on_formation_start_resumes_forming():
    ctrl, hal, events = _boot(auto_form=False)
    ctrl.command("formation/start", {})
    run(ctrl, hal, 5)
    ctrl.command("stop", {})
    assert ctrl.command("formation/start", {}) == (True, "OK")
    run(ctrl, hal, 2)
    assert ctrl.state == "FORMING"


def test_safe_to_fault_when_fault_latched():
    ctrl, hal = ready()
    ctrl.command("stop", {})
    hal.ntc_short = True
    run(ctrl, hal, 3)
    assert ctrl.state == "FAULT" and ctrl.faults == ("SENSOR",)
