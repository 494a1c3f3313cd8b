# bmsfw.ledger: exact integer counting, cycles and coulombic efficiency.
# Run: .venv/bin/python -m pytest tests/firmware/test_ledger.py -q
from bmsfw.ledger import Ledger, per_mille

UAH = 3600000


def test_counts_exactly_over_a_million_ticks():
    led = Ledger(5, UAH)
    total = 0
    charged_uah = 0
    charged_rem = 0
    # A current that wanders through + and - (every residue of 401 once per
    # 401 ticks, so the sum stays a small int on 32-bit MicroPython) with odd
    # tick lengths. The reference sums are kept the same exact way.
    for i in range(1000000):
        current = ((i % 401) * 7919) % 401 - 200     # i % 401 first: no long ints
        dt = 997 + (i % 7)
        led.add(current, dt)
        total += current * dt
        if current > 0:
            charged_rem += current * dt
            if charged_rem >= UAH:
                charged_uah += 1
                charged_rem -= UAH
    assert led.uas("inventory") == total
    assert led.plated_uah == charged_uah
    assert led.lifetime_plated_uas() - charged_uah * UAH == charged_rem
    assert led.stripped_uah * UAH + (led.stripped_uas() - led.stripped_uah * UAH) == led.stripped_uas()
    assert led.lifetime_plated_uas() - led.stripped_uas() == total


def test_plated_counts_only_while_forming():
    led = Ledger(5, UAH)
    led.add(100, 1000)
    assert led.uas("plated") == 0 and led.uas("inventory") == 100000
    led.forming = True
    led.add(100, 1000)
    led.add(-40, 1000)
    assert led.uas("plated") == 60000
    assert led.uas("inventory") == 160000


def test_cycle_closes_when_charging_resumes_after_a_discharge():
    led = Ledger(5, UAH)
    for _ in range(100):
        led.add(100, 1000)            # 100 s at 100 µA = 10 000 000 µA·ms
    for _ in range(90):
        led.add(-100, 1000)
    assert led.cycles == 0
    led.add(2, 1000)                  # inside the deadband: no new direction
    assert led.cycles == 0
    led.add(100, 1000)
    assert led.cycle_closed
    assert led.cycles == 1
    # the 2 µA rest is counted too: it went into the cell
    assert led.last_in_uas == 10002000 and led.last_out_uas == 9000000
    assert led.ce_ppm == 9000000 * 1000000 // 10002000


def test_rest_noise_does_not_split_a_cycle():
    led = Ledger(5, UAH)
    led.add(100, 100000)
    for i in range(50):
        led.add(3 if i % 2 else -3, 1000)
    led.add(-100, 100000)
    led.add(100, 1000)
    assert led.cycles == 1


def test_tiny_cycles_give_no_ce():
    led = Ledger(5, UAH)
    led.add(100, 1000)
    led.add(-100, 1000)
    led.add(100, 1000)
    assert led.cycles == 0 and led.ce_ppm == 0


def test_no_cycle_closes_while_forming():
    led = Ledger(5, UAH)
    led.forming = True
    led.add(100, 100000)
    led.add(-100, 50000)
    led.add(100, 1000)
    assert led.cycles == 0


def test_per_mille_without_overflowing_products():
    target = 200 * UAH
    assert per_mille(0, target) == 0
    assert per_mille(-5, target) == 0
    assert per_mille(target // 2, target) == 500
    assert per_mille(target, target) == 1000
    assert per_mille(target * 2, target) == 1000
    assert per_mille(target - 1, target) == 999


def test_unit_for_keeps_every_target_below_2_27_units_and_exact_in_uah():
    from bmsfw.ledger import unit_for
    for target_uah in (100, 200, 20000, 1000000, 100000000):
        unit = unit_for(target_uah * UAH)
        assert target_uah * UAH // unit < (1 << 27)
        assert UAH % unit == 0
        if unit > 1:
            assert target_uah * UAH // (unit // 10 if unit != 3600 else 1000) >= (1 << 27)
    assert unit_for(200 * UAH) == 10 and unit_for(1000000 * UAH) == 36000 and unit_for(100000000 * UAH) == UAH


def test_big_cells_count_exactly_in_units_and_remainders():
    # 1 Ah and 100 Ah cells: currents up to 25 A and ticks up to 10 s, long
    # ticks in pieces; the pair (units, remainder) equals the exact µA·ms sum.
    from bmsfw.ledger import unit_for
    for target_uah, currents in ((1000000, (250000, -250000, 3, -7, 1999999)),
                                 (100000000, (25000000, -2500000, 1234567, -1))):
        unit = unit_for(target_uah * UAH)
        led = Ledger(5, UAH, unit)
        led.forming = True
        exact = 0
        for i in range(200):
            current = currents[i % len(currents)]
            dt = (997, 1000, 10000, 1, 4097)[i % 5]
            led.add(current, dt)
            exact += current * dt
            assert 0 <= led.inventory[1] < unit
        assert led.uas("inventory") == exact
        assert led.uas("plated") == exact
        assert led.inventory[0] == exact // unit


def test_a_small_unit_counts_a_large_current_in_pieces():
    # a cell counted in 1 µA·ms (below ~19 mAh) at 2 A: 2e9 µA·ms per second
    led = Ledger(5, UAH, 1)
    led.add(2000000, 1000)
    led.add(-2000000, 600)
    assert led.uas("inventory") == 2000000 * 400
    assert led.plated_uah == 555 and led.stripped_uah == 333


def test_ratio_ppm_and_scale_pm():
    from bmsfw.ledger import ratio_ppm, scale_pm
    assert ratio_ppm(9, 10) == 900000 and ratio_ppm(1, 3) == 333333 and ratio_ppm(0, 5) == 0
    assert ratio_ppm(67000000, 67108863) == 67000000 * 1000000 // 67108863
    # from 2^26 up both sides lose 4 bits first: still within a ppm or so
    assert abs(ratio_ppm(99000000, 100000000) - 990000) <= 1
    assert ratio_ppm(11, 1) == 10000000
    for value in (0, 999, 1048575, 1048576, 25000000, 1000000000):
        for pm in (0, 1, 499, 1000):
            assert scale_pm(value, pm) == value * pm // 1000
