/*
 * segment.c - a whole cycler step (constant current, voltage hold, rest) run
 * inside C until its first stop condition, so Python never loops per step.
 *
 * A voltage stop is located by bisection on the last step's length, so the
 * stop lands within CORE_MIN_DT_S of the crossing whatever the step size was.
 */
#include <math.h>
#include "cell.h"
#include "submodels.h"
#include "core_internal.h"

#define BISECT_ITERATIONS 40

/* Hold mode: the terminal current at which the terminal voltage equals target
   now. Voltage rises monotonically with the cell's own (electrochemical)
   current, so bracket then bisect on that; a short across the terminals then
   takes target/R on top. */
static int current_for_voltage(const cell_params_t *p, const core_derived_t *d,
                               const cell_state_t *s,
                               double target_V, double guess_A, double *current_A)
{
    double limit = 1.0 * p->area_cm2; /* 1 A/cm2: far past anything physical */
    double through_short = s->short_ohm > 0.0 ? target_V / s->short_ohm : 0.0;
    guess_A -= through_short;
    double step = fabs(guess_A) > 1e-7 * p->area_cm2 ? fabs(guess_A) : 1e-6 * p->area_cm2;
    double lo = guess_A, hi = guess_A;
    double v;
    v = core_voltage(p, d, s, guess_A, NULL);
    if (!isfinite(v))
        return CELL_ERR_DIVERGED;
    if (v < target_V) {
        do {
            lo = hi;
            hi = hi + step;
            step *= 2.0;
            if (hi > limit) { hi = limit; break; }
            v = core_voltage(p, d, s, hi, NULL);
        } while (v < target_V);
    } else {
        do {
            hi = lo;
            lo = lo - step;
            step *= 2.0;
            if (lo < -limit) { lo = -limit; break; }
            v = core_voltage(p, d, s, lo, NULL);
        } while (v > target_V);
    }
    for (int k = 0; k < 80 && hi - lo > 1e-15 + 1e-12 * fabs(hi); k++) {
        double mid = 0.5 * (lo + hi);
        if (core_voltage(p, d, s, mid, NULL) < target_V) lo = mid; else hi = mid;
    }
    *current_A = 0.5 * (lo + hi) + through_short;
    return isfinite(*current_A) ? CELL_OK : CELL_ERR_DIVERGED;
}

static int segment_ok(const cell_segment_t *g, int32_t max_samples, const cell_sample_t *samples)
{
    if (g->mode != CELL_MODE_CURRENT && g->mode != CELL_MODE_VOLTAGE && g->mode != CELL_MODE_REST)
        return CELL_ERR_SEGMENT;
    if (!isfinite(g->current_A) || !isfinite(g->voltage_V) || !isfinite(g->duration_s) ||
        !isfinite(g->stop_voltage_V) || !isfinite(g->stop_current_A) ||
        !isfinite(g->stop_charge_C) || !isfinite(g->sample_interval_s))
        return CELL_ERR_NOT_FINITE;
    if (g->duration_s <= 0.0)
        return CELL_ERR_SEGMENT;
    if (g->mode == CELL_MODE_VOLTAGE && (g->voltage_V <= 0.0 || g->voltage_V > 10.0))
        return CELL_ERR_SEGMENT;
    if (g->use_stop_voltage && (g->stop_voltage_V <= 0.0 || g->stop_voltage_V > 10.0))
        return CELL_ERR_SEGMENT;
    if (g->use_stop_current && g->stop_current_A < 0.0)
        return CELL_ERR_SEGMENT;
    if (g->use_stop_charge && g->stop_charge_C <= 0.0)
        return CELL_ERR_SEGMENT;
    if (!isfinite(g->compliance_max_V) || !isfinite(g->compliance_min_V) ||
        !isfinite(g->safety_max_V) || !isfinite(g->safety_min_V) ||
        !isfinite(g->safety_max_temperature_K) || !isfinite(g->current_limit_A))
        return CELL_ERR_NOT_FINITE;
    if (g->use_compliance && !(g->compliance_max_V > g->compliance_min_V))
        return CELL_ERR_SEGMENT;
    if (g->use_safety_voltage && !(g->safety_max_V > g->safety_min_V))
        return CELL_ERR_SEGMENT;
    if (g->use_safety_temperature && !(g->safety_max_temperature_K > 0.0))
        return CELL_ERR_SEGMENT;
    if (g->use_current_limit && !(g->current_limit_A > 0.0))
        return CELL_ERR_SEGMENT;
    if (g->sample_interval_s < 0.0 || max_samples < 0)
        return CELL_ERR_LENGTH;
    if (g->sample_interval_s > 0.0 && (max_samples < 2 || !samples))
        return CELL_ERR_LENGTH;
    return CELL_OK;
}

