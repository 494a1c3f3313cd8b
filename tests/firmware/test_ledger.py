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
    assert led.inventory_uas == total
    assert led.plated_uah == charged_uah
    assert led.lifetime_plated_uas() - charged_uah * UAH == charged_rem
    assert led.stripped_uah * UAH + (led.stripped_uas() - led.stripped_uah * UAH) == led.stripped_uas()
    assert led.lifetime_plated_uas() - led.stripped_uas() == total


def test_plated_counts_only_while_forming():
    led = Ledger(5, UAH)
    led.add(100, 1000)
    assert led.plated_uas == 0 and led.inventory_uas == 100000
    led.forming = True
    led.add(100, 1000)
    led.add(-40, 1000)
    assert led.plated_uas == 60000
    assert led.inventory_uas == 160000


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
