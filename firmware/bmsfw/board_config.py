# Board configuration: pin map, bus addresses and the few board-level choices
# main.py makes. One value per line, each with a comment saying what it is and
# why it has that value. Edit this file (not board_hal.py) for another board.
#
# Reference board: Raspberry Pi Pico (RP2040) on the "bench-ua" analog front
# end of docs/hal.md, with an ADS1115 for VCELL/TCELL, an INA226 across the
# current shunt and a PWM-driven current source. See docs/board.md.

# --- which HAL main.py builds ------------------------------------------------
HAL_KIND = "board"  # "board": BoardHal on this MCU; "link": bmsfw.link_hal (HIL against the twin)

# --- identity and USB output ---------------------------------------------
DEVICE_ID = None  # None: "bms-" + machine.unique_id() in hex; set a string to override
TELEMETRY_EVERY_TICKS = 1  # print a telemetry JSON line over USB every N ticks (Config.tick_ms = 1 s)
MAINTENANCE_PIN = 22  # GP22 jumpered to GND at power-up: main.py stays in the REPL (no WDT); None disables

# --- I2C bus shared by the ADS1115 and the INA226 ----------------------------
I2C_ID = 0  # RP2040 I2C0
I2C_SDA_PIN = 4  # GP4 = I2C0 SDA (Pico pin 6)
I2C_SCL_PIN = 5  # GP5 = I2C0 SCL (Pico pin 7)
I2C_FREQ_HZ = 400_000  # fast mode: both chips support 400 kHz; one read takes ~0.1 ms

# --- ADS1115 16-bit ADC: VCELL and TCELL -------------------------------------
ADS1115_ADDR = 0x48  # ADDR pin tied to GND (datasheet SBAS444 table 4)
ADS1115_VCELL_AIN = 0  # AIN0 <- cell-voltage unity buffer
ADS1115_TCELL_AIN = 1  # AIN1 <- NTC divider (10 k pull-up to the 4.096 V reference)
ADS1115_DR_CODE = 0b111  # 860 SPS: a single-shot conversion takes ~1.2 ms, keeps the tick short
ADS1115_TIMEOUT_MS = 5  # a conversion not done in 5 ms (4x the nominal 1.2 ms) is a sensor fault

# --- INA226 current monitor across the shunt: ISHUNT ------------------------
INA226_ADDR = 0x40  # A0 = A1 = GND (datasheet SBOS547 table 2)
SHUNT_MOHM = 39_000  # 39 ohm, 0.1 %: +-2048 uA gives +-79.9 mV, inside the INA226 +-81.92 mV range
INA226_CONFIG = 0x4525  # 0x4000 reserved | AVG=16 (010) | VBUSCT=VSHCT=1.1 ms (100) | MODE=shunt continuous (101), SBOS547 7.6.1; 17.6 ms per result, far inside a tick

# --- current source setpoint (PWM into a 3rd-order RC filter + Howland pump) -
# Its range is Config.source_max_ua (duty 0 = -2048 uA, 32768 = 0, 65535 = +2047.94 uA).
SETPOINT_PWM_PIN = 15  # GP15, PWM slice 7 channel B
SETPOINT_PWM_FREQ_HZ = 1_900  # <= 125 MHz / 65536: integer divider 1 keeps the full 16-bit duty resolution

# --- relay ---------------------------------------------------------------------
RELAY_PIN = 16  # GP16 -> gate of the MOSFET driving the relay coil
RELAY_ACTIVE_HIGH = True  # pin high closes the (normally open) relay

# --- watchdog and persistent record ----------------------------------------
WDT_TIMEOUT_MS = 2_000  # two 1 s ticks (Config.tick_ms) without a feed reset the board; RP2040 max is 8388 ms; once started it cannot be stopped
RECORD_DIR = "/"  # littlefs root on the Pico's flash; record.bin / record.old / record.new live here

# --- link HAL (only used when HAL_KIND == "link") ---------------------------
LINK_UART_ID = 0  # UART0
LINK_TX_PIN = 0  # GP0 = UART0 TX
LINK_RX_PIN = 1  # GP1 = UART0 RX
LINK_BAUD = 115_200  # framed protocol to the twin on the PC (docs/hil.md)
LINK_WATCHDOG_MS = 8_000  # link HAL: the watchdog resets the board if serve() ever stalls this long
