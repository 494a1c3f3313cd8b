"""Load the JSON Schemas in mqtt_bridge/schemas/ (draft 2020-12).

The command schemas are enforced at run time by the bridge; the payload schemas
document what the bridge publishes and are checked by the tests against real
published messages. Integers are strict here: JSON Schema counts 5.0 as an
integer and Python counts True as one; a BMS setpoint must be neither.
"""

import json
import os
from functools import lru_cache

from jsonschema import Draft202012Validator, validators

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")

# Payload kind -> file stem. Commands are "cmd_<name with / as _>".
PAYLOAD_KINDS = ("state", "limits", "telemetry", "event", "reply", "ha_sensor_config")


def _is_strict_int(_checker: object, value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_STRICT_TYPES = Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_strict_int)
StrictValidator = validators.extend(Draft202012Validator, type_checker=_STRICT_TYPES)


def command_stem(name: str) -> str:
    return "cmd_" + name.replace("/", "_")


@lru_cache(maxsize=None)
def load_schema(stem: str) -> dict:
    path = os.path.join(SCHEMA_DIR, stem + ".json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@lru_cache(maxsize=None)
def validator(stem: str) -> Draft202012Validator:
    """A compiled, strict-integer validator for one schema file."""
    return StrictValidator(load_schema(stem))
