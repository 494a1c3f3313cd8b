/*
 * test_cell.c - the C core's own test program: no framework, no allocation.
 *
 *   make -C c_core test       (-Wall -Wextra -Werror ...)
 *   make -C c_core sanitize   (the same under -fsanitize=address,undefined)
 *
 * Each CHECK counts a pass or a failure and reports the failing line; the exit
 * code is non-zero if anything failed, and the last line is "N passed, N failed".
 * The parameter set is a copy of d111 (the seed's Example: 30 uL of Li2S8-level
 * catholyte, a 1500 A LiPON layer, no wetting layer), written out here so the C
 * tests depend on nothing outside c_core.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "../cell.h"

static int g_passed, g_failed;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (cond) {                                                          \
            g_passed++;                                                      \
        } else {                                                             \
            g_failed++;                                                      \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);           \
        }                                                                    \
    } while (0)

/* CHECK with a message built by the caller (used inside table loops). */
#define CHECK_MSG(cond, ...)                                                 \
    do {                                                                     \
        if (cond) {                                                          \
            g_passed++;                                                      \
        } else {                                                             \
            g_failed++;                                                      \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
            printf(__VA_ARGS__);                                             \
            printf("\n");                                                    \
        }                                                                    \
    } while (0)

#define UA 1e-6

static int rel_close(double a, double b, double rel)
{
    double scale = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) <= rel * scale;
}

/* ---- the d111 parameter set ---------------------------------------------- */

static const double OCV_X[] = {0.0, 0.05, 0.125, 0.20, 0.25, 0.30,
                               0.40, 0.70, 1.00, 1.15, 1.40, 2.00};
static const double OCV_V[] = {2.50, 2.45, 2.40, 2.37, 2.33, 2.22,
                               2.13, 2.10, 2.05, 1.90, 1.72, 1.50};

static cell_params_t d111(void)
{
    cell_params_t p;
    memset(&p, 0, sizeof p);
    p.area_cm2 = 1.0;
    p.catholyte_volume_uL = 30.0;
    p.sulfur_mol_L = 3.0;
    p.lithium_mol_L = 0.75;
    p.n_ocv_points = (int)(sizeof OCV_X / sizeof OCV_X[0]);
    for (int i = 0; i < p.n_ocv_points; i++) {
        p.ocv_x[i] = OCV_X[i];
        p.ocv_V[i] = OCV_V[i];
    }
    p.supply_knee_x = 1e-4;
    p.supply_rise_V = 1.5;
    p.li2s_saturation_x = 1.0;
    p.precipitation_rate_per_s = 1e-3;
    p.cathode_j0_A_cm2 = 5e-4;
    p.electrolyte_asr_ohm_cm2 = 116.0;
    p.electrolyte_Ea_eV = 0.22;
    p.rc_resistance_ohm_cm2 = 50.0;
    p.rc_time_constant_s = 20.0;
    p.copper_potential_V = 2.2;
    p.wetting_capacity_uAh_cm2 = 0.0;
    p.alloy_potential_V = 0.385;
    p.alloy_slope_V = 0.05;
    p.nucleation_overpotential_V = 0.030;
    p.nucleation_charge_uAh_cm2 = 0.5;
    p.anode_j0_A_cm2 = 1e-3;
    p.metal_coverage_uAh_cm2 = 0.01;
    p.layer_thickness_A = 1500.0;
    p.layer_conductivity_S_cm = 2e-6;
    p.layer_Ea_eV = 0.55;
    p.layer_transfer_asr_ohm_cm2 = 50.0;
    p.layer_transfer_Ea_eV = 0.6;
    p.critical_current_A_cm2 = 1.5e-3;
    p.critical_Ea_eV = 0.35;
    p.patchy_concentration = 3.0;
    p.damage_rate_per_s = 1.0 / 600.0;
    p.crack_exposed_fraction = 0.002;
    p.dendrite_charge_uAh_cm2 = 50.0;
    p.dendrite_short_ohm = 2000.0;
    p.plating_loss_fraction = 0.005;
    p.corrosion_current_A_cm2 = 0.014;
    p.corrosion_dead_fraction = 0.2;
    p.heat_capacity_J_K = 1.8;
    p.heat_transfer_W_K = 0.005;
    p.reference_temperature_K = 298.15;
    p.max_substep_s = 5.0;
    return p;
}

static const double AMBIENT_K = 298.15;

static cell_segment_t cc(double current_A, double duration_s)
{
    cell_segment_t g;
    memset(&g, 0, sizeof g);
    g.mode = CELL_MODE_CURRENT;
    g.current_A = current_A;
    g.duration_s = duration_s;
    return g;
}

static cell_segment_t cc_until(double current_A, double duration_s, double stop_V)
{
    cell_segment_t g = cc(current_A, duration_s);
    g.use_stop_voltage = 1;
    g.stop_voltage_V = stop_V;
    return g;
}

/* A cell formed at 100 uA for 2 h: about 200 uAh of lithium plated. */
static cell_state_t formed_cell(const cell_params_t *p)
{
    cell_state_t s;
    cell_segment_result_t r;
    cell_segment_t g = cc(100 * UA, 7200.0);
    cell_init(p, AMBIENT_K, &s);
    cell_run_segment(p, &s, &g, NULL, 0, &r);
    return s;
}

static double total_li(const cell_state_t *s)
{
    double t = NAN;
    cell_lithium_total_mol(s, &t);
    return t;
}

/* ---- parameter checks ---------------------------------------------------- */

/* Every scalar field with a value just below its range and, where it has one,
   a value above it (NAN: no upper bound worth testing). */
typedef struct {
    size_t offset;
    const char *name;
    double below;
    double above;
} field_case_t;

#define FIELD(name, below, above) {offsetof(cell_params_t, name), #name, below, above}

