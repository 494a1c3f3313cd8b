/*
 * cell.h - the whole contract of the bms-twin cell core.
 *
 * A zero-dimensional model of the seed patent's cell (WO 99/43034): a copper
 * current collector, an optional wetting layer that alloys with lithium, a glassy
 * Li+ conducting protective layer (LiPON), lithium plated between them, and a
 * lithium-polysulfide catholyte. The cell is shipped discharged: no lithium metal.
 *
 * Conventions
 *   - SI inside (A, V, s, K, mol). Fields that are not in SI base units carry
 *     the unit in their name: area_cm2, thickness_A (angstrom), *_uL, *_eV.
 *     Per-area quantities are per cm2 of active area (*_A_cm2, *_ohm_cm2).
 *   - Current sign: + charges the cell (plates lithium), - discharges it.
 *   - Every function returns CELL_OK (0) or a negative CELL_ERR_* code, and
 *     changes nothing it was handed when it fails. Nothing here allocates,
 *     prints, aborts or keeps global state; the caller owns every struct.
 *   - This header is fed verbatim (between the CDEF markers) to cffi's cdef, so
 *     it stays in the subset cffi parses: no function-like macros there.
 */
#ifndef BMS_TWIN_CELL_H
#define BMS_TWIN_CELL_H

#include <stddef.h>
#include <stdint.h>

/* CDEF-BEGIN */

#define CELL_API_VERSION 3
#define CELL_OCV_MAX_POINTS 24

/* Error codes (negative) */
#define CELL_OK 0
#define CELL_ERR_NULL -1        /* a required pointer was NULL */
#define CELL_ERR_NOT_FINITE -2  /* an input was NaN or infinite */
#define CELL_ERR_PARAM -3       /* a parameter is outside its physical range */
#define CELL_ERR_DT -4          /* time step not finite and > 0 */
#define CELL_ERR_SEGMENT -5     /* malformed segment (mode, limits) */
#define CELL_ERR_STATE -6       /* state is inconsistent (negative inventory...) */
#define CELL_ERR_DIVERGED -7    /* the model produced a non-finite value */
#define CELL_ERR_LENGTH -8      /* a buffer or array length is invalid */

/* Why a segment stopped */
#define CELL_STOP_TIME 1        /* duration reached */
#define CELL_STOP_VOLTAGE 2     /* terminal voltage crossed the stop voltage */
#define CELL_STOP_CURRENT 3     /* |current| fell to the stop current (hold) */
#define CELL_STOP_CHARGE 4      /* |charge moved| reached the stop charge */
#define CELL_STOP_BUFFER_FULL 5 /* sample buffer full: call again to go on */
#define CELL_STOP_COMPLIANCE 6  /* the voltage reached the channel's compliance */
#define CELL_STOP_SAFETY_VOLTAGE 7 /* the voltage left the safety window */
#define CELL_STOP_SAFETY_TEMPERATURE 8 /* the cell reached the safety temperature */

/* Segment modes */
#define CELL_MODE_CURRENT 0     /* constant current (+ charge) */
#define CELL_MODE_VOLTAGE 1     /* constant terminal voltage (hold) */
#define CELL_MODE_REST 2        /* zero current */

