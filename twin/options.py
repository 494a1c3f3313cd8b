"""The `bms-twin` options argparse lets through, checked before anything runs.

argparse reads "--sample-s nan" or "--speed 0" as numbers; what they mean is checked
here, each refusal an OptionError naming the option, the value and what was
expected. twin/cli.py prints it as one line, `bms-twin <command>: ...`, exit 2.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from bmsfw.errors import FieldError

# A board's random generator takes any int; one beyond this is a typo, and the
# default device id prints the seed (d111-0042).
MAX_SEED = 2**32 - 1


class OptionError(FieldError):
    """A command-line option with a value the command cannot use."""


def finite(name: str, value) -> float:
    if value is None or not math.isfinite(value):
        raise OptionError(name, value, "a finite number expected")
    return float(value)


def positive(name: str, value, unit: str = "s") -> float:
    if value is None or not math.isfinite(value) or value <= 0:
        raise OptionError(name, value, "a finite number of %s > 0 expected" % unit)
    return float(value)


def at_least(name: str, value: int, low: int, what: str = "an int") -> int:
    if value is None or value < low:
        raise OptionError(name, value, "%s >= %d expected" % (what, low))
    return value


def seed(value: int) -> int:
    if not 0 <= value <= MAX_SEED:
        raise OptionError("--seed", value, "a whole number from 0 to %d expected" % MAX_SEED)
    return value


def ambient_c(value) -> float:
    # the model's range (twin.cell): a thermal chamber's, and then some
    value = finite("--ambient-c", value)
    if not -120.0 < value < 220.0:
        raise OptionError("--ambient-c", value, "a temperature between -120 and 220 °C expected")
    return value


def out_dir(value: str, name: str = "--out") -> Path:
    """The output directory can be made and written; nothing is created yet, so a
    refused run leaves no trace, and an accepted one is not lost at its end."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise OptionError(name, value, "exists and is not a directory; a directory to write into expected")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OptionError(name, value, "%s is not a directory; a directory to write into expected" % probe)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OptionError(name, value, "%s is not writable; a directory this user may write expected" % probe)
    return path


def make_out_dir(path: Path, name: str = "--out") -> Path:
    """Create the output directory: the last check, once every other input passed
    (a refused run leaves no directory behind; a run that starts can write)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OptionError(name, str(path), "cannot be made (%s); a directory to write into expected"
                          % (error.strerror or error)) from None
    return path


def device_id(value):
    """None (the runner's default, `<cell>-<seed>`) or an id MQTT topics can carry."""
    if value is None:
        return None
    from mqtt_bridge.topics import DeviceIdError, check_device_id

    try:
        return check_device_id(value)
    except DeviceIdError as error:
        raise OptionError("--device-id", value, str(error)) from None
