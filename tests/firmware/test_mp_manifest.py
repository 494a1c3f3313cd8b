"""firmware/manifest.py: versioned metadata, a complete base component, optional
board and link HAL components, and a local mip package that imports under
MicroPython exactly as `mpremote mip install` would lay it out in /lib.

tests/mp/mip_package.py evaluates the manifest as MicroPython's manifestfile.py
does (metadata/package/options) and writes the package.json.

Run: .venv/bin/python -m pytest tests/firmware/test_mp_manifest.py -q
"""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "mp"))

import mip_package  # noqa: E402
from twin.images.wasm import run_guest  # noqa: E402

BMSFW = ROOT / "firmware" / "bmsfw"
OPTIONAL = {"board_hal.py", "link_hal.py", "link_codec.py", "link_serve.py", "link_main.py"}


def _names(files):
    return {target.split("/", 1)[1] for target, _ in files}


def test_metadata_is_versioned():
    meta, _ = mip_package.evaluate()
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    assert meta["description"]


def test_base_component_lists_every_non_optional_module():
    # A module added to bmsfw but not to the manifest would be missing on a board.
    _, files = mip_package.evaluate(board_hal=False, link_hal=False)
    on_disk = {p.name for p in BMSFW.glob("*.py")} - OPTIONAL
    assert _names(files) == on_disk
    assert all(target.startswith("bmsfw/") for target, _ in files)


def test_components_are_chosen_by_options():
    _, default = mip_package.evaluate()
    assert "board_hal.py" in _names(default) and "link_hal.py" not in _names(default)
    _, link = mip_package.evaluate(board_hal=False, link_hal=True)
    assert "link_hal.py" in _names(link) and "board_hal.py" not in _names(link)
    assert "link_main.py" in _names(link) and "link_main.py" not in _names(default)


def test_unsupported_manifest_commands_are_refused(tmp_path):
    bad = tmp_path / "manifest.py"
    bad.write_text('metadata(version="1.0.0")\nrequire("aioble")\n')
    with pytest.raises(mip_package.ManifestError):
        mip_package.evaluate(bad)
    (tmp_path / "m2.py").write_text('package("x", files=("a.py",))\n')
    with pytest.raises(mip_package.ManifestError):
        mip_package.evaluate(tmp_path / "m2.py")


@pytest.mark.slow
def test_local_mip_package_installs_and_imports_under_micropython(tmp_path):
    pkg = mip_package.write_package(tmp_path / "mip")
    spec = json.loads(pkg.read_text())
    meta, files = mip_package.evaluate()
    assert spec["version"] == meta["version"]
    assert spec["urls"] == [[t, t] for t, _ in files]  # relative: mpremote resolves them next to package.json
    for target, _ in spec["urls"]:
        assert (tmp_path / "mip" / target).is_file()
    # /input/mip plays the board's /lib after `mpremote mip install`.
    code = (
        "import sys\nsys.path[0:0] = ['/input/mip']\n"
        "import bmsfw.controller, bmsfw.board_hal, bmsfw.board_config\n"
        "from bmsfw.config import Config\n"
        "print('IMPORTED', Config().tick_ms)\n"
    )
    res = run_guest(code, readonly_dir=tmp_path, heap_bytes=2 * 1024 * 1024, wall_timeout_s=60)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "IMPORTED" in res.stdout
