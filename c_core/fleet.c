/*
 * fleet.c - many cells in one call, each at its own current: cells of one
 * design (cell_fleet_step) or each with its own parameters (cell_fleet_step_each,
 * a Monte Carlo lot; cell_fleet_step_derived when they were checked and derived
 * once beforehand by cell_derive). The states are a caller-owned array (a numpy structured
 * array on the Python side). Neither call keeps state between calls, so a
 * caller may step disjoint slices of one fleet from several threads at once.
 */
#include <math.h>
#include "cell.h"
#include "core_internal.h"

/* One cell by dt_s; on failure the cell keeps its state. */
static int step_cell(const cell_params_t *p, const core_derived_t *d, cell_state_t *s,
                     double current_A, double dt_s)
{
    if (!isfinite(current_A))
        return CELL_ERR_NOT_FINITE;
    if (!core_state_ok(s))
        return CELL_ERR_STATE;
    if (core_choose_dt(p, d, s, current_A, dt_s) >= dt_s) {
        /* one internal step: it stores only on success */
        return core_substep(p, d, s, current_A, dt_s);
    }
    /* several: work on a copy so a cell that fails keeps its state.
       (Not the common path: copying a state costs more than a step.) */
    cell_state_t w = *s;
    int code = core_advance(p, d, &w, current_A, dt_s);
    if (code == CELL_OK)
        *s = w;
    return code;
}

static int fleet_args_ok(const void *p, const cell_state_t *states, const double *current_A,
                         int64_t n, double dt_s)
{
    if (!p || !states || !current_A)
        return CELL_ERR_NULL;
    if (n < 0)
        return CELL_ERR_LENGTH;
    if (!isfinite(dt_s) || dt_s <= 0.0)
        return CELL_ERR_DT;
    return CELL_OK;
}

int cell_fleet_step(const cell_params_t *p, cell_state_t *states, const double *current_A,
                    int64_t n, double dt_s, int32_t *status)
{
    int rc = fleet_args_ok(p, states, current_A, n, dt_s);
    if (rc)
        return rc;
    rc = cell_params_check(p, NULL);
    if (rc)
        return rc;
    core_derived_t d;
    core_derive(p, &d);
    int first = CELL_OK;
    for (int64_t i = 0; i < n; i++) {
        int code = step_cell(p, &d, &states[i], current_A[i], dt_s);
        if (status)
            status[i] = code;
        if (code && !first)
            first = code;
    }
    return first;
}

int cell_fleet_step_each(const cell_params_t *params, cell_state_t *states,
                         const double *current_A, int64_t n, double dt_s, int32_t *status)
{
    int rc = fleet_args_ok(params, states, current_A, n, dt_s);
    if (rc)
        return rc;
    int first = CELL_OK;
    for (int64_t i = 0; i < n; i++) {
        /* Each cell's parameters are checked and derived on every call: the
           caller may change them between calls, and both cost less than a step. */
        int code = cell_params_check(&params[i], NULL);
        if (code == CELL_OK) {
            core_derived_t d;
            core_derive(&params[i], &d);
            code = step_cell(&params[i], &d, &states[i], current_A[i], dt_s);
        }
        if (status)
            status[i] = code;
        if (code && !first)
            first = code;
    }
    return first;
}

int cell_derive(const cell_params_t *params, cell_derived_t *derived, int64_t n, int32_t *status)
{
    if (!params || !derived)
        return CELL_ERR_NULL;
    if (n < 0)
        return CELL_ERR_LENGTH;
    int first = CELL_OK;
    for (int64_t i = 0; i < n; i++) {
        int code = cell_params_check(&params[i], NULL);
        if (code == CELL_OK) {
            core_derive(&params[i], &derived[i]);
        } else {
            /* nothing derived from bad parameters: the step refuses the cell */
            cell_derived_t refused = {0};
            refused.params_code = code;
            derived[i] = refused;
        }
        if (status)
            status[i] = code;
        if (code && !first)
            first = code;
    }
    return first;
}

int cell_fleet_step_derived(const cell_params_t *params, const cell_derived_t *derived,
                            cell_state_t *states, const double *current_A, int64_t n,
                            double dt_s, int32_t *status)
{
    if (!derived)
        return CELL_ERR_NULL;
    int rc = fleet_args_ok(params, states, current_A, n, dt_s);
    if (rc)
        return rc;
    int first = CELL_OK;
    for (int64_t i = 0; i < n; i++) {
        /* a zeroed entry, never derived, is refused like bad parameters */
        int code = derived[i].checked ? CELL_OK
                   : derived[i].params_code ? derived[i].params_code : CELL_ERR_PARAM;
        if (code == CELL_OK)
            code = step_cell(&params[i], &derived[i], &states[i], current_A[i], dt_s);
        if (status)
            status[i] = code;
        if (code && !first)
            first = code;
    }
    return first;
}
