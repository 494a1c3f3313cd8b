"""Closed loop: the firmware (firmware/bmsfw) forms and protects cells on the twin.

Every test boots the real controller on the twin board (twin/board.py, the C core
underneath) and checks the firmware's behaviour against the twin's truth.
Run: .venv/bin/python -m pytest tests/integration/test_closed_loop.py
"""

import pytest

from twin.cell import Cell
from twin.parameters import load_parameter_set
from twin.protocol import Protocol, charge
from twin.bench import Bench
from twin.run import DUTY_D111, run_closed_loop

D111 = load_parameter_set("d111")


class Watch:
    """An on_tick hook that remembers what the bench did on every tick."""

    def __init__(self, action=None):
        self.action = action
        self.ticks = 0
        self.relay_ever_closed = False
        self.max_setpoint_ua = 0.0
        self.max_x = 0.0
        self.rows = []

    def __call__(self, bench):
        self.ticks += 1
        b = bench.board
        self.relay_ever_closed |= b.relay_closed
        self.max_setpoint_ua = max(self.max_setpoint_ua, b.setpoint_ua)
        self.max_x = max(self.max_x, bench.cell.li_to_s)
        if self.action:
            self.action(bench, self)


@pytest.mark.slow
def test_d111_formation_reaches_the_target_and_98_percent_comes_back_through_the_d111_test():
    result = run_closed_loop(D111, Protocol.from_file(DUTY_D111), seed=1)
    s = result.summary
    f = s["formation"]
    assert s["final_state"] == "READY" and s["faults"] == []
    assert not s["layer_cracked"] and s["layer_damage"] == 0.0
    target = D111.design["target_inventory_uAh"]
    assert f["counted_uAh"] >= target                        # the ledger reached the target
    assert f["plated_uAh"] >= 0.98 * target                  # the twin has it (0.5 % plating loss)
    assert f["max_current_density_uA_cm2"] <= 110
    assert s["retained_fraction"] >= 0.98                    # the seed's D111: >= 98 %
    assert len(result.cycles) >= 20


def test_naive_1_mA_cm2_formation_cracks_a_cell_without_wetting_layer_but_the_firmware_does_not():
    params = load_parameter_set("no_wetting_layer")
    naive = Cell(params)
    naive.run_segment(charge(1e-3, 3600.0).segment_fields())
    assert naive.layer_cracked

    result = run_closed_loop(params, stop_after_formation=True)
    s = result.summary
    assert not s["layer_cracked"] and s["layer_damage"] == 0.0
    assert s["final_state"] == "READY" or (s["final_state"] == "FAULT" and s["faults"])


@pytest.mark.slow
def test_at_0_C_the_formation_current_is_derated_and_the_layer_survives():
    cold = run_closed_loop(D111, ambient_c=0.0, stop_after_formation=True)
    warm = run_closed_loop(D111, ambient_c=25.0, stop_after_formation=True)
    assert cold.summary["final_state"] == "READY"
    assert not cold.summary["layer_cracked"] and cold.summary["layer_damage"] == 0.0
    assert 0 < cold.summary["formation"]["max_current_density_uA_cm2"] < \
        0.6 * warm.summary["formation"]["max_current_density_uA_cm2"]
    assert cold.summary["formation"]["duration_s"] > 1.5 * warm.summary["formation"]["duration_s"]


def test_at_minus_10_C_the_firmware_refuses_to_charge_and_forms_once_warmed():
    warmed_at_s = 4 * 3600.0
    watch = Watch()
    charge_while_cold = []

    def note(bench, w):
        if bench.t_s < warmed_at_s:
            charge_while_cold.append(bench.cell.state.charge_in_C)

    watch.action = note
    result = run_closed_loop(D111, ambient_c=-10.0, stop_after_formation=True, on_tick=watch,
                             ambient_profile=lambda t: -10.0 if t < warmed_at_s else 25.0)
    events = [(e["event"], e.get("fault")) for e in result.events]
    assert ("FAULT", "UNDER_TEMPERATURE") in events
    assert max(charge_while_cold) == 0.0                     # not a µA·s while cold
    assert result.summary["final_state"] == "READY"
    assert not result.summary["layer_cracked"]


