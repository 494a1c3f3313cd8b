"""A pure-Python twin of the C core (c_core/), for testing it: the same equations,
the same step-size rule, the same segment runner, written from the C source
with nothing but `math`. A test oracle (tests/twin/test_oracle.py,
benchmarks/bench_core.py); it does not ship with the twin.

It is slow (about a thousand times slower than C) and is never used to simulate:
tests run a short protocol through both and require agreement to 1e-9
relative, so a change to the C numerics that is not mirrored here (or a
compiler flag that changes the arithmetic) shows up at once.

Parameters are the mapping twin.core.make_params takes (scalar fields plus the
`ocv_x`/`ocv_V` lists); a state is a dict with the field names of cell_state_t,
including its caches, which are mirrored so that results agree to round-off
(the Arrhenius factors are refreshed only when T moves more than 1 mK, exactly
as in C). Functions return the C status codes (0 or a negative CELL_ERR_*).
Current sign: + charges the cell (plates lithium), - discharges it.
"""
from __future__ import annotations

import math
from typing import Mapping

from twin._core import lib
from twin.core import (
    COULOMB_PER_UAH,
    FARADAY_C_MOL,
    MODE_CURRENT,
    MODE_REST,
    MODE_VOLTAGE,
    SAMPLE_FIELDS,
    STATE_FIELDS,
)

# ---- constants --------------------------------------------------------------
# The C contract's codes, layouts and the physical constants the binding exports
# come from the binding itself (status codes as lib.CELL_*); what the C core keeps
# to itself is mirrored here, and test_oracle.py checks each against its #define.

GAS_J_MOL_K = 8.314462618               # submodels.h
BOLTZMANN_EV_K = 8.617333262e-5         # submodels.h
ARRHENIUS_REFRESH_K = 1e-3              # submodels.h
CORE_MIN_DT_S = 1e-4                    # core_internal.h
CORE_ADAPTIVE_FLOOR_S = 0.5             # core_internal.h
ALLOY_SWITCH_FRACTION = 0.001           # cell.c
BISECT_ITERATIONS = 40                  # segment.c