typedef struct {
    /* geometry */
    double area_cm2;                    /* active area */

    /* catholyte: lithium polysulfide in tetraglyme */
    double catholyte_volume_uL;
    double sulfur_mol_L;                /* dissolved sulfur, as S atoms */
    double lithium_mol_L;               /* dissolved lithium at shipping */
    int n_ocv_points;                   /* points used in the two tables below */
    double ocv_x[CELL_OCV_MAX_POINTS];  /* Li:S atom ratio, strictly rising */
    double ocv_V[CELL_OCV_MAX_POINTS];  /* positive potential vs Li/Li+ */
    double supply_knee_x;               /* Li:S where the Li supply runs short */
    double supply_rise_V;               /* extra potential as Li:S -> 0 */
    double li2s_saturation_x;           /* Li:S above which Li2S precipitates */
    double precipitation_rate_per_s;    /* Li2S precipitation rate constant */
    double cathode_j0_A_cm2;            /* exchange current density, geometric */

    /* transport */
    double electrolyte_asr_ohm_cm2;     /* separator + catholyte at reference T */
    double electrolyte_Ea_eV;
    double rc_resistance_ohm_cm2;       /* one RC pair: catholyte polarisation */
    double rc_time_constant_s;

    /* negative electrode */
    double copper_potential_V;          /* bare Cu in catholyte, vs Li/Li+ */
    double wetting_capacity_uAh_cm2;    /* Li the wetting layer alloys; 0 = none */
    double alloy_potential_V;           /* alloy plateau vs Li/Li+ */
    double alloy_slope_V;               /* rise of alloy potential as it empties */
    double nucleation_overpotential_V;  /* on the bare substrate */
    double nucleation_charge_uAh_cm2;   /* plated Li over which it fades */
    double anode_j0_A_cm2;              /* Li | protective layer */
    double metal_coverage_uAh_cm2;      /* Li that covers the substrate */

    /* protective layer (LiPON) */
    double layer_thickness_A;           /* 0 = no layer (the seed's control) */
    double layer_conductivity_S_cm;     /* at reference T */
    double layer_Ea_eV;
    double layer_transfer_asr_ohm_cm2;  /* Li+ transfer layer|catholyte, ref T */
    double layer_transfer_Ea_eV;
    double critical_current_A_cm2;      /* plating density that starts damage, ref T */
    double critical_Ea_eV;              /* lower critical density when cold */
    double patchy_concentration;        /* >= 1: local/mean density, no wetting layer */
    double damage_rate_per_s;           /* per unit of relative overload */
    double crack_exposed_fraction;      /* area of Li reached by catholyte once cracked */
    double dendrite_charge_uAh_cm2;     /* plated after a crack until a short */
    double dendrite_short_ohm;          /* resistance of that short */

    /* lithium loss */
    double plating_loss_fraction;       /* of Li metal plated, becomes dead */
    double corrosion_current_A_cm2;     /* Li metal exposed to polysulfide */
    double corrosion_dead_fraction;     /* of corroded Li lost (rest returns) */

    /* thermal */
    double heat_capacity_J_K;
    double heat_transfer_W_K;
    double reference_temperature_K;

    /* numerics */
    double max_substep_s;               /* longest internal step, 1e-4 .. 3600 s */
} cell_params_t;

typedef struct {
    double t_s;                         /* simulated time */

    /* inventories, mol */
    double li_catholyte_mol;            /* dissolved Li */
    double s_catholyte_mol;             /* dissolved S */
    double li_alloy_mol;                /* Li in the wetting layer */
    double li_metal_mol;                /* plated Li metal */
    double li_dead_mol;                 /* Li lost: dead Li, SEI, insoluble products */
    double li_precipitated_mol;         /* Li in precipitated Li2S */
    double s_precipitated_mol;          /* S in precipitated Li2S */

    /* protective layer */
    double layer_damage;                /* 0 intact .. 1 cracked */
    int32_t layer_cracked;              /* latched once damage reaches 1 */
    int32_t ocv_index;                  /* cache: OCV table interval last used */
    double charge_since_crack_C;        /* Li plated after the crack */
    double short_ohm;                   /* internal short; 0 = none */

    /* electrical and thermal */
    double v_rc_V;                      /* RC pair voltage */
    double temperature_K;
    double ambient_K;

    /* outputs of the last step, at its end */
    double current_A;                   /* terminal current (+ charge) */
    double voltage_V;                   /* terminal voltage */
    double ocv_V;                       /* open-circuit voltage */
    double overpotential_V;             /* voltage_V - ocv_V */
    double short_current_A;             /* discharging through the short */

    /* Arrhenius factors cached at cache_T_K (refreshed when T moves > 1 mK) */
    double cache_T_K;
    double electrolyte_factor;          /* resistance multiplier vs reference T */
    double layer_factor;
    double transfer_factor;
    double critical_factor;             /* critical current multiplier */

    /* exact caches of the step path: valid only for the key they were made at */
    double cache_dt_s;
    double rc_decay;                    /* exp(-dt/tau) at cache_dt_s */
    double thermal_decay;               /* exp(-dt hA/C) at cache_dt_s */
    double cache_ct_j_A_cm2;
    double cache_ct_T_K;
    double ct_overpotential_V;          /* charge transfer at that j and T */

    /* counters since init */
    double charge_in_C;                 /* terminal charge put in */
    double charge_out_C;                /* terminal charge taken out */
    double li_plated_C;                 /* Li reduced on the negative (alloy+metal) */
    double li_corroded_C;               /* Li metal consumed by polysulfide */
} cell_state_t;

