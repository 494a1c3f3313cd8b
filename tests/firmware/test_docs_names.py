# The state, substate, fault, event and telemetry names are defined once in
# bmsfw (states.py, telemetry.py) and must be exactly the ones docs/frames.md
# documents. CPython only (reads the docs tree, which is not staged for the
# MicroPython run): the pytest import marks it so for tests/mp/runner.py.
# Run: .venv/bin/python -m pytest tests/firmware/test_docs_names.py -q
import os
import re

import pytest

from bmsfw import states
from bmsfw import commands
from bmsfw.commands import COMMANDS
from bmsfw.telemetry import EVENT_FIELDS, TELEMETRY_KEYS

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs")


def _read(name):
    path = os.path.join(DOCS, name)
    if not os.path.exists(path):
        pytest.fail("missing " + path)
    with open(path, encoding="utf-8") as f:
        return f.read()


def _row(text, key):
    """The docs table row whose first cell names `key` (in backticks)."""
    for line in text.splitlines():
        if line.startswith("| `" + key + "`"):
            return line
    pytest.fail("no row for %s" % key)


def test_every_telemetry_key_is_documented_and_no_more():
    text = _read("frames.md")
    section = text.split("## Telemetry frame")[1].split("## Event frame")[0]
    documented = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            documented.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    assert documented == set(TELEMETRY_KEYS)


def test_states_substates_and_faults_match_the_frame_doc():
    text = _read("frames.md")
    assert set(re.findall(r"`([A-Z_]+)`", _row(text, "state"))) == set(states.STATES)
    assert set(re.findall(r"`([A-Z_]+)`", _row(text, "substate"))) == set(states.SUBSTATES[1:])
    assert set(re.findall(r"`([A-Z_]+)`", _row(text, "faults"))) == set(states.FAULTS)


def test_event_kinds_and_commands_match_the_frame_doc():
    text = _read("frames.md")
    assert set(re.findall(r"`([A-Z_]+)`", _row(text, "event"))) == set(states.EVENT_KINDS)
    section = text.split("## Commands")[1]
    names = set()
    for line in section.splitlines():
        cells = line.split("|")
        if line.startswith("| `") and len(cells) == 6:        # the command table
            names.update(re.findall(r"`([a-z_/]+)`", cells[1]))
    assert names == set(COMMANDS)


def test_firmware_doc_names_every_state_and_fault():
    text = _read("firmware.md")
    for name in states.STATES + states.FAULTS + states.SUBSTATES[1:]:
        assert "`" + name + "`" in text, name


def test_each_event_kind_s_keys_match_the_frame_doc():
    section = _read("frames.md").split("Event-specific keys")[1].split("## ")[0]
    for kind in states.EVENT_KINDS:
        cells = _row(section, kind).split("|")
        # the keys are listed before the first full stop; parentheses are remarks
        documented = re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cells[2]).split(". ")[0])
        own = [k for k in EVENT_FIELDS[kind] if k not in ("from", "to", "fault")]
        assert documented == own, (kind, documented, own)


def test_the_states_each_command_is_allowed_in_match_the_frame_doc():
    section = _read("frames.md").split("## Commands")[1]
    for name, allowed in commands.TABLE:
        cells = _row(section, name).split("|")
        documented = set(re.findall(r"\b([A-Z]{4,})\b", cells[3]))
        if allowed is None:
            assert "any state" in cells[3], name
        else:
            assert documented == set(allowed), (name, documented)
