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
#define ALLOY_SWITCH_FRACTION 0.001

void core_derive(const cell_params_t *p, core_derived_t *d)
{
    d->checked = 1;
    d->params_code = CELL_OK;
    d->inv_area = 1.0 / p->area_cm2;
    d->n_cover_mol = uah_cm2_to_mol(p, p->metal_coverage_uAh_cm2);
    d->n_alloy_cap_mol = uah_cm2_to_mol(p, p->wetting_capacity_uAh_cm2);
    d->n_nucleation_mol = uah_cm2_to_mol(p, p->nucleation_charge_uAh_cm2);
    d->i_nucleation_ref_A = 1e-7 * p->area_cm2;
    d->dendrite_C = p->dendrite_charge_uAh_cm2 * p->area_cm2 * COULOMB_PER_UAH;
    d->layer_bulk_asr = p->layer_thickness_A > 0.0
                            ? p->layer_thickness_A * 1e-8 / p->layer_conductivity_S_cm
                            : 0.0;
    d->corrosion_mol_s = p->corrosion_current_A_cm2 * p->area_cm2 / FARADAY_C_MOL;
    d->hA_over_C = p->heat_transfer_W_K / p->heat_capacity_J_K;
}

static inline double min2(double a, double b) { return a < b ? a : b; }

int core_state_ok(const cell_state_t *s)
{
    /* A NaN or infinity anywhere shows in the sum; then the ranges. Cheap,
       because the fleet checks every cell on every call. */
    double sum = s->li_catholyte_mol + s->s_catholyte_mol + s->li_alloy_mol + s->li_metal_mol +
                 s->li_dead_mol + s->li_precipitated_mol + s->s_precipitated_mol +
                 s->layer_damage + s->short_ohm + s->v_rc_V + s->t_s + s->temperature_K +
                 s->ambient_K + s->charge_since_crack_C;
    if (!isfinite(sum))
        return 0;
    double least = min2(min2(min2(s->li_catholyte_mol, s->li_alloy_mol),
                             min2(s->li_metal_mol, s->li_dead_mol)),
                        min2(min2(s->li_precipitated_mol, s->s_precipitated_mol),
                             min2(min2(s->layer_damage, s->short_ohm), s->charge_since_crack_C)));
    return least >= 0.0 && s->s_catholyte_mol > 0.0 && s->layer_damage <= 1.0 &&
           s->temperature_K > 150.0 && s->temperature_K < 500.0 && s->ambient_K > 150.0 &&
           s->ambient_K < 500.0;
}

static inline cell_view_t view_of(const cell_state_t *s)
{
    cell_view_t v = {s->li_catholyte_mol, s->s_catholyte_mol, s->li_alloy_mol, s->li_metal_mol,
                     s->v_rc_V, s->cache_T_K, s->electrolyte_factor, s->layer_factor,
                     s->transfer_factor, s->short_ohm, s->ocv_index};
    return v;
}

/* Terminal voltage for electrochemical current i_ec (A), given the
   charge-transfer overpotential eta_ct_V at that current. */
static inline double view_voltage(const cell_params_t *p, const core_derived_t *d,
                                  cell_view_t *s, double i_ec, double eta_ct_V, double *ocv_out)
{
    double x = s->li_catholyte_mol / s->s_catholyte_mol;
    double ocv = catholyte_potential_V(p, x, &s->ocv_index) -
                 negative_potential_V(p, s, d->n_cover_mol, d->n_alloy_cap_mol);
    if (ocv_out)
        *ocv_out = ocv;
    return ocv + i_ec * ohmic_resistance_ohm(p, d, s) + s->v_rc_V + eta_ct_V +
           nucleation_V(p, d, s, i_ec);
}

static double view_voltage_at(const cell_params_t *p, const core_derived_t *d, cell_view_t *s,
                              double i_ec, double *ocv_out)
{
    return view_voltage(p, d, s, i_ec,
                        charge_transfer_V(p, s->kinetics_T_K, i_ec * d->inv_area), ocv_out);
}

/* With an internal short across the terminals, part of the terminal current
   flows through it: i_ec = i - V(i_ec)/R. V rises with i_ec, so Newton from
   the no-short guess converges in a few iterations. */
