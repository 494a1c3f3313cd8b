/*
 * cell.c - the cell: initial state, one internal step, terminal voltage.
 *
 * One internal step moves lithium between the pools (catholyte, alloy, metal,
 * dead, precipitated), grows layer damage, relaxes the RC pair and the
 * temperature. Transfers are integrated implicitly (implicit_drain)
 * so no pool goes negative at any step length, and every transfer is taken from
 * one pool and added to another in the same step: total lithium is conserved to
 * round-off. The step computes into locals and stores only when every result is
 * finite, so a failing step changes nothing.
 */
#include <math.h>
#include <string.h>
#include "cell.h"
#include "submodels.h"
#include "core_internal.h"

/* Alloying wins over plating while the wetting layer has room: the alloy
   potential is ~0.4 V above Li. This fraction of its capacity blurs the switch. */
#define ALLOY_SWITCH_FRACTION 0.01

static inline int finite_nonneg(double v) { return isfinite(v) && v >= 0.0; }

int core_state_ok(const cell_state_t *s)
{
    return finite_nonneg(s->li_catholyte_mol) && isfinite(s->s_catholyte_mol) &&
           s->s_catholyte_mol > 0.0 && finite_nonneg(s->li_alloy_mol) &&
           finite_nonneg(s->li_metal_mol) && finite_nonneg(s->li_dead_mol) &&
           finite_nonneg(s->li_precipitated_mol) && finite_nonneg(s->s_precipitated_mol) &&
           finite_nonneg(s->layer_damage) && s->layer_damage <= 1.0 &&
           finite_nonneg(s->short_ohm) && isfinite(s->v_rc_V) && isfinite(s->t_s) &&
           isfinite(s->temperature_K) && s->temperature_K > 150.0 && s->temperature_K < 500.0 &&
           isfinite(s->ambient_K) && s->ambient_K > 150.0 && s->ambient_K < 500.0 &&
           finite_nonneg(s->charge_since_crack_C);
}

/* Terminal voltage for electrochemical current i_ec (A) at the present state. */
double core_voltage(const cell_params_t *p, const cell_state_t *s, double i_ec,
                          double *ocv_out)
{
    double n_cover = uah_cm2_to_mol(p, p->metal_coverage_uAh_cm2);
    double n_cap = uah_cm2_to_mol(p, p->wetting_capacity_uAh_cm2);
    double n_nuc = uah_cm2_to_mol(p, p->nucleation_charge_uAh_cm2);
    double x = s->li_catholyte_mol / s->s_catholyte_mol;
    double ocv = catholyte_potential_V(p, x) - negative_potential_V(p, s, n_cover, n_cap);
    if (ocv_out)
        *ocv_out = ocv;
    return ocv + i_ec * ohmic_resistance_ohm(p, s) + s->v_rc_V +
           charge_transfer_V(p, s->temperature_K, i_ec / p->area_cm2) +
           nucleation_V(p, s, i_ec, n_nuc);
}

/* With an internal short across the terminals, part of the terminal current
   flows through it: i_ec = i - V(i_ec)/R. V rises with i_ec, so Newton from
   the no-short guess converges in a few iterations. */
double core_electrochemical_current(const cell_params_t *p, const cell_state_t *s,
                                    double current_A)
{
    if (s->short_ohm <= 0.0)
        return current_A;
    double r = s->short_ohm;
    double i = current_A - core_voltage(p, s, current_A, NULL) / r;
    for (int k = 0; k < 30; k++) {
        double h = 1e-9 + 1e-6 * fabs(i);
        double v = core_voltage(p, s, i, NULL);
        double g = i - current_A + v / r;
        double dg = 1.0 + (core_voltage(p, s, i + h, NULL) - v) / h / r;
        double step = g / dg;
        i -= step;
        if (fabs(step) <= 1e-15 + 1e-12 * fabs(i))
            break;
    }
    return i;
}

