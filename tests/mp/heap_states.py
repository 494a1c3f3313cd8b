"""Steady-state allocation of a controller tick in every state and substate, for
cells from 200 µAh to 100 Ah, under the 32-bit single-precision unix build (the
`micropython_32` fixture: 31-bit small ints, as boards have), with the firmware
frozen in (bmsfw is imported from the image, not from the checkout).

For each cell size (SIZES) and each state (SCENARIOS) the guest boots a
controller on ScaledHal (integer ADC counts from the setpoint, a front end that
reads the cell's currents), brings it to the state from a persistent record,
warms up, then runs ticks with gc off and counts the bytes each allocates and
the record saves it made (saves encode the record: counted apart), and finally
one tick under micropython.heap_lock(). It also reports the live heap peak
(gc.mem_alloc after gc.collect) over the whole probe.

Usage: .venv/bin/python tests/mp/heap_states.py $(bms-twin firmware build --target unix-32)
"""
from __future__ import annotations

import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mp_unix import run_native

ROOT = Path(__file__).resolve().parents[2]

# cell sizes: target µAh, area mm², formation and nucleation density (µA/cm²),
# shunt µV per µA at the pin (1: the A-range board), whether the shunt rails high
SIZES = {
    "200uah": dict(target_inventory_uah=200),
    "1ah": dict(target_inventory_uah=1000000, lithium_supply_uah=1200000, lithium_reserve_uah=1250,
                area_mm2=25000, formation_ua_cm2=1000, nucleation_uas=1500000000,
                no_plating_uas=4500000000, save_interval_uas=3600000000, ishunt_uv_per_ua=1,
                source_max_ua=2048000, current_max_ua=2000000, cycle_min_uas=3600000000,
                plating_derating=((0, 300), (25, 1000), (45, 1500))),
    "100ah": dict(target_inventory_uah=100000000, lithium_supply_uah=120000000, lithium_reserve_uah=125000,
                  area_mm2=2500000, formation_ua_cm2=80, nucleation_ua_cm2=8, nucleation_uas=150000000000,
                  no_plating_uas=450000000000, save_interval_uas=360000000000, ishunt_uv_per_ua=1,
                  source_max_ua=2048000, current_max_ua=2000000, cycle_min_uas=360000000000,
                  plating_derating=((0, 24), (25, 80), (45, 120)),
                  discharge_derating=((0, 40), (25, 80), (60, 0))),
}

# state: (record state, substate, plated per mille, inventory per mille, VCELL mV,
#         READY's request (per mille of current_max), warm-up ticks, verify step wanted)
SCENARIOS = {
    "SHIPPED": ("BOOT", "", 0, 0, 150, 0, 20, None),
    "FORMING/NUCLEATE": ("FORMING", "NUCLEATE", 0, 0, 150, 0, 20, None),
    "FORMING/PLATE": ("FORMING", "PLATE", 300, 300, 2250, 0, 20, None),
    "FORMING/VERIFY/rest": ("FORMING", "VERIFY", 1000, 1000, 2300, 0, 20, 0),
    "FORMING/VERIFY/discharge": ("FORMING", "VERIFY", 1000, 1000, 2300, 0, 1000, 1),
    "FORMING/VERIFY/recharge": ("FORMING", "VERIFY", 1000, 1000, 2300, 0, 20000, 2),
    "READY/RESTING": ("READY", "RESTING", 1000, 500, 2300, 0, 20, None),
    "READY/CHARGING": ("READY", "RESTING", 1000, 500, 2300, 500, 20, None),
    "READY/DISCHARGING": ("READY", "RESTING", 1000, 500, 2300, -500, 20, None),
}