static double view_electrochemical_current(const cell_params_t *p, const core_derived_t *d,
                                           cell_view_t *s, double current_A)
{
    if (s->short_ohm <= 0.0)
        return current_A;
    double r = s->short_ohm;
    double i = current_A - view_voltage_at(p, d, s, current_A, NULL) / r;
    for (int k = 0; k < 30; k++) {
        double h = 1e-9 + 1e-6 * fabs(i);
        double v = view_voltage_at(p, d, s, i, NULL);
        double g = i - current_A + v / r;
        double dg = 1.0 + (view_voltage_at(p, d, s, i + h, NULL) - v) / h / r;
        double step = g / dg;
        i -= step;
        if (fabs(step) <= 1e-15 + 1e-12 * fabs(i))
            break;
    }
    return i;
}

double core_voltage(const cell_params_t *p, const core_derived_t *d, const cell_state_t *s,
                    double i_ec, double *ocv_out)
{
    cell_view_t v = view_of(s);
    return view_voltage_at(p, d, &v, i_ec, ocv_out);
}

double core_electrochemical_current(const cell_params_t *p, const core_derived_t *d,
                                    const cell_state_t *s, double current_A)
{
    cell_view_t v = view_of(s);
    return view_electrochemical_current(p, d, &v, current_A);
}

/* What every entry point checks before touching anything. */
static int entry_check(const cell_params_t *p, const cell_state_t *s, double current_A)
{
    if (!p || !s)
        return CELL_ERR_NULL;
    if (!isfinite(current_A))
        return CELL_ERR_NOT_FINITE;
    int rc = cell_params_check(p, NULL);
    if (rc)
        return rc;
    return core_state_ok(s) ? CELL_OK : CELL_ERR_STATE;
}

int cell_voltage_at(const cell_params_t *p, const cell_state_t *s, double current_A,
                    double *voltage_V)
{
    if (!voltage_V)
        return CELL_ERR_NULL;
    int rc = entry_check(p, s, current_A);
    if (rc)
        return rc;
    core_derived_t d;
    core_derive(p, &d);
    cell_state_t w = *s;
    refresh_arrhenius(p, &w);
    double v = core_voltage(p, &d, &w, core_electrochemical_current(p, &d, &w, current_A), NULL);
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
    core_derived_t d;
    core_derive(p, &d);
    cell_state_t w;
    memset(&w, 0, sizeof w);
    double volume_L = p->catholyte_volume_uL * 1e-6;
    w.li_catholyte_mol = p->lithium_mol_L * volume_L;
    w.s_catholyte_mol = p->sulfur_mol_L * volume_L;
    w.temperature_K = ambient_K;
    w.ambient_K = ambient_K;
    w.cache_T_K = -1.0;
    w.cache_dt_s = -1.0;
    w.cache_ct_T_K = -1.0;
    refresh_arrhenius(p, &w);
    w.voltage_V = core_voltage(p, &d, &w, 0.0, &w.ocv_V);
    *s = w;
    return CELL_OK;
}