static const field_case_t FIELDS[] = {
    FIELD(area_cm2, 0.0, 2e5),
    FIELD(catholyte_volume_uL, 0.0, 2e9),
    FIELD(sulfur_mol_L, 0.0, 31.0),
    FIELD(lithium_mol_L, -0.1, 6.1), /* above 2 x sulfur_mol_L */
    FIELD(supply_knee_x, 0.0, 1.1),
    FIELD(supply_rise_V, -0.1, 10.1),
    FIELD(li2s_saturation_x, 0.0, 2.1),
    FIELD(precipitation_rate_per_s, -1e-3, 1.1e3),
    FIELD(cathode_j0_A_cm2, 0.0, 11.0),
    FIELD(electrolyte_asr_ohm_cm2, -1.0, 1.1e7),
    FIELD(electrolyte_Ea_eV, -0.01, 3.1),
    FIELD(rc_resistance_ohm_cm2, -1.0, 1.1e7),
    FIELD(rc_time_constant_s, 0.0, 1.1e6),
    FIELD(copper_potential_V, 0.0, 5.1),
    FIELD(wetting_capacity_uAh_cm2, -1.0, 1.1e5),
    FIELD(alloy_potential_V, -0.01, 2.1),
    FIELD(alloy_slope_V, -0.01, 2.1),
    FIELD(nucleation_overpotential_V, -0.01, 1.1),
    FIELD(nucleation_charge_uAh_cm2, 0.0, 1.1e4),
    FIELD(anode_j0_A_cm2, 0.0, 11.0),
    FIELD(metal_coverage_uAh_cm2, 0.0, 1.1e3),
    FIELD(layer_thickness_A, -1.0, 1.1e6),
    FIELD(layer_conductivity_S_cm, 0.0, 1.1),
    FIELD(layer_Ea_eV, -0.01, 3.1),
    FIELD(layer_transfer_asr_ohm_cm2, -1.0, 1.1e7),
    FIELD(layer_transfer_Ea_eV, -0.01, 3.1),
    FIELD(critical_current_A_cm2, 0.0, 11.0),
    FIELD(critical_Ea_eV, -0.01, 3.1),
    FIELD(patchy_concentration, 0.99, 101.0),
    FIELD(damage_rate_per_s, -1e-3, 1.1e3),
    FIELD(crack_exposed_fraction, -0.01, 1.01),
    FIELD(dendrite_charge_uAh_cm2, -1.0, 1.1e6),
    FIELD(dendrite_short_ohm, 0.0, 1.1e12),
    FIELD(plating_loss_fraction, -0.01, 1.0),
    FIELD(corrosion_current_A_cm2, -0.01, 101.0),
    FIELD(corrosion_dead_fraction, -0.01, 1.01),
    FIELD(heat_capacity_J_K, 0.0, 1.1e7),
    FIELD(heat_transfer_W_K, 0.0, 1.1e5),
    FIELD(reference_temperature_K, 199.0, 401.0),
    FIELD(max_substep_s, 9e-5, 3601.0),
};
#define N_FIELDS ((int)(sizeof FIELDS / sizeof FIELDS[0]))

static void set_field(cell_params_t *p, size_t offset, double v)
{
    memcpy((char *)p + offset, &v, sizeof v);
}

static void expect_bad(const cell_params_t *p, const char *field, const char *what)
{
    const char *bad = NULL;
    int rc = cell_params_check(p, &bad);
    CHECK_MSG(rc == CELL_ERR_PARAM, "%s %s: rc %d", field, what, rc);
    CHECK_MSG(bad && strcmp(bad, field) == 0, "%s %s: bad_field '%s'", field, what,
              bad ? bad : "(null)");
}

static void test_params_check(void)
{
    cell_params_t good = d111();
    const char *bad = "untouched";
    CHECK(cell_params_check(&good, &bad) == CELL_OK);
    CHECK(bad && strcmp(bad, "") == 0);
    CHECK(cell_params_check(&good, NULL) == CELL_OK);
    CHECK(cell_params_check(NULL, &bad) == CELL_ERR_NULL);

    /* A field added to cell_params_t must be added to FIELDS too: the struct
       is the scalars, n_ocv_points (padded to 8 bytes) and the two tables. */
    CHECK(sizeof(cell_params_t) ==
          sizeof(double) * (size_t)(N_FIELDS + 2 * CELL_OCV_MAX_POINTS) + 8);

    for (int i = 0; i < N_FIELDS; i++) {
        const field_case_t *f = &FIELDS[i];
        cell_params_t p = good;
        set_field(&p, f->offset, f->below);
        expect_bad(&p, f->name, "below range");
        p = good;
        set_field(&p, f->offset, NAN);
        expect_bad(&p, f->name, "NaN");
        p = good;
        set_field(&p, f->offset, INFINITY);
        expect_bad(&p, f->name, "inf");
        if (!isnan(f->above)) {
            p = good;
            set_field(&p, f->offset, f->above);
            expect_bad(&p, f->name, "above range");
        }
    }

    /* The OCV table. */
    cell_params_t p = good;
    p.n_ocv_points = 1;
    expect_bad(&p, "n_ocv_points", "1 point");
    p.n_ocv_points = CELL_OCV_MAX_POINTS + 1;
    expect_bad(&p, "n_ocv_points", "too many points");
    p = good;
    p.ocv_x[3] = NAN;
    expect_bad(&p, "ocv_x", "NaN");
    p = good;
    p.ocv_x[0] = -0.01;
    expect_bad(&p, "ocv_x", "below 0");
    p = good;
    p.ocv_x[5] = p.ocv_x[4];
    expect_bad(&p, "ocv_x", "not strictly rising");
    p = good;
    p.ocv_V[2] = NAN;
    expect_bad(&p, "ocv_V", "NaN");
    p = good;
    p.ocv_V[2] = 0.0;
    expect_bad(&p, "ocv_V", "zero");
    /* Points past n_ocv_points are not looked at. */
    p = good;
    p.ocv_x[CELL_OCV_MAX_POINTS - 1] = NAN;
    CHECK(cell_params_check(&p, NULL) == CELL_OK);

    CHECK(strcmp(cell_strerror(CELL_ERR_PARAM), "parameter out of physical range") == 0);
    CHECK(strcmp(cell_strerror(-99), "unknown error") == 0);
}

/* ---- init ----------------------------------------------------------------- */

static void test_init(void)
{
    cell_params_t p = d111();
    cell_state_t s;
    CHECK(cell_init(&p, AMBIENT_K, &s) == CELL_OK);
    /* Shipped discharged: everything in the catholyte, as made. */
    CHECK(s.li_metal_mol == 0.0 && s.li_alloy_mol == 0.0 && s.li_dead_mol == 0.0);
    CHECK(s.li_precipitated_mol == 0.0 && s.s_precipitated_mol == 0.0);
    CHECK(rel_close(s.li_catholyte_mol, 0.75 * 30e-6, 1e-15));
    CHECK(rel_close(s.s_catholyte_mol, 3.0 * 30e-6, 1e-15));
    CHECK(s.t_s == 0.0 && s.layer_damage == 0.0 && s.layer_cracked == 0 && s.short_ohm == 0.0);
    CHECK(s.temperature_K == AMBIENT_K && s.ambient_K == AMBIENT_K);
    CHECK(s.electrolyte_factor == 1.0 && s.layer_factor == 1.0 && s.critical_factor == 1.0);
    /* Bare copper against Li2S8-level catholyte: 2.33 V + supply term - 2.2 V. */
    double expect = 2.33 + 1.5 * 1e-4 / (0.25 + 1e-4) - 2.2;
    CHECK(fabs(s.ocv_V - expect) < 1e-12);
    CHECK(s.voltage_V == s.ocv_V && s.current_A == 0.0);

    /* Colder: resistances up, critical current down. */
    cell_state_t cold;
    CHECK(cell_init(&p, 263.15, &cold) == CELL_OK);
    CHECK(cold.electrolyte_factor > 1.0 && cold.layer_factor > 1.0 && cold.critical_factor < 1.0);

    /* Failures change nothing. */
    cell_state_t before;
    memset(&s, 0x5a, sizeof s);
    before = s;
    CHECK(cell_init(&p, NAN, &s) == CELL_ERR_NOT_FINITE);
    CHECK(cell_init(&p, INFINITY, &s) == CELL_ERR_NOT_FINITE);
    CHECK(cell_init(&p, 100.0, &s) == CELL_ERR_PARAM);
    CHECK(cell_init(&p, 600.0, &s) == CELL_ERR_PARAM);
    CHECK(cell_init(NULL, AMBIENT_K, &s) == CELL_ERR_NULL);
    cell_params_t bad = p;
    bad.area_cm2 = -1.0;
    CHECK(cell_init(&bad, AMBIENT_K, &s) == CELL_ERR_PARAM);
    CHECK(memcmp(&s, &before, sizeof s) == 0);
    CHECK(cell_init(&p, AMBIENT_K, NULL) == CELL_ERR_NULL);
}

