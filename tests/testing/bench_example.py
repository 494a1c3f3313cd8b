"""A HIL test as a user writes it (docs/testing.md): the `bench` fixture of the
bms-twin pytest plugin, the same file for every place the firmware runs.

    pytest bench_example.py                              # the firmware in-process
    pytest bench_example.py --bench-firmware micropython # under MicroPython, over the HIL link
"""

FORMATION_S = 48 * 3600


def test_formation_ends_ready_with_the_design_inventory(bench):
    bench.wait_until(formed=True, within_s=FORMATION_S)
    bench.expect_no_fault()
    done = bench.expect_event("FORMATION_DONE", within_s=60)
    assert done["inventory_uas"] > 150 * 3600
    assert bench.frame["soc_pm"] > 0 and bench.summary()["layer"] == "intact"


def test_an_open_thermistor_latches_sensor_and_a_reset_recovers(bench):
    bench.wait_until(state="PLATE", within_s=3600)
    bench.inject("thermistor open")
    event = bench.expect_event("SENSOR", within_s=60)
    assert event["event"] == "FAULT" and bench.state == "FAULT"
    assert bench.command("reset_fault") == (False, "FAULT_ACTIVE")     # its cause is still measured
    bench.clear("thermistor")
    bench.wait(60)
    assert bench.command("reset_fault") == (True, "OK")
    bench.run("""
        Wait until formed within 48 hours
        Expect no fault
        Expect inventory above 150 uAh
    """)
    assert bench.summary()["faults"] == ["SENSOR"]      # seen once, cleared


def test_a_cold_room_holds_formation(bench):
    bench.wait_until(state="SHIPPED", within_s=60)
    assert bench.command("stop") == (True, "OK")
    bench.set_ambient(-10)
    bench.wait(2 * 3600)
    assert bench.bench.cell.temperature_c < -5          # the twin's truth beside the firmware's word
    bench.command("formation/start")
    bench.expect_event("UNDER_TEMPERATURE", within_s=600)
    bench.wait(600)
    assert bench.state == "SHIPPED" and bench.frame["plated_uas"] == 0
