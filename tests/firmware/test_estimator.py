# bmsfw.estimator and bmsfw.crack_watch: the plating loss taken from the count,
# the bound and its pessimistic side, the knee's learning (no fault on an empty
# cell), SOC and the catholyte, the voltage anchors' drift correction and a
# rest's self-discharge, and no allocation per tick while cycling (under
# MicroPython: gc.mem_free() unchanged and a tick under heap_lock; this file is
# plain, so tests/firmware/test_mp_unit_tests.py runs it on the 32-bit build too).
# Run: .venv/bin/python -m pytest tests/firmware/test_estimator.py -q
import gc
import sys

from fakes import IntHal, record_bytes, run, small_cell, small_config

from bmsfw.config import Config
from bmsfw.controller import Controller
from bmsfw.crack_watch import CrackWatch, ocv_slope_uv
from bmsfw.estimator import NAH_UAS, Estimator

UAH = 3600000
MICROPYTHON = sys.implementation.name == "micropython"


def _charge(est, ua, seconds):
    for _ in range(seconds):
        est.add(ua, 1000)


def test_charge_in_loses_the_prior_and_the_bound_grows_with_it():
    c = Config(offset_unc_na=0)
    est = Estimator(c)
    _charge(est, 100, 900)                          # 25 µAh in
    assert est.cath_eu == 25000
    assert est.li_eu == 25000 - 25000 * c.plating_loss_ppm // 1000000
    assert est.bound_eu == 25000 * (c.plating_loss_unc_ppm + c.meas_unc_ppm) // 1000000
    _charge(est, -100, 900)                         # and out again
    assert est.cath_eu == 0
    assert est.li_eu == 0                          # the loss is gone for good (floored at 0)
    assert est.low_eu() == 0 and est.high_eu() == est.bound_eu


def test_the_shunt_zero_residual_grows_the_bound_with_time_alone():
    est = Estimator(Config(offset_unc_na=30))
    _charge(est, 0, 3600)
    assert est.bound_eu == 30                      # 30 nA for an hour
    assert est.li_eu == 0 and est.cath_eu == 0


def test_a_knee_within_the_bound_learns_the_loss_and_resets_li():
    c = Config()
    est = Estimator(c)
    est.li_eu = 2000                               # 2 µAh believed when the voltage fell
    est.bound_eu = 5000
    est.qin_eu = 1000000                           # after 1 mAh in since the last knee
    assert est.at_knee() == 0
    assert est.li_eu == 0 and est.bound_eu == c.knee_bound_nah and est.knees == 1
    assert est.loss_ppm == c.plating_loss_ppm + 2000          # 2 µAh over 1 mAh
    assert est.loss_unc_ppm == c.plating_loss_unc_ppm // 2
    assert est.qin_eu == 0


def test_a_knee_beyond_the_bound_is_reported_not_faulted_and_still_learnt():
    est = Estimator(Config())
    est.li_eu = 30000
    est.bound_eu = 3000
    est.qin_eu = 5000000
    excess = est.at_knee()
    assert excess == 30000 - 3000 - Config().knee_bound_nah
    assert est.knee_excess_eu == excess and est.li_eu == 0 and est.knees == 1


def test_a_knee_near_li2s2_is_the_catholytes_and_leaves_the_lithium():
    c = Config()
    est = Estimator(c)
    est.li_eu = 50000
    est.cath_eu = c.lithium_supply_uah * 1000 - c.catholyte_s_uah * 1000 + 1000   # 1 µAh before Li2S2
    assert est.at_knee() == 0
    assert est.li_eu == 50000 and est.knees == 0
    assert est.x_pm() == c.catholyte_max_x_pm


def test_soc_is_the_narrower_window_with_its_bound():
    c = Config()                                    # 200 µAh, reserve 5 µAh
    est = Estimator(c)
    est.li_eu = 102500
    est.bound_eu = 1950
    assert est.soc_pm() == 500 and est.soc_bound_pm() == 10
    assert est.x_pm() == c.lithium_supply_uah * 1000 // ((c.catholyte_s_uah * 1000 + 999) // 1000)
    # a catholyte with only 20 µAh of room before Li2S2 is the narrower window
    est.cath_eu = c.lithium_supply_uah * 1000 - (c.catholyte_s_uah - 20) * 1000
    assert est.soc_pm() == 20000 // 195 * 1000 // 1000


