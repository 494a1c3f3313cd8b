"""The bridge speaks the firmware's names, written once in bmsfw: states and event
kinds (states.py), command names, limit keys and bounds (commands.py), telemetry
fields (telemetry.py). mqtt_bridge imports them; its JSON schemas and
docs/mqtt.md spell them out and are checked against them here, as are the names
the bridge derives from them. A name changed on one side only fails a test here.
No broker needed. Run: .venv/bin/python -m pytest tests/mqtt_bridge/test_mqtt_names.py -q
"""

import ast
import os
import re

from bmsfw import states
from bmsfw.commands import COMMANDS, LIMIT_KEYS, MAX_DURATION_S
from bmsfw.telemetry import EVENT_KEYS, TELEMETRY_KEYS, Telemetry
from mqtt_bridge import commands, payloads
from mqtt_bridge.commands import Rejection, check_command
from mqtt_bridge.discovery import discovery_configs
from mqtt_bridge.numbering import RUN_ID_PATTERN, new_run_id
from mqtt_bridge.schemas import SCHEMA_DIR, command_stem, load_schema

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PACKAGE = os.path.join(ROOT, "mqtt_bridge")
ENVELOPE = payloads.ENVELOPE_FIELDS      # the bridge's own fields in every payload
CMD_ENVELOPE = ("schema", "request_id")  # the fields any command may carry
NAME = re.compile(r"\b[A-Z][A-Z0-9_]+\b")


def _figures(kind: str) -> list:
    """The payload fields of a schema that are not envelope."""
    return [k for k in load_schema(kind)["properties"] if k not in ENVELOPE]


def _firmware_frame() -> dict:
    """The firmware's telemetry frame, typed as its constructor makes it (the
    controller refreshes this same dict in place every tick)."""
    return Telemetry("names-0001", 720_000_000).frame


# ------------------------------------------------------------------ commands

def test_one_command_schema_per_firmware_command_and_no_other():
    files = {f[:-len(".json")] for f in os.listdir(SCHEMA_DIR) if f.startswith("cmd_") and f.endswith(".json")}
    assert files == {command_stem(name) for name in COMMANDS}
    for name in COMMANDS:
        assert ("/cmd/%s " % name) in load_schema(command_stem(name))["title"], name


def test_the_bridge_takes_exactly_the_firmware_commands():
    for name in COMMANDS:
        result = check_command(name, b"", None)
        assert not (isinstance(result, Rejection) and result.code == "UNKNOWN_COMMAND"), name
    unknown = check_command("no_such_command", b"", None)
    assert unknown.message == "known commands: " + ", ".join(COMMANDS)


def test_command_schemas_bound_durations_as_the_firmware_does():
    bounded = [name for name in COMMANDS if "duration_s" in load_schema(command_stem(name))["properties"]]
    assert bounded    # charge and discharge take one
    for name in bounded:
        assert load_schema(command_stem(name))["properties"]["duration_s"]["maximum"] == MAX_DURATION_S, name


def test_set_limits_names_the_firmware_limit_keys_in_schema_checks_and_payload():
    schema = load_schema("cmd_set_limits")
    assert [k for k in schema["properties"] if k not in CMD_ENVELOPE] == list(LIMIT_KEYS)
    assert [alt["required"] for alt in schema["anyOf"]] == [[key] for key in LIMIT_KEYS]
    # every limit has one tightening direction, and nothing else has one
    assert sorted(commands._TIGHTEN_UP + commands._TIGHTEN_DOWN) == sorted(LIMIT_KEYS)
    assert not set(commands._TIGHTEN_UP) & set(commands._TIGHTEN_DOWN)
    missing = check_command("set_limits", b"{}", None)
    assert missing.message == "payload: give at least one of " + ", ".join(LIMIT_KEYS)
    assert _figures("limits") == ["t_ms", *LIMIT_KEYS]


