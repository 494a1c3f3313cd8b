/*
 * fleet.c - many cells in one call, each at its own current: cells of one
 * design (cell_fleet_step) or each with its own parameters (cell_fleet_step_each,
 * a Monte Carlo lot; cell_fleet_step_derived when they were checked and derived
 * once beforehand by cell_derive). The states are a caller-owned array (a numpy structured
 * array on the Python side). No call keeps state between calls, so a caller
 * may step disjoint slices of one fleet from several threads at once, or share
 * one step among them (cell_fleet_step_shared).
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

/* Bounds a share's chunk so that its counter, which each thread pushes once
   past the end, cannot overflow. */
#define CHUNK_MAX ((int64_t)1 << 32)

/* One fleet call's arguments, checked, and for one design its derived constants. */
typedef struct {
    int32_t kind;
    const cell_params_t *params;
    const cell_derived_t *derived;
    cell_derived_t design;
    cell_state_t *states;
    const double *current_A;
    double dt_s;
    int32_t *status;
} fleet_call_t;

static int call_of(int32_t kind, const cell_params_t *params, const cell_derived_t *derived,
                   cell_state_t *states, const double *current_A, int64_t n, double dt_s,
                   int32_t *status, fleet_call_t *c)
{
    if (kind != CELL_FLEET_ONE_DESIGN && kind != CELL_FLEET_EACH && kind != CELL_FLEET_DERIVED)
        return CELL_ERR_PARAM;
    if (!params || !states || !current_A || (kind == CELL_FLEET_DERIVED && !derived))
        return CELL_ERR_NULL;
    if (n < 0)
        return CELL_ERR_LENGTH;
    if (!isfinite(dt_s) || dt_s <= 0.0)
        return CELL_ERR_DT;
    if (kind == CELL_FLEET_ONE_DESIGN) {
        int rc = cell_params_check(params, NULL);
        if (rc)
            return rc;
        core_derive(params, &c->design);
    }
    c->kind = kind;
    c->params = params;
    c->derived = derived;
    c->states = states;
    c->current_A = current_A;
    c->dt_s = dt_s;
    c->status = status;
    return CELL_OK;
}

/* Cells [lo, hi) of a call; the first non-zero code. */
static int step_range(const fleet_call_t *c, int64_t lo, int64_t hi)
{
    int first = CELL_OK;
    for (int64_t i = lo; i < hi; i++) {
        int code;
        if (c->kind == CELL_FLEET_ONE_DESIGN) {
            code = step_cell(c->params, &c->design, &c->states[i], c->current_A[i], c->dt_s);
        } else if (c->kind == CELL_FLEET_DERIVED) {
            /* a zeroed entry, never derived, is refused like bad parameters */
            const cell_derived_t *d = &c->derived[i];
            code = d->checked ? CELL_OK : d->params_code ? d->params_code : CELL_ERR_PARAM;
            if (code == CELL_OK)
                code = step_cell(&c->params[i], d, &c->states[i], c->current_A[i], c->dt_s);
        } else {
            /* Checked and derived on every call: the caller may change them
               between calls (together they cost about a step: cell_derive once,
               then CELL_FLEET_DERIVED, where they do not change). */
            code = cell_params_check(&c->params[i], NULL);
            if (code == CELL_OK) {
                core_derived_t d;
                core_derive(&c->params[i], &d);
                code = step_cell(&c->params[i], &d, &c->states[i], c->current_A[i], c->dt_s);
            }
        }
        if (c->status)
            c->status[i] = code;
        if (code && !first)
            first = code;
    }
    return first;
}

static int step_all(int32_t kind, const cell_params_t *params, const cell_derived_t *derived,
                    cell_state_t *states, const double *current_A, int64_t n, double dt_s,
                    int32_t *status)
{
    fleet_call_t c;
    int rc = call_of(kind, params, derived, states, current_A, n, dt_s, status, &c);
    return rc ? rc : step_range(&c, 0, n);
}

int cell_fleet_step(const cell_params_t *p, cell_state_t *states, const double *current_A,
                    int64_t n, double dt_s, int32_t *status)
{
    return step_all(CELL_FLEET_ONE_DESIGN, p, NULL, states, current_A, n, dt_s, status);
}

int cell_fleet_step_each(const cell_params_t *params, cell_state_t *states,
                         const double *current_A, int64_t n, double dt_s, int32_t *status)
{
    return step_all(CELL_FLEET_EACH, params, NULL, states, current_A, n, dt_s, status);
}

int cell_fleet_step_derived(const cell_params_t *params, const cell_derived_t *derived,
                            cell_state_t *states, const double *current_A, int64_t n,
                            double dt_s, int32_t *status)
{
    return step_all(CELL_FLEET_DERIVED, params, derived, states, current_A, n, dt_s, status);
}

int cell_fleet_step_shared(int32_t kind, const cell_params_t *params,
                           const cell_derived_t *derived, cell_state_t *states,
                           const double *current_A, int64_t n, double dt_s, int32_t *status,
                           cell_share_t *share)
{
    if (!share)
        return CELL_ERR_NULL;
    if (share->chunk < 1 || share->chunk > CHUNK_MAX)
        return CELL_ERR_LENGTH;
    fleet_call_t c;
    int rc = call_of(kind, params, derived, states, current_A, n, dt_s, status, &c);
    if (rc)
        return rc;
    int first = CELL_OK;
    for (;;) {
        /* relaxed: the counter only hands out cells; the threads' writes reach
           the caller through however it joins them */
        int64_t lo = __atomic_fetch_add(&share->next, share->chunk, __ATOMIC_RELAXED);
        if (lo >= n)
            return first;
        int code = step_range(&c, lo, n - lo > share->chunk ? lo + share->chunk : n);
        if (code && !first)
            first = code;
    }
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