def test_the_ocv_table_slope_is_read_where_the_catholyte_is():
    table = Config().ocv_table
    assert ocv_slope_uv(table, 170) == (2400 - 2370) * 1000 // 75    # the shoulder near Li2S8
    assert ocv_slope_uv(table, 500) == (2130 - 2100) * 1000 // 300   # the plateau: flat
    assert ocv_slope_uv(table, 1200) == (1900 - 1720) * 1000 // 250  # below Li2S2: steep


class _Cath:
    # what the crack watch reads of the estimator
    def __init__(self, cath_eu, x_pm=170):
        self.cath_eu = cath_eu
        self.s_eu = 2412000
        self.li_eu = 100000
        self._x = x_pm
        self.corrected = 0

    def x_pm(self):
        return self._x

    def correct(self, nah):
        self.corrected += nah
        self.cath_eu -= nah


def _segment(cw, est, counts, sp, seconds):
    for _ in range(seconds):
        cw.step(counts, sp, sp, est, 250, 1000)


def test_anchors_a_small_drift_corrects_the_count_a_large_one_holds_a_rest():
    c = Config()
    cw = CrackWatch(c, 16, 4096)                    # 0.0625 mV a count
    est = _Cath(150000)
    _segment(cw, est, 36800, -100, 700)             # first anchor: nothing to compare
    _segment(cw, est, 36800, 100, 700)
    assert est.corrected == 0 and cw.rests == 0
    _segment(cw, est, 36798, -100, 700)             # 125 µV low at the same count: drift
    assert 0 < est.corrected and cw.rests == 0 and not cw.hold_rest
    # ~0.31 µAh: 125 µV over the shoulder's 400 µV per x per mille, 2412 nAh each
    assert abs(est.corrected - 125 * 2412 // 400) <= 60, est.corrected
    _segment(cw, est, 36800, 100, 700)
    _segment(cw, est, 36780, -100, 700)             # 1.1 mV low: ledger and voltage disagree
    assert cw.hold_rest and cw.rests == 1


def test_a_rest_that_holds_its_voltage_ends_and_one_that_falls_is_found():
    c = Config()
    cw = CrackWatch(c, 16, 4096)
    est = _Cath(150000)
    cw.request_rest()
    _segment(cw, est, 36800, 0, (c.crack_settle_ms + c.crack_window_ms) // 1000 + 5)
    assert not cw.hold_rest and not cw.found
    cw.request_rest()
    v = 36800 * 4
    for _ in range((c.crack_settle_ms + c.crack_window_ms) // 1000 + 5):
        v -= 1                                      # 0.0156 mV/s: 4.7 mV in 5 min
        cw.step(v // 4, 0, 0, est, 250, 1000)
    assert cw.found


def _cycling_ctrl():
    cfg = small_config()
    inv = cfg.target_uas() // 2
    hal = IntHal(cell=small_cell(inv), record=record_bytes("READY", "RESTING", inventory_uas=inv))
    ctrl = Controller(hal, cfg, "test-0001")
    run(ctrl, hal, 20)
    assert ctrl.state == "READY"
    return ctrl, hal


def _ticks(ctrl, hal, n):
    for _ in range(n):
        hal.step(1000)
        ctrl.tick()
        ctrl.telemetry()
        ctrl.pop_events()


def _save_due(ctrl, n_ticks, ua):
    """Would the record be saved within n_ticks at ua? (a save builds its bytes)"""
    # the controller compares in the ledger's charge units (bmsfw.ledger)
    moved = ctrl.ledger.inventory[0] - ctrl._saved_inventory_q
    unit = ctrl.ledger.unit_uas
    left = ctrl._save_interval_q - (moved if moved > 0 else -moved)
    return left * unit <= n_ticks * 1000 * (ua if ua > 0 else -ua) + unit


def test_cycling_ticks_allocate_nothing_but_the_record_saves():
    ctrl, hal = _cycling_ctrl()
    for request in (-10, 10):
        ctrl.request_current_ua(request)
        _ticks(ctrl, hal, 30)                       # the segment starts, the HAL follows
        if MICROPYTHON:
            import micropython
            quiet = 0
            for _ in range(200):
                free = gc.mem_free()
                writes = ctrl.writes
                _ticks(ctrl, hal, 1)
                if ctrl.writes == writes:
                    quiet += 1
                    assert gc.mem_free() == free, free - gc.mem_free()
            assert quiet > 150
            while _save_due(ctrl, 6, request):
                _ticks(ctrl, hal, 1)
            micropython.heap_lock()
            try:
                _ticks(ctrl, hal, 5)
            finally:
                micropython.heap_unlock()
        else:
            _ticks(ctrl, hal, 200)
        assert ctrl.state == "READY" and ctrl.est.cath_eu != 0
    # the estimator moved with the charge: out then in, less the loss
    assert ctrl.est.li_eu < 10000


def _big(target_uah):
    return Config(target_inventory_uah=target_uah, lithium_supply_uah=target_uah * 6 // 5,
                  lithium_reserve_uah=target_uah // 800, catholyte_s_uah=target_uah * 5,
                  offset_unc_na=0)


def test_config_takes_cells_to_100_ah_and_refuses_134():
    assert _big(100000000).target_inventory_uah == 100000000
    try:
        _big(134000000)
    except ValueError as e:
        assert "target_inventory_uah" in str(e)
    else:
        raise AssertionError("a 134 Ah cell passes 2**27 units of 1 µAh")


def test_big_cells_count_exactly_in_their_units_and_stay_small_ints():
    # 1 Ah counts in 10 nAh, 100 Ah in 1 µAh (the ledger's unit), D111 in 1 nAh;
    # amps for 1.5 s ticks pass 2**30 µA·ms: counted exactly all the same
    for target_uah, unit, ua in ((200, NAH_UAS, 150), (1000000, 36000, 2000000), (100000000, UAH, 50000000)):
        c = _big(target_uah)
        est = Estimator(c)
        assert est.unit_uas == unit and c.est_unit_uas() == unit
        assert est.target_eu == target_uah * (UAH // unit) and est.target_eu < (1 << 27)
        n = 0
        total = 0
        while total + ua * 1500 <= c.target_uas() // 2:
            est.add(ua, 1500)
            total += ua * 1500
            n += 1
        assert n > 10
        assert est.cath_eu * unit + est._rem_uas == total       # exact: units and remainder
        assert est.qin_eu == est.cath_eu
        lost = est.cath_eu - est.li_eu
        assert abs(lost - est.cath_eu * c.plating_loss_ppm // 1000000) <= 1
        for _ in range(n):
            est.add(-ua - 7, 1500)                               # out a little faster
        assert est.cath_eu * unit + est._rem_uas == total - n * (ua + 7) * 1500
        assert 0 <= est._rem_uas < unit
        for v in (est.li_eu, est.bound_eu, est.cath_eu, est.cath0_eu, est.s_eu, est.cath_left_eu(),
                  est.cath_room_eu(), est.high_eu()):
            assert -(1 << 30) < v < (1 << 30)
        assert 0 <= est.soc_pm() <= 1000 and 0 <= est.x_pm() <= 1000
        # telemetry's µAh: an i32 on every size
        assert est.uah(est.cath0_eu) == c.lithium_supply_uah


def test_a_knee_on_a_100_ah_cell_learns_the_loss():
    c = _big(100000000)
    est = Estimator(c)
    est.li_eu = 200000                  # 200 mAh believed when the voltage fell
    est.bound_eu = 100000
    est.qin_eu = 50000000               # after 50 Ah in
    est.at_knee()
    assert est.loss_ppm == c.plating_loss_ppm + 200000 * 1000 // (50000000 // 1000)
    assert est.li_eu == 0 and est.bound_eu == est.knee_bound_eu == 1   # 300 nAh: 1 µAh, rounded up