typedef struct {
    int32_t mode;                       /* CELL_MODE_* */
    int32_t reserved0;
    double current_A;                   /* CURRENT mode (+ charge) */
    double voltage_V;                   /* VOLTAGE mode target */
    double duration_s;                  /* > 0: longest the segment may last */
    double stop_voltage_V;              /* used if use_stop_voltage */
    double stop_current_A;              /* |I| at which a hold ends, if use_stop_current */
    double stop_charge_C;               /* |charge| that ends it, if use_stop_charge */
    int32_t use_stop_voltage;           /* stops when V crosses stop_voltage_V */
    int32_t use_stop_current;
    int32_t use_stop_charge;
    int32_t reserved1;
    double sample_interval_s;           /* 0: no samples */

    /* The channel the segment runs on (a cycler's limits), each part used if its
       flag is set. A stop among these is located like a stop voltage, and one that
       holds at the start ends the segment at once (elapsed 0, no samples).
       Compliance: the channel cannot drive the terminal above compliance_max_V
       while current flows in (I > 0), nor below compliance_min_V while it flows
       out (I < 0): the segment stops there (CELL_STOP_COMPLIANCE).
       Safety: whatever the current, the segment stops when the terminal voltage
       reaches safety_max_V or safety_min_V (CELL_STOP_SAFETY_VOLTAGE), or the cell
       safety_max_temperature_K (CELL_STOP_SAFETY_TEMPERATURE).
       Current limit: a hold (VOLTAGE mode) drives at most current_limit_A either
       way. While it needs more, it runs at the limit, short of its target. */
    double compliance_max_V;            /* > compliance_min_V */
    double compliance_min_V;
    double safety_max_V;                /* > safety_min_V */
    double safety_min_V;
    double safety_max_temperature_K;    /* > 0 */
    double current_limit_A;             /* > 0 */
    int32_t use_compliance;
    int32_t use_safety_voltage;
    int32_t use_safety_temperature;
    int32_t use_current_limit;
} cell_segment_t;

typedef struct {
    int32_t stop_reason;                /* CELL_STOP_* */
    int32_t n_samples;                  /* samples written */
    double elapsed_s;
    double charge_C;                    /* signed terminal charge moved */
    int64_t n_steps;                    /* internal steps taken */
} cell_segment_result_t;

typedef struct {
    double t_s;
    double voltage_V;
    double current_A;
    double temperature_K;
    double li_metal_mol;
    double li_alloy_mol;
    double li_catholyte_mol;
    double li_lost_mol;                 /* dead + precipitated */
    double layer_damage;
    double charge_in_C;                 /* the state's counters since init */
    double charge_out_C;
} cell_sample_t;

/* What the step path derives from one set of parameters (so its inner loop
   multiplies instead of dividing), made by cell_derive. A fleet with per-cell
   parameters keeps one per cell next to them and so checks and derives them
   once, not on every step. The fields are the core's business: fill it only
   with cell_derive. */
typedef struct {
    int32_t checked;                    /* 1: made from parameters that passed the check */
    int32_t params_code;                /* else cell_params_check's code for them */
    double inv_area;                    /* 1/cm2 */
    double n_cover_mol;                 /* Li that covers the substrate */
    double n_alloy_cap_mol;             /* wetting-layer capacity */
    double n_nucleation_mol;            /* Li over which nucleation overpotential fades */
    double i_nucleation_ref_A;          /* current scale smoothing nucleation through 0 A */
    double dendrite_C;                  /* plated after a crack until a short */
    double layer_bulk_asr;              /* ohm cm2 at reference T; 0 without a layer */
    double corrosion_mol_s;             /* Li metal corroded when fully exposed */
    double hA_over_C;                   /* 1/s */
} cell_derived_t;

/* Parameters: 0 if every field is finite and in range; else CELL_ERR_PARAM and
   *bad_field (may be NULL) names the first field found wrong. */
int cell_params_check(const cell_params_t *p, const char **bad_field);

/* A shipped cell: no lithium metal, none alloyed, catholyte as made, at ambient. */
int cell_init(const cell_params_t *p, double ambient_K, cell_state_t *s);

/* Advance by dt_s at terminal current current_A, sub-stepping internally. */
int cell_step(const cell_params_t *p, cell_state_t *s, double current_A, double dt_s);

