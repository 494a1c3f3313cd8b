# Session fixtures shared by every test folder: the firmware images of
# `bms-twin firmware build` (twin/images), taken from the machine's cache or
# built once per session (about a minute each from nothing, seconds after a
# firmware change). The MicroPython source: $MICROPYTHON_SRC, else the vendored
# tarball beside the repository, else a clone (twin/images/source.py); .ci/run
# passes the vendored tarball.
import pytest


@pytest.fixture(scope="session")
def micropython_32():
    """Path of the unix-32 MicroPython executable (32-bit, single-precision floats,
    31-bit small ints) with the current firmware frozen in."""
    from twin.images import build_image

    return build_image("unix-32").path


@pytest.fixture(scope="session")
def qemu_firmware():
    """Path of firmware.elf: MicroPython's qemu port for QEMU's mps2-an385
    (Cortex-M3) with the current firmware frozen in."""
    from twin.images import build_image

    return build_image("qemu-cortex-m3").path