/* ---- bad input to every entry point leaves the state as it was ----------- */

static void test_bad_input_changes_nothing(void)
{
    cell_params_t p = d111();
    cell_state_t s = formed_cell(&p);
    cell_state_t before = s;
    double v = 123.0;

    CHECK(cell_step(&p, &s, NAN, 1.0) == CELL_ERR_NOT_FINITE);
    CHECK(cell_step(&p, &s, INFINITY, 1.0) == CELL_ERR_NOT_FINITE);
    CHECK(cell_step(&p, &s, 1e-4, 0.0) == CELL_ERR_DT);
    CHECK(cell_step(&p, &s, 1e-4, -1.0) == CELL_ERR_DT);
    CHECK(cell_step(&p, &s, 1e-4, NAN) == CELL_ERR_DT);
    CHECK(cell_step(&p, &s, 1e-4, INFINITY) == CELL_ERR_DT);
    CHECK(cell_step(NULL, &s, 1e-4, 1.0) == CELL_ERR_NULL);
    CHECK(cell_step(&p, NULL, 1e-4, 1.0) == CELL_ERR_NULL);
    cell_params_t bad = p;
    bad.rc_time_constant_s = NAN;
    CHECK(cell_step(&bad, &s, 1e-4, 1.0) == CELL_ERR_PARAM);
    CHECK(memcmp(&s, &before, sizeof s) == 0);

    /* An inconsistent state is refused and left alone. */
    cell_state_t neg = s;
    neg.li_metal_mol = -1e-9;
    cell_state_t neg_before = neg;
    CHECK(cell_step(&p, &neg, 1e-4, 1.0) == CELL_ERR_STATE);
    CHECK(memcmp(&neg, &neg_before, sizeof neg) == 0);
    cell_state_t hot = s;
    hot.temperature_K = 600.0;
    CHECK(cell_step(&p, &hot, 1e-4, 1.0) == CELL_ERR_STATE);
    CHECK(hot.temperature_K == 600.0);

    CHECK(cell_voltage_at(&p, &s, NAN, &v) == CELL_ERR_NOT_FINITE);
    CHECK(cell_voltage_at(NULL, &s, 0.0, &v) == CELL_ERR_NULL);
    CHECK(cell_voltage_at(&p, NULL, 0.0, &v) == CELL_ERR_NULL);
    CHECK(cell_voltage_at(&p, &s, 0.0, NULL) == CELL_ERR_NULL);
    CHECK(cell_voltage_at(&bad, &s, 0.0, &v) == CELL_ERR_PARAM);
    CHECK(cell_voltage_at(&p, &neg, 0.0, &v) == CELL_ERR_STATE);
    CHECK(v == 123.0);
    CHECK(cell_voltage_at(&p, &s, 100 * UA, &v) == CELL_OK);
    CHECK(v > s.ocv_V);
    CHECK(memcmp(&s, &before, sizeof s) == 0);

    double t = 7.0;
    CHECK(cell_lithium_total_mol(NULL, &t) == CELL_ERR_NULL);
    CHECK(cell_lithium_total_mol(&s, NULL) == CELL_ERR_NULL);
    CHECK(t == 7.0);
    double jc = 7.0;
    CHECK(cell_critical_current_A_cm2(&p, NAN, &jc) == CELL_ERR_NOT_FINITE);
    CHECK(cell_critical_current_A_cm2(&p, 100.0, &jc) == CELL_ERR_PARAM);
    CHECK(cell_critical_current_A_cm2(NULL, AMBIENT_K, &jc) == CELL_ERR_NULL);
    CHECK(cell_critical_current_A_cm2(&p, AMBIENT_K, NULL) == CELL_ERR_NULL);
    CHECK(jc == 7.0);
    CHECK(cell_critical_current_A_cm2(&p, AMBIENT_K, &jc) == CELL_OK);
    CHECK(rel_close(jc, 1.5e-3 / 3.0, 1e-14));
    double jc_cold;
    CHECK(cell_critical_current_A_cm2(&p, 263.15, &jc_cold) == CELL_OK);
    CHECK(jc_cold < jc);

    /* Malformed segments. */
    cell_segment_result_t r;
    memset(&r, 0x33, sizeof r);
    cell_segment_result_t r_before = r;
    cell_sample_t buf[4];
    cell_segment_t g;
    g = cc(1e-4, 10.0);
    g.mode = 7;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_SEGMENT);
    g = cc(1e-4, 0.0);
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_SEGMENT);
    g = cc(1e-4, -5.0);
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_SEGMENT);
    g = cc(NAN, 10.0);
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_NOT_FINITE);
    g = cc(1e-4, INFINITY);
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_NOT_FINITE);
    g = cc_until(1e-4, 10.0, 0.0);
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_SEGMENT);
    g = cc_until(1e-4, 10.0, 11.0);
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_SEGMENT);
    g = cc(0.0, 10.0);
    g.mode = CELL_MODE_VOLTAGE;
    g.voltage_V = 0.0;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_SEGMENT);
    g.voltage_V = 2.4;
    g.use_stop_current = 1;
    g.stop_current_A = -1e-6;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_SEGMENT);
    g = cc(1e-4, 10.0);
    g.use_stop_charge = 1;
    g.stop_charge_C = 0.0;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_SEGMENT);
    g = cc(1e-4, 10.0);
    g.sample_interval_s = -1.0;
    CHECK(cell_run_segment(&p, &s, &g, buf, 4, &r) == CELL_ERR_LENGTH);
    g.sample_interval_s = 1.0;
    CHECK(cell_run_segment(&p, &s, &g, buf, 1, &r) == CELL_ERR_LENGTH);
    CHECK(cell_run_segment(&p, &s, &g, NULL, 4, &r) == CELL_ERR_LENGTH);
    g.sample_interval_s = 0.0;
    CHECK(cell_run_segment(&p, &s, &g, buf, -1, &r) == CELL_ERR_LENGTH);
    g = cc(1e-4, 10.0);
    CHECK(cell_run_segment(NULL, &s, &g, NULL, 0, &r) == CELL_ERR_NULL);
    CHECK(cell_run_segment(&p, NULL, &g, NULL, 0, &r) == CELL_ERR_NULL);
    CHECK(cell_run_segment(&p, &s, NULL, NULL, 0, &r) == CELL_ERR_NULL);
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, NULL) == CELL_ERR_NULL);
    CHECK(cell_run_segment(&bad, &s, &g, NULL, 0, &r) == CELL_ERR_PARAM);
    CHECK(cell_run_segment(&p, &neg, &g, NULL, 0, &r) == CELL_ERR_STATE);
    CHECK(memcmp(&neg, &neg_before, sizeof neg) == 0);
    CHECK(memcmp(&r, &r_before, sizeof r) == 0);
    CHECK(memcmp(&s, &before, sizeof s) == 0);
}

/* ---- segments ------------------------------------------------------------- */

