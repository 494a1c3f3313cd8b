"""check_command: every refusal has its own code, and a refusal carries no args; and
reply_to.py: which reply topics a command may name. (Pure functions; the end-to-end
paths are in test_mqtt_commands_live.py and test_mqtt_reply_routing.py.)"""

import json

import pytest

from bmsfw.commands import COMMANDS
from mqtt_bridge.commands import MAX_PAYLOAD_BYTES, Command, Rejection, check_command, request_id_in
from mqtt_bridge.reply_to import own_reply_topic, response_topic_error
from mqtt_bridge.topics import Topics
from mqtt_bridge.schemas import command_stem, load_schema

LIMITS = {"cvl_mv": 2800, "dvl_mv": 1800, "ccl_ua": 500, "dcl_ua": 400}


def check(name, doc, limits=LIMITS):
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return check_command(name, raw, limits)


@pytest.mark.parametrize("name, doc, args", [
    ("charge", {"current_ua": 100}, {"current_ua": 100}),
    ("discharge", {"current_ua": 100, "duration_s": 60, "request_id": "r1"}, {"current_ua": 100, "duration_s": 60}),
    ("formation/start", {}, {}),
    ("rest", b"", {}),                      # empty payload = no arguments
    ("stop", {"schema": "bms-cmd/1"}, {}),
    ("reset_fault", {"request_id": 7}, {}),
    ("set_limits", {"cvl_mv": 2700, "dvl_mv": 1900, "ccl_ua": 500, "dcl_ua": 0}, {"cvl_mv": 2700, "dvl_mv": 1900,
                                                                                  "ccl_ua": 500, "dcl_ua": 0}),
])
def test_valid_commands_pass_with_envelope_stripped(name, doc, args):
    result = check(name, doc)
    assert isinstance(result, Command), getattr(result, "message", "")
    assert result.args == args


@pytest.mark.parametrize("name, raw, code, in_message", [
    ("charge", b"{", "BAD_JSON", ""),
    ("charge", b"\xff\xfe", "BAD_JSON", "UTF-8"),
    ("charge", b'{"current_ua": NaN}', "BAD_JSON", "NaN"),
    ("charge", b'{"current_ua": 1, "current_ua": 2}', "BAD_JSON", "duplicate"),
    ("charge", b"[1, 2]", "BAD_JSON", "object"),
    ("charge", b"{}", "BAD_ARGS", "current_ua"),
    ("charge", b'{"current_ua": "100"}', "BAD_ARGS", "current_ua"),
    ("charge", b'{"current_ua": 100.0}', "BAD_ARGS", "current_ua"),     # strict ints: no floats
    ("charge", b'{"current_ua": true}', "BAD_ARGS", "current_ua"),      # and no booleans
    ("charge", b'{"current_ua": 100, "volts": 3}', "BAD_ARGS", "volts"),
    ("charge", b'{"current_ua": 0}', "OUT_OF_RANGE", "current_ua"),
    ("charge", b'{"current_ua": -5}', "OUT_OF_RANGE", "current_ua"),
    ("discharge", b'{"current_ua": 10, "duration_s": 0}', "OUT_OF_RANGE", "duration_s"),
    ("charge", b'{"current_ua": 1000000000}', "OUT_OF_RANGE", "current_ua"),
    ("charge", b'{"current_ua": 1, "duration_s": 1000001}', "OUT_OF_RANGE", "duration_s"),
    ("rest", b'{"current_ua": 1}', "BAD_ARGS", "current_ua"),
    ("set_limits", b"{}", "BAD_ARGS", "at least one"),
    ("set_limits", b'{"cvl_mv": 20000}', "OUT_OF_RANGE", "cvl_mv"),
    ("set_limits", b'{"cvl_mv": 2900}', "WOULD_LOOSEN_LIMITS", "cvl_mv"),
    ("set_limits", b'{"dvl_mv": 1700}', "WOULD_LOOSEN_LIMITS", "dvl_mv"),
    ("set_limits", b'{"ccl_ua": 501}', "WOULD_LOOSEN_LIMITS", "ccl_ua"),
    ("set_limits", b'{"dcl_ua": 401}', "WOULD_LOOSEN_LIMITS", "dcl_ua"),
    ("self_destruct", b"{}", "UNKNOWN_COMMAND", "known commands"),
    ("charge", b'{"request_id": "' + b"x" * 200 + b'", "current_ua": 1}', "BAD_ARGS", "request_id"),
    ("charge", b'{"request_id": 9007199254740992, "current_ua": 1}', "OUT_OF_RANGE", "request_id"),
    ("charge", b'{"request_id": -9007199254740992, "current_ua": 1}', "OUT_OF_RANGE", "request_id"),
    ("charge", b"[" * 2000 + b"]" * 2000, "BAD_JSON", "nests too deeply"),
    ("charge", b'{"current_ua": ' + b"[" * 2000 + b"]" * 2000 + b"}", "BAD_JSON", "nests too deeply"),
])
def test_each_bad_command_gets_its_code(name, raw, code, in_message):
    result = check_command(name, raw, LIMITS)
    assert isinstance(result, Rejection)
    assert result.code == code
    assert in_message in result.message