static void write_sample(const cell_state_t *s, cell_sample_t *out)
{
    out->t_s = s->t_s;
    out->voltage_V = s->voltage_V;
    out->current_A = s->current_A;
    out->temperature_K = s->temperature_K;
    out->li_metal_mol = s->li_metal_mol;
    out->li_alloy_mol = s->li_alloy_mol;
    out->li_catholyte_mol = s->li_catholyte_mol;
    out->li_lost_mol = s->li_dead_mol + s->li_precipitated_mol;
    out->layer_damage = s->layer_damage;
    out->charge_in_C = s->charge_in_C;
    out->charge_out_C = s->charge_out_C;
}

/* Direction of a voltage stop: +1 stops when V rises to it, -1 when it falls. */
static int stop_direction(const cell_segment_t *g, double current_A, double v_now)
{
    if (current_A > 0.0)
        return 1;
    if (current_A < 0.0)
        return -1;
    return v_now < g->stop_voltage_V ? 1 : -1;
}

static int crossed(int direction, double v, double stop_V)
{
    return direction > 0 ? v >= stop_V : v <= stop_V;
}

/* Which stop a state at terminal voltage v and temperature T_K, driven at
   current_A, meets: the one a bisection locates (0 if none). Safety first, as it
   ends the run; then the segment's own stop voltage; then compliance. */
static int limit_reached(const cell_segment_t *g, int direction, double v, double T_K,
                         double current_A)
{
    if (g->use_safety_temperature && T_K >= g->safety_max_temperature_K)
        return CELL_STOP_SAFETY_TEMPERATURE;
    if (g->use_safety_voltage && (v >= g->safety_max_V || v <= g->safety_min_V))
        return CELL_STOP_SAFETY_VOLTAGE;
    if (g->use_stop_voltage && g->mode != CELL_MODE_VOLTAGE && crossed(direction, v, g->stop_voltage_V))
        return CELL_STOP_VOLTAGE;
    if (g->use_compliance && ((current_A > 0.0 && v >= g->compliance_max_V) ||
                              (current_A < 0.0 && v <= g->compliance_min_V)))
        return CELL_STOP_COMPLIANCE;
    return 0;
}

/* At the start of a segment the terminal jumps from v_from (the state's, at the
   last current) to v_to (at this segment's). Which stop meets it first on that
   path: safety if the cell is already outside its window (or too hot); else of the
   thresholds v_to reaches, the nearest -- the lowest when rising, the highest when
   falling (one already passed counts as met at once) -- ties in limit_reached's
   order. 0 if none. */
static int limit_at_start(const cell_segment_t *g, int direction, double v_from, double v_to,
                          double T_K, double current_A)
{
    if (g->use_safety_temperature && T_K >= g->safety_max_temperature_K)
        return CELL_STOP_SAFETY_TEMPERATURE;
    if (g->use_safety_voltage && (v_from >= g->safety_max_V || v_from <= g->safety_min_V))
        return CELL_STOP_SAFETY_VOLTAGE;
    if (!limit_reached(g, direction, v_to, T_K, current_A))
        return 0;
    int rising = v_to >= v_from;
    int best = 0;
    double best_V = 0.0;
    /* candidates in limit_reached's order, so a tie keeps the earlier one */
    double volts[3];
    int reasons[3], used[3];
    volts[0] = rising ? g->safety_max_V : g->safety_min_V;
    reasons[0] = CELL_STOP_SAFETY_VOLTAGE;
    used[0] = g->use_safety_voltage && (rising ? v_to >= volts[0] : v_to <= volts[0]);
    volts[1] = g->stop_voltage_V;
    reasons[1] = CELL_STOP_VOLTAGE;
    used[1] = g->use_stop_voltage && g->mode != CELL_MODE_VOLTAGE && crossed(direction, v_to, volts[1]);
    volts[2] = current_A > 0.0 ? g->compliance_max_V : g->compliance_min_V;
    reasons[2] = CELL_STOP_COMPLIANCE;
    used[2] = g->use_compliance && ((current_A > 0.0 && v_to >= volts[2]) ||
                                    (current_A < 0.0 && v_to <= volts[2]));
    for (int k = 0; k < 3; k++) {
        if (!used[k])
            continue;
        if (!best || (rising ? volts[k] < best_V : volts[k] > best_V)) {
            best = reasons[k];
            best_V = volts[k];
        }
    }
    return best ? best : limit_reached(g, direction, v_to, T_K, current_A);
}

static int uses_limits(const cell_segment_t *g)
{
    return g->use_compliance || g->use_safety_voltage || g->use_safety_temperature;
}

