"""No command payload stops the device: the bridge's checks judge any bytes without
raising (seeded random JSON, deep nesting, odd types and sizes), and every command
that passes them, at every bound of its schema, is taken by the real firmware
controller without raising — forming, ready, stopped (SAFE) and booting again, the
ticks after each command included. No broker: this is the part between the message and the controller.
Run: .venv/bin/python -m pytest tests/mqtt_bridge/test_mqtt_command_fuzz.py -q
"""

import itertools
import json
import random

import pytest

from bmsfw.commands import COMMANDS, LIMIT_KEYS
from mqtt_bridge.commands import Command, Rejection, check_command, request_id_in
from mqtt_bridge.schemas import command_stem, load_schema
from twin.bench import Bench
from twin.parameters import load_parameter_set
from twin.run import run_closed_loop

ENVELOPE = ("schema", "request_id")


def _random_value(rng: random.Random, depth: int = 0):
    kinds = ["int", "bigint", "float", "str", "bool", "null"] + (["list", "dict"] if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-10 ** 9, 10 ** 9)
    if kind == "bigint":
        return rng.choice([2 ** 63, -2 ** 63, 10 ** 300, 2 ** 53])
    if kind == "float":
        return rng.choice([0.5, 1e308, -0.0, 5.0])
    if kind == "str":
        return "".join(rng.choice("aZ0_/+#\u00fc\u0000 ") for _ in range(rng.randint(0, 20)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["current_ua", "duration_s", "request_id", "schema", "cvl_mv", "x", ""]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_no_payload_makes_the_checks_raise():
    rng = random.Random(12)
    limits = {"cvl_mv": 2800, "dvl_mv": 1800, "ccl_ua": 500, "dcl_ua": 400}
    payloads = [json.dumps(_random_value(rng)).encode() for _ in range(3000)]
    payloads += [bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))) for _ in range(500)]
    payloads += [b"{" * 3000, b'{"a":' * 800 + b"1" + b"}" * 800, b"1e999999", b"-" * 4096, b'"\\ud800"',
                 b'{"current_ua": 1e400}', b"\x00" * 4096, b" " * 4096]
    for name in COMMANDS + ("nope", "charge/", ""):
        for raw in payloads:
            result = check_command(name, raw, limits)
            assert isinstance(result, (Command, Rejection)), (name, raw[:40])
            request_id_in(raw)


def bound_commands(limits: dict) -> list:
    """(name, payload) for each command at the bounds of its schema, as the bridge would pass them."""
    out = []
    for name in COMMANDS:
        props = {k: v for k, v in load_schema(command_stem(name))["properties"].items() if k not in ENVELOPE}
        choices = {key: [spec["minimum"], spec["maximum"]] for key, spec in props.items()}
        keys = list(choices)
        for n in range(len(keys) + 1):
            for subset in itertools.combinations(keys, n):
                for values in itertools.product(*(choices[k] for k in subset)):
                    doc = dict(zip(subset, values), request_id="fuzz")
                    result = check_command(name, json.dumps(doc).encode(), limits)
                    if isinstance(result, Command):
                        out.append((name, result.args))
    assert {name for name, _args in out} == set(COMMANDS)
    return out


def _tick(bench, n: int = 3) -> None:
    c = bench.controller
    for _ in range(n):
        bench.board.advance(c.config.tick_ms)
        c.tick()
        c.telemetry()
        c.pop_events()


@pytest.mark.parametrize("start", ["FORMING", "READY"])
def test_every_command_the_bridge_passes_is_taken_by_the_real_controller(start):
    params = load_parameter_set("d111")
    bench = Bench.build(params)
    # a minute in: formation under way; to the end: formed
    run_closed_loop(params, bench=bench, stop_after_formation=True,
                    **({"formation_timeout_s": 60.0} if start == "FORMING" else {}))
    c = bench.controller
    assert c.state == start
    rng = random.Random(start)
    seen = set()
    for round_ in range(3):
        frame = c.telemetry()
        commands = bound_commands({k: frame[k] for k in LIMIT_KEYS})
        if round_:
            rng.shuffle(commands)
        for name, args in commands:
            seen.add(c.state)
            ok, code = c.command(name, dict(args))
            assert isinstance(ok, bool) and isinstance(code, str) and code, (name, args, code)
            _tick(bench)
            seen.add(c.state)
            if c.state == "SAFE" and rng.random() < 0.5:
                c.command("rest", {})      # out of SAFE again, to go on trying commands elsewhere
    assert {start, "SAFE", "BOOT"} <= seen, seen
