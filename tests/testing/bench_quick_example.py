"""A short HIL test file for the slow backends (the QEMU board runs ~100-200 ticks/s):
the `bench` fixture, the same file for every place the firmware runs.

    pytest bench_quick_example.py --bench-firmware qemu
"""


def test_a_short_at_boot_latches_short_and_stays(bench):
    bench.inject("internal short of 5 ohm")
    bench.expect_event("SHORT", within_s=1800)
    assert bench.state == "FAULT"
    assert bench.command("reset_fault") == (False, "FAULT_ACTIVE")     # the short is still measured
    assert bench.bench.cell.plated_uAh < 0.01


def test_an_operator_holds_a_shipped_cell_safe_then_forms_it(bench):
    bench.wait_until(state="SHIPPED", within_s=60)
    assert bench.command("stop") == (True, "OK")
    bench.run("""
        Wait until state SAFE within 1 minute
        Wait for 10 minutes
        Expect state SAFE
        Expect inventory below 1 uAh
    """)
    assert bench.command("formation/start") == (True, "OK")
    bench.wait_until(state="NUCLEATE", within_s=600)
    # each expect_event reads on from the last match: the state changes in their order
    assert [bench.expect_event("STATE", within_s=60)["to"] for _ in range(5)] == \
        ["SHIPPED", "SAFE", "BOOT", "SHIPPED", "FORMING"]
