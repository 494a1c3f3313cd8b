# bmsfw.limits: pure functions, checked at default / min / below / max / above.
# Run: .venv/bin/python -m pytest tests/firmware/test_limits.py -q
from bmsfw import limits as L
from bmsfw.config import Config

TABLE = Config.plating_derating        # ((0, 30), (10, 55), (25, 100), (45, 150))
UAH = 3600000
TARGET = 200 * UAH


def test_plating_table_at_its_points_and_between():
    assert L.plating_ua_cm2(250, TABLE, 0, 550) == 100      # 25 °C: the seed's rate
    assert L.plating_ua_cm2(0, TABLE, 0, 550) == 30         # the minimum temperature itself
    assert L.plating_ua_cm2(100, TABLE, 0, 550) == 55
    assert L.plating_ua_cm2(50, TABLE, 0, 550) == 43        # 30 + 25 * 5/10 = 42.5, rounded to nearest
    assert L.plating_ua_cm2(249, TABLE, 0, 550) == 100      # 99.7: 0.1 °C off still gives the seed's rate
    assert L.plating_ua_cm2(240, TABLE, 0, 550) == 97
    assert L.plating_ua_cm2(350, TABLE, 0, 550) == 125


def test_plating_table_below_min_and_above_max():
    assert L.plating_ua_cm2(-1, TABLE, 0, 550) == 0         # below the floor: no plating
    assert L.plating_ua_cm2(-100, TABLE, 0, 550) == 0
    assert L.plating_ua_cm2(-5, TABLE, -5, 550) == 30       # at a floor below the table: first value
    assert L.plating_ua_cm2(-6, TABLE, -5, 550) == 0
    assert L.plating_ua_cm2(500, TABLE, 0, 550) == 150      # held past the table end
    assert L.plating_ua_cm2(550, TABLE, 0, 550) == 150
    assert L.plating_ua_cm2(551, TABLE, 0, 550) == 0        # too hot to charge


def test_plating_table_stays_within_half_a_unit_of_its_line():
    points = [(t * 10, v) for t, v in TABLE]
    for t in range(0, 451):
        v = L.plating_ua_cm2(t, TABLE, 0, 550)
        assert v <= L.plating_ua_cm2(t + 1, TABLE, 0, 550)    # monotonic table, monotonic limit
        for i in range(1, len(points)):
            (t0, v0), (t1, v1) = points[i - 1], points[i]
            if t0 <= t <= t1:
                # |v - line| <= 1/2, in integers: |2 * (v - line)| * span <= span
                line_x2span = 2 * (v0 * (t1 - t0) + (v1 - v0) * (t - t0))
                assert abs(2 * v * (t1 - t0) - line_x2span) <= (t1 - t0)


def test_charge_floor_is_the_minimum_less_the_sensor_accuracy():
    assert L.charge_floor_dc(0, TABLE, 5) == -5
    assert L.charge_floor_dc(0, TABLE, 0) == 0
    assert L.charge_floor_dc(-100, TABLE, 5) == -5          # never below the table's first point
    assert L.charge_floor_dc(50, TABLE, 5) == 45


def test_ramp_pm_ends_and_middle():
    assert L.ramp_pm(0, 100) == 0
    assert L.ramp_pm(-5, 100) == 0
    assert L.ramp_pm(100, 100) == 1000
    assert L.ramp_pm(50, 100) == 500
    assert L.ramp_pm(TARGET // 2, TARGET) == 500
    assert L.ramp_pm(TARGET - 1, TARGET) < 1000


def test_cvl_dvl_design_and_user_tightened():
    assert L.cvl_mv(2600, -1) == 2600
    assert L.cvl_mv(2600, 2500) == 2500
    assert L.cvl_mv(2600, 2700) == 2600       # a user value never loosens
    assert L.dvl_mv(2000, -1) == 2000
    assert L.dvl_mv(2000, 2100) == 2100
    assert L.dvl_mv(2000, 1900) == 2000       # never below the cutoff: Li2S


def _ccl(base=100, inv=TARGET // 2, mv=2300, user=-1):
    ceiling = TARGET + TARGET // 1000 * 10
    taper = TARGET // 1000 * 40
    return L.ccl_ua(base, inv, ceiling, taper, mv, 2600, 50, user)


def test_ccl_default_is_the_plating_limit():
    assert _ccl() == 100


def test_ccl_zero_when_not_allowed():
    assert _ccl(base=0) == 0


def test_ccl_ramps_to_zero_at_target_plus_margin():
    ceiling = TARGET + TARGET // 100
    assert _ccl(inv=TARGET - TARGET // 25) == 100                 # taper starts at 96 %
    assert 0 < _ccl(inv=TARGET) < 100                              # slowed, not stopped, at target
    assert _ccl(inv=ceiling) == 0
    assert _ccl(inv=ceiling - TARGET // 1000) == 0            # 2.5 % of the span left: closed
    assert _ccl(inv=ceiling + UAH) == 0                            # above: still 0, never negative


def test_ccl_ramps_to_zero_near_cvl():
    assert _ccl(mv=2550) == 100
    assert _ccl(mv=2575) == 50
    assert _ccl(mv=2600) == 0
    assert _ccl(mv=2700) == 0


def test_ccl_user_limit_only_tightens():
    assert _ccl(user=40) == 40
    assert _ccl(user=0) == 0
    assert _ccl(user=500) == 100


def _dcl(base=200, inv=TARGET // 2, mv=2300, user=-1):
    return L.dcl_ua(base, inv, 5 * UAH, 10 * UAH, mv, 2000, 100, user)


def test_dcl_default_and_before_formation():
    assert _dcl() == 200
    assert _dcl(base=0) == 0                 # not formed: no discharge at all


def test_dcl_ramps_to_zero_at_the_reserve():
    assert _dcl(inv=15 * UAH) == 200
    assert _dcl(inv=10 * UAH) == 100
    assert _dcl(inv=5 * UAH) == 0
    assert _dcl(inv=5 * UAH + UAH // 2 + UAH // 10) == 12     # 6 % of the span left: 6 % of 200
    assert _dcl(inv=5 * UAH + UAH // 2 - UAH // 10) == 0      # under 5 %: closed, not a trickle
    assert _dcl(inv=0) == 0
    assert _dcl(inv=-UAH) == 0


def test_dcl_ramps_to_zero_near_dvl():
    assert _dcl(mv=2100) == 200
    assert _dcl(mv=2050) == 100
    assert _dcl(mv=2000) == 0
    assert _dcl(mv=1900) == 0


def test_dcl_user_limit_only_tightens():
    assert _dcl(user=50) == 50
    assert _dcl(user=1000) == 200


def test_discharge_table_derates_cold_and_hot():
    table = Config.discharge_derating
    assert L.interp_table(250, table) == 200
    assert L.interp_table(0, table) == 50
    assert L.interp_table(-200, table) == 0
    assert L.interp_table(-300, table) == 0
    assert L.interp_table(600, table) == 0
    assert L.interp_table(525, table) == 100
    assert L.interp_table(-100, table) == 25


def test_clamp_request():
    assert L.clamp_request(150, 100, 80) == 100
    assert L.clamp_request(-150, 100, 80) == -80
    assert L.clamp_request(50, 100, 80) == 50
    assert L.clamp_request(0, 0, 0) == 0
    assert L.clamp_request(10, 0, 80) == 0