class OracleParameterError(ValueError):
    """A parameter mapping the oracle cannot use (missing field, bad OCV table)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def params(values: Mapping[str, object]) -> dict:
    """A plain dict of floats (and the OCV lists) from a parameter mapping."""
    p = {}
    for name, value in values.items():
        if name in ("ocv_x", "ocv_V"):
            p[name] = [float(v) for v in value]
        elif name != "n_ocv_points":
            p[name] = float(value)
    for name in ("ocv_x", "ocv_V", "area_cm2", "max_substep_s"):
        if name not in p:
            raise OracleParameterError(name, "missing")
    if len(p["ocv_x"]) != len(p["ocv_V"]) or len(p["ocv_x"]) < 2:
        raise OracleParameterError("ocv_x", "ocv_x and ocv_V need the same length, >= 2")
    p["n_ocv_points"] = len(p["ocv_x"])
    return p


def derive(p: dict) -> dict:
    """core_derive: the parameter-derived constants of the step path."""
    return {
        "inv_area": 1.0 / p["area_cm2"],
        "n_cover_mol": uah_cm2_to_mol(p, p["metal_coverage_uAh_cm2"]),
        "n_alloy_cap_mol": uah_cm2_to_mol(p, p["wetting_capacity_uAh_cm2"]),
        "n_nucleation_mol": uah_cm2_to_mol(p, p["nucleation_charge_uAh_cm2"]),
        "i_nucleation_ref_A": 1e-7 * p["area_cm2"],
        "dendrite_C": p["dendrite_charge_uAh_cm2"] * p["area_cm2"] * COULOMB_PER_UAH,
        "layer_bulk_asr": (p["layer_thickness_A"] * 1e-8 / p["layer_conductivity_S_cm"]
                           if p["layer_thickness_A"] > 0.0 else 0.0),
        "corrosion_mol_s": p["corrosion_current_A_cm2"] * p["area_cm2"] / FARADAY_C_MOL,
        "hA_over_C": p["heat_transfer_W_K"] / p["heat_capacity_J_K"],
    }


# ---- sub-models (submodels.h) -----------------------------------------------

def uah_cm2_to_mol(p: dict, uah_cm2: float) -> float:
    return uah_cm2 * p["area_cm2"] * COULOMB_PER_UAH / FARADAY_C_MOL


def arrhenius(Ea_eV: float, T_K: float, Tref_K: float) -> float:
    return math.exp(Ea_eV / BOLTZMANN_EV_K * (1.0 / T_K - 1.0 / Tref_K))


def refresh_arrhenius(p: dict, s: dict) -> None:
    T = s["temperature_K"]
    if abs(T - s["cache_T_K"]) <= ARRHENIUS_REFRESH_K:
        return
    u = 1.0 / T - 1.0 / p["reference_temperature_K"]
    s["electrolyte_factor"] = math.exp(p["electrolyte_Ea_eV"] / BOLTZMANN_EV_K * u)
    s["layer_factor"] = math.exp(p["layer_Ea_eV"] / BOLTZMANN_EV_K * u)
    s["transfer_factor"] = math.exp(p["layer_transfer_Ea_eV"] / BOLTZMANN_EV_K * u)
    s["critical_factor"] = math.exp(-p["critical_Ea_eV"] / BOLTZMANN_EV_K * u)
    s["cache_T_K"] = T


def implicit_drain(pool: float, want: float, half: float) -> float:
    """The pool left after draining at want * pool/(pool + half), implicitly."""
    b = half - pool + want
    disc = math.sqrt(b * b + 4.0 * pool * half)
    return 0.5 * (disc - b) if b < 0.0 else 2.0 * pool * half / (b + disc)


def catholyte_potential_V(p: dict, x: float, view: dict | None = None) -> float:
    """Table interpolation plus the supply rise; records the interval in
    view["ocv_index"] as the C hint does (it never changes the value)."""
    xs, vs, n = p["ocv_x"], p["ocv_V"], p["n_ocv_points"]
    if x <= xs[0]:
        v = vs[0]
    elif x >= xs[n - 1]:
        v = vs[n - 1]
    else:
        lo, hi = 0, n - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if xs[mid] <= x:
                lo = mid
            else:
                hi = mid
        if view is not None:
            view["ocv_index"] = lo
        v = vs[lo] + (vs[lo + 1] - vs[lo]) * (x - xs[lo]) / (xs[lo + 1] - xs[lo])
    xc = x if x > 0.0 else 0.0
    return v + p["supply_rise_V"] * p["supply_knee_x"] / (xc + p["supply_knee_x"])


def negative_potential_V(p: dict, s: dict, n_cover_mol: float, n_alloy_cap_mol: float) -> float:
    cover_metal = s["li_metal_mol"] / (s["li_metal_mol"] + n_cover_mol)
    substrate = p["copper_potential_V"]
    if n_alloy_cap_mol > 0.0:
        fill = s["li_alloy_mol"] / n_alloy_cap_mol
        alloy_V = p["alloy_potential_V"] + p["alloy_slope_V"] * (1.0 - fill)
        cover_alloy = s["li_alloy_mol"] / (s["li_alloy_mol"] + n_cover_mol)
        substrate = cover_alloy * alloy_V + (1.0 - cover_alloy) * p["copper_potential_V"]
    return (1.0 - cover_metal) * substrate


def ohmic_resistance_ohm(p: dict, d: dict, s: dict) -> float:
    asr = p["electrolyte_asr_ohm_cm2"] * s["electrolyte_factor"]
    if d["layer_bulk_asr"] > 0.0:
        asr += (d["layer_bulk_asr"] * s["layer_factor"]
                + p["layer_transfer_asr_ohm_cm2"] * s["transfer_factor"])
    return asr * d["inv_area"]


def charge_transfer_V(p: dict, T_K: float, j_A_cm2: float) -> float:
    b = 2.0 * GAS_J_MOL_K * T_K / FARADAY_C_MOL
    return b * (math.asinh(j_A_cm2 / (2.0 * p["anode_j0_A_cm2"]))
                + math.asinh(j_A_cm2 / (2.0 * p["cathode_j0_A_cm2"])))


def nucleation_V(p: dict, d: dict, s: dict, current_A: float) -> float:
    if current_A <= 0.0 or p["nucleation_overpotential_V"] == 0.0:
        return 0.0
    bare = d["n_nucleation_mol"] / (s["li_metal_mol"] + d["n_nucleation_mol"])
    return (p["nucleation_overpotential_V"] * bare * current_A
            / (current_A + d["i_nucleation_ref_A"]))


# ---- terminal voltage (cell.c) ------------------------------------------------

def _voltage(p: dict, d: dict, s: dict, i_ec: float, eta_ct_V: float,
             hint: dict | None = None) -> tuple[float, float]:
    """(terminal voltage, OCV) of a state (or a view of one) at i_ec."""
    x = s["li_catholyte_mol"] / s["s_catholyte_mol"]
    ocv = (catholyte_potential_V(p, x, hint)
           - negative_potential_V(p, s, d["n_cover_mol"], d["n_alloy_cap_mol"]))
    v = (ocv + i_ec * ohmic_resistance_ohm(p, d, s) + s["v_rc_V"] + eta_ct_V
         + nucleation_V(p, d, s, i_ec))
    return v, ocv


def core_voltage(p: dict, d: dict, s: dict, i_ec: float) -> tuple[float, float]:
    """Charge transfer at the Arrhenius cache's temperature, as in C."""
    return _voltage(p, d, s, i_ec, charge_transfer_V(p, s["cache_T_K"], i_ec * d["inv_area"]))


