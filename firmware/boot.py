# boot.py: runs once at power-up, before main.py. Deliberately empty of logic:
# everything that can fail (buses, sensors, the watchdog) is set up in main.py,
# where an error prints a traceback and leaves the USB REPL reachable for
# mpremote (docs/board.md). Put only USB/REPL settings here, if a board needs any.