static void test_cc_voltage_stops(void)
{
    cell_params_t p = d111();
    cell_state_t s = formed_cell(&p);
    cell_segment_result_t r;
    double li0 = total_li(&s);

    /* Charge on until 2.42 V (about 20 min more at 100 uA). */
    cell_segment_t g = cc_until(100 * UA, 7200.0, 2.42);
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_VOLTAGE);
    CHECK(fabs(s.voltage_V - 2.42) < 1e-3);
    CHECK(s.voltage_V >= 2.42); /* stops once it has crossed */
    CHECK(r.elapsed_s > 60.0 && r.elapsed_s < 7200.0);
    CHECK(rel_close(r.charge_C, 100 * UA * r.elapsed_s, 1e-12));
    CHECK(r.n_steps > 0);

    /* Starting beyond the stop voltage stops at once, having done nothing. */
    cell_state_t before = s;
    g = cc_until(100 * UA, 7200.0, 2.40);
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_VOLTAGE && r.elapsed_s == 0.0 && r.n_steps == 0);
    CHECK(s.t_s == before.t_s && s.li_metal_mol == before.li_metal_mol);

    /* Discharge until 2.0 V: the metal strips, the negative goes back to copper. */
    double metal_before = s.li_metal_mol;
    g = cc_until(-100 * UA, 1e5, 2.0);
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_VOLTAGE);
    CHECK(fabs(s.voltage_V - 2.0) < 1e-3);
    CHECK(s.voltage_V <= 2.0);
    CHECK(r.charge_C < 0.0 && rel_close(r.charge_C, -100 * UA * r.elapsed_s, 1e-12));
    CHECK(s.li_metal_mol < 0.05 * metal_before);
    CHECK(rel_close(total_li(&s), li0, 1e-12));

    /* Time stop with no voltage stop: exact duration. */
    double t0 = s.t_s;
    g = cc(10 * UA, 600.0);
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_TIME);
    CHECK(fabs(r.elapsed_s - 600.0) < 1e-9 && fabs(s.t_s - t0 - 600.0) < 1e-9);
    CHECK(s.current_A == 10 * UA);
}

static void test_hold_and_rest(void)
{
    cell_params_t p = d111();
    cell_state_t s = formed_cell(&p);
    cell_segment_result_t r;

    /* Rest: no current, the RC pair relaxes, time advances exactly. */
    double t0 = s.t_s, vrc0 = s.v_rc_V;
    cell_segment_t g = cc(0.0, 120.0);
    g.mode = CELL_MODE_REST;
    g.current_A = 1.0; /* ignored in REST */
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_TIME && r.charge_C == 0.0);
    CHECK(fabs(s.t_s - t0 - 120.0) < 1e-9);
    CHECK(s.current_A == 0.0);
    CHECK(vrc0 > 0.0 && fabs(s.v_rc_V) < 0.01 * vrc0); /* 6 time constants */
    CHECK(fabs(s.voltage_V - s.ocv_V) < 1e-4);

    /* Hold 10 mV above the rest voltage: a charging current that decays as
       the catholyte's potential rises, until the stop current. */
    double target = s.ocv_V + 0.010;
    g = cc(0.0, 36000.0);
    g.mode = CELL_MODE_VOLTAGE;
    g.voltage_V = target;
    g.use_stop_current = 1;
    g.stop_current_A = 15 * UA;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_CURRENT);
    CHECK(s.current_A > 0.0 && s.current_A <= 15 * UA);
    CHECK(fabs(s.voltage_V - target) < 1e-3);
    CHECK(r.charge_C > 0.0 && r.elapsed_s > 0.0 && r.elapsed_s < 36000.0);

    /* Hold with a time stop: the voltage stays on target. */
    g.use_stop_current = 0;
    g.duration_s = 300.0;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_TIME && fabs(r.elapsed_s - 300.0) < 1e-9);
    CHECK(fabs(s.voltage_V - target) < 1e-3);
}

static void test_stop_charge(void)
{
    cell_params_t p = d111();
    cell_state_t s;
    cell_segment_result_t r;
    CHECK(cell_init(&p, AMBIENT_K, &s) == CELL_OK);
    cell_segment_t g = cc(100 * UA, 1e5);
    g.use_stop_charge = 1;
    g.stop_charge_C = 0.1;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_CHARGE);
    CHECK(rel_close(r.charge_C, 0.1, 1e-9));
    CHECK(rel_close(r.elapsed_s, 1000.0, 1e-9));
    CHECK(rel_close(s.charge_in_C, 0.1, 1e-9));

    /* Discharging: the stop counts |charge|. */
    g = cc(-100 * UA, 1e5);
    g.use_stop_charge = 1;
    g.stop_charge_C = 0.05;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_CHARGE);
    CHECK(rel_close(r.charge_C, -0.05, 1e-9));
    CHECK(rel_close(s.charge_out_C, 0.05, 1e-9));
}

static void test_sampling_resume(void)
{
    cell_params_t p = d111();
    cell_state_t s;
    CHECK(cell_init(&p, AMBIENT_K, &s) == CELL_OK);
    enum { BUF = 8, ALL = 128 };
    cell_sample_t buf[BUF], all[ALL];
    int n_all = 0, calls = 0, fulls = 0;
    cell_segment_result_t r;
    cell_segment_t g = cc(100 * UA, 1000.0);
    g.sample_interval_s = 10.0;
    double elapsed = 0.0;
    for (;;) {
        memset(buf, 0, sizeof buf);
        int rc = cell_run_segment(&p, &s, &g, buf, BUF, &r);
        CHECK(rc == CELL_OK);
        calls++;
        CHECK(r.n_samples >= 1 && r.n_samples <= BUF);
        for (int i = 0; i < r.n_samples && n_all < ALL; i++)
            all[n_all++] = buf[i];
        elapsed += r.elapsed_s;
        if (rc != CELL_OK || r.stop_reason != CELL_STOP_BUFFER_FULL || calls > 100)
            break;
        fulls++;
        CHECK(r.n_samples == BUF - 1); /* one slot kept for an end sample */
        g.duration_s -= r.elapsed_s;
    }
    CHECK(r.stop_reason == CELL_STOP_TIME);
    CHECK(fulls >= 10);
    CHECK(fabs(elapsed - 1000.0) < 1e-9 && fabs(s.t_s - 1000.0) < 1e-9);
    /* Every 10 s from 10 s to 1000 s, in order, with the state at that time. */
    CHECK(n_all == 100);
    int on_grid = 1;
    for (int i = 0; i < n_all; i++)
        if (fabs(all[i].t_s - 10.0 * (i + 1)) > 1e-6 || all[i].current_A != 100 * UA)
            on_grid = 0;
    CHECK(on_grid);
    CHECK(all[n_all - 1].voltage_V == s.voltage_V && all[n_all - 1].li_metal_mol == s.li_metal_mol);
    CHECK(all[n_all - 1].li_metal_mol > all[0].li_metal_mol);
}

/* ---- fleet ---------------------------------------------------------------- */