int cell_voltage_at(const cell_params_t *p, const cell_state_t *s, double current_A,
                    double *voltage_V)
{
    if (!p || !s || !voltage_V)
        return CELL_ERR_NULL;
    if (!isfinite(current_A))
        return CELL_ERR_NOT_FINITE;
    int rc = cell_params_check(p, NULL);
    if (rc)
        return rc;
    if (!core_state_ok(s))
        return CELL_ERR_STATE;
    cell_state_t w = *s;
    refresh_arrhenius(p, &w);
    double v = core_voltage(p, &w, core_electrochemical_current(p, &w, current_A), NULL);
    if (!isfinite(v))
        return CELL_ERR_DIVERGED;
    *voltage_V = v;
    return CELL_OK;
}

int cell_init(const cell_params_t *p, double ambient_K, cell_state_t *s)
{
    if (!p || !s)
        return CELL_ERR_NULL;
    if (!isfinite(ambient_K))
        return CELL_ERR_NOT_FINITE;
    int rc = cell_params_check(p, NULL);
    if (rc)
        return rc;
    if (ambient_K <= 150.0 || ambient_K >= 500.0)
        return CELL_ERR_PARAM;
    cell_state_t w;
    memset(&w, 0, sizeof w);
    double volume_L = p->catholyte_volume_uL * 1e-6;
    w.li_catholyte_mol = p->lithium_mol_L * volume_L;
    w.s_catholyte_mol = p->sulfur_mol_L * volume_L;
    w.temperature_K = ambient_K;
    w.ambient_K = ambient_K;
    w.cache_T_K = -1.0;
    refresh_arrhenius(p, &w);
    w.voltage_V = core_voltage(p, &w, 0.0, &w.ocv_V);
    *s = w;
    return CELL_OK;
}

