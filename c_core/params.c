/* params.c - parameter validation and error names. */
#include <math.h>
#include "cell.h"
#include "core_internal.h"

/* Each check names its field, so Python can say which number is wrong. */
#define CHECK(cond, field)              \
    do {                                \
        if (!(cond)) {                  \
            if (bad_field)              \
                *bad_field = (field);   \
            return CELL_ERR_PARAM;      \
        }                               \
    } while (0)

#define IN(v, lo, hi) (isfinite(v) && (v) >= (lo) && (v) <= (hi))
#define POS(v, hi) (isfinite(v) && (v) > 0.0 && (v) <= (hi))

int cell_params_check(const cell_params_t *p, const char **bad_field)
{
    if (bad_field)
        *bad_field = "";
    if (!p)
        return CELL_ERR_NULL;

    CHECK(POS(p->area_cm2, 1e5), "area_cm2");
    CHECK(POS(p->catholyte_volume_uL, 1e9), "catholyte_volume_uL");
    CHECK(POS(p->sulfur_mol_L, 30.0), "sulfur_mol_L");
    CHECK(IN(p->lithium_mol_L, 0.0, 2.0 * p->sulfur_mol_L), "lithium_mol_L");
    CHECK(p->n_ocv_points >= 2 && p->n_ocv_points <= CELL_OCV_MAX_POINTS, "n_ocv_points");
    for (int i = 0; i < p->n_ocv_points; i++) {
        CHECK(IN(p->ocv_x[i], 0.0, 2.0), "ocv_x");
        CHECK(POS(p->ocv_V[i], 6.0), "ocv_V");
        if (i > 0)
            CHECK(p->ocv_x[i] > p->ocv_x[i - 1], "ocv_x");
    }
    CHECK(POS(p->supply_knee_x, 1.0), "supply_knee_x");
    CHECK(IN(p->supply_rise_V, 0.0, 10.0), "supply_rise_V");
    CHECK(POS(p->li2s_saturation_x, 2.0), "li2s_saturation_x");
    CHECK(IN(p->precipitation_rate_per_s, 0.0, 1e3), "precipitation_rate_per_s");
    CHECK(POS(p->cathode_j0_A_cm2, 10.0), "cathode_j0_A_cm2");

    CHECK(IN(p->electrolyte_asr_ohm_cm2, 0.0, 1e7), "electrolyte_asr_ohm_cm2");
    CHECK(IN(p->electrolyte_Ea_eV, 0.0, 3.0), "electrolyte_Ea_eV");
    CHECK(IN(p->rc_resistance_ohm_cm2, 0.0, 1e7), "rc_resistance_ohm_cm2");
    CHECK(POS(p->rc_time_constant_s, 1e6), "rc_time_constant_s");

    CHECK(POS(p->copper_potential_V, 5.0), "copper_potential_V");
    CHECK(IN(p->wetting_capacity_uAh_cm2, 0.0, 1e5), "wetting_capacity_uAh_cm2");
    CHECK(IN(p->alloy_potential_V, 0.0, 2.0), "alloy_potential_V");
    CHECK(IN(p->alloy_slope_V, 0.0, 2.0), "alloy_slope_V");
    CHECK(IN(p->nucleation_overpotential_V, 0.0, 1.0), "nucleation_overpotential_V");
    CHECK(POS(p->nucleation_charge_uAh_cm2, 1e4), "nucleation_charge_uAh_cm2");
    CHECK(POS(p->anode_j0_A_cm2, 10.0), "anode_j0_A_cm2");
    CHECK(POS(p->metal_coverage_uAh_cm2, 1e3), "metal_coverage_uAh_cm2");

    CHECK(IN(p->layer_thickness_A, 0.0, 1e6), "layer_thickness_A");
    CHECK(POS(p->layer_conductivity_S_cm, 1.0), "layer_conductivity_S_cm");
    CHECK(IN(p->layer_Ea_eV, 0.0, 3.0), "layer_Ea_eV");
    CHECK(IN(p->layer_transfer_asr_ohm_cm2, 0.0, 1e7), "layer_transfer_asr_ohm_cm2");
    CHECK(IN(p->layer_transfer_Ea_eV, 0.0, 3.0), "layer_transfer_Ea_eV");
    CHECK(POS(p->critical_current_A_cm2, 10.0), "critical_current_A_cm2");
    CHECK(IN(p->critical_Ea_eV, 0.0, 3.0), "critical_Ea_eV");
    CHECK(IN(p->patchy_concentration, 1.0, 100.0), "patchy_concentration");
    CHECK(IN(p->damage_rate_per_s, 0.0, 1e3), "damage_rate_per_s");
    CHECK(IN(p->crack_exposed_fraction, 0.0, 1.0), "crack_exposed_fraction");
    CHECK(IN(p->dendrite_charge_uAh_cm2, 0.0, 1e6), "dendrite_charge_uAh_cm2");
    CHECK(POS(p->dendrite_short_ohm, 1e12), "dendrite_short_ohm");

    CHECK(isfinite(p->plating_loss_fraction) && p->plating_loss_fraction >= 0.0 &&
              p->plating_loss_fraction < 1.0, "plating_loss_fraction");
    CHECK(IN(p->corrosion_current_A_cm2, 0.0, 100.0), "corrosion_current_A_cm2");
    CHECK(IN(p->corrosion_dead_fraction, 0.0, 1.0), "corrosion_dead_fraction");

    CHECK(POS(p->heat_capacity_J_K, 1e7), "heat_capacity_J_K");
    CHECK(POS(p->heat_transfer_W_K, 1e5), "heat_transfer_W_K");
    CHECK(IN(p->reference_temperature_K, 200.0, 400.0), "reference_temperature_K");
    /* no shorter than the core's least step: a remainder below it is taken whole,
       so a segment always ends (a step of 1e-308 s would leave its time unmoved) */
    CHECK(IN(p->max_substep_s, CORE_MIN_DT_S, 3600.0), "max_substep_s");
    return CELL_OK;
}

const char *cell_strerror(int code)
{
    switch (code) {
    case CELL_OK: return "ok";
    case CELL_ERR_NULL: return "null pointer";
    case CELL_ERR_NOT_FINITE: return "input not finite (NaN or infinity)";
    case CELL_ERR_PARAM: return "parameter out of physical range";
    case CELL_ERR_DT: return "time step must be finite and > 0";
    case CELL_ERR_SEGMENT: return "malformed segment";
    case CELL_ERR_STATE: return "inconsistent cell state";
    case CELL_ERR_DIVERGED: return "model produced a non-finite value";
    case CELL_ERR_LENGTH: return "invalid buffer or array length";
    default: return "unknown error";
    }
}
