# State, substate, fault and event names, and the state-transition table.
#
# Every name the controller publishes is defined here ONCE; telemetry, the
# record (which stores indices into these tuples) and the tests all read these
# tuples, and tests/firmware/test_states.py checks them against docs/frames.md.

# --- states ---------------------------------------------------------------
BOOT = "BOOT"          # reading the cell and the record, relay open, current 0
SHIPPED = "SHIPPED"    # precursor found (no free lithium): waiting for formation
FORMING = "FORMING"    # first charge: lithium plated through LiPON onto copper
READY = "READY"        # formed and verified: limits enforced
FAULT = "FAULT"        # latched fault: current 0, relay open until reset_fault
SAFE = "SAFE"          # operator stop: current 0, relay open, no fault

STATES = (BOOT, SHIPPED, FORMING, READY, FAULT, SAFE)

# --- substates ("" outside FORMING and READY) -------------------------------
NONE = ""
NUCLEATE = "NUCLEATE"
PLATE = "PLATE"
VERIFY = "VERIFY"
CHARGING = "CHARGING"
DISCHARGING = "DISCHARGING"
RESTING = "RESTING"

SUBSTATES = (NONE, NUCLEATE, PLATE, VERIFY, CHARGING, DISCHARGING, RESTING)

# --- faults (bit i of the persisted fault mask is FAULTS[i]) ---------------
OVERVOLTAGE = "OVERVOLTAGE"
UNDERVOLTAGE = "UNDERVOLTAGE"
OVERCURRENT = "OVERCURRENT"
OVER_TEMPERATURE = "OVER_TEMPERATURE"
UNDER_TEMPERATURE = "UNDER_TEMPERATURE"
CRACK_SUSPECTED = "CRACK_SUSPECTED"
SHORT = "SHORT"
NO_PLATING = "NO_PLATING"
SENSOR = "SENSOR"
LINK_LOST = "LINK_LOST"
NO_CELL = "NO_CELL"

FAULTS = (OVERVOLTAGE, UNDERVOLTAGE, OVERCURRENT, OVER_TEMPERATURE,
          UNDER_TEMPERATURE, CRACK_SUSPECTED, SHORT, NO_PLATING, SENSOR,
          LINK_LOST, NO_CELL)

# --- event kinds (docs/frames.md, event frame) ------------------------------
EV_STATE = "STATE"
EV_FAULT = "FAULT"
EV_FAULT_CLEARED = "FAULT_CLEARED"
EV_FORMATION_DONE = "FORMATION_DONE"
EV_CYCLE = "CYCLE"
EV_COMMAND = "COMMAND"

EVENT_KINDS = (EV_STATE, EV_FAULT, EV_FAULT_CLEARED, EV_FORMATION_DONE,
               EV_CYCLE, EV_COMMAND)

# --- state-machine inputs -----------------------------------------------------
# Produced by boot detection, formation, protections and commands; consumed only
# through next_state().
PRECURSOR_FOUND = "PRECURSOR_FOUND"      # boot: OCV 50..1500 mV, no formation record
RESUME_FORMING = "RESUME_FORMING"        # boot: record says FORMING
FORMED_FOUND = "FORMED_FOUND"            # boot: OCV on the Li-S plateau, record READY (or none)
RESUME_SAFE = "RESUME_SAFE"              # boot: record says an operator stopped it
START_FORMATION = "START_FORMATION"      # formation/start or auto_form
NUCLEATED = "NUCLEATED"                  # nucleation charge counted and plateau seen
TARGET_REACHED = "TARGET_REACHED"        # plated charge reached the design inventory
FORMATION_DONE = "FORMATION_DONE"        # rest, OCV and small cycle passed
CHARGE = "CHARGE"                        # READY: current request > 0
DISCHARGE = "DISCHARGE"                  # READY: current request < 0
REST = "REST"                            # READY: current request 0
FAULT_LATCHED = "FAULT_LATCHED"          # a latching protection tripped (boot: short, no cell, ...)
RESET_FAULT = "RESET_FAULT"              # reset_fault accepted (cause gone)
STOP = "STOP"                            # stop command
RESUME = "RESUME"                        # rest / formation/start while SAFE

# The state table: (state, substate, input) -> (next state, next substate,
# action). Read top to bottom; the first match wins.
#   substate None (the second column): any substate of that state.
#   next substate None (only RESUME_FORMING): formation resumes where the
#     record left it, in the record's resume substate if that is a formation
#     step (NUCLEATE, PLATE, VERIFY), else from NUCLEATE.
#   action: a key of bmsfw.controller.ACTIONS, run once the state has changed.
TRANSITIONS = (
    # boot detection (docs/firmware.md, "Boot")
    (BOOT, None, PRECURSOR_FOUND, SHIPPED, NONE, "none"),
    (BOOT, None, RESUME_FORMING, FORMING, None, "resume_formation"),
    (BOOT, None, FORMED_FOUND, READY, RESTING, "found_formed"),
    (BOOT, None, RESUME_SAFE, SAFE, NONE, "outputs_off"),
    (BOOT, None, FAULT_LATCHED, FAULT, NONE, "outputs_off"),
    # waiting, discharged, for the first charge
    (SHIPPED, None, START_FORMATION, FORMING, NUCLEATE, "start_formation"),
    (SHIPPED, None, FAULT_LATCHED, FAULT, NONE, "outputs_off"),
    (SHIPPED, None, STOP, SAFE, NONE, "outputs_off"),
    # formation
    (FORMING, NUCLEATE, NUCLEATED, FORMING, PLATE, "none"),
    (FORMING, PLATE, TARGET_REACHED, FORMING, VERIFY, "start_verify"),
    (FORMING, VERIFY, FORMATION_DONE, READY, RESTING, "finish_formation"),
    (FORMING, None, FAULT_LATCHED, FAULT, NONE, "outputs_off"),
    (FORMING, None, STOP, SAFE, NONE, "outputs_off"),
    # formed cell
    (READY, None, CHARGE, READY, CHARGING, "none"),
    (READY, None, DISCHARGE, READY, DISCHARGING, "none"),
    (READY, None, REST, READY, RESTING, "none"),
    (READY, None, FAULT_LATCHED, FAULT, NONE, "outputs_off"),
    (READY, None, STOP, SAFE, NONE, "outputs_off"),
    # latched fault: only an accepted reset_fault leaves, through boot detection
    (FAULT, None, RESET_FAULT, BOOT, NONE, "reboot"),
    # operator stop
    (SAFE, None, RESUME, BOOT, NONE, "reboot"),
    (SAFE, None, FAULT_LATCHED, FAULT, NONE, "outputs_off"),
)


def next_state(state, substate, event):
    """The row of TRANSITIONS for (state, substate, event), or None when the
    event means nothing in that state (the caller ignores it)."""
    for row in TRANSITIONS:
        if row[0] == state and row[2] == event and (row[1] is None or row[1] == substate):
            return row
    return None

