# Operator commands: their names and argument bounds (docs/frames.md,
# "Commands"). The MQTT bridge and the HIL link take these names from here.

COMMANDS = ("formation/start", "charge", "discharge", "rest", "stop", "reset_fault", "set_limits")
LIMIT_KEYS = ("cvl_mv", "dvl_mv", "ccl_ua", "dcl_ua")
MAX_DURATION_S = 1000000        # ~11.6 days: duration in ms stays below the 2**29 ticks horizon
