"""Where the MicroPython source comes from, first that is given:

  1. the --micropython-src option, else the MICROPYTHON_SRC environment variable:
     a source tree (a directory with py/mpconfig.h) or a release tarball (.tar.gz,
     .tgz, .tar.xz, .tar; one top folder, as `git archive` writes it);
  2. micropython-<version>.tar.gz in shared/vendor/ beside the repository (the
     project's shared folder next to a work tree; only a fallback, nothing needs it);
  3. a shallow clone of the release tag, where the network allows.

A tarball is unpacked, and a clone made, once into the cache (twin.images.build);
a directory is used in place and never written to (builds go to the cache). The
tree must be the version targets.py pins: the make recipes are written for it.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import NamedTuple

from twin.images.errors import ImageError
from twin.images.targets import MICROPYTHON_GIT_URL, MICROPYTHON_TAG, MICROPYTHON_VERSION

ENV_VAR = "MICROPYTHON_SRC"
REPO_ROOT = Path(__file__).resolve().parents[2]
VENDOR_DIR = REPO_ROOT.parent / "shared" / "vendor"
TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".tar")
CLONE_TIMEOUT_S = 600


class Source(NamedTuple):
    kind: str       # "dir", "tarball" or "git"
    where: str      # the path or URL it came from
    ident: str      # short hash naming it in the cache (a tarball's content, a directory's path)


def _is_tarball(path: Path) -> bool:
    return path.is_file() and path.name.endswith(TARBALL_SUFFIXES)


def given_source(value: str, field: str) -> Source:
    """The source named by an option or the environment, or ImageError naming `field`."""
    path = Path(value).expanduser()
    if path.is_dir():
        if not (path / "py" / "mpconfig.h").is_file():
            raise ImageError(field, value, "is a directory but not a MicroPython source tree "
                                           "(no py/mpconfig.h in it)")
        real = str(path.resolve())
        return Source("dir", real, hashlib.sha256(real.encode()).hexdigest()[:12])
    if _is_tarball(path):
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return Source("tarball", str(path.resolve()), digest.hexdigest()[:12])
    if path.exists():
        raise ImageError(field, value, "expected a MicroPython source directory or a tarball "
                                       "(%s)" % ", ".join(TARBALL_SUFFIXES))
    raise ImageError(field, value, "no such file or directory (expected a MicroPython source "
                                   "directory or tarball)")


def find_source(option: str | None, env=None, vendor_dir: Path = VENDOR_DIR,
                clone_url: str = MICROPYTHON_GIT_URL) -> Source:
    """The first source of the list in this module's opening comment. A clone is only
    named here (made by unpack()); its URL must answer `git ls-remote` for the tag."""
    env = os.environ if env is None else env
    if option is not None:
        return given_source(option, "--micropython-src")
    if env.get(ENV_VAR):
        return given_source(env[ENV_VAR], ENV_VAR)
    vendored = vendor_dir / ("micropython-%s.tar.gz" % MICROPYTHON_VERSION)
    if _is_tarball(vendored):
        return given_source(str(vendored), "vendored tarball")
    why = _unreachable(clone_url)
    if why:
        raise ImageError("MicroPython source", MICROPYTHON_TAG,
                         "none found: give a directory or tarball with --micropython-src or $%s, or put "
                         "micropython-%s.tar.gz in %s; cloning %s of %s failed: %s"
                         % (ENV_VAR, MICROPYTHON_VERSION, vendor_dir, MICROPYTHON_TAG, clone_url, why))
    return Source("git", clone_url, hashlib.sha256(("%s@%s" % (clone_url, MICROPYTHON_TAG)).encode())
                  .hexdigest()[:12])


def _unreachable(url: str) -> str:
    """'' if `url` has the release tag, else why not (git's last line)."""
    if shutil.which("git") is None:
        return "git is not installed"
    try:
        out = subprocess.run(["git", "ls-remote", "--tags", url, MICROPYTHON_TAG], capture_output=True,
                             text=True, timeout=60, env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))
    except subprocess.TimeoutExpired:
        return "no answer within 60 s"
    if out.returncode != 0:
        return _git_said(out)
    if MICROPYTHON_TAG not in out.stdout:
        return "it has no tag %s" % MICROPYTHON_TAG
    return ""


def tree_version(tree: Path) -> str:
    """MAJOR.MINOR.MICRO from py/mpconfig.h."""
    text = (tree / "py" / "mpconfig.h").read_text(errors="replace")
    parts = []
    for name in ("MAJOR", "MINOR", "MICRO"):
        m = re.search(r"#define MICROPY_VERSION_%s \(?(\d+)" % name, text)
        if m is None:
            raise ImageError("source", str(tree), "py/mpconfig.h has no MICROPY_VERSION_%s" % name)
        parts.append(m.group(1))
    return ".".join(parts)


def unpack(source: Source, cache_dir: Path) -> Path:
    """The source tree of `source`: a directory as it is, a tarball unpacked (or a
    clone made) once into cache_dir/src-<ident>. The caller holds the cache's lock."""
    if source.kind == "dir":
        tree = Path(source.where)
    else:
        tree = cache_dir / ("src-" + source.ident)
        if not (tree / "py" / "mpconfig.h").is_file():
            tmp = cache_dir / ("src-%s.tmp" % source.ident)
            shutil.rmtree(tmp, ignore_errors=True)
            if source.kind == "tarball":
                _extract(Path(source.where), tmp)
            else:
                _clone(source.where, tmp)
            shutil.rmtree(tree, ignore_errors=True)
            tmp.rename(tree)
    version = tree_version(tree)
    if version != MICROPYTHON_VERSION:
        raise ImageError("source", source.where, "is MicroPython %s; bms-twin builds %s (twin/images/targets.py)"
                         % (version, MICROPYTHON_VERSION))
    return tree


def _extract(tarball: Path, dest: Path) -> None:
    """The tarball's single top folder becomes `dest`."""
    work = dest.with_name(dest.name + ".x")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        with tarfile.open(tarball) as tar:
            tar.extractall(work, filter="data")
    except (tarfile.TarError, EOFError) as error:
        shutil.rmtree(work, ignore_errors=True)
        raise ImageError("source", str(tarball), "cannot be unpacked: %s" % error) from None
    tops = [p for p in work.iterdir()]
    if len(tops) != 1 or not (tops[0] / "py" / "mpconfig.h").is_file():
        shutil.rmtree(work, ignore_errors=True)
        raise ImageError("source", str(tarball), "is not a MicroPython release tarball "
                                                 "(expected one top folder holding py/mpconfig.h)")
    tops[0].rename(dest)
    work.rmdir()


def _clone(url: str, dest: Path) -> None:
    out = subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", MICROPYTHON_TAG, url, str(dest)],
                         capture_output=True, text=True, timeout=CLONE_TIMEOUT_S,
                         env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))
    if out.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise ImageError("source", url, "git clone of %s failed: %s" % (MICROPYTHON_TAG, _git_said(out)))


def _git_said(out) -> str:
    """git's error: its fatal: line (what follows it is advice), else its last line."""
    lines = [line.strip() for line in out.stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith("fatal:")]
    return (fatal or lines or ["git exit %d" % out.returncode])[0 if fatal else -1]
