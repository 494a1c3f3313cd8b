"""The repository stands alone and says how to run it: no file reads a folder beside the
repository or names a path of one machine; the README gives the fresh-machine commands
and the fast lane, CI runs the README's test command, and the fast lane's marker is the
one pyproject.toml declares.

Run: .venv/bin/python -m pytest tests/packaging/test_repository.py -q
"""
import re
import tomllib

import pytest

from repo_copy import ROOT, repository_files

# Written in pieces so that this file does not match itself.
OUTSIDE = re.compile("|".join((
    r"\.\." + "/shared",                        # the project's shared folder beside a work tree
    r"parents\[\d\]\s*/\s*[\"']" + "shared",    # ... reached through Path.parents
    "/" + "work/", "/" + "home/", "/" + "root/",  # one machine's folders
    "/" + "tmp/[a-z]",                           # a fixed scratch path instead of tmp_path / mktemp
)))
README = (ROOT / "README.md").read_text()
CI_RUN = (ROOT / ".ci" / "run").read_text()


def code_after(heading: str) -> str:
    """The first ```bash block after the README line `heading`."""
    rest = README[README.index(heading):]
    return re.search(r"```bash\n(.*?)```", rest, re.S).group(1).strip()


def test_no_file_reaches_outside_the_repository_or_names_a_machine_path():
    found = []
    for name in repository_files():
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue                                # binary: nothing to read
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append("%s:%d: %s" % (name, number, line.strip()))
    assert found == []


@pytest.mark.parametrize("line, reaches_out", [
    ('SEED = Path(__file__).resolve().parents[3] / "' + 'shared" / "x.toml"', True),
    ("see ../" + "shared/research/notes.md", True),
    ('SEED_TOML = pathlib.Path("/' + 'work/shared/calibration/x.toml")', True),
    ("Run: cd /" + "work/main && .venv/bin/python -m pytest", True),
    ("mypy --custom-typeshed-dir /" + "tmp/mp-typeshed", True),
    ("Run: .venv/bin/python -m pytest tests/twin/test_protocol.py -q", False),
    ("scratch=$(mktemp -d)", False),
])
def test_the_outside_check_finds_what_it_looks_for(line, reaches_out):
    assert bool(OUTSIDE.search(line)) == reaches_out


def test_the_readme_gives_both_fresh_machine_commands_and_the_fast_lane():
    assert code_after("Set up and run the main job") == \
        "bash .ci/setup && .venv/bin/bms-twin run --cell d111 --out runs/latest"
    assert code_after("Set up and run the tests") == "bash .ci/setup && .venv/bin/python -m pytest"
    fast = re.search(r"\.venv/bin/python -m pytest -m \"not (\w+)\"", README)
    assert fast, "the README shows no fast lane"
    pytest_options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    declared = pytest_options["markers"]
    assert any(marker.startswith(fast.group(1) + ":") for marker in declared)


def test_ci_runs_the_readme_test_command_on_a_clone_in_a_fresh_directory():
    # .ci/run runs the command in its two halves (the broker starts between them), in order
    halves = code_after("Set up and run the tests").split(" && ")
    at = [CI_RUN.find("\n" + half + "\n") for half in halves]
    assert -1 not in at and at == sorted(at), (halves, at)
    clone = CI_RUN.find("git clone")
    assert CI_RUN.find("mktemp -d") < clone < at[0]
