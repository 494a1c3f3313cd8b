# Operator commands: their names, the states they are allowed in, argument
# bounds and validation (docs/frames.md, "Commands"). The MQTT bridge and the
# HIL link take the names from here.
#
# check() judges a command in the order the docs give: name, argument types,
# ranges, state, limits. The controller applies what it accepted (and refuses
# what only it can judge: formation blocked by the cold or a fault, a fault
# whose cause is still measured). A refused command changes nothing: nothing
# here does.
from . import limits
from .states import FAULT, FORMING, READY, SAFE, SHIPPED

TABLE = (
    # name, states it is allowed in (None: any)
    ("formation/start", (SHIPPED, SAFE)),
    ("charge", (READY,)),
    ("discharge", (READY,)),
    ("rest", (READY, SAFE)),
    ("stop", (SHIPPED, FORMING, READY)),
    ("reset_fault", (FAULT,)),
    ("set_limits", None),
)
COMMANDS = tuple(row[0] for row in TABLE)
LIMIT_KEYS = ("cvl_mv", "dvl_mv", "ccl_ua", "dcl_ua")
MAX_DURATION_S = 1000000        # ~11.6 days: duration in ms stays below the 2**29 ticks horizon

_CURRENT_KEYS = ("current_ua", "duration_s")


def is_int(value):
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def check(name, args, state, config, out):
    """"OK", or why the command `name` with `args` (a dict, or None for
    none) is refused in `state`: UNKNOWN_COMMAND, BAD_ARGS, OUT_OF_RANGE,
    FAULT_ACTIVE, NOT_ALLOWED_IN_STATE or WOULD_LOOSEN_LIMITS. `out`: the
    controller's limits and outputs (bmsfw.outputs.Outputs), which
    set_limits may only tighten."""
    found = None
    for row in TABLE:
        if row[0] == name:
            found = row
    if found is None:
        return "UNKNOWN_COMMAND"
    allowed = found[1]                  # None: any state
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return "BAD_ARGS"
    if name == "charge" or name == "discharge":
        code = _check_current(args, config)
    elif name == "set_limits":
        code = "OK" if args else "BAD_ARGS"
        for key in args:
            if key not in LIMIT_KEYS or not is_int(args[key]):
                code = "BAD_ARGS"
    else:
        code = "BAD_ARGS" if args else "OK"
    if code == "OK" and allowed is not None:
        code = state_code(state, allowed)
    if code == "OK" and name == "set_limits":
        code = _check_limits(args, config, out)
    return code


def request_error(current_ua, source_max_ua):
    """Why `current_ua` is not a duty request (Controller.request_current_ua),
    or "" if it is one."""
    if not is_int(current_ua):
        return "must be an int"
    if current_ua > source_max_ua or current_ua < -source_max_ua:
        return "beyond ±%d uA" % source_max_ua
    return ""


def _check_current(args, config):
    for key in args:
        if key not in _CURRENT_KEYS:
            return "BAD_ARGS"
    ua = args.get("current_ua")
    if not is_int(ua):
        return "BAD_ARGS"
    duration = args.get("duration_s")
    if duration is not None and not is_int(duration):
        return "BAD_ARGS"
    if ua <= 0 or ua > config.source_max_ua:
        return "OUT_OF_RANGE"
    if duration is not None and (duration <= 0 or duration > MAX_DURATION_S):
        return "OUT_OF_RANGE"
    return "OK"


def _check_limits(args, config, out):
    c = config
    cvl = args.get("cvl_mv", out.cvl_mv if out.user_cvl_mv < 0 else out.user_cvl_mv)
    dvl = args.get("dvl_mv", out.dvl_mv if out.user_dvl_mv < 0 else out.user_dvl_mv)
    for key in ("cvl_mv", "dvl_mv"):
        if key in args and not c.discharge_cutoff_mv <= args[key] <= c.charge_cutoff_mv:
            return "OUT_OF_RANGE"
    for key in ("ccl_ua", "dcl_ua"):
        if key in args and not 0 <= args[key] <= c.source_max_ua:
            return "OUT_OF_RANGE"
    if dvl >= cvl:
        return "OUT_OF_RANGE"
    if "cvl_mv" in args and args["cvl_mv"] > limits.cvl_mv(c.charge_cutoff_mv, out.user_cvl_mv):
        return "WOULD_LOOSEN_LIMITS"
    if "dvl_mv" in args and args["dvl_mv"] < limits.dvl_mv(c.discharge_cutoff_mv, out.user_dvl_mv):
        return "WOULD_LOOSEN_LIMITS"
    if "ccl_ua" in args and out.user_ccl_ua >= 0 and args["ccl_ua"] > out.user_ccl_ua:
        return "WOULD_LOOSEN_LIMITS"
    if "dcl_ua" in args and out.user_dcl_ua >= 0 and args["dcl_ua"] > out.user_dcl_ua:
        return "WOULD_LOOSEN_LIMITS"
    return "OK"


def state_code(state, allowed):
    """"OK" if a command may run in `state` (one of `allowed`), else
    FAULT_ACTIVE in FAULT and NOT_ALLOWED_IN_STATE elsewhere."""
    if state in allowed:
        return "OK"
    if state == FAULT:
        return "FAULT_ACTIVE"
    return "NOT_ALLOWED_IN_STATE"