int core_substep(const cell_params_t *p, cell_state_t *s, double current_A, double dt)
{
    refresh_arrhenius(p, s);
    const double F = FARADAY_C_MOL;
    double A = p->area_cm2;
    double n_cover = uah_cm2_to_mol(p, p->metal_coverage_uAh_cm2);
    double n_cap = uah_cm2_to_mol(p, p->wetting_capacity_uAh_cm2);

    cell_state_t w = *s;
    double i_ec = core_electrochemical_current(p, s, current_A);
    double q = i_ec * dt / F; /* mol of Li moved, + towards the negative */

    if (q > 0.0) {
        /* Charge: Li+ leaves the polysulfide; as the dissolved Li runs out the
           current goes to side reactions instead (finite supply). */
        double knee = p->supply_knee_x * w.s_catholyte_mol;
        double cath = implicit_drain(w.li_catholyte_mol, q, knee);
        double moved = w.li_catholyte_mol - cath;
        double to_alloy = 0.0;
        if (n_cap > 0.0) {
            double room = n_cap - w.li_alloy_mol;
            if (room < 0.0)
                room = 0.0;
            to_alloy = moved * room / (room + ALLOY_SWITCH_FRACTION * n_cap);
            if (to_alloy > room)
                to_alloy = room;
        }
        double plated = moved - to_alloy;
        double lost = plated * p->plating_loss_fraction;
        w.li_catholyte_mol = cath;
        w.li_alloy_mol += to_alloy;
        w.li_metal_mol += plated - lost;
        w.li_dead_mol += lost;
        w.li_plated_C += moved * F;

        /* Layer damage: the local plating density (concentrated where Li
           plates in patches) above the critical density strains the glass. */
        if (p->layer_thickness_A > 0.0 && !w.layer_cracked) {
            double j_local = p->patchy_concentration * plated * F / dt / A;
            double j_crit = p->critical_current_A_cm2 * s->critical_factor;
            double over = j_local / j_crit - 1.0;
            if (over > 0.0) {
                w.layer_damage += p->damage_rate_per_s * over * dt;
                if (w.layer_damage >= 1.0) {
                    w.layer_damage = 1.0;
                    w.layer_cracked = 1;
                }
            }
        }
        if (w.layer_cracked) {
            w.charge_since_crack_C += plated * F;
            double dendrite_C = p->dendrite_charge_uAh_cm2 * A * COULOMB_PER_UAH;
            if (w.charge_since_crack_C >= dendrite_C &&
                (w.short_ohm == 0.0 || w.short_ohm > p->dendrite_short_ohm))
                w.short_ohm = p->dendrite_short_ohm;
        }
    } else if (q < 0.0) {
        /* Discharge: metal strips first, then the alloy; past both the
           current oxidises copper and moves no lithium. */
        double want = -q;
        double metal = implicit_drain(w.li_metal_mol, want, n_cover);
        double from_metal = w.li_metal_mol - metal;
        double from_alloy = 0.0;
        double rest = want - from_metal;
        if (w.li_alloy_mol > 0.0 && rest > 0.0) {
            double alloy = implicit_drain(w.li_alloy_mol, rest, n_cover);
            from_alloy = w.li_alloy_mol - alloy;
            w.li_alloy_mol = alloy;
        }
        w.li_metal_mol = metal;
        w.li_catholyte_mol += from_metal + from_alloy;
    }

    /* Corrosion: Li metal the catholyte can reach (no layer, or a crack)
       reduces polysulfide at the diffusion-limited rate; most returns to the
       catholyte (self-discharge), the rest is lost as insoluble product. */
    double exposed = p->layer_thickness_A > 0.0
                         ? (w.layer_cracked ? p->crack_exposed_fraction : 0.0)
                         : 1.0;
    if (exposed > 0.0 && w.li_metal_mol > 0.0) {
        double r = exposed * p->corrosion_current_A_cm2 * A / F * dt;
        double metal = implicit_drain(w.li_metal_mol, r, n_cover);
        double corroded = w.li_metal_mol - metal;
        double dead = corroded * p->corrosion_dead_fraction;
        w.li_metal_mol = metal;
        w.li_dead_mol += dead;
        w.li_catholyte_mol += corroded - dead;
        w.li_corroded_C += corroded * F;
    }

    /* Below Li2S2, insoluble Li2S precipitates: relax towards saturation. */
    double xsat = p->li2s_saturation_x;
    if (p->precipitation_rate_per_s > 0.0 && xsat < 2.0 &&
        w.li_catholyte_mol > xsat * w.s_catholyte_mol) {
        double r_eq = (w.li_catholyte_mol - xsat * w.s_catholyte_mol) / (2.0 - xsat);
        double r = r_eq * -expm1(-p->precipitation_rate_per_s * dt);
        w.li_catholyte_mol -= 2.0 * r;
        w.s_catholyte_mol -= r;
        w.li_precipitated_mol += 2.0 * r;
        w.s_precipitated_mol += r;
    }

    /* RC pair: exact for a current held over the step. */
    double r_rc = p->rc_resistance_ohm_cm2 * s->electrolyte_factor / A;
    double v_inf = i_ec * r_rc;
    w.v_rc_V = v_inf + (s->v_rc_V - v_inf) * exp(-dt / p->rc_time_constant_s);

    w.t_s += dt;
    if (current_A > 0.0)
        w.charge_in_C += current_A * dt;
    else
        w.charge_out_C -= current_A * dt;

    /* Outputs at the end of the step (temperature still the old one). */
    double i_end = core_electrochemical_current(p, &w, current_A);
    double ocv;
    double v = core_voltage(p, &w, i_end, &ocv);
    w.current_A = current_A;
    w.voltage_V = v;
    w.ocv_V = ocv;
    w.overpotential_V = v - ocv;
    w.short_current_A = current_A - i_end;

    /* Lumped thermal: irreversible heat plus the short's, to ambient. */
    double heat = i_end * (v - ocv);
    if (w.short_ohm > 0.0)
        heat += v * v / w.short_ohm;
    double hA = p->heat_transfer_W_K;
    double T_inf = w.ambient_K + heat / hA;
    w.temperature_K = T_inf + (s->temperature_K - T_inf) * exp(-dt * hA / p->heat_capacity_J_K);

    if (!isfinite(v) || !isfinite(w.temperature_K) || !isfinite(w.v_rc_V) || !core_state_ok(&w))
        return CELL_ERR_DIVERGED;
    *s = w;
    return CELL_OK;
}

