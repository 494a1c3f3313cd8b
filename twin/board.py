"""The board around the cell, as the firmware sees it: a HAL made of the twin.

ADC channels return raw counts like a real converter (resolution, reference,
gain and offset error, seeded Gaussian noise, clamping). The converter scans its
three channels once per tick, in the order VCELL, ISHUNT, TCELL, at the end of
`advance` (like an ADC in scan mode with DMA), and `adc_read` returns the latest
scan: every reader of a tick (the in-process firmware, or the HIL link that
ships the scan to a board) sees the same counts. The current source has
a setpoint resolution, a range, slew and a compliance voltage; a relay connects
the cell. Time is simulated: the board owns the clock and the runner advances
it. Faults are injected here (see `inject`), the way a test engineer would on
a real bench. The analog front end is described in docs/hal.md.
"""
from __future__ import annotations

import math
import random

from bmsfw.hal import ISHUNT, TCELL, VCELL, Hal
from twin.cell import KELVIN, Cell
from twin.core import MODE_VOLTAGE
from twin.parameters.board import BOARD_FIELDS, board_values

FAULTS = {
    "open_cell": "the cell is disconnected: VCELL pulled to full scale, no current",
    "internal_short": "an internal short of the given resistance (ohm) across the cell",
    "crack_now": "the protective layer cracks at once",
    "thermistor_open": "NTC open: TCELL reads full scale",
    "thermistor_short": "NTC shorted: TCELL reads 0",
    "adc_stuck": "an ADC channel stuck at a count: value = (channel, counts)",
    "source_offset": "the current source adds an offset, µA",
    "ambient_step": "ambient temperature steps to the given °C",
}


class BoardError(ValueError):
    """Bad board configuration or fault request."""


