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

from .schemas import command_stem, validator

MAX_PAYLOAD_BYTES = 4096
ENVELOPE_KEYS = ("request_id", "schema")
_RANGE_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")

# set_limits: for each limit, the direction that tightens it. dvl (discharge
# voltage floor) may only go up; cvl (charge voltage ceiling) and ccl/dcl (current
# magnitudes) may only go down.
_TIGHTEN_UP = ("dvl_mv",)
_TIGHTEN_DOWN = tuple(key for key in LIMIT_KEYS if key not in _TIGHTEN_UP)


class Command:
    __slots__ = ("name", "args", "request_id", "response_topic", "correlation_data")

    def __init__(self, name: str, args: dict, request_id: object = None,
                 response_topic: str | None = None, correlation_data: bytes | None = None) -> None:
        self.name = name
        self.args = args
        self.request_id = request_id
        self.response_topic = response_topic
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
    if isinstance(rid, str) and 0 < len(rid) <= 128:
        return rid
    if type(rid) is int:
        return rid
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
            doc = json.loads(payload.decode("utf-8"), parse_constant=_no_constants,
                             object_pairs_hook=_no_duplicates)
        except UnicodeDecodeError as exc:
            return Rejection(name, "BAD_JSON", "payload is not UTF-8: %s" % exc)
        except (_BadJson, ValueError) as exc:
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
        code = "OUT_OF_RANGE" if first.validator in _RANGE_KEYWORDS else "BAD_ARGS"
        if first.validator == "anyOf" and not first.path:
            message = "payload: give at least one of " + ", ".join(LIMIT_KEYS)
        else:
            message = "%s: %s" % (where, first.message)
        return Rejection(name, code, message, request_id)
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