int core_substep(const cell_params_t *p, const core_derived_t *d, cell_state_t *s,
                 double current_A, double dt)
{
    refresh_arrhenius(p, s);
    const double F = FARADAY_C_MOL;
    const double n_cover = d->n_cover_mol;
    const double n_cap = d->n_alloy_cap_mol;

    /* The step works on locals and stores them only once every result is
       finite: a failing step changes nothing, without copying the struct. */
    double cath = s->li_catholyte_mol, sulfur = s->s_catholyte_mol;
    double alloy = s->li_alloy_mol, metal = s->li_metal_mol, dead = s->li_dead_mol;
    double li_prec = s->li_precipitated_mol, s_prec = s->s_precipitated_mol;
    double damage = s->layer_damage, since_crack = s->charge_since_crack_C;
    double short_ohm = s->short_ohm;
    int32_t cracked = s->layer_cracked;
    double plated_C = s->li_plated_C, corroded_C = s->li_corroded_C;

    double i_ec = short_ohm > 0.0 ? core_electrochemical_current(p, d, s, current_A) : current_A;
    double q = i_ec * dt * (1.0 / F); /* mol of Li moved, + towards the negative */

    if (q > 0.0) {
        /* Charge: Li+ leaves the polysulfide; as the dissolved Li runs out the
           current goes to side reactions instead (finite supply). */
        double left = implicit_drain(cath, q, p->supply_knee_x * sulfur);
        double moved = cath - left;
        double to_alloy = 0.0;
        if (n_cap > 0.0) {
            double room = n_cap - alloy;
            if (room < 0.0)
                room = 0.0;
            to_alloy = moved * room / (room + ALLOY_SWITCH_FRACTION * n_cap);
            if (to_alloy > room)
                to_alloy = room;
        }
        double plated = moved - to_alloy;
        double lost = plated * p->plating_loss_fraction;
        cath = left;
        alloy += to_alloy;
        metal += plated - lost;
        dead += lost;
        plated_C += moved * F;

        /* Layer damage: the local plating density (concentrated where Li
           plates in patches) above the critical density strains the glass. */
        if (d->layer_bulk_asr > 0.0 && !cracked) {
            double j_local = p->patchy_concentration * plated * F / dt * d->inv_area;
            double j_crit = p->critical_current_A_cm2 * s->critical_factor;
            if (j_local > j_crit) {
                damage += p->damage_rate_per_s * (j_local / j_crit - 1.0) * dt;
                if (damage >= 1.0) {
                    damage = 1.0;
                    cracked = 1;
                }
            }
        }
        if (cracked) {
            since_crack += plated * F;
            if (since_crack >= d->dendrite_C &&
                (short_ohm == 0.0 || short_ohm > p->dendrite_short_ohm))
                short_ohm = p->dendrite_short_ohm;
        }
    } else if (q < 0.0) {
        /* Discharge: metal strips first, then the alloy; past both the
           current oxidises copper and moves no lithium. */
        double want = -q;
        double metal_left = implicit_drain(metal, want, n_cover);
        double from_metal = metal - metal_left;
        double from_alloy = 0.0;
        double rest = want - from_metal;
        if (alloy > 0.0 && rest > 0.0) {
            double alloy_left = implicit_drain(alloy, rest, n_cover);
            from_alloy = alloy - alloy_left;
            alloy = alloy_left;
        }
        metal = metal_left;
        cath += from_metal + from_alloy;
    }

    /* Corrosion: Li metal the catholyte can reach (no layer, or a crack)
       reduces polysulfide at the diffusion-limited rate; most returns to the
       catholyte (self-discharge), the rest is lost as insoluble product. */
    double exposed = d->layer_bulk_asr > 0.0 ? (cracked ? p->crack_exposed_fraction : 0.0) : 1.0;
    if (exposed > 0.0 && metal > 0.0) {
        double metal_left = implicit_drain(metal, exposed * d->corrosion_mol_s * dt, n_cover);
        double corroded = metal - metal_left;
        double to_dead = corroded * p->corrosion_dead_fraction;
        metal = metal_left;
        dead += to_dead;
        cath += corroded - to_dead;
        corroded_C += corroded * F;
    }

    /* Below Li2S2, insoluble Li2S precipitates: relax towards saturation. */
    double xsat = p->li2s_saturation_x;
    if (p->precipitation_rate_per_s > 0.0 && xsat < 2.0 && cath > xsat * sulfur) {
        double r_eq = (cath - xsat * sulfur) / (2.0 - xsat);
        double r = r_eq * -expm1(-p->precipitation_rate_per_s * dt);
        cath -= 2.0 * r;
        sulfur -= r;
        li_prec += 2.0 * r;
        s_prec += r;
    }

    /* Decay factors depend on dt only: a fleet or a constant-step run reuses them. */
    double rc_decay = s->rc_decay, thermal_decay = s->thermal_decay;
    if (dt != s->cache_dt_s) {
        rc_decay = exp(-dt / p->rc_time_constant_s);
        thermal_decay = exp(-dt * d->hA_over_C);
    }

    /* RC pair: exact for a current held over the step. */
    double v_inf = i_ec * p->rc_resistance_ohm_cm2 * s->electrolyte_factor * d->inv_area;
    double v_rc = v_inf + (s->v_rc_V - v_inf) * rc_decay;

    /* Outputs at the end of the step (temperature still the old one),
       evaluated on a view holding the new inventories. */
    cell_view_t end = {cath, sulfur, alloy, metal, v_rc, s->cache_T_K, s->electrolyte_factor,
                       s->layer_factor, s->transfer_factor, short_ohm, s->ocv_index};
    double i_end = short_ohm > 0.0 ? view_electrochemical_current(p, d, &end, current_A)
                                   : current_A;
    double j_end = i_end * d->inv_area;
    double eta_ct = s->ct_overpotential_V;
    int ct_fresh = j_end != s->cache_ct_j_A_cm2 || s->cache_T_K != s->cache_ct_T_K;
    if (ct_fresh)
        eta_ct = charge_transfer_V(p, s->cache_T_K, j_end);
    double ocv;
    double v = view_voltage(p, d, &end, i_end, eta_ct, &ocv);

    /* Lumped thermal: irreversible heat plus the short's, to ambient. */
    double heat = i_end * (v - ocv);
    if (short_ohm > 0.0)
        heat += v * v / short_ohm;
    double T_inf = s->ambient_K + heat / p->heat_transfer_W_K;
    double T = T_inf + (s->temperature_K - T_inf) * thermal_decay;

    /* Pools cannot go negative by construction; a NaN or infinity anywhere
       shows in the sum. v and T come last: they end the step's longest chain of
       dependent operations, and a sum waiting on them first would add seven
       latencies to that chain (~9 % of a fleet step). The terms are bounded far
       below overflow, so the order decides nothing else. */
    double check = v_rc + cath + metal + alloy + dead + sulfur + damage + v + T;
    if (!isfinite(check) || T <= 150.0 || T >= 500.0)
        return CELL_ERR_DIVERGED;

    s->li_catholyte_mol = cath;
    s->s_catholyte_mol = sulfur;
    s->li_alloy_mol = alloy;
    s->li_metal_mol = metal;
    s->li_dead_mol = dead;
    s->li_precipitated_mol = li_prec;
    s->s_precipitated_mol = s_prec;
    s->layer_damage = damage;
    s->layer_cracked = cracked;
    s->charge_since_crack_C = since_crack;
    s->short_ohm = short_ohm;
    s->v_rc_V = v_rc;
    s->temperature_K = T;
    s->ocv_index = end.ocv_index;
    s->current_A = current_A;
    s->voltage_V = v;
    s->ocv_V = ocv;
    s->overpotential_V = v - ocv;
    s->short_current_A = current_A - i_end;
    s->t_s += dt;
    if (current_A > 0.0)
        s->charge_in_C += current_A * dt;
    else
        s->charge_out_C -= current_A * dt;
    s->li_plated_C = plated_C;
    s->li_corroded_C = corroded_C;
    if (dt != s->cache_dt_s) {
        s->cache_dt_s = dt;
        s->rc_decay = rc_decay;
        s->thermal_decay = thermal_decay;
    }
    if (ct_fresh) {
        s->cache_ct_j_A_cm2 = j_end;
        s->cache_ct_T_K = s->cache_T_K;
        s->ct_overpotential_V = eta_ct;
    }
    return CELL_OK;
}

