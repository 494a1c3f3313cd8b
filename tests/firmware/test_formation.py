# Formation through the Controller on the fake cell: currents, voltage
# signatures (plateau, alloy, no plating, crack, short), verify, cold, and
# resuming after a power cut at any instant.
# Run: .venv/bin/python -m pytest tests/firmware/test_formation.py -q
from fakes import FakeHal, kinds, record_bytes, run, small_cell, small_config

from bmsfw.controller import Controller

UAH = 3600000
TARGET = 20 * UAH


def _forming(cell=None, temp_c=25.0, **cfg):
    hal = FakeHal(cell=cell if cell is not None else small_cell(), temp_c=temp_c)
    ctrl = Controller(hal, small_config(**cfg), "test-0001")
    return ctrl, hal


def test_whole_formation_reaches_ready_with_target_inventory():
    ctrl, hal = _forming()
    seen = {}

    def watch(c):
        seen[(c.state, c.substate, hal.setpoint_ua)] = True
        return c.state in ("READY", "FAULT")
    events = run(ctrl, hal, 4 * 3600, until=watch)
    assert ctrl.state == "READY", ctrl.faults
    assert ("FORMING", "NUCLEATE", 10) in seen          # 10 µA/cm² nucleation
    assert ("FORMING", "PLATE", 100) in seen            # 100 µA/cm² at 25 °C
    assert ("FORMING", "VERIFY", -100) in seen          # the small cycle's strip
    done = kinds(events, "FORMATION_DONE")[0]
    assert done["ce_ppm"] >= 990000
    # inventory on target within 0.5 % (counted) and the cell really holds it
    assert abs(ctrl.ledger.uas("inventory") - TARGET) <= TARGET // 200
    assert abs(hal.cell.li_uas - ctrl.ledger.uas("inventory")) <= 2 * 100 * 1000
    tel = ctrl.telemetry()
    assert tel["formation_pm"] == 1000 and tel["soc_pm"] >= 990    # less the 0.5 % plating loss the estimator takes
    assert tel["dcl_ua"] > 0                              # discharge allowed once verified
    # saved about every 0.25 % of target, plus each event
    assert 390 <= done["writes"] <= 430, done["writes"]


def test_dcl_is_zero_until_formation_is_verified():
    ctrl, hal = _forming()
    run(ctrl, hal, 3 * 3600, until=lambda c: c.substate == "VERIFY")
    assert ctrl.ledger.uas("inventory") >= TARGET
    # plating done, lithium there, but only the verify cycle may strip
    run(ctrl, hal, 2)
    assert ctrl.formation.verify_step == 0 and ctrl.dcl_ua == 0     # resting
    run(ctrl, hal, 600, until=lambda c: c.formation.verify_step == 1)
    assert ctrl.dcl_ua > 0                                          # the strip step
    run(ctrl, hal, 600, until=lambda c: c.formation.verify_step == 2)
    run(ctrl, hal, 1)
    assert ctrl.dcl_ua == 0                                         # plating back


def test_plating_current_follows_the_temperature_table():
    ctrl, hal = _forming(temp_c=10.0)
    run(ctrl, hal, 3600, until=lambda c: c.substate == "PLATE")
    run(ctrl, hal, 2)
    assert hal.setpoint_ua == 55                          # 55 µA/cm² at 10 °C
    hal.temp_c = 45.0
    run(ctrl, hal, 2)
    assert hal.setpoint_ua == 150


def test_no_plating_when_charge_goes_in_but_no_lithium_stays():
    # the seed's control cell: copper without LiPON
    ctrl, hal = _forming(cell=small_cell(plates=False))
    events = run(ctrl, hal, 3600, until=lambda c: c.state == "FAULT")
    assert ctrl.faults == ("NO_PLATING",)
    assert ctrl.ledger.uas("plated") >= ctrl.config.no_plating_uas
    assert ctrl.ledger.uas("plated") < ctrl.config.no_plating_uas + 20 * 1000   # stopped at once
    assert hal.setpoint_ua == 0 and not hal.relay
    assert kinds(events, "FAULT")[0]["fault"] == "NO_PLATING"


