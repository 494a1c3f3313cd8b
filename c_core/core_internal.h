/* core_internal.h - shared between the core's .c files; not part of the contract. */
#ifndef BMS_TWIN_CORE_INTERNAL_H
#define BMS_TWIN_CORE_INTERNAL_H

#include "cell.h"

/* Shortest internal step, except to land exactly on a segment's end. */
#define CORE_MIN_DT_S 1e-4

int core_state_ok(const cell_state_t *s);
double core_electrochemical_current(const cell_params_t *p, const cell_state_t *s,
                                    double current_A);
double core_voltage(const cell_params_t *p, const cell_state_t *s, double i_ec,
                    double *ocv_out);
int core_substep(const cell_params_t *p, cell_state_t *s, double current_A, double dt);
double core_choose_dt(const cell_params_t *p, const cell_state_t *s, double current_A,
                      double dt_left);
int core_advance(const cell_params_t *p, cell_state_t *s, double current_A, double dt_s);

#endif