def core_electrochemical_current(p: dict, d: dict, s: dict, current_A: float) -> float:
    """Terminal current minus what the internal short takes (Newton)."""
    if s["short_ohm"] <= 0.0:
        return current_A
    r = s["short_ohm"]
    i = current_A - core_voltage(p, d, s, current_A)[0] / r
    for _ in range(30):
        h = 1e-9 + 1e-6 * abs(i)
        v = core_voltage(p, d, s, i)[0]
        g = i - current_A + v / r
        dg = 1.0 + (core_voltage(p, d, s, i + h)[0] - v) / h / r
        step = g / dg
        i -= step
        if abs(step) <= 1e-15 + 1e-12 * abs(i):
            break
    return i


def core_state_ok(s: dict) -> bool:
    fields = ("li_catholyte_mol", "s_catholyte_mol", "li_alloy_mol", "li_metal_mol",
              "li_dead_mol", "li_precipitated_mol", "s_precipitated_mol", "layer_damage",
              "short_ohm", "v_rc_V", "t_s", "temperature_K", "ambient_K", "charge_since_crack_C")
    if not all(math.isfinite(s[f]) for f in fields):
        return False
    nonneg = ("li_catholyte_mol", "li_alloy_mol", "li_metal_mol", "li_dead_mol",
              "li_precipitated_mol", "s_precipitated_mol", "layer_damage", "short_ohm",
              "charge_since_crack_C")
    return (all(s[f] >= 0.0 for f in nonneg) and s["s_catholyte_mol"] > 0.0
            and s["layer_damage"] <= 1.0 and 150.0 < s["temperature_K"] < 500.0
            and 150.0 < s["ambient_K"] < 500.0)


def lithium_total_mol(s: dict) -> float:
    return (s["li_catholyte_mol"] + s["li_alloy_mol"] + s["li_metal_mol"] + s["li_dead_mol"]
            + s["li_precipitated_mol"])


def cell_init(p: dict, ambient_K: float) -> dict:
    """A shipped cell: no lithium metal, none alloyed, catholyte as made."""
    d = derive(p)
    s = {name: 0.0 for name in STATE_FIELDS}
    s["layer_cracked"] = 0
    s["ocv_index"] = 0
    volume_L = p["catholyte_volume_uL"] * 1e-6
    s["li_catholyte_mol"] = p["lithium_mol_L"] * volume_L
    s["s_catholyte_mol"] = p["sulfur_mol_L"] * volume_L
    s["temperature_K"] = ambient_K
    s["ambient_K"] = ambient_K
    s["cache_T_K"] = -1.0
    s["cache_dt_s"] = -1.0
    s["cache_ct_T_K"] = -1.0
    refresh_arrhenius(p, s)
    s["voltage_V"], s["ocv_V"] = core_voltage(p, d, s, 0.0)
    return s


def cell_voltage_at(p: dict, s: dict, current_A: float) -> float:
    d = derive(p)
    w = dict(s)
    refresh_arrhenius(p, w)
    return core_voltage(p, d, w, core_electrochemical_current(p, d, w, current_A))[0]


# ---- one internal step (core_substep) ---------------------------------------