def test_control_cell_without_lipon_gives_no_plating_after_a_bounded_charge():
    result = run_closed_loop(load_parameter_set("control_no_lipon"), stop_after_formation=True,
                             formation_timeout_s=12 * 3600.0)
    s = result.summary
    assert s["final_state"] == "FAULT" and "NO_PLATING" in s["faults"]
    assert s["charge_in_uAh"] < 10.0                        # bounded, not endless
    assert s["sim_seconds"] < 12 * 3600.0


def test_a_shorted_cell_at_boot_is_a_short_and_never_sees_current():
    bench = Bench.build(D111, seed=2)
    bench.cell.inject_short(1.0)
    watch = Watch()
    result = run_closed_loop(D111, bench=bench, on_tick=watch, stop_after_formation=True,
                             formation_timeout_s=600.0)
    assert result.summary["final_state"] == "FAULT" and "SHORT" in result.summary["faults"]
    assert not watch.relay_ever_closed and watch.max_setpoint_ua == 0.0
    assert bench.cell.state.charge_in_C == 0.0


def test_a_crack_after_formation_is_suspected_within_a_few_cycles_and_charging_stops():
    state = {"cracked_at_s": None, "fault_at_s": None}

    def crack_once_cycling(bench, w):
        if state["cracked_at_s"] is None and bench.controller.state == "READY" and bench.t_s > 3 * 3600:
            bench.board.inject("crack_now")
            state["cracked_at_s"] = bench.t_s
        if state["fault_at_s"] is None and bench.controller.state == "FAULT":
            state["fault_at_s"] = bench.t_s

    result = run_closed_loop(D111, Protocol.from_file(DUTY_D111), on_tick=Watch(crack_once_cycling))
    assert state["cracked_at_s"] is not None
    assert "CRACK_SUSPECTED" in result.summary["faults"]
    cycles_to_detect = (state["fault_at_s"] - state["cracked_at_s"]) / 1800.0   # 30 min cycles
    assert cycles_to_detect <= 6
    bench_after = result.rows[-1]
    assert bench_after[4] <= 0.0                             # no charging current at the end


def test_a_long_high_discharge_request_stops_before_the_reserve_and_never_nears_li2s():
    watch = Watch()
    duty = Protocol.parse("Discharge at 500 uA for 5 hours\nRest for 10 minutes\n")
    result = run_closed_loop(D111, duty, on_tick=watch)
    s = result.summary
    assert s["final_state"] in ("READY", "FAULT")
    assert s["plated_uAh_end"] > 0.5                         # lithium left on the electrode
    assert watch.max_x < 1.0                                 # catholyte never below Li2S2
    end = result.rows[-1]
    assert end[16] == 0                                     # DCL: the firmware closed discharge
    reserve_uAh = D111.design["lithium_reserve_uAh"]
    assert end[12] >= reserve_uAh                           # ledger inventory kept the reserve
    assert result.summary["lithium_lost_uAh"] < 5.0


def test_thermistor_open_is_a_sensor_fault_with_current_off_within_one_tick():
    seen = {"injected_tick": None, "off_tick": None}

    def open_ntc(bench, w):
        c = bench.controller
        if seen["injected_tick"] is None and c.state == "FORMING" and bench.board.setpoint_ua > 0 \
                and bench.t_s > 1800:
            bench.board.inject("thermistor_open")
            seen["injected_tick"] = w.ticks
        elif seen["injected_tick"] is not None and seen["off_tick"] is None:
            if bench.board.setpoint_ua == 0 and not bench.board.relay_closed:
                seen["off_tick"] = w.ticks

    result = run_closed_loop(D111, stop_after_formation=True, on_tick=Watch(open_ntc),
                             formation_timeout_s=3000.0)
    assert "SENSOR" in result.summary["faults"]
    assert seen["off_tick"] - seen["injected_tick"] <= 1
