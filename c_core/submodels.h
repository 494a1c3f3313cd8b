/*
 * submodels.h - internal to c_core: the cell's sub-models as static inline
 * functions, so the step path inlines them. Not part of the contract (cell.h is).
 *
 * Sub-models, each a few lines, each with its source in the parameter files:
 *   catholyte   positive potential vs Li:S (seed Figure 5 shape, as a table)
 *   negative    potential of what is on the copper (Li metal, alloy, bare Cu)
 *   layer       protective-layer resistance and critical plating current
 *   kinetics    Butler-Volmer (symmetric) overpotentials
 */
#ifndef BMS_TWIN_SUBMODELS_H
#define BMS_TWIN_SUBMODELS_H

#include <math.h>
#include "cell.h"
#include "core_internal.h"

#define FARADAY_C_MOL 96485.33212
#define GAS_J_MOL_K 8.314462618
#define BOLTZMANN_EV_K 8.617333262e-5
#define COULOMB_PER_UAH 3.6e-3

/* Cached Arrhenius factors are refreshed when T moves more than this. */
#define ARRHENIUS_REFRESH_K 1e-3

static inline double uah_cm2_to_mol(const cell_params_t *p, double uah_cm2)
{
    return uah_cm2 * p->area_cm2 * COULOMB_PER_UAH / FARADAY_C_MOL;
}

/* exp(Ea/k (1/T - 1/Tref)): > 1 when colder. Resistances multiply by it;
   rates (critical current) divide by it. */
static inline double arrhenius(double Ea_eV, double T_K, double Tref_K)
{
    return exp(Ea_eV / BOLTZMANN_EV_K * (1.0 / T_K - 1.0 / Tref_K));
}

static inline void refresh_arrhenius(const cell_params_t *p, cell_state_t *s)
{
    double T = s->temperature_K;
    if (fabs(T - s->cache_T_K) <= ARRHENIUS_REFRESH_K)
        return;
    double u = 1.0 / T - 1.0 / p->reference_temperature_K;
    s->electrolyte_factor = exp(p->electrolyte_Ea_eV / BOLTZMANN_EV_K * u);
    s->layer_factor = exp(p->layer_Ea_eV / BOLTZMANN_EV_K * u);
    s->transfer_factor = exp(p->layer_transfer_Ea_eV / BOLTZMANN_EV_K * u);
    s->critical_factor = exp(-p->critical_Ea_eV / BOLTZMANN_EV_K * u);
    s->cache_T_K = T;
}

/* A pool drained at want * pool/(pool + half) over a step, implicitly: the new
   pool m solves m = pool - want * m/(m + half), the positive root of a
   quadratic, written to avoid cancellation. Never negative, exact as the step
   shrinks, and it does not over-drain a nearly empty pool at long steps. */
static inline double implicit_drain(double pool, double want, double half)
{
    double b = half - pool + want;
    double disc = sqrt(b * b + 4.0 * pool * half);
    return b < 0.0 ? 0.5 * (disc - b) : 2.0 * pool * half / (b + disc);
}

/* ---- catholyte ---------------------------------------------------------- */

/* Positive potential vs Li/Li+ at Li:S ratio x: the tabulated Figure 5 shape,
   plus a rise as the dissolved lithium runs out (finite supply). */
static inline double catholyte_potential_V(const cell_params_t *p, double x, int32_t *hint)
{
    const double *xs = p->ocv_x, *vs = p->ocv_V;
    int n = p->n_ocv_points;
    double v;
    if (x <= xs[0]) {
        v = vs[0];
    } else if (x >= xs[n - 1]) {
        v = vs[n - 1];
    } else {
        /* x moves slowly: the interval used last time almost always holds it */
        int lo = *hint;
        if (lo < 0 || lo >= n - 1 || xs[lo] > x || xs[lo + 1] <= x) {
            int hi = n - 1;
            lo = 0;
            while (hi - lo > 1) {
                int mid = (lo + hi) / 2;
                if (xs[mid] <= x) lo = mid; else hi = mid;
            }
            *hint = lo;
        }
        v = vs[lo] + (vs[lo + 1] - vs[lo]) * (x - xs[lo]) / (xs[lo + 1] - xs[lo]);
    }
    double xc = x > 0.0 ? x : 0.0;
    return v + p->supply_rise_V * p->supply_knee_x / (xc + p->supply_knee_x);
}

/* ---- negative electrode -------------------------------------------------- */

/* What the electrode potential "sees": Li metal once a sub-monolayer covers
   the substrate; the alloy plateau when only the wetting layer holds Li; bare
   copper (a Cu/CuxS couple in polysulfide) when nothing does. */
static inline double negative_potential_V(const cell_params_t *p, const cell_view_t *s,
                                          double n_cover_mol, double n_alloy_cap_mol)
{
    double cover_metal = s->li_metal_mol / (s->li_metal_mol + n_cover_mol);
    double substrate = p->copper_potential_V;
    if (n_alloy_cap_mol > 0.0) {
        double fill = s->li_alloy_mol / n_alloy_cap_mol;
        double alloy_V = p->alloy_potential_V + p->alloy_slope_V * (1.0 - fill);
        double cover_alloy = s->li_alloy_mol / (s->li_alloy_mol + n_cover_mol);
        substrate = cover_alloy * alloy_V + (1.0 - cover_alloy) * p->copper_potential_V;
    }
    return (1.0 - cover_metal) * substrate;
}

/* ---- protective layer and transport -------------------------------------- */

static inline double ohmic_resistance_ohm(const cell_params_t *p, const core_derived_t *d,
                                          const cell_view_t *s)
{
    double asr = p->electrolyte_asr_ohm_cm2 * s->electrolyte_factor;
    if (d->layer_bulk_asr > 0.0)
        asr += d->layer_bulk_asr * s->layer_factor +
               p->layer_transfer_asr_ohm_cm2 * s->transfer_factor;
    return asr * d->inv_area;
}

/* ---- kinetics ------------------------------------------------------------ */

/* Symmetric Butler-Volmer at both electrodes: eta = 2RT/F asinh(j / 2 j0). */
static inline double charge_transfer_V(const cell_params_t *p, double T_K, double j_A_cm2)
{
    double b = 2.0 * GAS_J_MOL_K * T_K / FARADAY_C_MOL;
    return b * (asinh(j_A_cm2 / (2.0 * p->anode_j0_A_cm2)) +
                asinh(j_A_cm2 / (2.0 * p->cathode_j0_A_cm2)));
}

/* Extra overpotential to nucleate Li on the bare substrate; fades as plated
   lithium covers it. Only while plating; smooth through zero current. */
static inline double nucleation_V(const cell_params_t *p, const core_derived_t *d,
                                  const cell_view_t *s, double current_A)
{
    if (current_A <= 0.0 || p->nucleation_overpotential_V == 0.0)
        return 0.0;
    double bare = d->n_nucleation_mol / (s->li_metal_mol + d->n_nucleation_mol);
    return p->nucleation_overpotential_V * bare * current_A / (current_A + d->i_nucleation_ref_A);
}

#endif
