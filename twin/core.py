"""Thin binding over the compiled C core (c_core/cell.h): types, checks, errors.

Everything is validated here before it crosses into C (types, NaN, names), and
every C status code comes back as a specific exception that names the C code.
Exceptions also inherit the builtin they resemble, so `except ValueError` works.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from twin._core import ffi, lib

API_VERSION = lib.CELL_API_VERSION
OCV_MAX_POINTS = lib.CELL_OCV_MAX_POINTS
MODE_CURRENT = lib.CELL_MODE_CURRENT
MODE_VOLTAGE = lib.CELL_MODE_VOLTAGE
MODE_REST = lib.CELL_MODE_REST
STOP_REASONS = {
    lib.CELL_STOP_TIME: "time",
    lib.CELL_STOP_VOLTAGE: "voltage",
    lib.CELL_STOP_CURRENT: "current",
    lib.CELL_STOP_CHARGE: "charge",
    lib.CELL_STOP_BUFFER_FULL: "buffer_full",
    lib.CELL_STOP_COMPLIANCE: "compliance",
    lib.CELL_STOP_SAFETY_VOLTAGE: "safety_voltage",
    lib.CELL_STOP_SAFETY_TEMPERATURE: "safety_temperature",
}
FARADAY_C_MOL = 96485.33212
COULOMB_PER_UAH = 3.6e-3


class TwinError(Exception):
    """Base of every error the twin raises."""


class CoreParameterError(TwinError, ValueError):
    """A cell parameter is missing, unknown, not a number or out of range."""


class InputTypeError(TwinError, TypeError):
    """A step input (current, time step) that is not a number."""


class NotFiniteError(TwinError, ValueError):
    """NaN or infinity handed to the core."""


class TimeStepError(TwinError, ValueError):
    """A time step that is not finite and > 0."""


class SegmentError(TwinError, ValueError):
    """A segment the core cannot run (mode, limits, stop values)."""


class StateError(TwinError, RuntimeError):
    """The cell state is inconsistent (negative inventory, absurd temperature)."""


class DivergedError(TwinError, ArithmeticError):
    """The model produced a non-finite value; the state was left unchanged."""


class LengthError(TwinError, ValueError):
    """A buffer or array length the core rejects."""


_ERRORS = {
    lib.CELL_ERR_NULL: TwinError,
    lib.CELL_ERR_NOT_FINITE: NotFiniteError,
    lib.CELL_ERR_PARAM: CoreParameterError,
    lib.CELL_ERR_DT: TimeStepError,
    lib.CELL_ERR_SEGMENT: SegmentError,
    lib.CELL_ERR_STATE: StateError,
    lib.CELL_ERR_DIVERGED: DivergedError,
    lib.CELL_ERR_LENGTH: LengthError,
}
_CODE_NAMES = {
    code: name for name, code in vars(lib).items()
    if name.startswith("CELL_ERR_") and isinstance(code, int)
}


def check(code: int, call: str) -> None:
    """Raise the exception for a non-zero C status code."""
    if code == lib.CELL_OK:
        return
    exc = _ERRORS.get(code, TwinError)
    text = ffi.string(lib.cell_strerror(code)).decode()
    raise exc(f"{call}: {_CODE_NAMES.get(code, code)} ({code}): {text}")


PARAM_FIELDS = tuple(name for name, _ in ffi.typeof("cell_params_t").fields)
# Scalar fields a parameter set gives; the OCV table arrives as two lists.
PARAM_SCALARS = tuple(f for f in PARAM_FIELDS if f not in ("n_ocv_points", "ocv_x", "ocv_V"))


def _finite(name: str, value, kind: type = CoreParameterError) -> float:
    """value as a float; `kind` is raised for a non-number (NaN and infinity
    always raise NotFiniteError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise kind(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise NotFiniteError(f"{name}: {value!r} is not finite")
    return value


def make_params(values: Mapping[str, object]):
    """A checked cell_params_t from a mapping of field -> number, with the OCV
    table as `ocv_x` and `ocv_V` lists."""
    given = set(values)
    expected = set(PARAM_SCALARS) | {"ocv_x", "ocv_V"}
    unknown = sorted(given - expected)
    missing = sorted(expected - given)
    if unknown:
        raise CoreParameterError(f"unknown cell parameter(s): {', '.join(unknown)}")
    if missing:
        raise CoreParameterError(f"missing cell parameter(s): {', '.join(missing)}")
    xs, vs = values["ocv_x"], values["ocv_V"]
    if not isinstance(xs, (list, tuple)) or not isinstance(vs, (list, tuple)) or len(xs) != len(vs):
        raise CoreParameterError("ocv_x and ocv_V must be lists of equal length")
    if not 2 <= len(xs) <= OCV_MAX_POINTS:
        raise CoreParameterError(f"OCV table needs 2..{OCV_MAX_POINTS} points, got {len(xs)}")
    p = ffi.new("cell_params_t *")
    for name in PARAM_SCALARS:
        setattr(p, name, _finite(name, values[name]))
    p.n_ocv_points = len(xs)
    for i, (x, v) in enumerate(zip(xs, vs)):
        p.ocv_x[i] = _finite(f"ocv_x[{i}]", x)
        p.ocv_V[i] = _finite(f"ocv_V[{i}]", v)
    bad = ffi.new("char **")
    code = lib.cell_params_check(p, bad)
    if code:
        field = ffi.string(bad[0]).decode()
        shown = values.get(field, "see table") if field not in ("ocv_x", "ocv_V") else "see table"
        raise CoreParameterError(
            f"cell parameter {field} = {shown!r} is outside its physical range "
            f"(cell_params_check: {_CODE_NAMES.get(code, code)})")
    return p


def _state_dtype() -> np.dtype:
    kinds = {"double": "<f8", "int32_t": "<i4", "int64_t": "<i8"}
    names, formats, offsets = [], [], []
    for name, field in ffi.typeof("cell_state_t").fields:
        names.append(name)
        formats.append(kinds[field.type.cname])
        offsets.append(field.offset)
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                      "itemsize": ffi.sizeof("cell_state_t")})
    return dtype


# A numpy structured dtype laid out exactly as cell_state_t: fleets are numpy
# arrays of it, handed to C without copying.
STATE_DTYPE = _state_dtype()
STATE_FIELDS = STATE_DTYPE.names
SAMPLE_FIELDS = tuple(name for name, _ in ffi.typeof("cell_sample_t").fields)