def _alloy_then_lithium(cell, current_ua):
    # precursor, then a wetting-layer alloy plateau (~1.95 V) for 2 µAh, then Li-S
    if cell.li_uas < UAH // 10:
        return 150
    if cell.li_uas < 2 * UAH:
        return 1950 + current_ua // 2
    return 2300 + current_ua // 2


def test_wetting_layer_alloy_plateau_counts_as_nucleation():
    cell = small_cell()
    cell.voltage_fn = _alloy_then_lithium
    ctrl, hal = _forming(cell=cell, has_wetting_layer=True, wetting_capacity_uah=3)
    run(ctrl, hal, 3600, until=lambda c: c.substate == "PLATE" or c.state == "FAULT")
    assert ctrl.substate == "PLATE" and ctrl.formation.alloy_seen
    assert not ctrl.formation.plateau_seen                # still on the alloy
    run(ctrl, hal, 3600, until=lambda c: c.formation.plateau_seen or c.state == "FAULT")
    assert ctrl.state == "FORMING"


def test_alloy_plateau_without_a_wetting_layer_is_no_plating():
    cell = small_cell()
    cell.voltage_fn = _alloy_then_lithium
    ctrl, hal = _forming(cell=cell)
    run(ctrl, hal, 3600, until=lambda c: c.state == "FAULT")
    assert ctrl.faults == ("NO_PLATING",)


def _cracks_at(li_uas, drop_to_mv):
    def fn(cell, current_ua):
        if cell.li_uas < cell.cover_uas:
            return 150
        if cell.li_uas >= li_uas:
            return drop_to_mv
        return 2300 + current_ua // 2
    return fn


def test_sudden_voltage_drop_while_plating_is_crack_suspected():
    cell = small_cell()
    cell.voltage_fn = _cracks_at(8 * UAH, 2100)
    ctrl, hal = _forming(cell=cell)
    events = run(ctrl, hal, 3 * 3600, until=lambda c: c.state == "FAULT")
    assert ctrl.faults == ("CRACK_SUSPECTED",)
    assert hal.cell.li_uas < 8 * UAH + 300 * 1000        # stopped within the debounce
    assert "fell" in kinds(events, "FAULT")[0]["detail"]


def test_voltage_collapse_while_plating_is_short():
    cell = small_cell()
    cell.voltage_fn = _cracks_at(8 * UAH, 100)
    ctrl, hal = _forming(cell=cell)
    run(ctrl, hal, 3 * 3600, until=lambda c: c.state == "FAULT")
    assert ctrl.faults == ("SHORT",)


def _verify_ctrl(voltage_fn):
    rec = record_bytes("FORMING", "VERIFY", plated_uas=TARGET, inventory_uas=TARGET, flags=1)
    cell = small_cell(TARGET)
    cell.voltage_fn = voltage_fn
    hal = FakeHal(cell=cell, record=rec)
    return Controller(hal, small_config(), "test-0001"), hal


