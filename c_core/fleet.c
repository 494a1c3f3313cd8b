/*
 * fleet.c - many cells of one design, each at its own current, in one call.
 * The states are a caller-owned array (a numpy structured array on the Python
 * side); parameters are checked once per call, not per cell.
 */
#include <math.h>
#include "cell.h"
#include "core_internal.h"

int cell_fleet_step(const cell_params_t *p, cell_state_t *states, const double *current_A,
                    int64_t n, double dt_s, int32_t *status)
{
    if (!p || !states || !current_A)
        return CELL_ERR_NULL;
    if (n < 0)
        return CELL_ERR_LENGTH;
    if (!isfinite(dt_s) || dt_s <= 0.0)
        return CELL_ERR_DT;
    int rc = cell_params_check(p, NULL);
    if (rc)
        return rc;
    core_derived_t d;
    core_derive(p, &d);
    int first = CELL_OK;
    for (int64_t i = 0; i < n; i++) {
        int code;
        if (!isfinite(current_A[i]))
            code = CELL_ERR_NOT_FINITE;
        else if (!core_state_ok(&states[i]))
            code = CELL_ERR_STATE;
        else if (core_choose_dt(p, &d, &states[i], current_A[i], dt_s) >= dt_s) {
            /* one internal step: it stores only on success */
            code = core_substep(p, &d, &states[i], current_A[i], dt_s);
        } else {
            /* several: work on a copy so a cell that fails keeps its state.
               (Not the common path: copying a state costs more than a step.) */
            cell_state_t w = states[i];
            code = core_advance(p, &d, &w, current_A[i], dt_s);
            if (code == CELL_OK)
                states[i] = w;
        }
        if (status)
            status[i] = code;
        if (code && !first)
            first = code;
    }
    return first;
}
