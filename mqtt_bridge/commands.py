"""Checking incoming commands before they may reach the controller.

Runs on paho's network thread, so it is pure: it parses and judges a payload and
returns either a Command (to be queued for the controller's own thread) or a
Rejection (answered at once). A rejected command never reaches the controller.

Order of checks, each with its own reply code:
  size (PAYLOAD_TOO_LARGE) -> name (UNKNOWN_COMMAND) -> UTF-8 + JSON object, no
  NaN/Infinity, no duplicate keys (BAD_JSON) -> schema types/keys (BAD_ARGS) ->
  ranges (OUT_OF_RANGE) -> set_limits only tightens (WOULD_LOOSEN_LIMITS).
"""

import json

from bmsfw.commands import COMMANDS, LIMIT_KEYS

from .schemas import command_stem, load_schema, validator

MAX_PAYLOAD_BYTES = 4096
ENVELOPE_KEYS = ("request_id", "schema")
_RANGE_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
# The request_id every command schema allows (the same in each; tests/mqtt_bridge/test_mqtt_names.py):
# echoed even in the reply to a command refused for something else, if it is one of these.
_REQUEST_ID = load_schema(command_stem(COMMANDS[0]))["properties"]["request_id"]

# set_limits: for each limit, the direction that tightens it. dvl (discharge
# voltage floor) may only go up; cvl (charge voltage ceiling) and ccl/dcl (current
# magnitudes) may only go down.
_TIGHTEN_UP = ("dvl_mv",)
_TIGHTEN_DOWN = tuple(key for key in LIMIT_KEYS if key not in _TIGHTEN_UP)


class Command:
    """A command that passed; ``reply_topic`` and ``correlation_data`` say where its answer goes."""

    __slots__ = ("name", "args", "request_id", "reply_topic", "correlation_data")

    def __init__(self, name: str, args: dict, request_id: object = None,
                 reply_topic: str | None = None, correlation_data: bytes | None = None) -> None:
        self.name = name
        self.args = args
        self.request_id = request_id
        self.reply_topic = reply_topic
        self.correlation_data = correlation_data


class Rejection:
    __slots__ = ("name", "code", "message", "request_id")

    def __init__(self, name: str, code: str, message: str, request_id: object = None) -> None:
        self.name = name
        self.code = code
        self.message = message
        self.request_id = request_id


class _BadJson(ValueError):
    pass


def _no_constants(token: str) -> float:
    raise _BadJson("%s is not valid JSON" % token)


def _no_duplicates(pairs: list) -> dict:
    result = {}
    for key, value in pairs:
        if key in result:
            raise _BadJson("duplicate key %r" % key)
        result[key] = value
    return result


def _request_id_of(doc: object) -> object:
    """Echo a request_id even on a rejected command, if it is a sane one."""
    if not isinstance(doc, dict):
        return None
    rid = doc.get("request_id")
    if isinstance(rid, str) and _REQUEST_ID["minLength"] <= len(rid) <= _REQUEST_ID["maxLength"]:
        return rid
    if type(rid) is int and _REQUEST_ID["minimum"] <= rid <= _REQUEST_ID["maximum"]:
        return rid
    return None


def _parse(payload: bytes) -> object:
    """The payload as JSON; raises _BadJson (with the reason) for anything else."""
    try:
        return json.loads(payload.decode("utf-8"), parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        raise _BadJson("payload is not UTF-8: %s" % exc) from None
    except RecursionError:
        # A few thousand nested brackets fit in the size limit and exceed Python's recursion.
        raise _BadJson("payload nests too deeply") from None
    except ValueError as exc:     # _BadJson is one
        raise _BadJson(str(exc)) from None


def request_id_in(payload: bytes) -> object:
    """The request_id of a command refused before its payload was judged (retained, bad properties)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        return _request_id_of(_parse(payload))
    except _BadJson:
        return None


def check_command(name: str, payload: bytes, limits: dict | None = None) -> "Command | Rejection":
    """Judge one command. ``limits`` are the controller's present limits (or None)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Rejection(name, "PAYLOAD_TOO_LARGE", "payload is %d bytes, limit %d" % (len(payload), MAX_PAYLOAD_BYTES))
    if name not in COMMANDS:
        return Rejection(name, "UNKNOWN_COMMAND", "known commands: %s" % ", ".join(COMMANDS))
    if payload.strip() == b"":
        doc = {}  # an empty payload (mosquitto_pub -n, an HA button) means "no arguments"
    else:
        try:
            doc = _parse(payload)
        except _BadJson as exc:
            return Rejection(name, "BAD_JSON", str(exc))
    request_id = _request_id_of(doc)
    if not isinstance(doc, dict):
        return Rejection(name, "BAD_JSON", "payload must be a JSON object, got %s" % type(doc).__name__, request_id)
    errors = list(validator(command_stem(name)).iter_errors(doc))
    if errors:
        # Report a type/shape error before a range error: a wrong type makes the range moot.
        errors.sort(key=lambda e: (e.validator in _RANGE_KEYWORDS, list(e.path)))
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "payload"
        if first.validator == "anyOf" and not first.path:
            message = "payload: give at least one of " + ", ".join(LIMIT_KEYS)
        else:
            message = "%s: %s" % (where, first.message)
        return Rejection(name, "OUT_OF_RANGE" if first.validator in _RANGE_KEYWORDS else "BAD_ARGS", message,
                         request_id)
    args = {k: v for k, v in doc.items() if k not in ENVELOPE_KEYS}
    if name == "set_limits" and limits:
        for key, value in args.items():
            present = limits.get(key)
            if present is None:
                continue
            if (key in _TIGHTEN_DOWN and value > present) or (key in _TIGHTEN_UP and value < present):
                return Rejection(name, "WOULD_LOOSEN_LIMITS",
                                 "%s=%d would loosen the present limit %d" % (key, value, present), request_id)
    return Command(name, args, request_id)
