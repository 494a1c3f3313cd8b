/* core_internal.h - shared between the core's .c files; not part of the contract. */
#ifndef BMS_TWIN_CORE_INTERNAL_H
#define BMS_TWIN_CORE_INTERNAL_H

#include "cell.h"

/* Shortest internal step, except to land exactly on a segment's end. */
#define CORE_MIN_DT_S 1e-4
/* The 5 %-of-a-pool rule never shortens a step below this: where corrosion or a
   short pins a pool near empty, the implicit drains are stable at any step and
   the voltage is quasi-steady, so there is nothing left to resolve. */
#define CORE_ADAPTIVE_FLOOR_S 0.5

/* Parameter-derived constants of the step path (cell_derived_t, in the
   contract so that fleets can keep them per cell). */
typedef cell_derived_t core_derived_t;

/* What the terminal voltage depends on: a view of a state, so the step can
   evaluate its end point on new values without copying the whole state. */
typedef struct {
    double li_catholyte_mol;
    double s_catholyte_mol;
    double li_alloy_mol;
    double li_metal_mol;
    double v_rc_V;
    double kinetics_T_K;        /* the Arrhenius cache's temperature */
    double electrolyte_factor;
    double layer_factor;
    double transfer_factor;
    double short_ohm;
    int32_t ocv_index;
} cell_view_t;

void core_derive(const cell_params_t *p, core_derived_t *d);
int core_state_ok(const cell_state_t *s);
double core_electrochemical_current(const cell_params_t *p, const core_derived_t *d,
                                    const cell_state_t *s, double current_A);
double core_voltage(const cell_params_t *p, const core_derived_t *d, const cell_state_t *s,
                    double i_ec, double *ocv_out);
int core_substep(const cell_params_t *p, const core_derived_t *d, cell_state_t *s,
                 double current_A, double dt);
double core_choose_dt(const cell_params_t *p, const core_derived_t *d, const cell_state_t *s,
                      double current_A, double dt_left);
int core_advance(const cell_params_t *p, const core_derived_t *d, cell_state_t *s,
                 double current_A, double dt_s);

#endif