int cell_run_segment(const cell_params_t *p, cell_state_t *s, const cell_segment_t *g,
                     cell_sample_t *samples, int32_t max_samples,
                     cell_segment_result_t *result)
{
    if (!p || !s || !g || !result)
        return CELL_ERR_NULL;
    int rc = cell_params_check(p, NULL);
    if (rc)
        return rc;
    rc = segment_ok(g, max_samples, samples);
    if (rc)
        return rc;
    if (!core_state_ok(s))
        return CELL_ERR_STATE;
    core_derived_t derived;
    core_derive(p, &derived);
    const core_derived_t *d = &derived;
    /* A failure part-way leaves the cell as it was before the call. */
    const cell_state_t start = *s;
    cell_state_t before = *s;

    cell_segment_result_t r = {0};
    double elapsed = 0.0, charge = 0.0;
    double interval = g->sample_interval_s;
    double next_sample = interval;
    double current = g->mode == CELL_MODE_CURRENT ? g->current_A : 0.0;
    double hold_guess = s->current_A;
    int direction = 0;

    int bisected = g->use_stop_voltage || uses_limits(g);
    if (bisected && g->mode != CELL_MODE_VOLTAGE) {
        /* the voltage the cell shows at once at the segment's current */
        refresh_arrhenius(p, s);
        double v_now = core_voltage(p, d, s, core_electrochemical_current(p, d, s, current), NULL);
        if (g->use_stop_voltage)
            direction = stop_direction(g, current, v_now);
        int at_start = limit_at_start(g, direction, s->voltage_V, v_now, s->temperature_K, current);
        if (at_start) {
            *s = start;
            r.stop_reason = at_start;
            *result = r;
            return CELL_OK;
        }
    } else if (g->use_stop_voltage) {
        direction = stop_direction(g, current, g->voltage_V);
    }

    for (;;) {
        double left = g->duration_s - elapsed;
        if (g->mode == CELL_MODE_VOLTAGE) {
            refresh_arrhenius(p, s);
            rc = current_for_voltage(p, d, s, g->voltage_V, hold_guess, &current);
            if (rc)
                break;
            if (g->use_current_limit && fabs(current) > g->current_limit_A)
                current = copysign(g->current_limit_A, current);
            hold_guess = current;
            if (elapsed == 0.0 && uses_limits(g)) {
                int at_start = limit_at_start(
                    g, direction, s->voltage_V,
                    core_voltage(p, d, s, core_electrochemical_current(p, d, s, current), NULL),
                    s->temperature_K, current);
                if (at_start) {
                    *s = start;
                    r.stop_reason = at_start;
                    break;
                }
            }
        }
        double dt = core_choose_dt(p, d, s, current, left);
        if (g->mode == CELL_MODE_VOLTAGE && dt > 0.25 * p->rc_time_constant_s)
            dt = 0.25 * p->rc_time_constant_s;
        if (interval > 0.0 && dt > next_sample - elapsed)
            dt = next_sample - elapsed;
        if (g->use_stop_charge && current != 0.0) {
            double to_go = (g->stop_charge_C - fabs(charge)) / fabs(current);
            if (to_go < dt)
                dt = to_go > 0.0 ? to_go : 0.0;
        }
        if (dt > left)
            dt = left;
        if (dt <= 0.0)
            dt = left > 0.0 ? left : CORE_MIN_DT_S;

        /* only a voltage or limit stop may need to redo the step */
        if (bisected)
            before = *s;
        rc = core_substep(p, d, s, current, dt);
        if (rc)
            break;

        int stop = 0;
        int reached = bisected ? limit_reached(g, direction, s->voltage_V, s->temperature_K, current) : 0;
        if (reached) {
            /* Bisect the step length to land on the crossing. */
            double lo = 0.0, hi = dt;
            for (int k = 0; k < BISECT_ITERATIONS && hi - lo > CORE_MIN_DT_S * 1e-2; k++) {
                double mid = 0.5 * (lo + hi);
                cell_state_t trial = before;
                if (core_substep(p, d, &trial, current, mid) == CELL_OK &&
                    limit_reached(g, direction, trial.voltage_V, trial.temperature_K, current))
                    hi = mid;
                else
                    lo = mid;
            }
            *s = before;
            rc = core_substep(p, d, s, current, hi);
            if (rc)
                break;
            dt = hi;
            stop = limit_reached(g, direction, s->voltage_V, s->temperature_K, current);
            if (!stop)
                stop = reached;
        }
        r.n_steps++;
        elapsed += dt;
        charge += current * dt;

        if (!stop && g->use_stop_current && fabs(current) <= g->stop_current_A)
            stop = CELL_STOP_CURRENT;
        if (!stop && g->use_stop_charge && fabs(charge) >= g->stop_charge_C * (1.0 - 1e-12))
            stop = CELL_STOP_CHARGE;
        if (!stop && elapsed >= g->duration_s * (1.0 - 1e-12))
            stop = CELL_STOP_TIME;

        if (interval > 0.0) {
            if (stop) {
                write_sample(s, &samples[r.n_samples++]);
            } else if (elapsed >= next_sample - 1e-9 * interval) {
                write_sample(s, &samples[r.n_samples++]);
                next_sample += interval;
                /* keep one slot for the end sample of a later call */
                if (r.n_samples >= max_samples - 1)
                    stop = CELL_STOP_BUFFER_FULL;
            }
        }
        if (stop) {
            r.stop_reason = stop;
            break;
        }
    }
    if (rc) {
        *s = start;
        return rc;
    }
    r.elapsed_s = elapsed;
    r.charge_C = charge;
    *result = r;
    return CELL_OK;
}