def core_substep(p: dict, d: dict, s: dict, current_A: float, dt: float) -> int:
    """Advance s by dt at terminal current current_A; s changes only on success
    (except the Arrhenius cache, refreshed first, as in C)."""
    refresh_arrhenius(p, s)
    F = FARADAY_C_MOL
    n_cover, n_cap = d["n_cover_mol"], d["n_alloy_cap_mol"]

    cath, sulfur = s["li_catholyte_mol"], s["s_catholyte_mol"]
    alloy, metal, dead = s["li_alloy_mol"], s["li_metal_mol"], s["li_dead_mol"]
    li_prec, s_prec = s["li_precipitated_mol"], s["s_precipitated_mol"]
    damage, since_crack = s["layer_damage"], s["charge_since_crack_C"]
    short_ohm, cracked = s["short_ohm"], s["layer_cracked"]
    plated_C, corroded_C = s["li_plated_C"], s["li_corroded_C"]

    i_ec = core_electrochemical_current(p, d, s, current_A) if short_ohm > 0.0 else current_A
    q = i_ec * dt * (1.0 / F)  # mol of Li moved, + towards the negative

    if q > 0.0:
        left = implicit_drain(cath, q, p["supply_knee_x"] * sulfur)
        moved = cath - left
        to_alloy = 0.0
        if n_cap > 0.0:
            room = n_cap - alloy
            if room < 0.0:
                room = 0.0
            to_alloy = moved * room / (room + ALLOY_SWITCH_FRACTION * n_cap)
            if to_alloy > room:
                to_alloy = room
        plated = moved - to_alloy
        lost = plated * p["plating_loss_fraction"]
        cath = left
        alloy += to_alloy
        metal += plated - lost
        dead += lost
        plated_C += moved * F
        if d["layer_bulk_asr"] > 0.0 and not cracked:
            j_local = p["patchy_concentration"] * plated * F / dt * d["inv_area"]
            j_crit = p["critical_current_A_cm2"] * s["critical_factor"]
            if j_local > j_crit:
                damage += p["damage_rate_per_s"] * (j_local / j_crit - 1.0) * dt
                if damage >= 1.0:
                    damage = 1.0
                    cracked = 1
        if cracked:
            since_crack += plated * F
            if since_crack >= d["dendrite_C"] and (
                    short_ohm == 0.0 or short_ohm > p["dendrite_short_ohm"]):
                short_ohm = p["dendrite_short_ohm"]
    elif q < 0.0:
        want = -q
        metal_left = implicit_drain(metal, want, n_cover)
        from_metal = metal - metal_left
        from_alloy = 0.0
        rest = want - from_metal
        if alloy > 0.0 and rest > 0.0:
            alloy_left = implicit_drain(alloy, rest, n_cover)
            from_alloy = alloy - alloy_left
            alloy = alloy_left
        metal = metal_left
        cath += from_metal + from_alloy

    # corrosion of Li metal the catholyte reaches (no layer, or a crack)
    if d["layer_bulk_asr"] > 0.0:
        exposed = p["crack_exposed_fraction"] if cracked else 0.0
    else:
        exposed = 1.0
    if exposed > 0.0 and metal > 0.0:
        metal_left = implicit_drain(metal, exposed * d["corrosion_mol_s"] * dt, n_cover)
        corroded = metal - metal_left
        to_dead = corroded * p["corrosion_dead_fraction"]
        metal = metal_left
        dead += to_dead
        cath += corroded - to_dead
        corroded_C += corroded * F

    # Li2S precipitation above the saturation ratio
    xsat = p["li2s_saturation_x"]
    if p["precipitation_rate_per_s"] > 0.0 and xsat < 2.0 and cath > xsat * sulfur:
        r_eq = (cath - xsat * sulfur) / (2.0 - xsat)
        r = r_eq * -math.expm1(-p["precipitation_rate_per_s"] * dt)
        cath -= 2.0 * r
        sulfur -= r
        li_prec += 2.0 * r
        s_prec += r

    if dt != s["cache_dt_s"]:
        rc_decay = math.exp(-dt / p["rc_time_constant_s"])
        thermal_decay = math.exp(-dt * d["hA_over_C"])
    else:
        rc_decay, thermal_decay = s["rc_decay"], s["thermal_decay"]

    v_inf = i_ec * p["rc_resistance_ohm_cm2"] * s["electrolyte_factor"] * d["inv_area"]
    v_rc = v_inf + (s["v_rc_V"] - v_inf) * rc_decay

    # outputs at the end of the step, on the new inventories (old temperature)
    end = {"li_catholyte_mol": cath, "s_catholyte_mol": sulfur, "li_alloy_mol": alloy,
           "li_metal_mol": metal, "v_rc_V": v_rc, "cache_T_K": s["cache_T_K"],
           "electrolyte_factor": s["electrolyte_factor"], "layer_factor": s["layer_factor"],
           "transfer_factor": s["transfer_factor"], "short_ohm": short_ohm,
           "ocv_index": s["ocv_index"]}
    i_end = core_electrochemical_current(p, d, end, current_A) if short_ohm > 0.0 else current_A
    j_end = i_end * d["inv_area"]
    eta_ct = charge_transfer_V(p, s["cache_T_K"], j_end)
    v, ocv = _voltage(p, d, end, i_end, eta_ct, hint=end)

    heat = i_end * (v - ocv)
    if short_ohm > 0.0:
        heat += v * v / short_ohm
    T_inf = s["ambient_K"] + heat / p["heat_transfer_W_K"]
    T = T_inf + (s["temperature_K"] - T_inf) * thermal_decay

    check = v_rc + cath + metal + alloy + dead + sulfur + damage + v + T   # as C: v, T last
    if not math.isfinite(check) or T <= 150.0 or T >= 500.0:
        return lib.CELL_ERR_DIVERGED

    s.update(li_catholyte_mol=cath, s_catholyte_mol=sulfur, li_alloy_mol=alloy,
             li_metal_mol=metal, li_dead_mol=dead, li_precipitated_mol=li_prec,
             s_precipitated_mol=s_prec, layer_damage=damage, layer_cracked=cracked,
             charge_since_crack_C=since_crack, short_ohm=short_ohm, v_rc_V=v_rc,
             temperature_K=T, ocv_index=end["ocv_index"], current_A=current_A, voltage_V=v,
             ocv_V=ocv, overpotential_V=v - ocv, short_current_A=current_A - i_end,
             li_plated_C=plated_C, li_corroded_C=corroded_C)
    s["t_s"] += dt
    if current_A > 0.0:
        s["charge_in_C"] += current_A * dt
    else:
        s["charge_out_C"] -= current_A * dt
    if dt != s["cache_dt_s"]:
        s.update(cache_dt_s=dt, rc_decay=rc_decay, thermal_decay=thermal_decay)
    s.update(cache_ct_j_A_cm2=j_end, cache_ct_T_K=s["cache_T_K"], ct_overpotential_V=eta_ct)
    return lib.CELL_OK


