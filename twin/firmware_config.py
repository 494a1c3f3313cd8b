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


def config_for(parameters, board="bench_ua", **overrides) -> Config:
    """The controller's configuration for a cell design on a board: the front end
    from the board (see front_end_config), the parameter set's [design] table as
    the firmware on a board would carry it; `overrides` win over both."""
    values, design = parameters.values, parameters.design
    area_cm2 = values["area_cm2"]
    target_uah = int(round(design["target_inventory_uAh"]))
    supply_mol = values["lithium_mol_L"] * values["catholyte_volume_uL"] * 1e-6
    settings = front_end_config(board)
    settings.update(
        area_mm2=int(round(area_cm2 * 100)),
        target_inventory_uah=target_uah,
        lithium_supply_uah=int(supply_mol * UAH_PER_MOL),
        lithium_reserve_uah=int(round(design["lithium_reserve_uAh"])),
        nucleation_ua_cm2=int(round(design["nucleation_current_density_uA_cm2"])),
        nucleation_uas=int(round(design["nucleation_charge_uAh_cm2"] * area_cm2 * UAS_PER_UAH)),
        formation_ua_cm2=int(round(design["formation_current_density_uA_cm2"])),
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