static void test_fleet(void)
{
    cell_params_t p = d111();
    enum { N = 5 };
    cell_state_t fleet[N], single[N];
    double current[N] = {100 * UA, NAN, -10 * UA, 0.0, 50 * UA};
    int32_t status[N];
    cell_state_t base = formed_cell(&p);
    for (int i = 0; i < N; i++)
        fleet[i] = single[i] = base;
    fleet[4].temperature_K = single[4].temperature_K = 280.0; /* its own temperature */

    for (int i = 0; i < N; i++)
        status[i] = 99;
    int rc = cell_fleet_step(&p, fleet, current, N, 30.0, status);
    CHECK(rc == CELL_ERR_NOT_FINITE);
    CHECK(status[0] == CELL_OK && status[1] == CELL_ERR_NOT_FINITE && status[2] == CELL_OK &&
          status[3] == CELL_OK && status[4] == CELL_OK);
    CHECK(memcmp(&fleet[1], &base, sizeof base) == 0);
    for (int i = 0; i < N; i++) {
        if (i == 1)
            continue;
        CHECK(cell_step(&p, &single[i], current[i], 30.0) == CELL_OK);
        CHECK_MSG(memcmp(&fleet[i], &single[i], sizeof single[i]) == 0, "cell %d", i);
    }
    CHECK(fleet[0].li_metal_mol > base.li_metal_mol && fleet[2].li_metal_mol < base.li_metal_mol);

    /* A bad state fails only that cell; status may be NULL. */
    cell_state_t snap[N];
    memcpy(snap, fleet, sizeof fleet);
    fleet[3].li_dead_mol = -1.0;
    current[1] = 0.0;
    CHECK(cell_fleet_step(&p, fleet, current, N, 1.0, status) == CELL_ERR_STATE);
    CHECK(status[3] == CELL_ERR_STATE && status[1] == CELL_OK);
    CHECK(fleet[3].li_dead_mol == -1.0 && fleet[3].t_s == snap[3].t_s);
    CHECK(fleet[0].t_s > snap[0].t_s);
    fleet[3] = snap[3];
    CHECK(cell_fleet_step(&p, fleet, current, N, 1.0, NULL) == CELL_OK);

    /* Whole-call errors touch no cell. */
    memcpy(snap, fleet, sizeof fleet);
    cell_params_t bad = p;
    bad.heat_capacity_J_K = 0.0;
    CHECK(cell_fleet_step(&bad, fleet, current, N, 1.0, status) == CELL_ERR_PARAM);
    CHECK(cell_fleet_step(&p, fleet, current, N, 0.0, status) == CELL_ERR_DT);
    CHECK(cell_fleet_step(&p, fleet, current, N, NAN, status) == CELL_ERR_DT);
    CHECK(cell_fleet_step(&p, fleet, current, -1, 1.0, status) == CELL_ERR_LENGTH);
    CHECK(cell_fleet_step(NULL, fleet, current, N, 1.0, status) == CELL_ERR_NULL);
    CHECK(cell_fleet_step(&p, NULL, current, N, 1.0, status) == CELL_ERR_NULL);
    CHECK(cell_fleet_step(&p, fleet, NULL, N, 1.0, status) == CELL_ERR_NULL);
    CHECK(memcmp(snap, fleet, sizeof fleet) == 0);
    CHECK(cell_fleet_step(&p, fleet, current, 0, 1.0, status) == CELL_OK);
}

/* Per-cell parameters: each cell steps exactly as a single cell of its own
   design; a cell whose parameters are bad is named and keeps its state; two
   slices stepped by separate calls (as threads do) equal one call. */
static void test_fleet_each(void)
{
    enum { N = 4 };
    cell_params_t params[N];
    cell_state_t fleet[N], single[N], halves[N];
    double current[N] = {100 * UA, 100 * UA, -10 * UA, 100 * UA};
    int32_t status[N];
    for (int i = 0; i < N; i++) {
        params[i] = d111();
        params[i].area_cm2 = 0.8 + 0.1 * i;             /* a spread of areas */
        params[i].layer_thickness_A = 1000.0 + 250.0 * i;
        fleet[i] = single[i] = formed_cell(&params[i]);
    }
    CHECK(cell_fleet_step_each(params, fleet, current, N, 30.0, status) == CELL_OK);
    for (int i = 0; i < N; i++) {
        CHECK(status[i] == CELL_OK);
        CHECK(cell_step(&params[i], &single[i], current[i], 30.0) == CELL_OK);
        CHECK_MSG(memcmp(&fleet[i], &single[i], sizeof single[i]) == 0, "cell %d", i);
    }
    CHECK(fleet[0].voltage_V != fleet[3].voltage_V);

    memcpy(halves, fleet, sizeof fleet);
    CHECK(cell_fleet_step_each(params, fleet, current, N, 10.0, NULL) == CELL_OK);
    CHECK(cell_fleet_step_each(params, halves, current, 2, 10.0, NULL) == CELL_OK);
    CHECK(cell_fleet_step_each(params + 2, halves + 2, current + 2, N - 2, 10.0, NULL) == CELL_OK);
    CHECK(memcmp(halves, fleet, sizeof fleet) == 0);

    cell_state_t snap[N];
    memcpy(snap, fleet, sizeof fleet);
    params[1].heat_capacity_J_K = 0.0;
    CHECK(cell_fleet_step_each(params, fleet, current, N, 1.0, status) == CELL_ERR_PARAM);
    CHECK(status[0] == CELL_OK && status[1] == CELL_ERR_PARAM && status[2] == CELL_OK &&
          status[3] == CELL_OK);
    CHECK(memcmp(&fleet[1], &snap[1], sizeof snap[1]) == 0);
    CHECK(fleet[0].t_s > snap[0].t_s);
    params[1].heat_capacity_J_K = d111().heat_capacity_J_K;

    memcpy(snap, fleet, sizeof fleet);
    CHECK(cell_fleet_step_each(params, fleet, current, N, 0.0, status) == CELL_ERR_DT);
    CHECK(cell_fleet_step_each(params, fleet, current, -1, 1.0, status) == CELL_ERR_LENGTH);
    CHECK(cell_fleet_step_each(NULL, fleet, current, N, 1.0, status) == CELL_ERR_NULL);
    CHECK(cell_fleet_step_each(params, NULL, current, N, 1.0, status) == CELL_ERR_NULL);
    CHECK(cell_fleet_step_each(params, fleet, NULL, N, 1.0, status) == CELL_ERR_NULL);
    CHECK(memcmp(snap, fleet, sizeof fleet) == 0);
    CHECK(cell_fleet_step_each(params, fleet, current, 0, 1.0, status) == CELL_OK);
}

/* Parameters checked and derived once (cell_derive) step exactly as those
   checked on every step; bad or never-derived entries are refused by code. */