def core_choose_dt(p: dict, d: dict, s: dict, current_A: float, dt_left: float) -> float:
    """Longest step that moves at most 5 % of the pool that is changing."""
    dt = p["max_substep_s"] if p["max_substep_s"] < dt_left else dt_left
    rate = abs(current_A)
    if s["short_ohm"] > 0.0:
        rate += abs(s["voltage_V"]) / s["short_ohm"]
    if rate > 0.0:
        pool = s["li_metal_mol"] + s["li_alloy_mol"] + d["n_cover_mol"]
        if current_A > 0.0:
            supply = s["li_catholyte_mol"] + p["supply_knee_x"] * s["s_catholyte_mol"]
            if supply < pool:
                pool = supply
        if 0.05 * pool * FARADAY_C_MOL < dt * rate:
            limit = 0.05 * pool * FARADAY_C_MOL / rate
            floor = CORE_ADAPTIVE_FLOOR_S if CORE_ADAPTIVE_FLOOR_S < dt else dt
            dt = limit if limit > floor else floor
    if dt < CORE_MIN_DT_S and dt_left > CORE_MIN_DT_S:
        dt = CORE_MIN_DT_S
    return dt


def core_advance(p: dict, d: dict, s: dict, current_A: float, dt_s: float) -> tuple[int, int]:
    """(status, internal steps taken) for dt_s at current_A."""
    left = dt_s
    n = 0
    while left > 0.0:
        dt = core_choose_dt(p, d, s, current_A, left)
        if dt > left:
            dt = left
        rc = core_substep(p, d, s, current_A, dt)
        if rc:
            return rc, n
        n += 1
        left -= dt
        if left < 1e-12 * dt_s:
            break
    return lib.CELL_OK, n


def cell_step(p: dict, s: dict, current_A: float, dt_s: float) -> int:
    """cell_step: s changes only if the whole step succeeds."""
    if not math.isfinite(current_A):
        return lib.CELL_ERR_NOT_FINITE
    if not math.isfinite(dt_s) or dt_s <= 0.0:
        return lib.CELL_ERR_DT
    if not core_state_ok(s):
        return lib.CELL_ERR_STATE
    w = dict(s)
    rc, _ = core_advance(p, derive(p), w, current_A, dt_s)
    if rc == lib.CELL_OK:
        s.update(w)
    return rc


def cell_fleet_step(p: dict, states: list, currents: list, dt_s: float) -> tuple[int, list]:
    """(first non-zero code, per-cell codes), stepping each cell in place."""
    if not math.isfinite(dt_s) or dt_s <= 0.0:
        return lib.CELL_ERR_DT, []
    d = derive(p)
    first, status = lib.CELL_OK, []
    for s, current_A in zip(states, currents):
        if not math.isfinite(current_A):
            code = lib.CELL_ERR_NOT_FINITE
        elif not core_state_ok(s):
            code = lib.CELL_ERR_STATE
        else:
            code = core_advance(p, d, s, current_A, dt_s)[0]
        status.append(code)
        if code and not first:
            first = code
    return first, status