def test_every_command_schema_takes_the_same_request_id():
    """commands.py echoes a request_id by the first command's schema; the others must agree."""
    first = load_schema(command_stem(COMMANDS[0]))["properties"]["request_id"]
    for name in COMMANDS:
        assert load_schema(command_stem(name))["properties"]["request_id"] == first, name
    assert first["maximum"] == 2 ** 53 - 1 == -first["minimum"]


# -------------------------------------------------------------------- states

def test_state_enums_are_the_firmware_states():
    for kind in ("state", "telemetry"):
        assert load_schema(kind)["properties"]["state"]["enum"] == list(states.STATES), kind
        described = set(NAME.findall(load_schema(kind)["properties"]["substate"].get("description", "")))
        assert described - set(states.STATES) <= set(states.SUBSTATES), kind
    assert set(NAME.findall(load_schema("state")["properties"]["substate"]["description"])) - set(states.STATES) \
        == set(states.SUBSTATES[1:])
    options = [c["options"] for _topic, c in discovery_configs("names-0001") if c.get("device_class") == "enum"]
    assert options == [list(states.STATES)]


def test_event_schema_names_the_firmware_event_kinds_and_fields():
    schema = load_schema("event")
    assert set(NAME.findall(schema["properties"]["event"]["description"])) == set(states.EVENT_KINDS)
    state_rule, fault_rule = schema["allOf"]
    assert state_rule["if"]["properties"]["event"]["const"] == states.EV_STATE
    assert fault_rule["if"]["properties"]["event"]["enum"] == [states.EV_FAULT, states.EV_FAULT_CLEARED]
    published = set(EVENT_KEYS) - {"kind"}      # the bridge drops kind: the topic says it
    assert published <= set(schema["properties"])
    assert set(schema["required"]) - set(ENVELOPE) <= published


def test_docs_name_the_firmware_states_and_commands():
    with open(os.path.join(ROOT, "docs", "mqtt.md"), encoding="utf-8") as f:
        text = f.read()
    listed = re.search(r"`state` ∈ `([A-Z ]+)`", text)
    assert listed is not None and listed.group(1).split() == list(states.STATES)
    table = text.split("## 4. Commands")[1].split("Checks, in order")[0]
    documented = []
    for line in table.splitlines():
        if line.startswith("| `"):
            documented += re.findall(r"`([a-z_/]+)`", line.split("|")[1])
    assert documented == list(COMMANDS)


# ---------------------------------------------------------- telemetry fields

def test_payload_figures_are_firmware_telemetry_fields():
    own_counts = ("dropped", "events_lost")      # the bridge's own counts (telemetry ring, numbering)
    for kind in ("state", "limits", "telemetry"):
        figures = [k for k in _figures(kind) if k not in own_counts]
        assert set(figures) <= set(TELEMETRY_KEYS), (kind, set(figures) - set(TELEMETRY_KEYS))
    state_ints = [k for k in _figures("state") if load_schema("state")["properties"][k].get("type") == "integer"]
    assert state_ints == ["t_ms", *payloads.STATE_INT_FIELDS, "events_lost"]


def test_every_payload_carries_the_envelope_and_the_run_id_it_documents():
    for kind in ("state", "limits", "telemetry", "event", "reply"):
        schema = load_schema(kind)
        assert list(schema["properties"])[:len(ENVELOPE)] == list(ENVELOPE), kind
        assert schema["required"][:len(ENVELOPE)] == list(ENVELOPE), kind
        assert schema["properties"]["run"]["pattern"] == RUN_ID_PATTERN, kind
    assert re.match(RUN_ID_PATTERN, new_run_id())
    reply = payloads.reply_payload("names-0001", "stop", True, "OK", run=new_run_id())
    assert list(reply)[:len(ENVELOPE)] == list(ENVELOPE)