class TwinBoard(Hal):
    """A HAL implementation backed by the C cell model."""

    def __init__(self, cell: Cell, board, seed: int = 0):
        """board: a board name or path, a board description (twin.parameters.load_board)
        or a mapping of its values; a missing field is refused by name."""
        values = board_values(board)
        self.cell = cell
        self.b = {f: float(values[f]) for f in BOARD_FIELDS}
        self.seed = seed
        self._bits = int(self.b["adc_bits"])
        self._full = (1 << self._bits) - 1
        self._counts_per_mV = (1 << self._bits) / self.b["adc_vref_mV"]
        self._rng = random.Random(seed)
        self._t_ms = 0
        self.setpoint_ua = 0          # commanded, after quantisation and range
        self.source_ua = 0.0          # what the source delivers (slewed)
        self.relay_closed = False
        self.powered = True
        self.record: bytes | None = None
        self.record_writes = 0
        self.watchdog_feeds = 0
        self.compliance_hits = 0
        # fault state
        self.open_cell = False
        self.thermistor = "ok"        # "ok", "open", "short"
        self.stuck: dict[int, int] = {}
        self.source_offset_ua = 0.0
        self.scan()

    # ---- HAL contract -----------------------------------------------------

    def adc_bits(self) -> int:
        return self._bits

    def adc_vref_mv(self) -> int:
        return int(self.b["adc_vref_mV"])

    def adc_read(self, channel: int) -> int:
        if channel not in (VCELL, ISHUNT, TCELL):
            raise BoardError(f"adc_read: no channel {channel!r} (VCELL=0, ISHUNT=1, TCELL=2)")
        if channel in self.stuck:
            return self.stuck[channel]
        return self._scan[channel]

    def scan(self) -> tuple:
        """Convert all three channels now (VCELL, ISHUNT, TCELL) and latch them."""
        self._scan = (self._sample(VCELL), self._sample(ISHUNT), self._sample(TCELL))
        return self._scan

    def _sample(self, channel: int) -> int:
        if channel == VCELL:
            if self.open_cell:
                return self._full
            pin_mV = self.cell.voltage_V * 1000.0 * self.b["vcell_gain"]
        elif channel == ISHUNT:
            ua = self.cell_current_ua()
            gain_mV_per_uA = self.b["shunt_ohm"] * self.b["shunt_amp_gain"] * 1e-3
            pin_mV = self.b["ishunt_offset_mV"] + ua * gain_mV_per_uA
        elif channel == TCELL:
            if self.thermistor == "open":
                return self._full
            if self.thermistor == "short":
                return 0
            T = self.cell.state.temperature_K
            r_ntc = self.b["ntc_r25_ohm"] * math.exp(self.b["ntc_beta_K"] * (1.0 / T - 1.0 / 298.15))
            pin_mV = self.b["adc_vref_mV"] * r_ntc / (r_ntc + self.b["ntc_pullup_ohm"])
        return self._convert(pin_mV)

    def set_current_ua(self, current_ua: int) -> None:
        if isinstance(current_ua, bool) or not isinstance(current_ua, int):
            raise BoardError(f"set_current_ua: expected int µA, got {current_ua!r}")
        step = self.b["source_resolution_uA"]
        limit = self.b["source_range_uA"]
        quantised = round(current_ua / step) * step
        self.setpoint_ua = max(-limit, min(limit, quantised))

    def set_relay(self, closed: bool) -> None:
        self.relay_closed = bool(closed)

    def ticks_ms(self) -> int:
        return self._t_ms

    def load_record(self):
        return self.record

    def save_record(self, data) -> None:
        if not isinstance(data, (bytes, bytearray)):
            raise BoardError(f"save_record: expected bytes, got {type(data).__name__}")
        self.record = bytes(data)   # one assignment: atomic as seen by a power cut
        self.record_writes += 1

    def feed_watchdog(self) -> None:
        self.watchdog_feeds += 1

    # ---- the bench --------------------------------------------------------

    def cell_current_ua(self) -> float:
        """Current through the cell (and the shunt), + charge."""
        if not (self.powered and self.relay_closed) or self.open_cell:
            return 0.0
        return self.source_ua + self.source_offset_ua

    def advance(self, dt_ms: int) -> None:
        """Let simulated time pass: the source slews to its setpoint and the cell
        is stepped at the current it actually gets."""
        if dt_ms <= 0:
            raise BoardError(f"advance: dt_ms must be > 0, got {dt_ms}")
        target = self.setpoint_ua if self.powered else 0.0
        dt_s = dt_ms / 1000.0
        gap = target - self.source_ua
        ramp_ms = abs(gap) / self.b["source_slew_uA_per_ms"]
        if ramp_ms > 0 and self.cell_connected():
            # the ramp, at its mean current, then the rest at the target
            ramp = min(ramp_ms, float(dt_ms))
            mid = self.source_ua + math.copysign(ramp * self.b["source_slew_uA_per_ms"] / 2.0, gap)
            self._step_cell(mid + self.source_offset_ua, ramp / 1000.0)
            dt_s -= ramp / 1000.0
        if ramp_ms <= dt_ms:
            self.source_ua = target
        else:
            self.source_ua += math.copysign(dt_ms * self.b["source_slew_uA_per_ms"], gap)
        if dt_s > 0:
            self._step_cell(self.cell_current_ua(), dt_s)
        self._t_ms += dt_ms
        self.scan()

    def cell_connected(self) -> bool:
        return self.powered and self.relay_closed and not self.open_cell

    def _step_cell(self, current_ua: float, dt_s: float) -> None:
        if not self.cell_connected():
            current_ua = 0.0
        current_A = current_ua * 1e-6
        compliance = self.b["source_compliance_V"]
        if current_A != 0.0:
            v = self.cell.voltage_at(current_A)
            # The source cannot drive the cell past its compliance, nor pull it
            # below 0 V: there it becomes a voltage source.
            if v > compliance or v < 0.0:
                self.compliance_hits += 1
                hold = compliance if v > compliance else 1e-3
                self.cell.run_segment({"mode": MODE_VOLTAGE, "voltage_V": hold, "duration_s": dt_s})
                return
        self.cell.step(current_A, dt_s)

    def power(self, on: bool) -> None:
        """Board power: off means the source stops and the relay drops out."""
        self.powered = bool(on)
        if not on:
            self.relay_closed = False
            self.setpoint_ua = 0
            self.source_ua = 0.0
        else:
            self._t_ms = 0      # a board's ms clock starts again at power-up
            self.scan()

    def inject(self, fault: str, value=None) -> None:
        """Inject one of FAULTS. Unknown names and bad values raise, change nothing."""
        if fault not in FAULTS:
            raise BoardError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if fault == "open_cell":
            self.open_cell = value is None or bool(value)
        elif fault == "internal_short":
            self.cell.inject_short(_number(fault, value))
        elif fault == "crack_now":
            self.cell.crack_now()
        elif fault == "thermistor_open":
            self.thermistor = "open"
        elif fault == "thermistor_short":
            self.thermistor = "short"
        elif fault == "adc_stuck":
            if not (isinstance(value, tuple) and len(value) == 2):
                raise BoardError("adc_stuck: value must be (channel, counts)")
            channel, counts = value
            if channel not in (VCELL, ISHUNT, TCELL) or not 0 <= int(counts) <= self._full:
                raise BoardError(f"adc_stuck: bad channel/counts {value!r}")
            self.stuck[channel] = int(counts)
        elif fault == "source_offset":
            self.source_offset_ua = _number(fault, value, allow_negative=True)
        elif fault == "ambient_step":
            self.cell.set_ambient_c(_number(fault, value, allow_negative=True))

    def clear(self, fault: str, value=None) -> None:
        """Take one injected fault of FAULTS back (adc_stuck: value is the channel);
        a crack is physical and stays, an ambient step is undone by setting another."""
        if fault == "open_cell":
            self.open_cell = False
        elif fault in ("thermistor_open", "thermistor_short"):
            self.thermistor = "ok"
        elif fault == "internal_short":
            self.cell.clear_short()
        elif fault == "adc_stuck":
            self.stuck.pop(value, None)
        elif fault == "source_offset":
            self.source_offset_ua = 0.0
        else:
            raise BoardError(f"clear: {fault!r} cannot be cleared; clearable: open_cell, thermistor_open, "
                             "thermistor_short, internal_short, adc_stuck, source_offset")

    def clear_faults(self) -> None:
        self.open_cell = False
        self.thermistor = "ok"
        self.stuck.clear()
        self.source_offset_ua = 0.0
        self.cell.clear_short()

    def _convert(self, pin_mV: float) -> int:
        counts = (pin_mV * (1.0 + self.b["adc_gain_error"]) * self._counts_per_mV
                  + self.b["adc_offset_counts"])
        noise = self.b["adc_noise_counts"]
        if noise:
            counts += self._rng.gauss(0.0, noise)
        counts = int(round(counts))
        return 0 if counts < 0 else self._full if counts > self._full else counts

    @property
    def description(self) -> dict:
        """The board description it was built from (all values as floats)."""
        return dict(self.b)

    @property
    def temperature_c(self) -> float:
        return self.cell.state.temperature_K - KELVIN


def _number(fault: str, value, allow_negative: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BoardError(f"{fault}: expected a finite number, got {value!r}")
    if not allow_negative and value <= 0:
        raise BoardError(f"{fault}: must be > 0, got {value}")
    return float(value)
