"""Turn firmware/manifest.py into a local mip package that mpremote can install.

`mpremote mip install` reads a package.json, not a manifest.py; it accepts a
package.json on the local disk whose "urls" are relative to it. This evaluates
the manifest the way MicroPython's tools/manifestfile.py would (metadata(),
package(), module(), options with defaults), copies the selected files next to a
generated package.json and prints its path:

    .venv/bin/python tests/mp/mip_package.py build/mip               # base + board HAL
    .venv/bin/python tests/mp/mip_package.py build/mip --link-hal --no-board-hal
    mpremote connect /dev/ttyACM0 mip install build/mip/package.json

(see docs/board.md). Only the manifest commands firmware/manifest.py uses are
implemented; anything else raises ManifestError.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "firmware" / "manifest.py"


class ManifestError(ValueError):
    pass


class _Options:
    def __init__(self, **kwargs):
        self._kwargs = kwargs
        self._defaults: dict[str, object] = {}

    def defaults(self, **kwargs):
        self._defaults = kwargs

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._kwargs.get(name, self._defaults.get(name))


def evaluate(manifest: Path = MANIFEST, **options) -> tuple[dict, list[tuple[str, Path]]]:
    """(metadata, [(target path on the board, source file)]) for these options."""
    manifest = Path(manifest).resolve()
    here = manifest.parent
    meta: dict = {}
    files: list[tuple[str, Path]] = []
    seen: set[str] = set()

    def metadata(**kwargs):
        meta.update(kwargs)

    def add(target: str, source: Path):
        if target not in seen:
            seen.add(target)
            files.append((target, source))

    def package(name, files=None, base_path=".", opt=None):
        if not meta:
            raise ManifestError("metadata() must come first in %s" % manifest)
        base = here / base_path
        if files is None:
            raise ManifestError("package(%r) without files= is not supported here" % name)
        for f in files:
            add("%s/%s" % (name, f), base / name / f)

    def module(name, base_path=".", opt=None):
        if not meta:
            raise ManifestError("metadata() must come first in %s" % manifest)
        add(name, here / base_path / name)

    def unsupported(*args, **kwargs):
        raise ManifestError("only metadata/package/module/options are supported")

    env = {
        "metadata": metadata,
        "package": package,
        "module": module,
        "require": unsupported,
        "include": unsupported,
        "options": _Options(**options),
    }
    exec(compile(manifest.read_text(encoding="utf-8"), str(manifest), "exec"), env)
    return meta, files


def write_package(out_dir: Path, manifest: Path = MANIFEST, **options) -> Path:
    """Copy the selected files under out_dir and write out_dir/package.json."""
    meta, files = evaluate(manifest, **options)
    out_dir = Path(out_dir)
    missing = [str(src) for _, src in files if not src.is_file()]
    if missing:
        raise ManifestError("manifest lists files that do not exist: %s" % ", ".join(missing))
    for target, src in files:
        dest = out_dir / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
    package_json = {
        "urls": [[target, target] for target, _ in files],
        "deps": [],
        "version": meta.get("version", "0.0.0"),
    }
    path = out_dir / "package.json"
    path.write_text(json.dumps(package_json, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a local mip package from firmware/manifest.py")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--no-board-hal", action="store_true", help="leave out bmsfw/board_hal.py")
    parser.add_argument("--link-hal", action="store_true", help="add bmsfw/link_hal.py (HIL)")
    args = parser.parse_args(argv)
    print(write_package(args.out_dir, board_hal=not args.no_board_hal, link_hal=args.link_hal))
    return 0


if __name__ == "__main__":
    sys.exit(main())
