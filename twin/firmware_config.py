"""The firmware's configuration for a cell design on a board, derived from data.

A controller on a board carries its Config built in; on the twin it is written
here, from the two descriptions the twin runs on: the analog front end from the
board file (twin/parameters/boards/*.toml, docs/hal.md) and the cell design from
the parameter set's [design] table (docs/firmware.md section 9). The firmware's
defaults (bmsfw.config.Config) are the reference board, bench_ua, and the seed's
D111 cell; tests/twin/test_firmware_config.py holds them equal to what this
module derives from bench_ua, so neither side can change alone.
"""
from __future__ import annotations

import math

from bmsfw.config import UAS_PER_UAH, Config
from bmsfw.errors import FieldError
from twin.cell import UAH_PER_MOL
from twin.parameters.board import board_values

# current_max_ua stays this far (per mille) below the current at which the ISHUNT
# channel reaches a rail: a reading on the rail is a fault (OVERCURRENT, SENSOR),
# and the ADC's gain and offset errors, noise and the source's own error must not
# carry a commanded current there. 2 % covers the reference board's 0.2 % gain
# error ten times over; the figure is then rounded down to two significant digits,
# a limit one reads at a glance (bench_ua: rail 2048 µA -> 2000 µA).
ISHUNT_HEADROOM_PM = 20

# The firmware's front-end constants are integers (µV/µA, mV, ohm, K); a board
# value they cannot hold to within 0.1 % would be converted wrongly, so it is refused.
_WHOLE_TOLERANCE = 1e-3

# VCELL gain errors the firmware removes (Config checks the same bound).
_VCELL_GAIN_ERR_MAX_PPM = 100000


class FrontEndError(FieldError):
    """A board value the firmware's front-end configuration cannot represent."""

    prefix = "board "


def _whole(field: str, value: float, derived: float) -> int:
    """`derived` (from the board's `field` = `value`) as the int the firmware keeps."""
    n = int(round(derived))
    if n <= 0 or abs(n - derived) > _WHOLE_TOLERANCE * abs(derived):
        raise FrontEndError(field, value, "gives %r, which the firmware's integer front-end "
                                          "constants cannot hold within 0.1 %%" % derived)
    return n


def source_max_ua(board) -> int:
    """The current source's range, whole µA (never more than the source gives)."""
    return int(math.floor(board_values(board)["source_range_uA"]))


def ishunt_rail_ua(board) -> float:
    """The smallest current, either direction, at which the ISHUNT pin reaches
    0 V or the ADC reference: the shunt channel's measuring range."""
    b = board_values(board)
    mv_per_ua = b["shunt_ohm"] * b["shunt_amp_gain"] * 1e-3
    return min(b["ishunt_offset_mV"], b["adc_vref_mV"] - b["ishunt_offset_mV"]) / mv_per_ua


