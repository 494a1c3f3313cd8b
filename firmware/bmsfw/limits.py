# Charge/discharge limits: CVL, DVL (mV) and CCL, DCL (µA, both >= 0).
#
# Pure functions of (temperature, ledger inventory, cell voltage, config
# figures, user-tightened limits); the controller recomputes all four every
# tick and publishes them (the figures an inverter or charger consumes, like
# Victron's 0x351). Each derating is a ramp, not a step, so a charger
# following CCL converges instead of oscillating. Products are formed as
# (limit µA) x (per-mille factor) so intermediate values stay small ints on
# 32-bit MicroPython.
#
# The inventory ramps close (0) below 5 % instead of fading: a limit
# proportional to the distance left is approached exponentially, so the last
# few per cent would trickle for hours at currents no inverter can use. The
# inventory therefore stops 5 % of the taper span short of the reserve or the
# ceiling. The voltage ramps fade (a CV-like end); DCL's end at DVL is a latch
# in the controller instead (closed until the cell is charged again).
#
# Why each limit exists (docs/firmware.md, "Limits"):
# - CCL <= plating table x area: plating faster than the glass conducts cracks
#   it (seed: "as fast as possible without causing the protective layer to crack").
# - CCL -> 0 near target + margin or the catholyte's lithium supply: more
#   lithium than designed means the catholyte is driven past elemental sulfur.
# - CCL -> 0 as the voltage nears CVL: the upper shoulder is elemental sulfur.
# - DCL -> 0 near the lithium reserve: a bare copper patch replates unevenly.
# - DCL -> 0 as the voltage nears DVL: below Li2S2 lies insoluble Li2S.
from .compat import const
from .ledger import scale_pm

# A discharge counts as ended by its voltage within this of DVL: formation's
# verify strip and the protections' empty-by-voltage latch judge it alike.
DVL_REACHED_MV = const(10)


def interp_table(temp_dc, table):
    """Integer linear interpolation in a ((temp °C, value), ...) table at
    temp_dc (deci-°C), rounded to nearest; held at the end values outside."""
    first = table[0]
    if temp_dc <= first[0] * 10:
        return first[1]
    last = table[len(table) - 1]
    if temp_dc >= last[0] * 10:
        return last[1]
    i = 1
    while table[i][0] * 10 < temp_dc:
        i += 1
    t0 = table[i - 1][0] * 10
    t1 = table[i][0] * 10
    v0 = table[i - 1][1]
    v1 = table[i][1]
    # Rounded to the nearest µA/cm²: a table point is met at its temperature
    # even when the thermistor reads 0.1 °C off (24.9 °C gives 100, not 99).
    span = t1 - t0
    return v0 + ((v1 - v0) * (temp_dc - t0) + span // 2) // span


def plating_ua_cm2(temp_dc, table, min_temp_dc, max_temp_dc):
    """Highest plating current density (µA/cm²) allowed at the reading
    temp_dc: 0 below min_temp_dc (no plating on cold glass) or above
    max_temp_dc; the table's end values are held outside it (so a reading
    between min_temp_dc and the table's first point gets the first value)."""
    if temp_dc < min_temp_dc or temp_dc > max_temp_dc:
        return 0
    return interp_table(temp_dc, table)


def charge_floor_dc(charge_min_temp_dc, table, accuracy_dc):
    """The lowest reading at which charging is allowed: the charging minimum
    (or the table's first point if higher) less the sensor's accuracy. Within
    the accuracy a reading cannot tell the limit from just below it, and the
    bench board reads 0.0 °C as -0.2 °C (0.2 % ADC gain error)."""
    first = table[0][0] * 10
    floor = charge_min_temp_dc if charge_min_temp_dc > first else first
    return floor - accuracy_dc


def ramp_pm(distance, span):
    """Per-mille factor: 0 at distance <= 0, 1000 at distance >= span (span > 0)."""
    if distance <= 0:
        return 0
    if distance >= span:
        return 1000
    if span < 1000:
        return distance * 1000 // span
    # Ceil the step so the factor stays below 1000 inside the span and the
    # product distance * 1000 never forms (a long int on 32-bit MicroPython).
    return distance // ((span + 999) // 1000)


_CLOSE_BELOW_PM = const(50)   # a ramp under 5 % closes the limit


def cvl_mv(charge_cutoff_mv, user_cvl_mv):
    """Charge voltage limit: the design cutoff, or the user's if lower (user
    limits < 0 mean none)."""
    if 0 <= user_cvl_mv < charge_cutoff_mv:
        return user_cvl_mv
    return charge_cutoff_mv


def dvl_mv(discharge_cutoff_mv, user_dvl_mv):
    """Discharge voltage limit: the design cutoff, or the user's if higher.
    Never below the cutoff: the catholyte must stay above Li2S2."""
    if user_dvl_mv > discharge_cutoff_mv:
        return user_dvl_mv
    return discharge_cutoff_mv


def ccl_ua(base_ua, inventory_q, ceiling_q, taper_q, cell_mv, cvl, cv_taper_mv, user_ccl_ua):
    """Charge current limit (µA >= 0). Charges in the cell's charge units.

    base_ua: the temperature-derated plating limit x area (0 when charging is
    not allowed in this state); ceiling_q: min(target + margin, lithium
    supply); taper_q: the inventory span over which CCL ramps to 0;
    user_ccl_ua: the user's tighter limit, or a negative number for none."""
    limit = base_ua
    if limit <= 0:
        return 0
    factor = ramp_pm(ceiling_q - inventory_q, taper_q)
    if factor < _CLOSE_BELOW_PM:
        return 0
    limit = scale_pm(limit, factor)
    limit = scale_pm(limit, ramp_pm(cvl - cell_mv, cv_taper_mv))
    if 0 <= user_ccl_ua < limit:
        limit = user_ccl_ua
    return limit


def dcl_ua(base_ua, inventory_q, reserve_q, taper_q, cell_mv, dvl, dv_taper_mv, user_dcl_ua):
    """Discharge current limit (µA >= 0). Charges in the cell's charge units.

    base_ua: the temperature-derated stripping limit x area (0 before
    formation is verified); the limit ramps to 0 as the inventory falls to
    reserve_q over taper_q, and as cell_mv falls to dvl over dv_taper_mv."""
    limit = base_ua
    if limit <= 0:
        return 0
    factor = ramp_pm(inventory_q - reserve_q, taper_q)
    if factor < _CLOSE_BELOW_PM:
        return 0
    limit = scale_pm(limit, factor)
    limit = scale_pm(limit, ramp_pm(cell_mv - dvl, dv_taper_mv))
    if 0 <= user_dcl_ua < limit:
        limit = user_dcl_ua
    return limit


def clamp_request(request_ua, ccl, dcl):
    """The setpoint: the request, limited by CCL (charge) or DCL (discharge)."""
    if request_ua > ccl:
        return ccl
    if request_ua < -dcl:
        return -dcl
    return request_ua
