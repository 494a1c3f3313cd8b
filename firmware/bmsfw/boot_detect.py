# Boot detection (docs/firmware.md, "Boot detection"): after boot_settle_ms
# with the relay open and no current, the open-circuit voltage and the record
# decide what the cell is. A pure function, run once per boot: inputs in,
# (state-machine input, fault, detail) out; the controller fires the input or
# latches the fault.
from .states import (CRACK_SUSPECTED, FAULT_LATCHED, FORMED_FOUND, FORMING, NO_CELL, OVERVOLTAGE,
                     PRECURSOR_FOUND, READY, RESUME_FORMING, RESUME_SAFE, SHORT, UNDERVOLTAGE)


def detect(config, ocv_mv, resume_state, faults_latched, was_safe, record_error):
    """What the cell at boot is.

    ocv_mv: the cell's open-circuit voltage; resume_state: the operating state
    the record says to resume (SHIPPED when there is no record); faults_latched:
    the record persisted latched faults; was_safe: the record says an operator
    stopped it; record_error: why the record was refused ("" if it was not).

    Returns (input, fault, detail): input a states.py state-machine input, or
    None when `fault` (a FAULTS name) is to be latched instead; detail the
    event text."""
    c = config
    mv = ocv_mv
    detail = ""
    if record_error:
        detail = "record invalid, treated as absent: " + record_error
    if faults_latched:
        return FAULT_LATCHED, None, "faults latched before reset"
    if was_safe:
        return RESUME_SAFE, None, detail
    if mv < c.short_ocv_mv:
        return None, SHORT, "OCV %d mV" % mv
    if mv > c.no_cell_mv:
        return None, NO_CELL, "OCV %d mV" % mv
    if c.precursor_min_mv <= mv <= c.precursor_max_mv:
        if resume_state == FORMING:
            return RESUME_FORMING, None, detail
        if resume_state == READY:
            return None, CRACK_SUSPECTED, "formed cell reads %d mV: lithium gone" % mv
        return PRECURSOR_FOUND, None, detail
    if c.formed_min_mv <= mv <= c.formed_max_mv:
        if resume_state == FORMING:
            return RESUME_FORMING, None, detail
        if resume_state != READY:
            # Formed elsewhere, or the record was lost: the inventory is
            # unknown, so it is counted from 0 (DCL stays 0 until charged).
            detail = (detail + "; " if detail else "") + "formed cell without record"
        return FORMED_FOUND, None, detail
    if resume_state == FORMING:
        # Between the windows: an alloy plateau or a partly plated cell.
        return RESUME_FORMING, None, detail
    if mv < c.precursor_min_mv:
        return None, SHORT, "OCV %d mV" % mv
    if mv > c.formed_max_mv:
        return None, OVERVOLTAGE, "OCV %d mV" % mv
    return None, UNDERVOLTAGE, "OCV %d mV" % mv