def _two_digits_down(value: float) -> int:
    if value < 1:
        return 0
    scale = 10 ** max(0, int(math.floor(math.log10(value))) - 1)
    return int(value // scale) * scale


def front_end_config(board) -> dict:
    """The Config fields of the analog front end, from a board (a name, a path,
    a twin.parameters Board, or a mapping of its values).

    These are the board's nominal transfer functions, which the firmware needs to
    read the board's counts. The errors a board file also gives (adc_gain_error,
    adc_offset_counts, adc_noise_counts) are imperfections of the twin's board; the
    firmware must find them itself (it learns the shunt zero at boot), as on real
    hardware, so they are not handed over here."""
    b = board_values(board)
    vcell_err_ppm = int(round((b["vcell_gain"] - 1.0) * 1e6))
    if abs(vcell_err_ppm) > _VCELL_GAIN_ERR_MAX_PPM:
        raise FrontEndError("vcell_gain", b["vcell_gain"],
                            "the firmware expects a unity VCELL buffer and removes at most ±10 % of gain")
    source_ua = source_max_ua(b)
    if source_ua < 1:
        raise FrontEndError("source_range_uA", b["source_range_uA"], "below 1 µA: nothing to command")
    rail_ua = ishunt_rail_ua(b)
    current_ua = min(source_ua, _two_digits_down(rail_ua * (1000 - ISHUNT_HEADROOM_PM) / 1000))
    if current_ua < 1:
        raise FrontEndError("shunt_amp_gain", b["shunt_amp_gain"],
                            "ISHUNT rails at %.3g µA (offset %g mV, %g ohm): no current is left to "
                            "command below its headroom" % (rail_ua, b["ishunt_offset_mV"], b["shunt_ohm"]))
    return {
        "vcell_gain_err_ppm": vcell_err_ppm,
        "ishunt_mid_mv": _whole("ishunt_offset_mV", b["ishunt_offset_mV"], b["ishunt_offset_mV"]),
        # µA through the shunt's ohms is µV, times the amplifier's gain at the pin
        "ishunt_uv_per_ua": _whole("shunt_amp_gain", b["shunt_amp_gain"], b["shunt_ohm"] * b["shunt_amp_gain"]),
        "ntc_r25_ohm": _whole("ntc_r25_ohm", b["ntc_r25_ohm"], b["ntc_r25_ohm"]),
        "ntc_beta_k": _whole("ntc_beta_K", b["ntc_beta_K"], b["ntc_beta_K"]),
        "ntc_pullup_ohm": _whole("ntc_pullup_ohm", b["ntc_pullup_ohm"], b["ntc_pullup_ohm"]),
        "source_max_ua": source_ua,
        "current_max_ua": current_ua,
    }


# Thresholds in µA that a reading must pass to mean something: so many rms of the
# shunt channel's noise (a false rest, direction change or "not following" once a
# week of 1 s ticks is ~1e-6 per tick: 5 sigma; 8 leaves room for the ADC offset).
_NOISE_SIGMAS = 8
# The shunt zero learned with the relay open may lie this many counts off nominal
# (the ADC's offset and gain error at mid-scale: 0.2 % of 32768 is 66 counts) before
# it is taken as a fault: the reference board's 50 µA, 800 counts, on any board.
_ZERO_WINDOW_COUNTS = 800
# The stuck-VCELL check wants a current step whose IR drop VCELL must show: the
# reference's 50 µA on D111's 1 cm², kept per cm² (same ASR per cm²).
_STUCK_STEP_UA_CM2 = 50


def current_resolution(board) -> tuple:
    """(µA per ISHUNT count, rms noise in µA) of a board's shunt channel."""
    b = board_values(board)
    lsb_ua = b["adc_vref_mV"] * 1000.0 / (1 << int(b["adc_bits"])) / (b["shunt_ohm"] * b["shunt_amp_gain"])
    return lsb_ua, b["adc_noise_counts"] * lsb_ua


def board_thresholds(board, area_cm2: float) -> dict:
    """The Config fields in µA that follow from the board's shunt resolution and
    the cell's area (never below the reference board's defaults)."""
    lsb_ua, noise_ua = current_resolution(board)
    noise = int(math.ceil(_NOISE_SIGMAS * noise_ua))
    return {
        "rest_ua": max(Config.rest_ua, noise),
        "cycle_deadband_ua": max(Config.cycle_deadband_ua, noise),
        "oc_margin_ua": max(Config.oc_margin_ua, noise),
        "sensor_follow_min_ua": max(Config.sensor_follow_min_ua, noise),
        "ishunt_zero_window_ua": max(Config.ishunt_zero_window_ua, int(math.ceil(_ZERO_WINDOW_COUNTS * lsb_ua))),
        "stuck_step_ua": max(Config.stuck_step_ua, int(round(_STUCK_STEP_UA_CM2 * area_cm2))),
    }


def plating_table(formation_ua_cm2: int) -> tuple:
    """The plating derating table for a design plating at formation_ua_cm2 at
    25 °C: the reference table's temperature shape (LiPON's conductivity rises
    with temperature) scaled so its 25 °C point is the design's rate."""
    ref = dict(Config.plating_derating)[25]
    return tuple((t_c, int(round(v * formation_ua_cm2 / ref))) for t_c, v in Config.plating_derating)


def config_for(parameters, board=None, **overrides) -> Config:
    """The controller's configuration for a cell design on a board (default: the
    board the parameter set names): the front end from the board (see
    front_end_config, board_thresholds), the parameter set's [design] table as the
    firmware on a board would carry it; `overrides` win over both."""
    values, design = parameters.values, parameters.design
    board = parameters.board if board is None else board
    area_cm2 = values["area_cm2"]
    target_uah = int(round(design["target_inventory_uAh"]))
    supply_mol = values["lithium_mol_L"] * values["catholyte_volume_uL"] * 1e-6
    formation_ua_cm2 = int(round(design["formation_current_density_uA_cm2"]))
    nucleation_uas = int(round(design["nucleation_charge_uAh_cm2"] * area_cm2 * UAS_PER_UAH))
    settings = front_end_config(board)
    settings.update(board_thresholds(board, area_cm2))
    settings.update(
        area_mm2=int(round(area_cm2 * 100)),
        target_inventory_uah=target_uah,
        lithium_supply_uah=int(supply_mol * UAH_PER_MOL),
        lithium_reserve_uah=int(round(design["lithium_reserve_uAh"])),
        nucleation_ua_cm2=int(round(design["nucleation_current_density_uA_cm2"])),
        nucleation_uas=nucleation_uas,
        # three nucleation charges without the plateau: NO_PLATING (the firmware default for D111)
        no_plating_uas=3 * nucleation_uas,
        formation_ua_cm2=formation_ua_cm2,
        plating_derating=plating_table(formation_ua_cm2),
        discharge_cutoff_mv=int(round(design["discharge_cutoff_V"] * 1000)),
        charge_cutoff_mv=int(round(design["charge_cutoff_V"] * 1000)),
        has_wetting_layer=values["wetting_capacity_uAh_cm2"] > 0,
        # the firmware default is 0.1 % of target: a power cut loses at most that
        save_interval_uas=target_uah * UAS_PER_UAH // 1000,
    )
    if values["wetting_capacity_uAh_cm2"] > 0:
        settings["wetting_capacity_uah"] = max(1, int(round(values["wetting_capacity_uAh_cm2"] * area_cm2)))
    settings.update(overrides)
    return Config(**settings)


# Formation's timeouts: its planned duration (each step's charge over the current
# the firmware will use) times this, plus a fixed allowance for boot and settling.
TIMEOUT_MARGIN = 1.5
TIMEOUT_ALLOWANCE_S = 3600.0


def planned_formation_s(config: Config, temp_c: float = 25.0) -> dict:
    """How long formation should take on a powered board at temp_c, from the
    firmware's own figures: "charge" nucleation then plating to the target (charge
    over the planned current: the plating table at temp_c, held at its ends, times
    the area, clamped to what the source gives), "verify" the rest, the strip and
    the replate of the verify cycle at the formation current. Seconds."""
    from bmsfw.limits import interp_table

    c = config
    limit = c.current_max_ua
    nucleation_ua = max(1, min(limit, c.density_to_ua(c.nucleation_ua_cm2)))
    plate_ua_cm2 = interp_table(int(round(temp_c * 10)), c.plating_derating)
    formation_ua = max(1, min(limit, c.density_to_ua(c.formation_ua_cm2)))
    plate_ua = max(1, min(limit, c.density_to_ua(plate_ua_cm2)))
    target_uas = c.target_uas()
    nucleation_uas = min(c.nucleation_uas, target_uas)
    charge_ms = nucleation_uas / nucleation_ua + (target_uas - nucleation_uas) / plate_ua
    verify_uas = target_uas // 1000 * c.verify_cycle_pm
    verify_ms = c.verify_rest_ms + 2 * verify_uas / formation_ua
    return {"charge": (c.boot_settle_ms + charge_ms) / 1000.0, "verify": verify_ms / 1000.0}


def formation_timeouts_s(config: Config, temp_c: float = 25.0) -> dict:
    """Powered seconds the charge and the verify may take before a run calls the
    formation unfinished: the plan at temp_c (planned_formation_s) with a margin."""
    return {k: TIMEOUT_MARGIN * v + TIMEOUT_ALLOWANCE_S for k, v in planned_formation_s(config, temp_c).items()}
