# main.py: the board's composition root (MicroPython runs it after boot.py).
#
# It is the only firmware file that chooses a HAL: the real board (BoardHal) or,
# when bmsfw/board_config.py says HAL_KIND = "link", the HIL link HAL that talks
# to the twin on a PC. It then runs Controller(hal, config).tick() every
# config.tick_ms (bmsfw/config.py),
# paced with time.ticks_diff (the clock wraps), and prints telemetry and event
# frames (docs/frames.md) as JSON lines on the USB serial port (docs/board.md).
#
# An exception from the controller is not caught: it prints its traceback and
# stops feeding the watchdog, which resets the board into a known state.

import json
import time

from bmsfw import board_config
from bmsfw.errors import FieldError


class BoardConfigError(FieldError):
    """A bad value in bmsfw/board_config.py: `field` names it."""

    prefix = "board_config."


def device_id(config):
    if config.DEVICE_ID is not None:
        return config.DEVICE_ID
    import binascii
    import machine

    return "bms-" + binascii.hexlify(machine.unique_id()).decode()


def record_is_valid(data):
    """True if `data` decodes as the controller's record (its CRC included), so
    the board's record store falls back to the previous copy when it does not."""
    from bmsfw.record import Record, RecordError

    try:
        Record.decode(data)
    except RecordError:
        return False
    return True


def build_hal(config, front_end=None):
    """The HAL board_config.HAL_KIND names (front_end: the controller's Config,
    whose analog front end the board HAL's counts follow). Each import is lazy
    so a board only needs the files of the HAL it uses (see firmware/manifest.py)."""
    kind = config.HAL_KIND
    if kind == "board":
        from bmsfw.board_hal import BoardHal

        return BoardHal(config, record_is_valid, front_end)
    if kind == "link":
        import machine
        from bmsfw.link_hal import LinkHal

        # timeout: reads return what arrived within 10 ms, so the link HAL's
        # poll keeps its own deadlines; rxbuf holds a few frames (docs/hil.md)
        uart = machine.UART(
            config.LINK_UART_ID,
            baudrate=config.LINK_BAUD,
            tx=machine.Pin(config.LINK_TX_PIN),
            rx=machine.Pin(config.LINK_RX_PIN),
            timeout=10,
            rxbuf=1024,
        )
        return LinkHal(uart, watchdog=machine.WDT(timeout=config.LINK_WATCHDOG_MS))
    raise BoardConfigError("HAL_KIND", kind, 'must be "board" or "link"')


def emit_json(kind, frame):
    # One frame per line as JSON, exactly the dicts of docs/frames.md (each
    # carries its own "kind": "telemetry" or "event"), as in a run's events.jsonl.
    print(json.dumps(frame))


def run(controller, tick_ms, max_ticks=None, telemetry_every=0, emit=emit_json, clock=None):
    """Tick `controller` every `tick_ms` ms of wall time, `max_ticks` times (None: forever).

    Pacing uses the board's own clock (`clock`, default the time module), not the
    HAL's: under the link HAL the twin owns the controller's clock and may run
    faster or slower than real time. A late tick moves the schedule on instead
    of bursting to catch up. Returns the number of ticks run.
    """
    if not isinstance(tick_ms, int) or tick_ms <= 0:
        raise BoardConfigError("tick_ms", tick_ms, "must be a positive int")
    if clock is None:
        clock = time
    n_ticks = 0
    deadline_ms = clock.ticks_ms()
    while max_ticks is None or n_ticks < max_ticks:
        controller.tick()
        n_ticks += 1
        if telemetry_every and n_ticks % telemetry_every == 0:
            emit("telemetry", controller.telemetry())
        for event in controller.pop_events():
            emit("event", event)
        deadline_ms = clock.ticks_add(deadline_ms, tick_ms)
        wait_ms = clock.ticks_diff(deadline_ms, clock.ticks_ms())
        if wait_ms > 0:
            clock.sleep_ms(wait_ms)
        elif wait_ms < -tick_ms:
            deadline_ms = clock.ticks_ms()  # fell more than a tick behind: resynchronise
    return n_ticks


def maintenance_requested(board):
    """True if board.MAINTENANCE_PIN is pulled low: the RP2040 watchdog cannot be
    stopped once started, so updating files needs a boot that never starts it."""
    if board.MAINTENANCE_PIN is None:
        return False
    import machine

    pin = machine.Pin(board.MAINTENANCE_PIN, machine.Pin.IN, machine.Pin.PULL_UP)
    return pin.value() == 0


def main(board=board_config):
    from bmsfw.config import Config
    from bmsfw.controller import Controller

    if maintenance_requested(board):
        print("bms-twin: maintenance pin low, controller not started (REPL free, no watchdog)")
        return None
    config = Config()
    hal = build_hal(board, config)
    did = device_id(board)
    if board.HAL_KIND == "link":
        # The twin owns time: the controller is built on the twin's boot TICK
        # (its record, its clock) and ticks once per TICK. No JSON lines here:
        # the frames go over the link (and the USB port may be the link).
        from bmsfw.link_serve import boot, serve

        controller = boot(hal, config, did)
        if controller is not None:
            serve(hal, controller, did, 3 * config.tick_ms)
        return None
    controller = Controller(hal, config, device_id=did)
    run(controller, config.tick_ms, telemetry_every=board.TELEMETRY_EVERY_TICKS)


if __name__ == "__main__":
    main()