/* Terminal voltage the cell would show now at current_A (no state change). */
int cell_voltage_at(const cell_params_t *p, const cell_state_t *s, double current_A,
                    double *voltage_V);

/* Run one segment until its first stop condition. Samples go to the caller's
   buffer (may be NULL when max_samples is 0); a full buffer stops the segment
   with CELL_STOP_BUFFER_FULL, and seg may be re-run with the remaining duration.
   On failure the state is as it was before the call (samples may have been
   written) and result is untouched. */
int cell_run_segment(const cell_params_t *p, cell_state_t *s, const cell_segment_t *seg,
                     cell_sample_t *samples, int32_t max_samples,
                     cell_segment_result_t *result);

/* Step n cells (shared parameters) by dt_s, each at its own current.
   status (n entries, may be NULL) receives each cell's return code; a cell that
   fails keeps its state; the call returns the first non-zero code, after
   stepping every cell it could. */
int cell_fleet_step(const cell_params_t *p, cell_state_t *states, const double *current_A,
                    int64_t n, double dt_s, int32_t *status);

/* As cell_fleet_step, but each cell has its own parameters: params has n
   entries, params[i] for states[i] (a Monte Carlo lot, a design sweep). A cell
   whose parameters fail cell_params_check gets CELL_ERR_PARAM and keeps its
   state. Like cell_fleet_step it keeps nothing between calls, so disjoint
   slices of one fleet may be stepped from several threads at once. */
int cell_fleet_step_each(const cell_params_t *params, cell_state_t *states,
                         const double *current_A, int64_t n, double dt_s, int32_t *status);

/* Check and derive n parameter sets: derived[i] from params[i]. status (may be
   NULL) receives each cell_params_check code, also kept in derived[i]; the call
   returns the first non-zero one, after deriving every set. */
int cell_derive(const cell_params_t *params, cell_derived_t *derived, int64_t n, int32_t *status);

/* As cell_fleet_step_each, with each cell's parameters checked and derived
   beforehand: derived[i] made by cell_derive from params[i] as they are now
   (derive again after changing them). Nothing is checked per cell but the
   code cell_derive kept: a cell whose parameters failed gets it and keeps its
   state. Steps exactly as cell_fleet_step_each. */
int cell_fleet_step_derived(const cell_params_t *params, const cell_derived_t *derived,
                            cell_state_t *states, const double *current_A, int64_t n,
                            double dt_s, int32_t *status);

/* Which parameters a fleet call steps with (cell_fleet_step_shared's kind). */
#define CELL_FLEET_ONE_DESIGN 0         /* params[0] for every cell, as cell_fleet_step */
#define CELL_FLEET_EACH 1               /* params[i], checked every step: cell_fleet_step_each */
#define CELL_FLEET_DERIVED 2            /* params[i] and derived[i]: cell_fleet_step_derived */

/* The cells of one fleet step, handed out to the threads that share it. */
typedef struct {
    int64_t next;                       /* first cell no thread has taken: 0 before the step */
    int64_t chunk;                      /* cells a thread takes at a time, 1 .. 2^32 */
} cell_share_t;

/* One fleet step shared by several threads: each calls this with the same
   arguments and the same share, and takes chunks of cells from it until none
   is left, so a thread the machine holds up delays only the chunk it holds. No
   lock, no system call; each cell is stepped once, by whichever thread took it,
   exactly as the unshared call would. derived is used (and may be NULL
   otherwise) with CELL_FLEET_DERIVED. Returns the first non-zero code among
   this thread's cells (status has every cell's), or a whole-call error before
   taking any cell. */
int cell_fleet_step_shared(int32_t kind, const cell_params_t *params,
                           const cell_derived_t *derived, cell_state_t *states,
                           const double *current_A, int64_t n, double dt_s, int32_t *status,
                           cell_share_t *share);

/* Total lithium, mol: catholyte + alloy + metal + dead + precipitated. */
int cell_lithium_total_mol(const cell_state_t *s, double *total_mol);

/* Mean plating current density at which the layer starts to take damage at
   temperature_K (patchiness included), A/cm2. */
int cell_critical_current_A_cm2(const cell_params_t *p, double temperature_K,
                                double *critical_A_cm2);

/* Short-form name of a CELL_ERR_* code. */
const char *cell_strerror(int code);

/* CDEF-END */

#endif
