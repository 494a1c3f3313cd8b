"""What a user who installs bms-twin without cloning gets: the sdist and the wheel built
from it (python -m build, as a package index would), installed into a clean venv and run
from a directory outside the repository -- `bms-twin run`, `python -m bmsfw.link_main`,
`bms-twin hil` on a serial device through pyserial, and the firmware's board files.

Run: .venv/bin/python -m pytest tests/packaging/test_wheel.py -q
"""
import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import tty
import zipfile
from pathlib import Path

import pytest

from repo_copy import ROOT, copy_repository, repository_files

sys.path.insert(0, str(ROOT / "tests" / "hil"))
sys.path.insert(0, str(ROOT / "tests" / "mp"))

from hil_helpers import config_overrides  # noqa: E402  (tests/hil is not a package)
import mip_package  # noqa: E402  (tests/mp is not a package)

# slow (not in the fast lane, -m 'not slow'): two isolated builds and a venv install
pytestmark = pytest.mark.slow

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SHORT_DUTY = "Discharge at 100 uA for 15 minutes\nCharge at 100 uA for 15 minutes\n"
# The packages the wheel holds, and the folders of the repository they come from.
PACKAGE_DIRS = {"twin": "twin", "mqtt_bridge": "mqtt_bridge", "bmsfw": "firmware/bmsfw",
                "bms_twin_firmware": "firmware"}


def run(cmd, timeout=600, **kwargs):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(sdist, wheel) built from a copy of the repository."""
    base = tmp_path_factory.mktemp("build")
    src = copy_repository(base / "bms-twin")
    done = run([sys.executable, "-m", "build", "--outdir", base / "dist", src], timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sdist,) = (base / "dist").glob("*.tar.gz")
    (wheel,) = (base / "dist").glob("*.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def venv(built, tmp_path_factory):
    """bin/ of a fresh venv with the wheel installed (its dependencies from the index)."""
    home = tmp_path_factory.mktemp("user")
    made = run([sys.executable, "-m", "venv", home / "venv"])
    assert made.returncode == 0, made.stderr
    bin_dir = home / "venv" / "bin"
    installed = run([bin_dir / "python", "-m", "pip", "install", "-q", built[1]], timeout=900)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return bin_dir


def in_user_dir(bin_dir, cmd, **kwargs):
    """cmd run as a user would, from a directory of their own (not the repository)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = "%s:%s" % (bin_dir, env.get("PATH", ""))
    return run(cmd, cwd=bin_dir.parent.parent, env=env, **kwargs)


def test_the_wheel_is_tagged_for_the_limited_api_it_is_built_for(built):
    floor = re.fullmatch(r">=(\d+)\.(\d+)", PYPROJECT["requires-python"])
    tag = "cp%s%s-abi3" % floor.groups()
    name = built[1].name
    assert re.fullmatch(r"bms_twin-%s-%s-linux_\w+\.whl" % (re.escape(PYPROJECT["version"]), tag), name), name
    with zipfile.ZipFile(built[1]) as whl:
        assert [n for n in whl.namelist() if n.endswith(".so")] == ["twin/_core.abi3.so"]


