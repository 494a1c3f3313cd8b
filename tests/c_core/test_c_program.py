"""The C core's own test program (c_core/tests/test_cell.c), plain and under
ASan/UBSan, and the source rules that keep the core embeddable: no allocation,
no printing, no abort/exit, no mutable static state.

Run: .venv/bin/python -m pytest tests/c_core/test_c_program.py -q
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "c_core"
# The step path: the four translation units and the header they inline.
CORE_SOURCES = ["cell.c", "segment.c", "fleet.c", "params.c", "submodels.h", "core_internal.h"]
SUMMARY_RE = re.compile(r"^(\d+) passed, (\d+) failed$")

FORBIDDEN_CALL_RE = re.compile(
    r"\b(malloc|calloc|realloc|free|aligned_alloc|alloca|abort|exit|_Exit|quick_exit|"
    r"printf|fprintf|vprintf|puts|fputs|putchar|perror|assert)\s*\(")


def _run_make(target: str, build_dir: Path) -> subprocess.CompletedProcess:
    """make -C c_core <target> with the objects in build_dir, so the real
    sources are compiled but nothing is written into the shared tree."""
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.fail("make and a C compiler (cc) are required to build the C core's tests")
    # The Makefile runs ./$(BUILD)/test_cell from c_core, so BUILD is relative.
    relative = os.path.relpath(build_dir, CORE)
    return subprocess.run(["make", "-C", str(CORE), target, f"BUILD={relative}"],
                          capture_output=True, text=True, timeout=600)


def _summary(stdout: str) -> tuple[int, int]:
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    # make prints "make: Leaving directory" after the program's last line.
    program = [line for line in lines if not line.startswith("make")]
    match = SUMMARY_RE.match(program[-1]) if program else None
    assert match, f"no 'N passed, N failed' line at the end of:\n{stdout}"
    return int(match.group(1)), int(match.group(2))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["test", "sanitize"])
def test_c_test_program_passes(target, tmp_path):
    proc = _run_make(target, tmp_path / "build")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"make {target} failed:\n{output}"
    passed, failed = _summary(proc.stdout)
    assert failed == 0, output
    assert passed > 500, f"only {passed} checks ran:\n{output}"
    # the sanitizers print their reports on stderr even when recovering
    assert "runtime error" not in output and "AddressSanitizer" not in output, output


def test_summary_parser_reads_failures():
    assert _summary("x\nFAIL a.c:1: y\n3 passed, 1 failed\nmake: Leaving directory 'c'\n") == (3, 1)
    with pytest.raises(AssertionError):
        _summary("3 passed\n")


# ---- source rules -----------------------------------------------------------

def _code_only(text: str) -> str:
    """C source with comments, string and character literals blanked out."""
    pattern = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
    return pattern.sub(lambda m: " " if m.group(0).startswith("/") else '""', text)


def mutable_statics(text: str) -> list[str]:
    """Declarations of static variables that are not const (file scope or
    function scope). Functions (static [inline] T name(...)) are fine."""
    found = []
    code = _code_only(text)
    for match in re.finditer(r"\bstatic\b([^;{=(\[]*)([;{=(\[])", code):
        head, end = match.group(1), match.group(2)
        declaration = "static" + head + end
        pointer = code[match.end():].lstrip().startswith("*")
        if end == "(" and re.search(r"\w\s*$", head) and not pointer:
            continue  # a function
        if re.search(r"\bconst\b", head):
            continue
        found.append(" ".join(declaration.split()))
    return found


def forbidden_calls(text: str) -> list[str]:
    return [m.group(1) for m in FORBIDDEN_CALL_RE.finditer(_code_only(text))]


@pytest.mark.parametrize("name", CORE_SOURCES)
def test_core_source_has_no_allocation_io_or_abort(name):
    text = (CORE / name).read_text()
    assert forbidden_calls(text) == [], f"{name} calls {forbidden_calls(text)}"


@pytest.mark.parametrize("name", CORE_SOURCES)
def test_core_source_has_no_mutable_static_state(name):
    text = (CORE / name).read_text()
    assert mutable_statics(text) == [], f"{name} keeps static state: {mutable_statics(text)}"


def file_scope_variables(text: str) -> list[str]:
    """File-scope declarations that are neither prototypes, typedefs nor const:
    a variable without static is a global too."""
    found = []
    code = _code_only(text)
    depth = 0
    statement = []
    for char in code:
        if char == "{":
            depth += 1
            continue
        if char == "}":
            depth -= 1
            # a function body ends its definition; a struct body does not
            if depth == 0 and "".join(statement).rstrip().endswith(")"):
                statement = []
            continue
        if depth:
            continue
        statement.append(char)
        if char == ";":
            text = re.sub(r"^\s*#[^\n]*\n", "", "".join(statement), flags=re.M)
            text = " ".join(text.split())
            statement = []
            if (not text or text.startswith(("typedef", "static")) or re.search(r"\bconst\b", text)
                    or re.search(r"\w\s*\([^()]*\)\s*;$", text)):
                continue  # statics are mutable_statics' business
            found.append(text)
    return found


@pytest.mark.parametrize("name", CORE_SOURCES)
def test_core_source_has_no_mutable_globals(name):
    text = (CORE / name).read_text()
    assert file_scope_variables(text) == [], f"{name} has globals: {file_scope_variables(text)}"


def test_the_rule_checkers_find_what_they_look_for():
    """The source checks above would catch a violation."""
    sample = """
    #include <stdlib.h>
    static int counter;              /* mutable: caught */
    static double table[4] = {0};    /* caught */
    static const double K = 1.0;     /* fine */
    static inline double f(double x) { static int calls = 0; return x + calls; }
    static int (*hook)(int);         /* caught */
    int g(void) { char *b = malloc(4); free(b); printf("x"); abort(); return 0; }
    const char *s = "malloc(3) in a string is fine";  // exit(1) in a comment too
    """
    assert mutable_statics(sample) == ["static int counter;", "static double table[",
                                       "static int calls =", "static int ("]
    assert forbidden_calls(sample) == ["malloc", "free", "printf", "abort"]
    assert file_scope_variables(sample + "\ndouble last_dt;\nint f(int);\n"
                                "typedef struct { int a; } t_t;\nstruct s { int b; } one;\n") == [
        "double last_dt;", "struct s one;"]