/* Longest step that keeps the fast-changing pools resolved. */
double core_choose_dt(const cell_params_t *p, const core_derived_t *d, const cell_state_t *s,
                      double current_A, double dt_left)
{
    double dt = p->max_substep_s < dt_left ? p->max_substep_s : dt_left;
    double rate = fabs(current_A);
    if (s->short_ohm > 0.0)
        rate += fabs(s->voltage_V) / s->short_ohm;
    if (rate > 0.0) {
        double pool = s->li_metal_mol + s->li_alloy_mol + d->n_cover_mol;
        if (current_A > 0.0) {
            double supply = s->li_catholyte_mol + p->supply_knee_x * s->s_catholyte_mol;
            if (supply < pool)
                pool = supply;
        }
        /* at most 5 % of the pool per step, down to the floor */
        if (0.05 * pool * FARADAY_C_MOL < dt * rate) {
            double limit = 0.05 * pool * FARADAY_C_MOL / rate;
            double floor = CORE_ADAPTIVE_FLOOR_S < dt ? CORE_ADAPTIVE_FLOOR_S : dt;
            dt = limit > floor ? limit : floor;
        }
    }
    if (dt < CORE_MIN_DT_S && dt_left > CORE_MIN_DT_S)
        dt = CORE_MIN_DT_S;
    return dt;
}

int core_advance(const cell_params_t *p, const core_derived_t *d, cell_state_t *s,
                 double current_A, double dt_s)
{
    double left = dt_s;
    while (left > 0.0) {
        double dt = core_choose_dt(p, d, s, current_A, left);
        if (dt > left)
            dt = left;
        int rc = core_substep(p, d, s, current_A, dt);
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
    int rc = entry_check(p, s, current_A);
    if (rc)
        return rc;
    if (!isfinite(dt_s) || dt_s <= 0.0)
        return CELL_ERR_DT;
    core_derived_t d;
    core_derive(p, &d);
    cell_state_t w = *s;
    rc = core_advance(p, &d, &w, current_A, dt_s);
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
