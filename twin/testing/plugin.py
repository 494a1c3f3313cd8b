"""The pytest plugin of bms-twin (the pytest11 entry point `bms_twin`): a `bench`
fixture, a fresh bench per test with the firmware where --bench-firmware says.

    def test_sensor_fault(bench):
        bench.wait_until(formed=True, within_s=48 * 3600)
        bench.inject("thermistor open")
        bench.expect_event("SENSOR", within_s=60)

    pytest                                   # in-process (the default)
    pytest --bench-firmware micropython      # the firmware under MicroPython, over the HIL link
    pytest --bench-firmware serial:/dev/ttyACM0

docs/testing.md has the whole API and the backends.
"""
from __future__ import annotations

import pytest

from twin.testing.session import BACKENDS, open_bench


def pytest_addoption(parser):
    group = parser.getgroup("bms-twin", "bms-twin bench (the `bench` fixture)")
    group.addoption("--bench-firmware", default="inprocess", metavar="BACKEND",
                    help="where the bench's firmware runs: " + ", ".join(BACKENDS) + " (default inprocess)")
    group.addoption("--bench-cell", default="d111", help="the bench's cell: a parameter set or TOML path (default d111)")
    group.addoption("--bench-seed", type=int, default=0, help="seeds the board's ADC noise (default 0)")
    group.addoption("--bench-image", default=None,
                    help="with unix-32 or qemu: the image to run (default: bms-twin firmware build's)")


def pytest_report_header(config):
    return "bms-twin bench: firmware %s, cell %s" % (config.getoption("--bench-firmware"),
                                                    config.getoption("--bench-cell"))


@pytest.fixture
def bench(request):
    """A fresh shipped cell on a twin board with the firmware on --bench-firmware
    (twin.testing.BenchSession); the firmware is stopped after the test."""
    opt = request.config.getoption
    backend = opt("--bench-firmware")
    if backend not in BACKENDS[:-1] and not backend.startswith("serial:"):
        raise pytest.UsageError("--bench-firmware %r: expected one of %s" % (backend, ", ".join(BACKENDS)))
    with open_bench(backend, cell=opt("--bench-cell"), seed=opt("--bench-seed"),
                    image=opt("--bench-image")) as session:
        yield session
