"""The repository's own files, copied as a fresh clone has them, for the tests that
build or set up from scratch: tracked files and new unignored ones, as they are in
the work tree; nothing ignored (.venv, build/, the compiled core) and nothing beside.
"""
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def repository_files() -> list:
    """Paths relative to ROOT of the files a commit of the work tree would hold."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    names = (os.fsdecode(name) for name in listing.split(b"\0") if name)
    return sorted(name for name in names if (ROOT / name).is_file())   # not the ones deleted, uncommitted


def copy_repository(dest: Path) -> Path:
    """dest (which must not exist) with the repository's files; returns dest."""
    for name in repository_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return dest
