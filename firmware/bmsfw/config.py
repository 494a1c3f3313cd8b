# Controller configuration: the board's analog front end (docs/hal.md, the
# "bench-ua" reference board) and the cell design (the twin parameter set's
# [design] table; defaults are the seed's D111 cell, WO 99/43034 "EXAMPLES").
#
# One class, one comment per default (pyBMS config.py). Config(**overrides)
# rejects unknown names and wrong types with ConfigError naming the field.
#
# Unit note: the suffix _uas means microampere-MILLIseconds (µA·ms) throughout
# bmsfw and docs/frames.md; UAS_PER_UAH (bmsfw.ledger, imported here for the
# runner) converts.

from .errors import FieldError
from .ledger import UAS_PER_UAH, to_units, unit_for


class ConfigError(FieldError):
    prefix = "config "


class Config:
    # --- analog front end (docs/hal.md) ---------------------------------------
    vcell_gain_err_ppm = 0          # VCELL gain error to remove, ppm (+ reads high)
    vcell_offset_mv = 0             # VCELL offset to remove, mV (+ reads high)
    ishunt_mid_mv = 2048            # ISHUNT pin voltage at 0 µA (mid-scale)
    ishunt_uv_per_ua = 1000         # 100 ohm shunt x gain 10 = 1.0 mV/µA at the pin
    ishunt_gain_err_ppm = 0         # ISHUNT gain error to remove, ppm
    ishunt_offset_ua = 0            # ISHUNT offset to remove, µA
    ishunt_zero_window_ua = 50      # an open-relay reading beyond this of nominal zero is a fault, not an offset
    ntc_r25_ohm = 10000             # NTC resistance at 25 °C
    ntc_beta_k = 3950               # NTC beta, kelvin
    ntc_pullup_ohm = 10000          # pull-up from Vref to the NTC
    source_max_ua = 2048            # current-source range, ±µA (16-bit DAC, docs/hal.md)
    current_max_ua = 2000           # most the controller commands: ISHUNT rails at ±2048 µA, keep headroom

    # --- cell design (twin [design] table; D111 defaults) ---------------------
    area_mm2 = 100                  # active area: ≈1 cm² (seed examples)
    target_inventory_uah = 200      # D111 plated 201.6 µAh in formation (10 µA 10 min + 100 µA 2 h)
    lithium_supply_uah = 1000       # Li the catholyte can give (0.75 mol/L Li in ~58 µL is far more)
    lithium_reserve_uah = 5         # never strip below: keeps Cu covered, replating even
    nucleation_ua_cm2 = 10          # D111: 10 µA on 1 cm² first
    nucleation_uas = 6000000        # D111: 10 µA x 10 min = 1.67 µAh
    formation_ua_cm2 = 100          # D042/D049/D111 plated uniform films at 100 µA/cm² (25 °C)
    # Highest plating current density the glass tolerates without a wetting
    # layer, (°C, µA/cm²), integer-interpolated. 100 at 25 °C is the seed's
    # proven rate; LiPON conductivity rises with temperature (seed: 50-100 °C
    # speeds plating), and the twin's critical density lies in 0.1..1 mA/cm²
    # (DESIGN.md §2), so 150 at 45 °C keeps a margin.
    plating_derating = ((0, 30), (10, 55), (25, 100), (45, 150))
    # Discharge (stripping) current density (°C, µA/cm²): tetraglyme catholyte
    # is sluggish cold; seed cycling was at 100 µA/cm² at room temperature.
    discharge_derating = ((-20, 0), (0, 50), (10, 100), (25, 200), (45, 200), (60, 0))
    charge_min_temp_dc = 0          # refuse formation/charging below 0 °C (plating on cold LiPON)
    temp_accuracy_dc = 5            # ±0.5 °C NTC chain accuracy: a reading down to -0.5 °C may be 0 °C
    charge_max_temp_dc = 550        # no charging above 55 °C (CCL 0)
    discharge_cutoff_mv = 2000      # D111 stripped "to 2.0 V": keeps the catholyte above Li2S2
    charge_cutoff_mv = 2600         # upper Li-S shoulder (elemental sulfur ~2.5 V, seed Fig. 5)
    has_wetting_layer = False       # D111: LiPON straight on Cu (no alloy plateau expected)
    wetting_capacity_uah = 30       # Li the wetting layer alloys first (1000 Å Al ≈ 27 µAh/cm²); with one only

    # --- formation ------------------------------------------------------------
    auto_form = True                # start formation by itself when a precursor is found
    plateau_mv = 2100               # voltage above which lithium covers the copper (Li-S plateau ~2.3 V)
    alloy_min_mv = 1700             # wetting-layer alloy plateau ~1.9-2.0 V lies above this
    no_plating_uas = 18000000       # 5 µAh (3x nucleation) without the plateau: NO_PLATING
    verify_rest_ms = 600000         # 10 min rest before the OCV check
    verify_ocv_min_mv = 2200        # formed-cell OCV window (Li-S plateau)
    verify_ocv_max_mv = 2600
    verify_cycle_pm = 50            # small cycle: 5 % of target out and back in
    verify_min_ce_ppm = 900000      # small cycle must give back at least 90 %

    # --- limits ----------------------------------------------------------------
    charge_margin_pm = 10           # CCL reaches 0 at target + 1 % (counting noise)
    charge_taper_pm = 30            # CCL ramps down over the last 3 % before that
    reserve_taper_pm = 50           # DCL ramps to 0 over 5 % of target above the reserve
    cv_taper_mv = 50                # CCL ramps to 0 over the last 50 mV below CVL
    dv_taper_mv = 100               # DCL ramps to 0 over the last 100 mV above DVL

    # --- protections (thresholds; debounce = time beyond threshold) ------------
    ov_margin_mv = 100              # OVERVOLTAGE above charge_cutoff + margin
    ov_debounce_ms = 1000
    uv_margin_mv = 100              # UNDERVOLTAGE below discharge_cutoff - margin (formed cell)
    uv_debounce_ms = 1000
    oc_margin_ua = 20               # OVERCURRENT: beyond max(limit, setpoint) + margin + 10 %
    oc_debounce_ms = 1000
    over_temp_dc = 600              # OVER_TEMPERATURE latch above 60 °C
    ot_debounce_ms = 5000
    ut_hysteresis_dc = 20           # UNDER_TEMPERATURE inhibit clears 2 °C above charge_min_temp
    ut_debounce_ms = 3000
    sensor_debounce_ms = 1000       # thermistor open/short, current not following, VCELL stuck
    stuck_step_ua = 50              # VCELL must move across current steps this big (0: no check)
    sensor_follow_min_ua = 20       # "current not following the setpoint" is judged above this setpoint
    short_ocv_mv = 30               # boot: OCV below this is a short (no current is ever applied)
    short_mv = 1000                 # formed cell collapsing below this: SHORT
    short_debounce_ms = 500
    no_cell_mv = 3500               # VCELL above this: open circuit (pulled up to full scale)
    no_cell_debounce_ms = 1000
    precursor_min_mv = 50           # boot OCV window of a precursor (Cu vs polysulfide ~0.1-0.2 V)
    precursor_max_mv = 1500
    formed_min_mv = 1800            # boot OCV window of a formed cell
    formed_max_mv = 2700
    crack_drop_mv = 150             # sudden drop of the plating voltage: CRACK_SUSPECTED
    crack_debounce_ms = 2000
    crack_ce_ppm = 900000           # voltage-ended cycle returning less than 90 %: CRACK_SUSPECTED
    crack_missing_pm = 250          # discharge hit DVL with > 25 % of target still counted
    rest_ua = 5                     # |current| below this counts as rest (OCV checks)

    # --- estimator (bmsfw.estimator, bmsfw.crack_watch; docs/firmware.md "Estimator") ---
    # Charge plated that the electrode does not keep as lithium metal, ppm:
    # the cell's characterised coulombic loss, the prior until a discharge
    # knee measures it. D111: 0.5 % ends as dead lithium (the seed's strip,
    # the twin's plating_loss_fraction). Charge the catholyte does not give
    # (its side reactions near Li2S12, ~0.05 %) the voltage anchors see and
    # correct (bmsfw.crack_watch), so it is not counted here.
    plating_loss_ppm = 5000
    plating_loss_unc_ppm = 1500     # its uncertainty before a knee (cell-to-cell spread ±30 %)
    plating_loss_min_unc_ppm = 300  # what knees leave of it at best
    meas_unc_ppm = 200              # counting uncertainty per charge moved (shunt gain error, in-out cancels most)
    offset_unc_na = 30              # shunt zero left after learning it at boot (8 samples), nA
    knee_bound_nah = 300            # inventory bound after a knee: what is left when the voltage falls
    catholyte_s_uah = 2412          # sulfur as the Li (µAh) that makes it Li2S2: 3 mol/L x 30 µL (d111)
    # The catholyte's voltage against its Li:S ratio (seed Figure 5; the twin's
    # [ocv] table), (x per mille, mV): where it has slope, a voltage change at
    # the same count is lithium the ledger did not count (bmsfw.crack_watch).
    ocv_table = ((0, 2500), (50, 2450), (125, 2400), (200, 2370), (250, 2330), (300, 2220),
                 (400, 2130), (700, 2100), (1000, 2050), (1150, 1900), (1400, 1720), (2000, 1500))
    ocv_min_slope_uv = 100          # µV per x per mille: flatter than this, the voltage is not read
    catholyte_max_x_pm = 1000       # the catholyte's lower end: Li:S 1 (Li2S2), below it insoluble Li2S
    crack_anchor_ms = 600000        # a constant-current segment leaves its voltage anchor 10 min in
    crack_cath_tol_nah = 1500       # anchors correct the count when 1.5 µAh apart at most ...
    crack_suspect_tol_nah = 10000   # ... and suspect a crack up to 10 µAh apart (through the slope)
    crack_suspect_uv = 300          # an anchor reading 0.3 mV low: ledger and voltage disagree
    crack_settle_ms = 150000        # a rest settles (RC pair ~20 s) before its voltage is watched
    crack_window_ms = 300000        # ... then must not fall by crack_drift_uv in 5 min
    crack_drift_uv = 160            # the shoulder's self-discharge of a crack: ~0.3-0.6 mV in 5 min

    # --- timing and persistence ------------------------------------------------
    tick_ms = 1000                  # nominal tick (the controller measures real dt)
    # Relay open this long before the boot OCV is read; it is also when the
    # shunt zero is learned (8 samples at 1 s ticks: ~0.03 µA, so a formation
    # resumed after a power cut does not count a noisy zero for hours).
    boot_settle_ms = 8000
    # Save every 0.2 µAh (0.1 % of 200 µAh) of counted charge: a power cut loses
    # at most one interval, so even four cuts in one formation stay within
    # 0.5 % of target (~1000 writes per formation; 0.25 % is the allowed maximum).
    save_interval_uas = 720000
    cycle_deadband_ua = 5           # |current| below this does not change the cycle direction
    cycle_min_uas = 3600000         # a cycle counts (CE) only if 1 µAh went each way

    def __init__(self, **overrides):
        for name in overrides:
            value = overrides[name]
            if name.startswith("_") or not hasattr(Config, name) or callable(getattr(Config, name)):
                raise ConfigError(name, value, "unknown field")
            default = getattr(Config, name)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ConfigError(name, value, "must be True or False")
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(name, value, "must be an int")
            elif isinstance(default, tuple):
                value = _table(name, value)
            setattr(self, name, value)
        self._check()

    def _check(self):
        for name in ("area_mm2", "target_inventory_uah", "lithium_supply_uah", "nucleation_ua_cm2",
                     "nucleation_uas", "formation_ua_cm2", "tick_ms", "save_interval_uas",
                     "ishunt_uv_per_ua", "ntc_r25_ohm", "ntc_beta_k", "ntc_pullup_ohm",
                     "source_max_ua", "current_max_ua", "verify_cycle_pm", "charge_taper_pm", "reserve_taper_pm",
                     "cv_taper_mv", "dv_taper_mv"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, getattr(self, name), "must be > 0")
        for name in ("vcell_gain_err_ppm", "ishunt_gain_err_ppm"):
            if not -100000 <= getattr(self, name) <= 100000:
                raise ConfigError(name, getattr(self, name), "gain error beyond ±10 %")
        if self.lithium_reserve_uah < 0 or self.lithium_reserve_uah >= self.target_inventory_uah:
            raise ConfigError("lithium_reserve_uah", self.lithium_reserve_uah,
                              "must be >= 0 and below target_inventory_uah")
        if self.target_inventory_uah >= 134000000:
            # the tick counts in small ints (bmsfw.ledger): the target stays below 2**27 units of 1 µAh
            raise ConfigError("target_inventory_uah", self.target_inventory_uah, "must be below 134 Ah")
        per = UAS_PER_UAH // self.est_unit_uas()
        for name in ("lithium_supply_uah", "catholyte_s_uah"):
            if getattr(self, name) * per >= 0x20000000:
                # the estimator's figures are small ints (bmsfw.estimator): below 2**29 of its units
                raise ConfigError(name, getattr(self, name), "must be below %d (estimator units)" % (0x20000000 // per))
        if self.current_max_ua > self.source_max_ua:
            raise ConfigError("current_max_ua", self.current_max_ua, "must be <= source_max_ua")
        if self.discharge_cutoff_mv >= self.charge_cutoff_mv:
            raise ConfigError("discharge_cutoff_mv", self.discharge_cutoff_mv,
                              "must be below charge_cutoff_mv")
        if self.save_interval_uas * 400 > self.target_uas():
            # A power cut loses at most one interval; 0.25 % keeps resume within 0.5 %.
            raise ConfigError("save_interval_uas", self.save_interval_uas,
                              "must be <= 0.25 % of target_inventory_uah")

    # --- derived figures (ints) ---------------------------------------------------
    def target_uas(self):
        return self.target_inventory_uah * UAS_PER_UAH

    def reserve_uas(self):
        return self.lithium_reserve_uah * UAS_PER_UAH

    def supply_uas(self):
        return self.lithium_supply_uah * UAS_PER_UAH

    def density_to_ua(self, ua_cm2):
        """Current (µA) for a current density (µA/cm²) over the active area,
        without forming ua_cm2 x area_mm2 (past 2^30 on an A-range cell)."""
        a = self.area_mm2
        if a < 10000:
            return ua_cm2 * a // 100
        k = a // 100
        return ua_cm2 * k + ua_cm2 * (a - k * 100) // 100

    def charge_unit_uas(self):
        """The unit the tick counts this cell's charge in (bmsfw.ledger: the
        finest that keeps the target below 2^27 units)."""
        return unit_for(self.target_uas())

    def est_unit_uas(self):
        """The unit of the estimator's figures (bmsfw.estimator): 1 nAh (3600
        µA·ms), or the charge unit where that is coarser (10 nAh on a 1 Ah
        cell, 1 µAh on 100 Ah): always k nAh, k in 1, 10, 100, 1000."""
        unit = self.charge_unit_uas()
        return unit if unit > 3600 else 3600

    def units(self, uas):
        """uas (µA·ms) in whole charge units, rounded up."""
        return to_units(uas, self.charge_unit_uas())

    def names(self):
        """The configurable field names, sorted (for docs and the runner)."""
        out = []
        for name in dir(Config):
            if not name.startswith("_") and not callable(getattr(Config, name)):
                out.append(name)
        out.sort()
        return out


def _table(name, value):
    """A derating table: a non-empty sequence of (temp °C int, µA/cm² int >= 0)
    with strictly increasing temperatures; returned as a tuple of tuples."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(name, value, "must be a non-empty list of (temp_c, ua_cm2)")
    rows = []
    last = None
    for row in value:
        if not isinstance(row, (list, tuple)) or len(row) != 2:
            raise ConfigError(name, value, "rows must be (temp_c, ua_cm2)")
        t_c, ua_cm2 = row[0], row[1]
        for v in (t_c, ua_cm2):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(name, value, "table entries must be ints")
        if ua_cm2 < 0:
            raise ConfigError(name, value, "current density must be >= 0")
        if last is not None and t_c <= last:
            raise ConfigError(name, value, "temperatures must increase strictly")
        last = t_c
        rows.append((t_c, ua_cm2))
    return tuple(rows)