def test_the_wheel_carries_the_license_its_metadata_names(built):
    with zipfile.ZipFile(built[1]) as whl:
        info = "bms_twin-%s.dist-info/" % PYPROJECT["version"]
        assert whl.read(info + "licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        metadata = whl.read(info + "METADATA").decode()
    assert "License-Expression: %s" % PYPROJECT["license"] in metadata
    assert "Apache License" in (ROOT / "LICENSE").read_text() and PYPROJECT["license"] == "Apache-2.0"
    assert re.search(r"^Requires-Dist: pyserial", metadata, re.M)


def test_the_wheel_holds_the_packages_and_the_firmware_and_nothing_else(built):
    with zipfile.ZipFile(built[1]) as whl:
        names = set(whl.namelist())
        contents = {n: whl.read(n) for n in names}
    info = "bms_twin-%s.dist-info" % PYPROJECT["version"]
    assert {n.split("/")[0] for n in names} == set(PACKAGE_DIRS) | {info}   # no tests/, benchmarks/, c_core/
    files = repository_files()
    for package, folder in PACKAGE_DIRS.items():
        shipped = {n[len(package) + 1:] for n in names if n.startswith(package + "/")} - {"_core.abi3.so"}
        in_repo = {f[len(folder) + 1:] for f in files if f.startswith(folder + "/")}
        if package == "bms_twin_firmware":
            in_repo = {f for f in in_repo if f.endswith(".py")}            # the board's files, not mypy.ini
        assert shipped == in_repo, package
        for name in shipped:
            assert contents["%s/%s" % (package, name)] == (ROOT / folder / name).read_bytes(), name
    assert not [n for n in names if re.search(r"(^|/)(test_\w+|conftest)\.py$", n)]


def test_the_sdist_carries_the_c_core_and_the_license(built):
    with tarfile.open(built[0]) as sdist:
        top = "bms_twin-%s/" % PYPROJECT["version"]
        names = {m.name[len(top):] for m in sdist.getmembers() if m.isfile()}
    c_core = {f for f in repository_files() if f.startswith("c_core/")}
    assert c_core <= names
    assert {"LICENSE", "README.md", "pyproject.toml", "setup.py", "firmware/main.py"} <= names
    assert not [n for n in names if n.startswith((".venv/", "build/")) or n.endswith(".so")]


def test_an_installed_wheel_forms_a_cell_with_bms_twin_run(venv):
    duty = venv.parent.parent / "duty.txt"
    duty.write_text(SHORT_DUTY)
    done = in_user_dir(venv, ["bms-twin", "run", "--cell", "d111", "--protocol", duty, "--out", "runs/short",
                              "--no-mqtt"])
    assert done.returncode == 0, done.stderr
    out = venv.parent.parent / "runs" / "short"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_state"] == "READY" and summary["faults"] == []
    assert summary["formation"]["counted_uAh"] >= 200
    assert (out / "voltage.png").read_bytes()[:4] == b"\x89PNG"
    where = in_user_dir(venv, ["python", "-c", "import twin, bmsfw.controller; print(twin.__file__)"])
    assert Path(where.stdout.strip()).is_relative_to(venv.parent)          # the wheel's, not the repository's


def test_an_installed_wheel_runs_the_firmware_link_entry_point(venv):
    done = in_user_dir(venv, ["python", "-m", "bmsfw.link_main", "--help"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m bmsfw.link_main") and "--port PATH" in done.stdout


def test_an_installed_wheel_runs_hil_on_a_serial_device_through_pyserial(venv):
    """A pty's slave as the "device" bms-twin hil opens with pyserial; the firmware
    (python -m bmsfw.link_main from the same wheel) on the master, as a board on USB."""
    from twin.parameters import load_parameter_set
    from twin.firmware_config import config_for

    config = config_overrides(config_for(load_parameter_set("d111")))
    master, slave = os.openpty()
    tty.setraw(slave)
    firmware = None
    try:
        firmware = subprocess.Popen([venv / "python", "-m", "bmsfw.link_main", "--config", config,
                                     "--device-id", "whl-0001"], stdin=master, stdout=master,
                                    stderr=subprocess.PIPE, cwd=venv.parent.parent)
        done = in_user_dir(venv, ["bms-twin", "hil", "--port", os.ttyname(slave), "--duration-s", "60",
                                  "--out", "runs/hil", "--no-mqtt"], timeout=300)
    finally:
        if firmware is not None:
            firmware.kill()
            firmware.communicate(timeout=10)
        os.close(master)
        os.close(slave)
    assert "ModuleNotFoundError" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    summary = json.loads((venv.parent.parent / "runs" / "hil" / "summary.json").read_text())
    assert summary["device"] == "whl-0001" and summary["link_lost"] is False
    assert summary["hil"]["ticks_sent"] == 60


def test_an_installed_wheel_refuses_a_device_that_is_no_serial_port_in_one_line(venv):
    done = in_user_dir(venv, ["bms-twin", "hil", "--port", "/dev/null", "--out", "runs/null", "--no-mqtt"])
    assert done.returncode == 2
    assert "ModuleNotFoundError" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("bms-twin hil: ") and done.stderr.count("\n") == 1, done.stderr


def test_an_installed_wheel_holds_the_board_files_where_docs_board_md_says(venv):
    found = in_user_dir(venv, ["python", "-c", "import bms_twin_firmware as fw; print(*fw.__path__)"])
    assert found.returncode == 0, found.stderr
    folder = Path(found.stdout.strip())
    assert folder.is_relative_to(venv.parent)
    for name in ("main.py", "boot.py", "manifest.py"):
        assert (folder / name).read_bytes() == (ROOT / "firmware" / name).read_bytes()
    # the manifest resolves in the installed folder as in firmware/: every file it lists is there
    for options in ({}, {"board_hal": False, "link_hal": True}):
        _, files = mip_package.evaluate(folder / "manifest.py", **options)
        assert files and all(Path(source).is_file() for _, source in files), files
