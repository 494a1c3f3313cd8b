"""The repository stands alone: a copy of it in a directory with nothing beside it (no
shared folder, no venv) sets up with the README's command and collects the whole suite and
passes the tests that read the repository's data (the seed's examples, the parameter
sets and their citations). CI's .ci/run runs the whole suite that way; this runs the
part that once reached outside, without running itself again.

Run: .venv/bin/python -m pytest tests/packaging/test_fresh_clone.py -q
"""
import os
import re
import subprocess

import pytest

from repo_copy import copy_repository

# slow (not in the fast lane, -m 'not slow'): a whole setup (venv, C core) from scratch
pytestmark = pytest.mark.slow


def count(output: str, word: str) -> int:
    """The number before `word` in pytest's last line ("12 passed", "800/1150 tests collected")."""
    found = re.search(r"(\d+)(?:/\d+)? %s" % word, output)
    return int(found.group(1)) if found else 0


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    alone = tmp_path_factory.mktemp("alone")
    repo = copy_repository(alone / "bms-twin")
    assert os.listdir(alone) == ["bms-twin"]                       # nothing beside it: no shared folder
    setup = subprocess.run(["bash", ".ci/setup"], cwd=repo, capture_output=True, text=True, timeout=1200,
                           stdin=subprocess.DEVNULL)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    return repo


def pytest_in(repo, *args, timeout=900):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(repo / ".venv" / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider",
                           *args], cwd=repo, capture_output=True, text=True, timeout=timeout, env=env)


def test_the_whole_suite_collects_and_the_fast_lane_is_a_part_of_it(clone):
    every = pytest_in(clone, "--collect-only", "-q")
    assert every.returncode == 0, every.stdout[-3000:] + every.stderr[-3000:]
    fast = pytest_in(clone, "--collect-only", "-q", "-m", "not slow")
    assert fast.returncode == 0, fast.stdout[-3000:] + fast.stderr[-3000:]
    n_every, n_fast = count(every.stdout, "tests? collected"), count(fast.stdout, "tests? collected")
    assert 1000 < n_every and 0 < n_fast < n_every, (every.stdout[-300:], fast.stdout[-300:])


def test_the_tests_of_the_repositorys_data_pass_with_nothing_beside_it(clone):
    done = pytest_in(clone, "-q", "tests/twin", "-m", "not slow")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert count(done.stdout, "passed") > 200 and count(done.stdout, "failed") == 0
    # the parts that once read the shared folder ran, from the copy's own tests/data
    listed = pytest_in(clone, "--collect-only", "-q", "tests/twin/test_seed_calibration.py",
                       "tests/twin/test_seed_examples.py", "tests/twin/test_citations.py")
    assert listed.returncode == 0 and count(listed.stdout, "tests? collected") > 20, listed.stdout[-1000:]