def test_oversized_payload_is_refused_before_parsing():
    raw = json.dumps({"current_ua": 1, "request_id": "a", "pad": "x" * MAX_PAYLOAD_BYTES}).encode()
    result = check_command("charge", raw, LIMITS)
    assert isinstance(result, Rejection) and result.code == "PAYLOAD_TOO_LARGE"
    ok = json.dumps({"current_ua": 1}).encode().ljust(MAX_PAYLOAD_BYTES)  # exactly at the limit: fine
    assert isinstance(check_command("charge", ok, LIMITS), Command)


def test_rejections_still_echo_a_sane_request_id():
    result = check_command("charge", b'{"current_ua": -1, "request_id": "abc"}', LIMITS)
    assert isinstance(result, Rejection) and result.request_id == "abc"


def test_set_limits_without_known_limits_leaves_the_tightening_check_to_the_controller():
    assert isinstance(check("set_limits", {"cvl_mv": 4000}, limits=None), Command)


def test_every_command_name_has_a_schema_file():
    for name in COMMANDS:
        schema = load_schema(command_stem(name))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["additionalProperties"] is False


def test_rejections_echo_only_a_request_id_every_reader_keeps_exact():
    within = check_command("charge", b'{"current_ua": -1, "request_id": 9007199254740991}', LIMITS)
    beyond = check_command("charge", b'{"current_ua": -1, "request_id": 9007199254740992}', LIMITS)
    huge = check_command("charge", b'{"current_ua": -1, "request_id": ' + b"9" * 4000 + b"}", LIMITS)
    assert (within.request_id, beyond.request_id, huge.request_id) == (2 ** 53 - 1, None, None)


def test_the_request_id_of_a_command_refused_before_its_payload_is_judged():
    assert request_id_in(b'{"request_id": "r-1", "current_ua": 5}') == "r-1"
    assert request_id_in(b'{"request_id": 7}') == 7
    for raw in (b"", b"not json", b"[1]", b"[" * 5000, b'{"request_id": "' + b"x" * 5000 + b'"}', b"\xff"):
        assert request_id_in(raw) is None, raw


@pytest.mark.parametrize("topic, why", [
    ("bms/d-1/cmd/charge/reply", None), ("bms/d-1/cmd/charge/reply/op", None),
    ("bms/d-1/cmd/charge/reply/a/b/c/d", None), ("bms/d-1/cmd/charge/reply/" + "x" * 64, None),
    ("bms/d-1/cmd/charge/reply/a/b/c/d/e", "more than 4 levels"), ("bms/d-1/cmd/charge/reply/" + "x" * 65, "level"),
    ("bms/d-1/cmd/charge/reply/+", "level '+'"), ("bms/d-1/cmd/charge/reply/#", "level '#'"),
    ("bms/d-1/cmd/charge/reply/", "level ''"), ("bms/d-1/event", "not under"), ("", "not under"),
    ("bms/d-1/cmd/stop/reply", "not under"), ("bms/d-2/cmd/charge/reply", "not under"), ("x/+/y", "not under"),
])
def test_where_a_reply_may_go(topic, why):
    got = response_topic_error(Topics("d-1"), "charge", topic)
    assert (got is None) if why is None else (why in got), got


def test_a_bad_topic_is_quoted_short():
    why = response_topic_error(Topics("d-1"), "charge", "z" * 60_000)
    assert len(why) < 200 and why.count("z") <= 80


@pytest.mark.parametrize("name, answerable", [("charge", True), ("formation/start", True), ("warp", True),
                                              ("a/b/c", False), ("sp ace", False), ("n" * 33, False), ("", False)])
def test_which_command_names_can_be_answered(name, answerable):
    assert (own_reply_topic(Topics("d-1"), name) is not None) == answerable