static void test_fleet_derived(void)
{
    enum { N = 4 };
    cell_params_t params[N];
    cell_derived_t derived[N];
    cell_state_t fleet[N], each[N];
    double current[N] = {100 * UA, 120 * UA, -10 * UA, 0.0};
    int32_t status[N];
    for (int i = 0; i < N; i++) {
        params[i] = d111();
        params[i].area_cm2 = 0.8 + 0.1 * i;
        params[i].layer_thickness_A = 1000.0 + 250.0 * i;
        fleet[i] = each[i] = formed_cell(&params[i]);
    }
    CHECK(cell_derive(params, derived, N, status) == CELL_OK);
    for (int i = 0; i < N; i++)
        CHECK(status[i] == CELL_OK && derived[i].checked == 1);
    for (int k = 0; k < 20; k++) {
        double dt = k % 2 ? 1.0 : 45.0;             /* one substep and several */
        CHECK(cell_fleet_step_derived(params, derived, fleet, current, N, dt, status) == CELL_OK);
        CHECK(cell_fleet_step_each(params, each, current, N, dt, NULL) == CELL_OK);
    }
    CHECK(memcmp(fleet, each, sizeof fleet) == 0);
    CHECK(fleet[0].t_s > 400.0 && fleet[0].voltage_V != fleet[1].voltage_V);

    /* bad parameters: named per cell by cell_derive, refused by the step */
    cell_state_t snap[N];
    memcpy(snap, fleet, sizeof fleet);
    params[2].heat_capacity_J_K = -1.0;
    for (int i = 0; i < N; i++)
        status[i] = 99;
    CHECK(cell_derive(params, derived, N, status) == CELL_ERR_PARAM);
    CHECK(status[0] == CELL_OK && status[2] == CELL_ERR_PARAM && status[3] == CELL_OK);
    CHECK(derived[2].checked == 0 && derived[2].params_code == CELL_ERR_PARAM);
    CHECK(cell_fleet_step_derived(params, derived, fleet, current, N, 1.0, status) == CELL_ERR_PARAM);
    CHECK(status[2] == CELL_ERR_PARAM && status[1] == CELL_OK);
    CHECK(memcmp(&fleet[2], &snap[2], sizeof snap[2]) == 0 && fleet[1].t_s > snap[1].t_s);

    /* an entry never derived (zeroed) is refused, not stepped on zeros */
    memset(&derived[1], 0, sizeof derived[1]);
    memcpy(snap, fleet, sizeof fleet);
    CHECK(cell_fleet_step_derived(params, derived, fleet, current, N, 1.0, status) == CELL_ERR_PARAM);
    CHECK(status[1] == CELL_ERR_PARAM && memcmp(&fleet[1], &snap[1], sizeof snap[1]) == 0);

    /* whole-call errors touch no cell */
    memcpy(snap, fleet, sizeof fleet);
    CHECK(cell_fleet_step_derived(params, NULL, fleet, current, N, 1.0, status) == CELL_ERR_NULL);
    CHECK(cell_fleet_step_derived(params, derived, fleet, current, N, 0.0, status) == CELL_ERR_DT);
    CHECK(cell_fleet_step_derived(params, derived, fleet, current, -1, 1.0, status) == CELL_ERR_LENGTH);
    CHECK(cell_derive(NULL, derived, N, status) == CELL_ERR_NULL);
    CHECK(cell_derive(params, derived, -1, status) == CELL_ERR_LENGTH);
    CHECK(memcmp(fleet, snap, sizeof fleet) == 0);
    CHECK(cell_derive(params, derived, 0, NULL) == CELL_OK);
}

/* A shared step (the threads' call) steps each cell once, as the plain calls
   do, whichever caller took its chunk; cells taken already are left alone. */
static void test_fleet_shared(void)
{
    enum { N = 10 };
    cell_params_t p = d111(), params[N];
    cell_derived_t derived[N];
    cell_state_t plain[N], shared[N];
    double current[N];
    int32_t status[N];
    for (int i = 0; i < N; i++) {
        params[i] = p;
        params[i].area_cm2 = 0.8 + 0.05 * i;
        current[i] = (10.0 + 20.0 * i) * UA;
    }
    CHECK(cell_derive(params, derived, N, NULL) == CELL_OK);
    const int32_t kinds[3] = {CELL_FLEET_ONE_DESIGN, CELL_FLEET_EACH, CELL_FLEET_DERIVED};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < N; i++)
            plain[i] = shared[i] = formed_cell(kinds[k] == CELL_FLEET_ONE_DESIGN ? &p : &params[i]);
        const cell_params_t *use = kinds[k] == CELL_FLEET_ONE_DESIGN ? &p : params;
        for (int step = 0; step < 3; step++) {
            if (kinds[k] == CELL_FLEET_ONE_DESIGN)
                CHECK(cell_fleet_step(&p, plain, current, N, 20.0, NULL) == CELL_OK);
            else if (kinds[k] == CELL_FLEET_EACH)
                CHECK(cell_fleet_step_each(params, plain, current, N, 20.0, NULL) == CELL_OK);
            else
                CHECK(cell_fleet_step_derived(params, derived, plain, current, N, 20.0, NULL) == CELL_OK);
            cell_share_t share = {0, 3};            /* chunks of 3, the last one short */
            CHECK(cell_fleet_step_shared(kinds[k], use, derived, shared, current, N, 20.0, status,
                                         &share) == CELL_OK);
            CHECK(share.next >= N);
            /* a second caller on a spent share finds nothing left */
            CHECK(cell_fleet_step_shared(kinds[k], use, derived, shared, current, N, 20.0, status,
                                         &share) == CELL_OK);
        }
        CHECK_MSG(memcmp(plain, shared, sizeof plain) == 0, "kind %d", kinds[k]);
    }

    /* chunks another thread took already are left to it */
    cell_state_t snap[N];
    memcpy(snap, shared, sizeof shared);
    cell_share_t later = {6, 4};
    CHECK(cell_fleet_step_shared(CELL_FLEET_DERIVED, params, derived, shared, current, N, 1.0,
                                 status, &later) == CELL_OK);
    CHECK(memcmp(shared, snap, 6 * sizeof shared[0]) == 0);
    for (int i = 6; i < N; i++)
        CHECK(shared[i].t_s == snap[i].t_s + 1.0);

    /* a bad cell is named in status and returned by the thread that stepped it */
    current[4] = NAN;
    cell_share_t share = {0, 4};
    CHECK(cell_fleet_step_shared(CELL_FLEET_ONE_DESIGN, &p, NULL, plain, current, N, 1.0, status,
                                 &share) == CELL_ERR_NOT_FINITE);
    CHECK(status[4] == CELL_ERR_NOT_FINITE && status[3] == CELL_OK && status[5] == CELL_OK);

    /* whole-call errors take no cell */
    cell_share_t fresh = {0, 4};
    CHECK(cell_fleet_step_shared(CELL_FLEET_DERIVED, params, NULL, plain, current, N, 1.0, status,
                                 &fresh) == CELL_ERR_NULL);
    CHECK(cell_fleet_step_shared(7, params, derived, plain, current, N, 1.0, status, &fresh) ==
          CELL_ERR_PARAM);
    CHECK(cell_fleet_step_shared(CELL_FLEET_EACH, params, NULL, plain, current, N, 0.0, status,
                                 &fresh) == CELL_ERR_DT);
    CHECK(cell_fleet_step_shared(CELL_FLEET_EACH, params, NULL, plain, current, N, 1.0, status,
                                 NULL) == CELL_ERR_NULL);
    CHECK(fresh.next == 0);
    fresh.chunk = 0;
    CHECK(cell_fleet_step_shared(CELL_FLEET_EACH, params, NULL, plain, current, N, 1.0, status,
                                 &fresh) == CELL_ERR_LENGTH);
    fresh.chunk = ((int64_t)1 << 32) + 1;
    CHECK(cell_fleet_step_shared(CELL_FLEET_EACH, params, NULL, plain, current, N, 1.0, status,
                                 &fresh) == CELL_ERR_LENGTH);
    CHECK(fresh.next == 0);
}

/* ---- conservation --------------------------------------------------------- */

typedef struct {
    const char *name;
    double li0, s0;
    double worst_li, worst_s;
} ledger_t;

