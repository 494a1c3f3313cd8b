"""Build a MicroPython typeshed for mypy from the installed stub packages.

micropython-stdlib-stubs ships a reduced typeshed (`stdlib/` with VERSIONS) and
the `_mpy_shed` helpers; micropython-rp2-stubs ships the port's modules
(`machine`, `time`, `micropython`, `os`, ...) as top-level .pyi files in
site-packages, where mypy does not look and where some would be shadowed by
mypy's own typeshed. mypy is happiest with one custom typeshed
(`--custom-typeshed-dir`), so this lays the stdlib stubs, `_mpy_shed` and the rp2
stubs (rp2 wins where both have a module: its `time` has ticks_ms) into one
`stdlib/` and lists every added module in VERSIONS.

Usage: .venv/bin/python tests/mp/mp_typeshed.py DEST   (prints DEST)
"""

from __future__ import annotations

import importlib.metadata as metadata
import shutil
import sys
from pathlib import Path

_NOT_STUBS = {"LICENSE.md", "README.md", "pyproject.toml"}


def _dist_root(dist: str) -> Path:
    files = metadata.files(dist)
    if not files:
        raise RuntimeError("%s is not installed (pip install %s)" % (dist, dist))
    return Path(str(files[0].locate())).resolve().parents[len(files[0].parts) - 1]


def _top_level_entries(dist: str) -> set[str]:
    files = metadata.files(dist) or []
    return {
        f.parts[0]
        for f in files
        if not f.parts[0].endswith(".dist-info") and f.parts[0] not in _NOT_STUBS
    }


def build(dest: Path) -> Path:
    dest = Path(dest)
    stdlib_root = _dist_root("micropython-stdlib-stubs")
    rp2_root = _dist_root("micropython-rp2-stubs")
    stdlib = dest / "stdlib"
    shutil.copytree(stdlib_root / "stdlib", stdlib)
    versions = (stdlib / "VERSIONS").read_text(encoding="utf-8").splitlines()
    listed = {line.split(":")[0].strip() for line in versions if ":" in line}
    added: list[str] = []

    def place(src: Path) -> None:
        name = src.name[:-4] if src.name.endswith(".pyi") else src.name
        target = stdlib / src.name
        if target.is_dir():
            shutil.rmtree(target)
        if src.is_dir():
            shutil.copytree(src, target)
        else:
            shutil.copy2(src, target)
        if name not in listed:
            added.append(name)
            listed.add(name)

    for entry in sorted(_top_level_entries("micropython-stdlib-stubs")):
        if entry == "stubs":  # third-party stubs (mypy-extensions) keep typeshed's layout
            shutil.copytree(stdlib_root / entry, dest / entry)
        elif entry != "stdlib":
            place(stdlib_root / entry)  # _mpy_shed
    for entry in sorted(_top_level_entries("micropython-rp2-stubs")):
        place(rp2_root / entry)
    with open(stdlib / "VERSIONS", "a", encoding="utf-8") as f:
        f.write("\n# added by tests/mp/mp_typeshed.py\n")
        for name in added:
            f.write("%s: 3.0-\n" % name)
    return dest


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
