"""The MicroPython version bms-twin builds and the images it builds from it.

Each target is a MicroPython port built with the firmware frozen in through
firmware/manifest.py (its link component, docs/hil.md): a place the firmware
runs as boards run it. The make variables are the whole recipe; twin.images.build
keys its caches by them, so a change here rebuilds.
"""
from __future__ import annotations

from typing import NamedTuple

MICROPYTHON_VERSION = "1.28.0"
MICROPYTHON_TAG = "v" + MICROPYTHON_VERSION
MICROPYTHON_GIT_URL = "https://github.com/micropython/micropython.git"

# The options firmware/manifest.py is included with: the link HAL (the twin is
# the hardware), no board HAL (no ADS1115/INA226 to talk to).
MANIFEST_OPTIONS = {"board_hal": False, "link_hal": True}


class Target(NamedTuple):
    port: str           # ports/<port> in the MicroPython tree
    image: str          # the file make leaves in its BUILD directory
    make_vars: tuple    # VAR=value arguments of make
    tools: tuple        # (command, compiler flags to try, Debian packages) the build needs
    what: str


TARGETS = {
    # Single-precision floats and 31-bit small ints, as on a Cortex-M board, on the host.
    # FFI, BTREE and SSL need submodules the release tarball does not carry.
    "unix-32": Target(
        port="unix",
        image="micropython",
        make_vars=("VARIANT=standard",
                   "CFLAGS_EXTRA=-m32 -DMICROPY_FLOAT_IMPL=MICROPY_FLOAT_IMPL_FLOAT",
                   "LDFLAGS_EXTRA=-m32",
                   "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0"),
        tools=(("cc", ("-m32",), ("build-essential", "gcc-multilib")),),
        what="the unix port, 32-bit, single-precision floats: a host executable",
    ),
    # QEMU's mps2-an385: Cortex-M3, soft single-precision floats, ~140 KB heap, the
    # REPL on UART0 (the link, twin/hil/qemu.py).
    "qemu-cortex-m3": Target(
        port="qemu",
        image="firmware.elf",
        make_vars=("BOARD=MPS2_AN385",),
        tools=(("arm-none-eabi-gcc", (), ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi")),),
        what="the qemu port on QEMU's mps2-an385 board (Cortex-M3): run with qemu-system-arm",
    ),
}