_GUEST = r"""
import sys, gc, micropython
sys.path.insert(0, %(fakes)r)
from fakes import FakeHal, record_bytes
from bmsfw.config import Config
from bmsfw.controller import Controller
from bmsfw import formation as F
gc.collect()
PEAK = [gc.mem_alloc()]
SIZES = %(sizes)r
SCENARIOS = %(scenarios)r
LOCKED = %(locked)d
SABOTAGE = %(sabotage)r

def tables(kw):
    out = {}
    for k in kw:
        v = kw[k]
        out[k] = tuple(tuple(r) for r in v) if isinstance(v, (list, tuple)) else v
    return out

class ScaledHal(FakeHal):
    # integer counts: VCELL fixed, ISHUNT from the setpoint through the config's
    # front end (uv_per_ua at a 16-bit, 4096 mV ADC), NTC at 25 °C (mid-scale)
    def __init__(self, uv_per_ua, vcell_mv, record):
        FakeHal.__init__(self, record=record)
        self.uv = uv_per_ua
        self.vcell_counts = vcell_mv * 16
    def adc_read(self, ch):
        if ch == 0:
            return self.vcell_counts
        if ch == 1:
            i = self.setpoint_ua if self.relay else 0
            return 32768 + i * self.uv * 2 // 125   # (i x uv) µV at 62.5 µV per count
        return 32768

def probe(size, name):
    cfg = Config(boot_settle_ms=2000, auto_form=(name != "SHIPPED"), **tables(SIZES[size]))
    st, sub, plated_pm, inv_pm, mv, req_pm, warm, vstep = SCENARIOS[name]
    t = cfg.target_uas()
    rec = None
    if st != "BOOT":
        flags = 0 if st == "FORMING" and sub == "NUCLEATE" else None
        if st == "FORMING" and sub != "NUCLEATE":
            flags = 1
        rec = record_bytes(st, sub, inventory_uas=t // 1000 * inv_pm, plated_uas=t // 1000 * plated_pm,
                           flags=flags)
    hal = ScaledHal(cfg.ishunt_uv_per_ua, mv, rec)
    c = Controller(hal, cfg, "heap-0001")
    if SABOTAGE:
        # the ledger counted in plain µA·ms, as before charge units: long ints on big cells
        led = c.ledger
        inv = led.uas("inventory")
        plated = led.uas("plated")
        led.unit_uas = 1
        led._unit_mams = 0
        led._q_per_uah = 3600000
        led.set_uas(led.inventory, inv)
        led.set_uas(led.plated, plated)
    for i in range(warm):
        hal.t_ms += 1000
        if req_pm and c.state == "READY":
            c.request_current_ua(cfg.current_max_ua // 1000 * req_pm // 4)
        c.tick()
        c.pop_events()
        if vstep is not None and c.substate == "VERIFY" and c.formation.verify_step == vstep and i > 10:
            break
    c.pop_events()
    got = c.state + "/" + c.substate
    if vstep is not None:
        got += "/" + ("rest", "discharge", "recharge")[c.formation.verify_step]
    gc.collect()
    a = gc.mem_alloc()
    if a > PEAK[0]:
        PEAK[0] = a
    per = []
    saves = []
    for i in range(LOCKED):
        per.append(0)
        saves.append(0)
    for i in range(LOCKED):
        hal.t_ms += 1000
        n = hal.saves
        b = gc.mem_alloc()
        c.tick()
        per[i] = gc.mem_alloc() - b
        saves[i] = hal.saves - n
    err = "ok"
    n = hal.saves
    hal.t_ms += 1000
    micropython.heap_lock()
    try:
        c.tick()
    except MemoryError as e:
        err = e
    micropython.heap_unlock()
    if err != "ok":
        print("TRACE %%s %%s" %% (size, name))
        sys.print_exception(err, sys.stdout)
        err = "MemoryError"
    if err != "ok" and hal.saves != n:
        err = "save"
    c.pop_events()
    print("PROBE %%s %%s got=%%s unit=%%d bytes=%%s saves=%%s locked=%%s" %% (size, name.replace("/", ":"), got,
          cfg.charge_unit_uas(), ",".join([str(x) for x in per]), ",".join([str(x) for x in saves]), err))

gc.disable()
for size in SIZES:
    for name in SCENARIOS:
        probe(size, name)
        gc.collect()
        a = gc.mem_alloc()
        if a > PEAK[0]:
            PEAK[0] = a
print("PEAK %%d" %% PEAK[0])
"""


@dataclass(frozen=True)
class Probe:
    size: str
    scenario: str
    got: str
    unit_uas: int
    bytes_per_tick: list
    saves_per_tick: list
    locked: str

    def __str__(self) -> str:
        return "%-6s %-26s -> %-28s unit %-8d bytes/tick %s saves %s heap_lock %s" % (
            self.size, self.scenario, self.got, self.unit_uas, self.bytes_per_tick, self.saves_per_tick,
            self.locked)


def run(interpreter, locked_ticks: int = 8, heap_bytes: int = 2 * 1024 * 1024, sizes=None, scenarios=None,
        sabotage: bool = False):
    """-> (list of Probe, peak live heap in bytes, tracebacks of the heap_lock ticks that allocated)."""
    with tempfile.TemporaryDirectory(prefix="bmsfw-heap-states-") as tmp:
        fakes = Path(tmp) / "fakes"
        fakes.mkdir()
        shutil.copy(ROOT / "tests" / "firmware" / "fakes.py", fakes / "fakes.py")
        code = _GUEST % {"fakes": str(fakes),
                         "sizes": {k: dict(v) for k, v in SIZES.items() if sizes is None or k in sizes},
                         "scenarios": {k: v for k, v in SCENARIOS.items() if scenarios is None or k in scenarios},
                         "locked": locked_ticks, "sabotage": sabotage}
        res = run_native(interpreter, code, cwd=tmp, heap_bytes=heap_bytes, wall_timeout_s=120)
    if res.exit_code != 0:
        raise RuntimeError("guest failed (%s): %s %s" % (res.exit_code, res.stdout, res.stderr))
    probes = []
    for m in re.finditer(r"PROBE (\S+) (\S+) got=(\S+) unit=(\d+) bytes=([\d,]+) saves=([\d,]+) locked=(\S+)",
                         res.stdout):
        probes.append(Probe(m.group(1), m.group(2).replace(":", "/"), m.group(3), int(m.group(4)),
                            [int(x) for x in m.group(5).split(",")], [int(x) for x in m.group(6).split(",")],
                            m.group(7)))
    traces = res.stdout.split("TRACE ")[1:]
    peak = re.search(r"PEAK (\d+)", res.stdout)
    if peak is None:
        raise RuntimeError("no PEAK line: %s" % res.stdout)
    return probes, int(peak.group(1)), [t.split("PROBE")[0].strip() for t in traces]


if __name__ == "__main__":
    probes, peak, traces = run(sys.argv[1])
    for p in probes:
        print(p)
    for t in traces:
        print(t)
    print("peak live heap %.1f KB" % (peak / 1024))