def test_verify_fails_when_ocv_is_off_the_plateau():
    ctrl, hal = _verify_ctrl(lambda cell, i: 2150 + i // 2)
    events = run(ctrl, hal, 600, until=lambda c: c.state == "FAULT")
    assert ctrl.faults == ("CRACK_SUSPECTED",)
    assert "OCV" in kinds(events, "FAULT")[0]["detail"]


def test_verify_fails_when_the_small_cycle_gives_little_back():
    # lithium not reachable: the voltage falls to DVL as soon as it is stripped
    ctrl, hal = _verify_ctrl(lambda cell, i: 1995 if i < 0 else 2300 + i // 2)
    events = run(ctrl, hal, 600, until=lambda c: c.state == "FAULT")
    assert ctrl.faults == ("CRACK_SUSPECTED",)
    assert "ppm" in kinds(events, "FAULT")[0]["detail"]


def test_cold_cell_is_not_formed_until_warmed():
    ctrl, hal = _forming(temp_c=-10.0)
    events = run(ctrl, hal, 10)
    assert ctrl.state == "SHIPPED"
    assert ctrl.faults == ("UNDER_TEMPERATURE",)
    assert hal.setpoint_ua == 0 and hal.cell.li_uas == 0
    assert [e["fault"] for e in kinds(events, "FAULT")] == ["UNDER_TEMPERATURE"]
    assert ctrl.command("formation/start", {}) == (False, "FAULT_ACTIVE")
    hal.temp_c = 25.0
    events = run(ctrl, hal, 10)
    assert ctrl.state == "FORMING" and ctrl.faults == ()
    assert [e["fault"] for e in kinds(events, "FAULT_CLEARED")] == ["UNDER_TEMPERATURE"]
    order = [e["event"] for e in events if e["event"] in ("FAULT_CLEARED", "STATE")]
    assert order == ["FAULT_CLEARED", "STATE"]            # cleared, then formation starts
    run(ctrl, hal, 2)
    assert hal.setpoint_ua == 10


def test_cooling_during_plating_derates_then_pauses_then_resumes():
    ctrl, hal = _forming()
    run(ctrl, hal, 3600, until=lambda c: c.substate == "PLATE")
    hal.temp_c = 5.0
    run(ctrl, hal, 2)
    assert hal.setpoint_ua == 43                          # 30 + (55 - 30) / 2 = 42.5, to nearest
    hal.temp_c = -5.0
    run(ctrl, hal, 5)
    assert (ctrl.state, ctrl.substate) == ("FORMING", "PLATE")
    assert hal.setpoint_ua == 0 and "UNDER_TEMPERATURE" in ctrl.faults
    hal.temp_c = 20.0
    run(ctrl, hal, 5)
    assert hal.setpoint_ua > 0 and ctrl.faults == ()


def _power_cut_run(cut_after_s):
    """Form, cut the power after cut_after_s, boot a new controller on the
    same board (record and cell survive), finish. Returns (ctrl, hal)."""
    ctrl, hal = _forming()
    run(ctrl, hal, cut_after_s)
    hal.setpoint_ua = 0                                   # no power: no current
    hal.relay = False
    ctrl2 = Controller(hal, small_config(), "test-0001")
    run(ctrl2, hal, 4 * 3600, until=lambda c: c.state in ("READY", "FAULT"))
    return ctrl2, hal


def test_power_cut_at_any_instant_resumes_within_half_a_percent():
    for cut_s in (45, 400, 4001, 7000, 7205):
        ctrl, hal = _power_cut_run(cut_s)
        assert ctrl.state == "READY", (cut_s, ctrl.faults)
        # counted inventory on target; the cell holds at most one save interval more
        assert abs(ctrl.ledger.uas("inventory") - TARGET) <= TARGET // 200, cut_s
        assert abs(hal.cell.li_uas - TARGET) <= TARGET // 200, (cut_s, hal.cell.li_uas)


def test_power_cut_never_counts_charge_twice():
    ctrl, hal = _forming()
    run(ctrl, hal, 3000)
    true_li = hal.cell.li_uas
    hal.setpoint_ua = 0
    hal.relay = False
    ctrl2 = Controller(hal, small_config(), "test-0001")
    # restored from the record: never more than the cell really has
    assert ctrl2.ledger.uas("inventory") <= true_li
    assert true_li - ctrl2.ledger.uas("inventory") <= small_config().save_interval_uas + 100 * 1000


def test_event_seq_continues_after_a_power_cut():
    ctrl, hal = _forming()
    first = run(ctrl, hal, 1000)
    last_seq = first[-1]["seq"]
    hal.setpoint_ua = 0
    ctrl2 = Controller(hal, small_config(), "test-0001")
    again = run(ctrl2, hal, 5)
    assert again[0]["seq"] == last_seq + 1