/* Longest step that keeps the fast-changing pools resolved. */
double core_choose_dt(const cell_params_t *p, const cell_state_t *s, double current_A,
                      double dt_left)
{
    double dt = p->max_substep_s < dt_left ? p->max_substep_s : dt_left;
    double rate = fabs(current_A);
    if (s->short_ohm > 0.0)
        rate += fabs(s->voltage_V) / s->short_ohm;
    rate /= FARADAY_C_MOL;
    if (rate > 0.0) {
        double n_cover = uah_cm2_to_mol(p, p->metal_coverage_uAh_cm2);
        double pool;
        if (current_A > 0.0) {
            double supply = s->li_catholyte_mol + p->supply_knee_x * s->s_catholyte_mol;
            pool = s->li_metal_mol + s->li_alloy_mol + n_cover;
            if (supply < pool)
                pool = supply;
        } else {
            pool = s->li_metal_mol + s->li_alloy_mol + n_cover;
        }
        double limit = 0.05 * pool / rate;
        if (limit < dt)
            dt = limit;
    }
    if (dt < CORE_MIN_DT_S && dt_left > CORE_MIN_DT_S)
        dt = CORE_MIN_DT_S;
    return dt;
}

int core_advance(const cell_params_t *p, cell_state_t *s, double current_A, double dt_s)
{
    double left = dt_s;
    while (left > 0.0) {
        double dt = core_choose_dt(p, s, current_A, left);
        if (dt > left)
            dt = left;
        int rc = core_substep(p, s, current_A, dt);
        if (rc)
            return rc;
        left -= dt;
        if (left < 1e-12 * dt_s)
            break;
    }
    return CELL_OK;
}

int cell_step(const cell_params_t *p, cell_state_t *s, double current_A, double dt_s)
{
    if (!p || !s)
        return CELL_ERR_NULL;
    if (!isfinite(current_A))
        return CELL_ERR_NOT_FINITE;
    if (!isfinite(dt_s) || dt_s <= 0.0)
        return CELL_ERR_DT;
    int rc = cell_params_check(p, NULL);
    if (rc)
        return rc;
    if (!core_state_ok(s))
        return CELL_ERR_STATE;
    cell_state_t w = *s;
    rc = core_advance(p, &w, current_A, dt_s);
    if (rc)
        return rc;
    *s = w;
    return CELL_OK;
}

int cell_lithium_total_mol(const cell_state_t *s, double *total_mol)
{
    if (!s || !total_mol)
        return CELL_ERR_NULL;
    *total_mol = s->li_catholyte_mol + s->li_alloy_mol + s->li_metal_mol + s->li_dead_mol +
                 s->li_precipitated_mol;
    return CELL_OK;
}

int cell_critical_current_A_cm2(const cell_params_t *p, double temperature_K,
                                double *critical_A_cm2)
{
    if (!p || !critical_A_cm2)
        return CELL_ERR_NULL;
    if (!isfinite(temperature_K))
        return CELL_ERR_NOT_FINITE;
    int rc = cell_params_check(p, NULL);
    if (rc)
        return rc;
    if (temperature_K <= 150.0 || temperature_K >= 500.0)
        return CELL_ERR_PARAM;
    *critical_A_cm2 = p->critical_current_A_cm2 /
                      arrhenius(p->critical_Ea_eV, temperature_K, p->reference_temperature_K) /
                      p->patchy_concentration;
    return CELL_OK;
}