# ---- segments (segment.c) -----------------------------------------------------

def current_for_voltage(p: dict, d: dict, s: dict, target_V: float,
                        guess_A: float) -> tuple[int, float]:
    """Hold mode: the current at which core_voltage equals target_V (bracket, bisect)."""
    limit = 1.0 * p["area_cm2"]
    through_short = target_V / s["short_ohm"] if s["short_ohm"] > 0.0 else 0.0
    guess_A -= through_short
    step = abs(guess_A) if abs(guess_A) > 1e-7 * p["area_cm2"] else 1e-6 * p["area_cm2"]
    lo = hi = guess_A
    v = core_voltage(p, d, s, guess_A)[0]
    if not math.isfinite(v):
        return lib.CELL_ERR_DIVERGED, 0.0
    if v < target_V:
        while True:
            lo = hi
            hi = hi + step
            step *= 2.0
            if hi > limit:
                hi = limit
                break
            v = core_voltage(p, d, s, hi)[0]
            if not v < target_V:
                break
    else:
        while True:
            hi = lo
            lo = lo - step
            step *= 2.0
            if lo < -limit:
                lo = -limit
                break
            v = core_voltage(p, d, s, lo)[0]
            if not v > target_V:
                break
    k = 0
    while k < 80 and hi - lo > 1e-15 + 1e-12 * abs(hi):
        mid = 0.5 * (lo + hi)
        if core_voltage(p, d, s, mid)[0] < target_V:
            lo = mid
        else:
            hi = mid
        k += 1
    current = 0.5 * (lo + hi) + through_short
    return (lib.CELL_OK if math.isfinite(current) else lib.CELL_ERR_DIVERGED), current


SEGMENT_DEFAULTS = {"mode": MODE_CURRENT, "current_A": 0.0, "voltage_V": 0.0, "duration_s": 0.0,
                    "stop_voltage_V": 0.0, "stop_current_A": 0.0, "stop_charge_C": 0.0,
                    "use_stop_voltage": 0, "use_stop_current": 0, "use_stop_charge": 0,
                    "sample_interval_s": 0.0,
                    "compliance_max_V": 0.0, "compliance_min_V": 0.0, "safety_max_V": 0.0,
                    "safety_min_V": 0.0, "safety_max_temperature_K": 0.0, "current_limit_A": 0.0,
                    "use_compliance": 0, "use_safety_voltage": 0, "use_safety_temperature": 0,
                    "use_current_limit": 0}
_LIMIT_FLOATS = ("compliance_max_V", "compliance_min_V", "safety_max_V", "safety_min_V",
                 "safety_max_temperature_K", "current_limit_A")


def _segment_ok(g: dict, max_samples: int) -> int:
    if g["mode"] not in (MODE_CURRENT, MODE_VOLTAGE, MODE_REST):
        return lib.CELL_ERR_SEGMENT
    for name in ("current_A", "voltage_V", "duration_s", "stop_voltage_V", "stop_current_A",
                 "stop_charge_C", "sample_interval_s"):
        if not math.isfinite(g[name]):
            return lib.CELL_ERR_NOT_FINITE
    if g["duration_s"] <= 0.0:
        return lib.CELL_ERR_SEGMENT
    if g["mode"] == MODE_VOLTAGE and not 0.0 < g["voltage_V"] <= 10.0:
        return lib.CELL_ERR_SEGMENT
    if g["use_stop_voltage"] and not 0.0 < g["stop_voltage_V"] <= 10.0:
        return lib.CELL_ERR_SEGMENT
    if g["use_stop_current"] and g["stop_current_A"] < 0.0:
        return lib.CELL_ERR_SEGMENT
    if g["use_stop_charge"] and g["stop_charge_C"] <= 0.0:
        return lib.CELL_ERR_SEGMENT
    if not all(math.isfinite(g[name]) for name in _LIMIT_FLOATS):
        return lib.CELL_ERR_NOT_FINITE
    if g["use_compliance"] and not g["compliance_max_V"] > g["compliance_min_V"]:
        return lib.CELL_ERR_SEGMENT
    if g["use_safety_voltage"] and not g["safety_max_V"] > g["safety_min_V"]:
        return lib.CELL_ERR_SEGMENT
    if g["use_safety_temperature"] and not g["safety_max_temperature_K"] > 0.0:
        return lib.CELL_ERR_SEGMENT
    if g["use_current_limit"] and not g["current_limit_A"] > 0.0:
        return lib.CELL_ERR_SEGMENT
    if g["sample_interval_s"] < 0.0 or max_samples < 0:
        return lib.CELL_ERR_LENGTH
    if g["sample_interval_s"] > 0.0 and max_samples < 2:
        return lib.CELL_ERR_LENGTH
    return lib.CELL_OK


