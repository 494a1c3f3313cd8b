# micropython-lib style manifest for the bms-twin firmware package `bmsfw`.
#
# Used two ways (docs/board.md):
#   - freezing into a firmware image:
#       make -C ports/rp2 BOARD=RPI_PICO FROZEN_MANIFEST=/path/to/firmware/manifest.py
#     (include() it from a board manifest to pass options, e.g.
#      include("/path/to/firmware/manifest.py", board_hal=False, link_hal=True));
#   - `mpremote mip install`: tests/mp/mip_package.py turns this manifest into a
#     package.json with relative URLs that mpremote installs from the local disk.
#
# The base component is the HAL contract and the controller; the board HAL and
# the link HAL are optional components chosen by options, each picking its files,
# so a board installs only the HAL it runs. main.py and boot.py are not listed:
# they go to the board's root with `mpremote cp`, not into /lib.

metadata(
    description="bms-twin BMS controller: first-charge formation and limits of a Li-S cell",
    version="0.1.0",
    license="Apache-2.0",
)

options.defaults(board_hal=True, link_hal=False)

# Base: the HAL contract, the controller and its modules, the board's pin map
# (main.py reads HAL_KIND and TICK_MS from it whichever HAL it builds).
package(
    "bmsfw",
    files=(
        "hal.py",
        "compat.py",
        "errors.py",
        "commands.py",
        "config.py",
        "calibration.py",
        "states.py",
        "formation.py",
        "limits.py",
        "protections.py",
        "ledger.py",
        "estimator.py",
        "crack_watch.py",
        "record.py",
        "telemetry.py",
        "boot_detect.py",
        "outputs.py",
        "controller.py",
        "board_config.py",
    ),
    base_path=".",
)

# Board HAL: ADS1115 + INA226 on I2C, PWM current source, relay pin, WDT, flash record.
if options.board_hal:
    package("bmsfw", files=("board_hal.py",), base_path=".")

# Link HAL: the firmware runs against the twin over a framed UART protocol (HIL).
# link_main.py is its entry point on a PC or the unix port (`-m bmsfw.link_main`);
# a board's main.py calls link_hal itself, but the file is small and keeps the
# component whole.
if options.link_hal:
    package("bmsfw", files=("link_hal.py", "link_codec.py", "link_serve.py", "link_main.py"), base_path=".")