def test_the_bridge_reads_a_firmware_frame_by_its_field_types():
    frame = _firmware_frame()
    assert tuple(frame) == TELEMETRY_KEYS
    payloads.check_telemetry_frame(frame)       # raises FrameError on a field of the wrong type
    assert payloads.TELEMETRY_FRAME_INTS == tuple(k for k in TELEMETRY_KEYS if type(frame[k]) is int)
    assert set(payloads.TELEMETRY_FRAME_NON_INTS) <= set(TELEMETRY_KEYS)
    device_id = frame["device"]
    for kind, payload in (("state", payloads.state_payload(frame, device_id)),
                          ("limits", payloads.limits_payload(frame, device_id)),
                          ("telemetry", payloads.telemetry_payload(frame, device_id))):
        assert set(payload) == set(load_schema(kind)["properties"]), kind


# ------------------------------------------------------------ no local copies

def _name_tables(path: str):
    """Every tuple, list or set literal of two or more strings in a source file."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2 \
                and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            yield node.lineno, {e.value for e in node.elts}


def test_mqtt_bridge_keeps_no_copy_of_a_firmware_name_table():
    groups = {"states": states.STATES, "substates": states.SUBSTATES[1:], "faults": states.FAULTS,
              "event kinds": states.EVENT_KINDS, "commands": COMMANDS, "limit keys": LIMIT_KEYS}
    copies = []
    for name in sorted(os.listdir(PACKAGE)):
        if not name.endswith(".py"):
            continue
        for line, values in _name_tables(os.path.join(PACKAGE, name)):
            for group, names in groups.items():
                if values <= set(names):
                    copies.append("mqtt_bridge/%s:%d copies bmsfw's %s" % (name, line, group))
    assert not copies


# ------------------------------------------------------------ reply codes, reply topics

def _bridge_codes() -> set:
    """Every code the bridge refuses with: the string literals of each Rejection(...)'s code argument."""
    codes = set()
    for name in sorted(os.listdir(PACKAGE)):
        if name.endswith(".py"):
            with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Rejection":
                    found = [n.value for n in ast.walk(node.args[1]) if isinstance(n, ast.Constant)
                             and isinstance(n.value, str)]
                    assert found, "%s: a Rejection whose code is not written in the call" % name
                    codes.update(found)
    return codes


def _docs_section(title: str, until: str) -> str:
    with open(os.path.join(ROOT, "docs", "mqtt.md"), encoding="utf-8") as f:
        return f.read().split(title, 1)[1].split(until, 1)[0]


def test_the_bridges_reply_codes_are_the_ones_schema_and_docs_list():
    codes = _bridge_codes()
    assert {"BAD_RESPONSE_TOPIC", "BAD_CORRELATION_DATA", "RETAINED_IGNORED", "BUSY"} <= codes
    described = load_schema("reply")["properties"]["code"]["description"]
    listed = described.split("error code:", 1)[1].split(", or a controller code", 1)[0]
    assert [c.strip() for c in listed.split(",")] and {c.strip() for c in listed.split(",")} == codes
    table = _docs_section("Checks, in order", "A command that passes")
    assert set(re.findall(r"^\| `([A-Z_]+)` \|", table, re.M)) == codes


def test_every_firmware_command_can_be_answered_and_the_docs_give_the_reply_limits():
    from mqtt_bridge.intake import BLIND_COMMANDS_PER_DRAIN
    from mqtt_bridge.reply_to import MAX_CORRELATION_BYTES, MAX_LEVEL_CHARS, MAX_SUFFIX_LEVELS, own_reply_topic
    from mqtt_bridge.topics import Topics

    topics = Topics("names-0001")
    assert [name for name in COMMANDS if own_reply_topic(topics, name) != topics.reply(name)] == []
    where = _docs_section("### Where replies go", "### Retained commands")
    assert "1 to %d levels" % MAX_SUFFIX_LEVELS in where and "at most %d characters" % MAX_LEVEL_CHARS in where
    assert "longer than %d bytes" % MAX_CORRELATION_BYTES in _docs_section("Checks, in order", "A command that")
    assert "`BLIND_COMMANDS_PER_DRAIN` (%d)" % BLIND_COMMANDS_PER_DRAIN in _docs_section("### Floods", "## 5.")