def _sample(s: dict) -> dict:
    out = {name: s[name] for name in SAMPLE_FIELDS if name in s}
    out["li_lost_mol"] = s["li_dead_mol"] + s["li_precipitated_mol"]
    return out


def _crossed(direction: int, v: float, stop_V: float) -> bool:
    return v >= stop_V if direction > 0 else v <= stop_V


def _limit_reached(g: dict, direction: int, v: float, T_K: float, current: float) -> int:
    """segment.c limit_reached: safety, then the stop voltage, then compliance."""
    if g["use_safety_temperature"] and T_K >= g["safety_max_temperature_K"]:
        return lib.CELL_STOP_SAFETY_TEMPERATURE
    if g["use_safety_voltage"] and (v >= g["safety_max_V"] or v <= g["safety_min_V"]):
        return lib.CELL_STOP_SAFETY_VOLTAGE
    if g["use_stop_voltage"] and g["mode"] != MODE_VOLTAGE and _crossed(direction, v, g["stop_voltage_V"]):
        return lib.CELL_STOP_VOLTAGE
    if g["use_compliance"] and ((current > 0.0 and v >= g["compliance_max_V"])
                                or (current < 0.0 and v <= g["compliance_min_V"])):
        return lib.CELL_STOP_COMPLIANCE
    return 0


def _limit_at_start(g: dict, direction: int, v_from: float, v_to: float, T_K: float,
                    current: float) -> int:
    """segment.c limit_at_start: the stop first met as the terminal jumps v_from -> v_to."""
    if g["use_safety_temperature"] and T_K >= g["safety_max_temperature_K"]:
        return lib.CELL_STOP_SAFETY_TEMPERATURE
    if g["use_safety_voltage"] and (v_from >= g["safety_max_V"] or v_from <= g["safety_min_V"]):
        return lib.CELL_STOP_SAFETY_VOLTAGE
    if not _limit_reached(g, direction, v_to, T_K, current):
        return 0
    rising = v_to >= v_from
    safety_V = g["safety_max_V"] if rising else g["safety_min_V"]
    compliance_V = g["compliance_max_V"] if current > 0.0 else g["compliance_min_V"]
    candidates = [
        (safety_V, lib.CELL_STOP_SAFETY_VOLTAGE,
         g["use_safety_voltage"] and (v_to >= safety_V if rising else v_to <= safety_V)),
        (g["stop_voltage_V"], lib.CELL_STOP_VOLTAGE,
         g["use_stop_voltage"] and g["mode"] != MODE_VOLTAGE and _crossed(direction, v_to, g["stop_voltage_V"])),
        (compliance_V, lib.CELL_STOP_COMPLIANCE,
         g["use_compliance"] and ((current > 0.0 and v_to >= compliance_V) or (current < 0.0 and v_to <= compliance_V))),
    ]
    best = best_V = None
    for volts, reason, used in candidates:
        if used and (best is None or (volts < best_V if rising else volts > best_V)):
            best, best_V = reason, volts
    return best if best is not None else _limit_reached(g, direction, v_to, T_K, current)


def _direction(current: float, v_now: float, stop_V: float) -> int:
    if current > 0.0:
        return 1
    if current < 0.0:
        return -1
    return 1 if v_now < stop_V else -1