static void ledger_check(ledger_t *l, const cell_state_t *s)
{
    double li = total_li(s);
    double sulfur = s->s_catholyte_mol + s->s_precipitated_mol;
    double dli = fabs(li - l->li0) / l->li0, ds = fabs(sulfur - l->s0) / l->s0;
    if (dli > l->worst_li)
        l->worst_li = dli;
    if (ds > l->worst_s)
        l->worst_s = ds;
}

static void run_protocol(const cell_params_t *p, cell_state_t *s, ledger_t *l)
{
    cell_segment_result_t r;
    cell_segment_t g;
    g = cc(10 * UA, 600.0);
    CHECK(cell_run_segment(p, s, &g, NULL, 0, &r) == CELL_OK);
    ledger_check(l, s);
    g = cc(100 * UA, 3600.0);
    CHECK(cell_run_segment(p, s, &g, NULL, 0, &r) == CELL_OK);
    ledger_check(l, s);
    for (int k = 0; k < 3; k++) {
        g = cc_until(-100 * UA, 900.0, 2.0);
        CHECK(cell_run_segment(p, s, &g, NULL, 0, &r) == CELL_OK);
        ledger_check(l, s);
        g = cc(100 * UA, 900.0);
        CHECK(cell_run_segment(p, s, &g, NULL, 0, &r) == CELL_OK);
        ledger_check(l, s);
    }
    g = cc(0.0, 600.0);
    g.mode = CELL_MODE_REST;
    CHECK(cell_run_segment(p, s, &g, NULL, 0, &r) == CELL_OK);
    ledger_check(l, s);
    /* Step-by-step too, through cell_step at an awkward dt. */
    for (int k = 0; k < 200; k++) {
        CHECK(cell_step(p, s, k % 2 ? -300 * UA : 300 * UA, 7.3) == CELL_OK);
        ledger_check(l, s);
    }
    g = cc_until(-100 * UA, 1e5, 2.0);
    CHECK(cell_run_segment(p, s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_VOLTAGE);
    ledger_check(l, s);
    g = cc(0.0, 600.0);
    g.mode = CELL_MODE_REST;
    CHECK(cell_run_segment(p, s, &g, NULL, 0, &r) == CELL_OK);
    ledger_check(l, s);
}

static void test_conservation(void)
{
    cell_params_t base = d111();
    struct {
        const char *name;
        cell_params_t p;
        int crack;
        double short_ohm;
    } cases[5];
    int n = 0;
    cases[n].name = "d111";
    cases[n].p = base;
    cases[n].crack = 0;
    cases[n].short_ohm = 0.0;
    n++;
    cases[n] = cases[0];
    cases[n].name = "wetting layer";
    cases[n].p.wetting_capacity_uAh_cm2 = 20.0;
    n++;
    cases[n] = cases[0];
    cases[n].name = "no layer";
    cases[n].p.layer_thickness_A = 0.0;
    n++;
    cases[n] = cases[0];
    cases[n].name = "cracked";
    cases[n].crack = 1;
    n++;
    cases[n] = cases[0];
    cases[n].name = "short, Li2S";
    /* 100 kohm: the short drains < 25 uA, so the cell still forms; a short that
       outruns the charge current pins the metal at the coverage and makes
       every step tiny (see the report on core_choose_dt). */
    cases[n].short_ohm = 1e5;
    cases[n].p.li2s_saturation_x = 0.2; /* precipitates from the start */
    n++;

    for (int i = 0; i < n; i++) {
        cell_state_t s;
        CHECK(cell_init(&cases[i].p, AMBIENT_K, &s) == CELL_OK);
        if (cases[i].crack) {
            s.layer_damage = 1.0;
            s.layer_cracked = 1;
        }
        s.short_ohm = cases[i].short_ohm;
        ledger_t l = {cases[i].name, total_li(&s), s.s_catholyte_mol + s.s_precipitated_mol,
                      0.0, 0.0};
        run_protocol(&cases[i].p, &s, &l);
        CHECK_MSG(l.worst_li <= 1e-12, "%s: lithium drift %.3g", l.name, l.worst_li);
        CHECK_MSG(l.worst_s <= 1e-12, "%s: sulfur drift %.3g", l.name, l.worst_s);
        CHECK_MSG(s.t_s > 2.5 * 3600.0, "%s: only %.0f s simulated", l.name, s.t_s);
        /* Each case exercised the pool it is about. */
        if (cases[i].p.wetting_capacity_uAh_cm2 > 0.0)
            CHECK(s.li_plated_C > 0.0 && s.li_dead_mol > 0.0);
        if (cases[i].crack || cases[i].p.layer_thickness_A == 0.0)
            CHECK_MSG(s.li_corroded_C > 0.0, "%s: no corrosion", l.name);
        if (cases[i].short_ohm > 0.0)
            CHECK(s.li_precipitated_mol > 0.0 && s.short_current_A != 0.0);
    }
}

/* Layer damage under an overload: grows, latches at 1, then the dendrite short. */
static void test_damage_and_short(void)
{
    cell_params_t p = d111();
    cell_state_t s;
    cell_segment_result_t r;
    CHECK(cell_init(&p, AMBIENT_K, &s) == CELL_OK);
    cell_segment_t g = cc(100 * UA, 600.0);
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(s.layer_damage == 0.0); /* 100 uA/cm2 is under the critical density */
    g = cc(2000 * UA, 3600.0);    /* 4x the critical density */
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(s.layer_cracked == 1 && s.layer_damage == 1.0);
    CHECK(s.charge_since_crack_C > 0.0);
    CHECK(s.short_ohm == p.dendrite_short_ohm);
    CHECK(s.short_current_A > 0.0);
}

/* ---- the channel's limits: compliance, safety, a hold's current limit ------ */

/* The channel most tests run on: charge compliance 3.0 V, discharge 1.5 V. */
static cell_segment_t on_channel(cell_segment_t g)
{
    g.use_compliance = 1;
    g.compliance_max_V = 3.0;
    g.compliance_min_V = 1.5;
    return g;
}

static void test_compliance(void)
{
    cell_params_t p = d111();
    cell_state_t s = formed_cell(&p);
    cell_segment_result_t r;

    /* A current the cell cannot take within compliance stops at once. */
    cell_state_t before = s;
    cell_segment_t g = on_channel(cc(1.0, 3600.0));
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_COMPLIANCE && r.elapsed_s == 0.0 && r.n_steps == 0);
    CHECK(memcmp(&s, &before, sizeof s) == 0);

    /* Charging the catholyte's lithium out: the supply rise meets compliance,
       located like a stop voltage, long before the 10 h are up. */
    g = on_channel(cc(100 * UA, 36000.0));
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_COMPLIANCE);
    CHECK(s.voltage_V >= 3.0 && s.voltage_V < 3.0 + 1e-3);
    CHECK(r.elapsed_s > 3600.0 && r.elapsed_s < 36000.0);

    /* The lower compliance holds only while current flows out: a discharge
       stops on it, a charge starting below it goes ahead. */
    g = on_channel(cc(-100 * UA, 1e6));
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_COMPLIANCE);
    CHECK(s.voltage_V <= 1.5 && s.voltage_V > 1.5 - 1e-3);
    cell_state_t precursor;
    CHECK(cell_init(&p, AMBIENT_K, &precursor) == CELL_OK);
    CHECK(precursor.voltage_V < 1.5);
    g = on_channel(cc(100 * UA, 60.0));
    CHECK(cell_run_segment(&p, &precursor, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_TIME);
    CHECK(cell_init(&p, AMBIENT_K, &precursor) == CELL_OK);
    g.current_A = -100 * UA;
    CHECK(cell_run_segment(&p, &precursor, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_COMPLIANCE && r.elapsed_s == 0.0);

    /* The segment's own stop voltage wins over compliance at the same instant. */
    s = formed_cell(&p);
    g = cc_until(100 * UA, 36000.0, 2.42);
    g.use_compliance = 1;
    g.compliance_max_V = 2.42;
    g.compliance_min_V = 1.5;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_VOLTAGE);
}

