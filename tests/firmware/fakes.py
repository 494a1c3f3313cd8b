# Fakes for the firmware unit tests: a HAL that produces ADC counts exactly as
# the reference front end of docs/hal.md would (so calibration is exercised), a
# settable clock, and a very small cell. Plain Python that also runs under
# MicroPython (no pytest-only features): see tests/firmware/test_*.py.
import math

from bmsfw import protections
from bmsfw.hal import ISHUNT, TCELL, VCELL, Hal

UAS_PER_UAH = 3600000
BITS = 16
VREF_MV = 4096
FULL = (1 << BITS) - 1


def raises(exc_type, fn, *args, **kwargs):
    """Call fn; return the exception if it raised exc_type, else fail."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


def pin_counts(pin_mv):
    """Counts of the 16-bit, 4096 mV ADC for a pin voltage (rounded, clamped)."""
    counts = int(math.floor(pin_mv * (1 << BITS) / VREF_MV + 0.5))
    return 0 if counts < 0 else FULL if counts > FULL else counts


def ntc_pin_mv(temp_c, r25=10000.0, beta=3950.0, pullup=10000.0):
    r = r25 * math.exp(beta * (1.0 / (temp_c + 273.15) - 1.0 / 298.15))
    return VREF_MV * r / (r + pullup)


class FakeCell:
    """A caricature of the Li-S precursor cell, enough for state tests.

    li_uas: free lithium on the negative (µA·ms). Until cover_uas is plated the
    cell reads the precursor voltage (copper vs polysulfide); then the Li-S
    plateau, rising a little as the catholyte is oxidised, plus I*R. With
    plates=False (the seed's control cell without LiPON) charge goes in but no
    lithium stays. voltage_fn(cell, current_ua) overrides everything."""

    def __init__(self, li_uas=0, plates=True):
        self.li_uas = li_uas
        self.plates = plates
        self.cover_uas = UAS_PER_UAH          # 1 µAh covers the copper
        self.precursor_mv = 150
        self.plateau_mv = 2250
        self.target_uas = 200 * UAS_PER_UAH
        self.r_ohm = 500
        self.voltage_fn = None

    def ocv_mv(self):
        if self.li_uas < self.cover_uas:
            return self.precursor_mv
        return self.plateau_mv + 200 * self.li_uas // self.target_uas

    def voltage_mv(self, current_ua):
        if self.voltage_fn is not None:
            return self.voltage_fn(self, current_ua)
        return self.ocv_mv() + current_ua * self.r_ohm // 1000

    def flow(self, current_ua, dt_ms):
        if current_ua > 0 and not self.plates:
            return
        self.li_uas += current_ua * dt_ms


class FakeHal(Hal):
    def __init__(self, cell=None, temp_c=25.0, t_ms=0, record=None):
        self.cell = cell if cell is not None else FakeCell()
        self.temp_c = temp_c
        self.t_ms = t_ms
        self.record = record
        self.setpoint_ua = 0
        self.relay = False
        self.saves = 0
        self.feeds = 0
        self.ntc_open = False
        self.ntc_short = False
        self.cell_present = True
        self.current_offset_ua = 0      # a shunt offset the firmware cannot see
        self.current_gain = 1.0         # measured = gain * actual
        self.vcell_override_mv = None
        self.stuck = {}                 # channel -> counts (an ADC channel stuck)
        self.set_calls = 0

    # --- the HAL contract --------------------------------------------------------
    def adc_bits(self):
        return BITS

    def adc_vref_mv(self):
        return VREF_MV

    def actual_current_ua(self):
        if not self.relay or not self.cell_present:
            return 0
        return self.setpoint_ua

    def adc_read(self, channel):
        if channel in self.stuck:
            return self.stuck[channel]
        if channel == VCELL:
            if self.vcell_override_mv is not None:
                return pin_counts(self.vcell_override_mv)
            if not self.cell_present:
                return FULL
            return pin_counts(self.cell.voltage_mv(self.actual_current_ua()))
        if channel == ISHUNT:
            i = self.actual_current_ua() * self.current_gain + self.current_offset_ua
            return pin_counts(2048 + i * 1.0)
        if channel == TCELL:
            if self.ntc_open:
                return FULL
            if self.ntc_short:
                return 0
            return pin_counts(ntc_pin_mv(self.temp_c))
        raise ValueError("channel %r" % (channel,))

    def set_current_ua(self, current_ua):
        if not isinstance(current_ua, int):
            raise TypeError("set_current_ua wants an int, got %r" % (current_ua,))
        self.setpoint_ua = current_ua
        self.set_calls += 1

    def set_relay(self, closed):
        self.relay = bool(closed)

    def ticks_ms(self):
        return self.t_ms

    def load_record(self):
        return self.record

    def save_record(self, data):
        if not isinstance(data, bytes):
            raise TypeError("save_record wants bytes")
        self.record = data
        self.saves += 1

    def feed_watchdog(self):
        self.feeds += 1

    # --- test helpers ----------------------------------------------------------------
    def step(self, dt_ms):
        """Let dt_ms pass with the present setpoint flowing into the cell."""
        self.cell.flow(self.actual_current_ua(), dt_ms)
        self.t_ms += dt_ms


class IntHal(FakeHal):
    """FakeHal whose ADC counts come from integer arithmetic only (a fixed
    formed-cell voltage and 25 °C), so a loop of ticks on it allocates
    nothing of its own: for the steady-state allocation test."""

    T25_COUNTS = 32768          # NTC = pull-up at 25 °C: mid-scale

    def __init__(self, *args, **kwargs):
        FakeHal.__init__(self, *args, **kwargs)
        self.vcell_counts = self.cell.ocv_mv() * 16     # fixed: the cell rests

    def adc_read(self, channel):
        if channel == VCELL:
            return self.vcell_counts
        if channel == ISHUNT:
            return 32768 + (self.setpoint_ua * 16 if self.relay else 0)
        return self.T25_COUNTS


def d111_units(uas):
    """uas in the charge units of the default (D111) Config's ledger."""
    from bmsfw.config import Config
    return Config().units(uas)


class Measurements(protections.Measurements):
    """What Protections.check() reads (the firmware's own object), with the
    figures of a healthy formed cell resting in READY, settable by hand
    (inventory_uas: converted to the default Config's charge units)."""

    def __init__(self, **kw):
        protections.Measurements.__init__(self, d111_units(5 * UAS_PER_UAH), 5000)
        self.cell_mv = 2300
        self.temp_dc = 250
        self.ccl_ua = 100
        self.dcl_ua = 100
        self.dvl_mv = 2000
        self.inventory_q = d111_units(100 * UAS_PER_UAH)
        self.lithium_present = True
        self.state = "READY"
        for k in kw:
            if k == "inventory_uas":
                self.inventory_q = d111_units(kw[k])
                continue
            if not hasattr(self, k):
                raise AttributeError("Measurements has no field %s" % k)
            setattr(self, k, kw[k])
        if "li_low_eu" not in kw:
            # the estimator's pessimistic lithium: the count, unless a test says otherwise
            from bmsfw.config import Config
            c = Config()
            self.li_low_eu = self.inventory_q * c.charge_unit_uas() // c.est_unit_uas()


def run(ctrl, hal, seconds, dt_ms=1000, until=None):
    """Tick ctrl every dt_ms for `seconds` (or until until(ctrl) is true).
    Returns all events popped, in order."""
    events = []
    n = seconds * 1000 // dt_ms
    for _ in range(n):
        hal.step(dt_ms)
        ctrl.tick()
        for ev in ctrl.pop_events():
            events.append(ev)
        if until is not None and until(ctrl):
            break
    return events


def kinds(events, kind):
    return [e for e in events if e["event"] == kind]


# --- ready-made set-ups ------------------------------------------------------------
def small_config(**overrides):
    """A 20 µAh cell (one tenth of D111) so whole formations take ~20 min of
    simulated time: fast under MicroPython too. Same densities and voltages."""
    from bmsfw.config import Config
    kw = {"target_inventory_uah": 20, "lithium_reserve_uah": 1, "nucleation_uas": 600000,
          "no_plating_uas": 1800000, "save_interval_uas": 180000, "verify_rest_ms": 5000,
          "boot_settle_ms": 1000}
    for k in overrides:
        kw[k] = overrides[k]
    return Config(**kw)


def small_cell(li_uas=0, plates=True):
    cell = FakeCell(li_uas, plates)
    cell.target_uas = 20 * UAS_PER_UAH
    cell.cover_uas = UAS_PER_UAH // 10
    return cell


def record_bytes(state="READY", substate="RESTING", resume_state=None, resume_substate=None,
                 inventory_uas=0, plated_uas=0, flags=None, fault_mask=0, event_seq=0):
    """An encoded persistent record, as a previous run would have left it."""
    from bmsfw import record, states
    rec = record.Record()
    rec.state = states.STATES.index(state)
    rec.substate = states.SUBSTATES.index(substate)
    rs = resume_state if resume_state is not None else state
    rss = resume_substate if resume_substate is not None else substate
    rec.resume_state = states.STATES.index(rs)
    rec.resume_substate = states.SUBSTATES.index(rss)
    if flags is None:
        flags = record.FLAG_PLATEAU_SEEN | record.FLAG_FORMED if rs == "READY" else 0
    rec.flags = flags
    rec.fault_mask = fault_mask
    rec.inventory_uas = inventory_uas
    rec.plated_uas = plated_uas
    rec.event_seq = event_seq
    return rec.encode()


def ready(inventory_pm=500, temp_c=25.0, **overrides):
    """(controller, hal) booted into READY on a small formed cell holding
    inventory_pm per mille of its 20 µAh target."""
    from bmsfw.controller import Controller
    cfg = small_config(**overrides)
    inv = cfg.target_uas() // 1000 * inventory_pm
    hal = FakeHal(cell=small_cell(inv), temp_c=temp_c, record=record_bytes("READY", "RESTING", inventory_uas=inv,
                                                                              plated_uas=cfg.target_uas()))
    ctrl = Controller(hal, cfg, "test-0001")
    run(ctrl, hal, 2)
    if ctrl.state != "READY":
        raise AssertionError("set-up did not reach READY: %s %s" % (ctrl.state, ctrl.faults))
    return ctrl, hal


def shipped(temp_c=25.0, **overrides):
    """(controller, hal) booted on a fresh precursor with auto_form off: SHIPPED."""
    from bmsfw.controller import Controller
    overrides["auto_form"] = overrides.get("auto_form", False)
    hal = FakeHal(cell=small_cell(), temp_c=temp_c)
    ctrl = Controller(hal, small_config(**overrides), "test-0001")
    run(ctrl, hal, 2)
    return ctrl, hal
