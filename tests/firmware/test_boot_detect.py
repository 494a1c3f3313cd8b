# bmsfw.boot_detect.detect: every branch of the boot table (docs/firmware.md,
# "Boot detection"), at and beyond the window edges, with and without a record.
# Pure: no controller, no HAL.
# Run: .venv/bin/python -m pytest tests/firmware/test_boot_detect.py -q
from bmsfw.boot_detect import detect
from bmsfw.config import Config

C = Config()        # windows: short < 30, precursor 50..1500, formed 1800..2700, no cell > 3500


def _d(mv, resume="SHIPPED", latched=False, safe=False, record_error=""):
    return detect(C, mv, resume, latched, safe, record_error)


def test_latched_faults_go_to_fault_before_anything_else():
    for mv in (0, 150, 2300, 4000):
        assert _d(mv, "READY", latched=True, safe=True) == ("FAULT_LATCHED", None, "faults latched before reset")


def test_an_operator_stop_survives_the_reset():
    assert _d(150, "FORMING", safe=True) == ("RESUME_SAFE", None, "")
    assert _d(4000, "READY", safe=True) == ("RESUME_SAFE", None, "")


def test_a_short_and_a_missing_cell_whatever_the_record():
    for resume in ("SHIPPED", "FORMING", "READY"):
        assert _d(29, resume) == (None, "SHORT", "OCV 29 mV")
        assert _d(3501, resume) == (None, "NO_CELL", "OCV 3501 mV")


def test_precursor_window():
    for mv in (50, 150, 1500):
        assert _d(mv) == ("PRECURSOR_FOUND", None, "")
        assert _d(mv, "FORMING") == ("RESUME_FORMING", None, "")
        assert _d(mv, "READY") == (None, "CRACK_SUSPECTED", "formed cell reads %d mV: lithium gone" % mv)


def test_formed_window():
    for mv in (1800, 2300, 2700):
        assert _d(mv, "READY") == ("FORMED_FOUND", None, "")
        assert _d(mv, "FORMING") == ("RESUME_FORMING", None, "")
        assert _d(mv, "SHIPPED") == ("FORMED_FOUND", None, "formed cell without record")


def test_between_the_windows_formation_resumes_else_a_fault():
    assert _d(1600, "FORMING") == ("RESUME_FORMING", None, "")
    assert _d(30, "FORMING") == ("RESUME_FORMING", None, "")
    assert _d(30) == (None, "SHORT", "OCV 30 mV")                  # soft short
    assert _d(49, "READY") == (None, "SHORT", "OCV 49 mV")
    assert _d(1501) == (None, "UNDERVOLTAGE", "OCV 1501 mV")
    assert _d(1799, "READY") == (None, "UNDERVOLTAGE", "OCV 1799 mV")
    assert _d(2701) == (None, "OVERVOLTAGE", "OCV 2701 mV")
    assert _d(3500, "READY") == (None, "OVERVOLTAGE", "OCV 3500 mV")


def test_an_invalid_record_is_said_in_the_detail():
    why = "record crc32=1: does not match"
    assert _d(150, record_error=why) == ("PRECURSOR_FOUND", None, "record invalid, treated as absent: " + why)
    assert _d(2300, record_error=why) == (
        "FORMED_FOUND", None, "record invalid, treated as absent: " + why + "; formed cell without record")
    # a fault's detail is the reading alone
    assert _d(10, record_error=why) == (None, "SHORT", "OCV 10 mV")


def test_the_windows_follow_the_config():
    c = Config(precursor_min_mv=100, precursor_max_mv=1000, formed_min_mv=2000, formed_max_mv=2500)
    assert detect(c, 80, "SHIPPED", False, False, "") == (None, "SHORT", "OCV 80 mV")
    assert detect(c, 1100, "SHIPPED", False, False, "") == (None, "UNDERVOLTAGE", "OCV 1100 mV")
    assert detect(c, 2600, "SHIPPED", False, False, "") == (None, "OVERVOLTAGE", "OCV 2600 mV")