static void test_safety_limits(void)
{
    cell_params_t p = d111();
    cell_state_t s = formed_cell(&p);
    cell_segment_result_t r;

    /* Safety holds whatever the current: a rest below the window stops at once. */
    cell_segment_t g = cc(0.0, 600.0);
    g.mode = CELL_MODE_REST;
    g.use_safety_voltage = 1;
    g.safety_max_V = 4.0;
    g.safety_min_V = s.voltage_V + 0.1;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_SAFETY_VOLTAGE && r.elapsed_s == 0.0);

    /* Heating: 2 mA through the cell warms it; the temperature stop is located
       within the bisection's resolution. */
    double limit_K = AMBIENT_K + 0.5;
    g = cc(2000 * UA, 3600.0);
    g.use_safety_temperature = 1;
    g.safety_max_temperature_K = limit_K;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_SAFETY_TEMPERATURE);
    CHECK(s.temperature_K >= limit_K && s.temperature_K < limit_K + 1e-3);
    CHECK(r.elapsed_s > 0.0 && r.elapsed_s < 3600.0);

    /* A cell already at the limit stops at once, in a hold too. */
    g = cc(0.0, 600.0);
    g.mode = CELL_MODE_VOLTAGE;
    g.voltage_V = 2.4;
    g.use_safety_temperature = 1;
    g.safety_max_temperature_K = limit_K;
    cell_state_t before = s;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_SAFETY_TEMPERATURE && r.elapsed_s == 0.0);
    CHECK(memcmp(&s, &before, sizeof s) == 0);

    /* At the start, the first limit on the jump to the step's voltage: a precursor
       driven at 20 mA would show ~3.6 V, past compliance (3.0 V) before the safety
       limit (3.5 V); at -10 mA it sits below the discharge compliance already. */
    cell_state_t precursor;
    CHECK(cell_init(&p, AMBIENT_K, &precursor) == CELL_OK);
    g = on_channel(cc(20000 * UA, 60.0));
    g.use_safety_voltage = 1;
    g.safety_max_V = 3.5;
    g.safety_min_V = -0.1;
    CHECK(cell_run_segment(&p, &precursor, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_COMPLIANCE && r.elapsed_s == 0.0);
    g.current_A = -10000 * UA;
    CHECK(cell_run_segment(&p, &precursor, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_COMPLIANCE && r.elapsed_s == 0.0);
    /* ... and a cell already outside the safety window stops on safety. */
    g.safety_min_V = precursor.voltage_V + 0.01;
    g.current_A = 100 * UA;
    CHECK(cell_run_segment(&p, &precursor, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_SAFETY_VOLTAGE && r.elapsed_s == 0.0);

    /* Safety wins over compliance at the same voltage. */
    s = formed_cell(&p);
    g = on_channel(cc(100 * UA, 36000.0));
    g.use_safety_voltage = 1;
    g.safety_max_V = 3.0;
    g.safety_min_V = 0.0;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_SAFETY_VOLTAGE);
}

static void test_hold_current_limit(void)
{
    cell_params_t p = d111();
    cell_state_t s = formed_cell(&p);
    cell_segment_result_t r;
    cell_segment_t g = cc(-100 * UA, 1e6);
    g.use_stop_voltage = 1;
    g.stop_voltage_V = 2.0;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_OK);

    /* Hold at 2.6 V after a strip: unlimited it would plate at ~1 mA/cm2; at a
       100 uA limit it charges at the limit, short of the target, for the whole
       minute, and plates no faster. */
    cell_state_t limited = s, free_hold = s;
    g = cc(0.0, 60.0);
    g.mode = CELL_MODE_VOLTAGE;
    g.voltage_V = 2.6;
    CHECK(cell_run_segment(&p, &free_hold, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.charge_C > 60.0 * 500 * UA);
    g.use_current_limit = 1;
    g.current_limit_A = 100 * UA;
    CHECK(cell_run_segment(&p, &limited, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_TIME);
    CHECK(rel_close(r.charge_C, 60.0 * 100 * UA, 1e-9));
    CHECK(limited.current_A == 100 * UA && limited.voltage_V < 2.6);
    CHECK(limited.layer_damage == 0.0);

    /* A hold beyond compliance charges at the limit until compliance stops it. */
    g.voltage_V = 10.0;
    g.duration_s = 1e6;
    g = on_channel(g);
    CHECK(cell_run_segment(&p, &limited, &g, NULL, 0, &r) == CELL_OK);
    CHECK(r.stop_reason == CELL_STOP_COMPLIANCE);
    CHECK(limited.voltage_V >= 3.0 && limited.voltage_V < 3.0 + 1e-3);
    CHECK(limited.current_A == 100 * UA);
}

static void test_limit_fields_are_checked(void)
{
    cell_params_t p = d111();
    cell_state_t s = formed_cell(&p);
    cell_state_t before = s;
    cell_segment_result_t r, r_before;
    memset(&r, 0x5a, sizeof r);
    r_before = r;
    cell_segment_t g = cc(100 * UA, 10.0);
    g.use_compliance = 1;
    g.compliance_max_V = 1.5;
    g.compliance_min_V = 1.5;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_SEGMENT);
    g = cc(100 * UA, 10.0);
    g.use_safety_voltage = 1;
    g.safety_max_V = 0.0;
    g.safety_min_V = 1.0;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_SEGMENT);
    g = cc(100 * UA, 10.0);
    g.use_safety_temperature = 1;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_SEGMENT);
    g = cc(100 * UA, 10.0);
    g.use_current_limit = 1;
    g.current_limit_A = -1.0;
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_SEGMENT);
    g = cc(100 * UA, 10.0);
    g.safety_max_temperature_K = NAN; /* unused, still refused */
    CHECK(cell_run_segment(&p, &s, &g, NULL, 0, &r) == CELL_ERR_NOT_FINITE);
    CHECK(memcmp(&s, &before, sizeof s) == 0);
    CHECK(memcmp(&r, &r_before, sizeof r) == 0);
}

int main(void)
{
    test_params_check();
    test_init();
    test_bad_input_changes_nothing();
    test_cc_voltage_stops();
    test_hold_and_rest();
    test_stop_charge();
    test_sampling_resume();
    test_fleet();
    test_fleet_each();
    test_fleet_derived();
    test_fleet_shared();
    test_conservation();
    test_damage_and_short();
    test_compliance();
    test_safety_limits();
    test_hold_current_limit();
    test_limit_fields_are_checked();
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