def cell_run_segment(p: dict, s: dict, segment: Mapping[str, float],
                     max_samples: int = 0) -> tuple[int, dict, list]:
    """(status, result, samples) of one segment run in place on s, as
    cell_run_segment does (samples are dicts with the cell_sample_t names)."""
    g = dict(SEGMENT_DEFAULTS)
    unknown = set(segment) - set(g)
    if unknown:
        raise KeyError(f"unknown segment field(s): {', '.join(sorted(unknown))}")
    g.update(segment)
    rc = _segment_ok(g, max_samples)
    if rc:
        return rc, {}, []
    if not core_state_ok(s):
        return lib.CELL_ERR_STATE, {}, []
    d = derive(p)
    result = {"stop_reason": 0, "n_samples": 0, "elapsed_s": 0.0, "charge_C": 0.0, "n_steps": 0}
    samples: list = []
    elapsed = charge = 0.0
    interval = g["sample_interval_s"]
    next_sample = interval
    voltage_mode = g["mode"] == MODE_VOLTAGE
    current = g["current_A"] if g["mode"] == MODE_CURRENT else 0.0
    hold_guess = s["current_A"]
    direction = 0
    start = dict(s)
    uses_limits = g["use_compliance"] or g["use_safety_voltage"] or g["use_safety_temperature"]
    bisected = g["use_stop_voltage"] or uses_limits

    if bisected and not voltage_mode:
        refresh_arrhenius(p, s)
        v_now = core_voltage(p, d, s, core_electrochemical_current(p, d, s, current))[0]
        if g["use_stop_voltage"]:
            direction = _direction(current, v_now, g["stop_voltage_V"])
        at_start = _limit_at_start(g, direction, s["voltage_V"], v_now, s["temperature_K"], current)
        if at_start:
            s.clear()
            s.update(start)
            result["stop_reason"] = at_start
            return lib.CELL_OK, result, samples
    elif g["use_stop_voltage"]:
        direction = _direction(current, g["voltage_V"], g["stop_voltage_V"])

    rc = lib.CELL_OK
    while True:
        left = g["duration_s"] - elapsed
        if voltage_mode:
            refresh_arrhenius(p, s)
            rc, current = current_for_voltage(p, d, s, g["voltage_V"], hold_guess)
            if rc:
                break
            if g["use_current_limit"] and abs(current) > g["current_limit_A"]:
                current = math.copysign(g["current_limit_A"], current)
            hold_guess = current
            if elapsed == 0.0 and uses_limits:
                v_now = core_voltage(p, d, s, core_electrochemical_current(p, d, s, current))[0]
                at_start = _limit_at_start(g, direction, s["voltage_V"], v_now, s["temperature_K"], current)
                if at_start:
                    s.clear()
                    s.update(start)
                    result["stop_reason"] = at_start
                    break
        dt = core_choose_dt(p, d, s, current, left)
        if voltage_mode and dt > 0.25 * p["rc_time_constant_s"]:
            dt = 0.25 * p["rc_time_constant_s"]
        if interval > 0.0 and dt > next_sample - elapsed:
            dt = next_sample - elapsed
        if g["use_stop_charge"] and current != 0.0:
            to_go = (g["stop_charge_C"] - abs(charge)) / abs(current)
            if to_go < dt:
                dt = to_go if to_go > 0.0 else 0.0
        if dt > left:
            dt = left
        if dt <= 0.0:
            dt = left if left > 0.0 else CORE_MIN_DT_S

        before = dict(s)
        rc = core_substep(p, d, s, current, dt)
        if rc:
            break

        stop = 0
        reached = _limit_reached(g, direction, s["voltage_V"], s["temperature_K"], current) if bisected else 0
        if reached:
            lo, hi = 0.0, dt
            k = 0
            while k < BISECT_ITERATIONS and hi - lo > CORE_MIN_DT_S * 1e-2:
                mid = 0.5 * (lo + hi)
                trial = dict(before)
                if (core_substep(p, d, trial, current, mid) == lib.CELL_OK
                        and _limit_reached(g, direction, trial["voltage_V"], trial["temperature_K"], current)):
                    hi = mid
                else:
                    lo = mid
                k += 1
            s.clear()
            s.update(before)
            rc = core_substep(p, d, s, current, hi)
            if rc:
                break
            dt = hi
            stop = _limit_reached(g, direction, s["voltage_V"], s["temperature_K"], current) or reached
        result["n_steps"] += 1
        elapsed += dt
        charge += current * dt

        if not stop and g["use_stop_current"] and abs(current) <= g["stop_current_A"]:
            stop = lib.CELL_STOP_CURRENT
        if not stop and g["use_stop_charge"] and abs(charge) >= g["stop_charge_C"] * (1.0 - 1e-12):
            stop = lib.CELL_STOP_CHARGE
        if not stop and elapsed >= g["duration_s"] * (1.0 - 1e-12):
            stop = lib.CELL_STOP_TIME

        if interval > 0.0:
            if stop:
                samples.append(_sample(s))
            elif elapsed >= next_sample - 1e-9 * interval:
                samples.append(_sample(s))
                next_sample += interval
                if len(samples) >= max_samples - 1:
                    stop = lib.CELL_STOP_BUFFER_FULL
        if stop:
            result["stop_reason"] = stop
            break
    result.update(n_samples=len(samples), elapsed_s=elapsed, charge_C=charge)
    return rc, result, samples
