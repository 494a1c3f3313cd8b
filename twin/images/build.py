"""Build MicroPython with the firmware frozen in, once per (version, target, firmware).

The cache lives outside any checkout, so every clone, worktree and CI run on a
machine shares it ($XDG_CACHE_HOME/bms-twin/micropython-<version>/, default
~/.cache/...):

  images/<target>-<key>/   the image (micropython or firmware.elf), image.json (what went
                           in), build.log, and the firmware/ and manifest.py it froze.
                           key: the version, the target's recipe and every firmware file.
                           (<target>-<key>.log beside it: the log of a build that failed)
  src-<source>/            a tarball unpacked, or a clone (a source directory stays where it is)
  build-<source>/          mpy-cross, and each target's make BUILD directory: objects are
                           reused when only the firmware changed (its frozen part is made
                           afresh each time and relinked: seconds)
  mpy-lib/README.md        the micropython-lib directory the ports test for (nothing in it
                           is used: the manifest requires nothing from micropython-lib)
  lock                     one build at a time per machine (flock); a finished image
                           appears by rename, so a reader never sees half of one

mpy-cross is built on its own first: a FROZEN_MANIFEST given to a port's make
would reach mpy-cross's sub-make and break its link.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from twin.images.errors import BuildFailed, ImageError
from twin.images.source import ENV_VAR, find_source, given_source, unpack
from twin.images.targets import MANIFEST_OPTIONS, MICROPYTHON_VERSION, TARGETS

MAKE_TIMEOUT_S = 1800
# Make variables from the caller's environment must not reach these builds
# (make reads the environment as defaults for its variables).
_SCRUBBED_ENV = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "FROZEN_MANIFEST", "BUILD", "PROG",
                 "VARIANT", "VARIANT_DIR", "BOARD", "BOARD_DIR", "CROSS_COMPILE", "CFLAGS_EXTRA",
                 "LDFLAGS_EXTRA", "MPY_LIB_DIR", "COPT", "DEBUG")


class Image(NamedTuple):
    target: str
    path: Path          # the executable (unix-32) or the ELF to boot (qemu-cortex-m3)
    key: str
    built: bool         # False: taken from the cache


def cache_root(env=None) -> Path:
    env = os.environ if env is None else env
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "bms-twin" / ("micropython-" + MICROPYTHON_VERSION)


def firmware_dir() -> Path:
    """firmware/ as it goes onto a board (the bms_twin_firmware package: a clone's
    firmware/, or the installed copy)."""
    import bms_twin_firmware

    for entry in bms_twin_firmware.__path__:
        if (Path(entry) / "manifest.py").is_file():
            return Path(entry)
    raise ImageError("firmware", list(bms_twin_firmware.__path__), "no manifest.py in the firmware package")


def _firmware_files(fw_dir: Path) -> list:
    return sorted(p for p in fw_dir.rglob("*.py") if "__pycache__" not in p.parts)


def recipe_hash(target: str) -> str:
    t = TARGETS[target]
    text = json.dumps([MICROPYTHON_VERSION, target, t.port, list(t.make_vars), MANIFEST_OPTIONS])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_key(target: str, fw_dir: Path) -> str:
    """The cache key of `target` built with the firmware in fw_dir."""
    h = hashlib.sha256(recipe_hash(target).encode())
    for path in _firmware_files(fw_dir):
        h.update(b"\0" + path.relative_to(fw_dir).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise ImageError("--target", target, "expected one of " + ", ".join(TARGETS))


def check_tools(target: str) -> None:
    """Refuse (ImageError) when the compiler a target needs cannot compile a line of C."""
    for command, flags, packages in TARGETS[target].tools:
        if shutil.which(command) is None:
            why = "is not installed"
        else:
            out = subprocess.run([command, *flags, "-x", "c", "-c", "-o", os.devnull, "-"],
                                 input="#include <stdlib.h>\nint f(void) { return 0; }\n",
                                 capture_output=True, text=True)
            if out.returncode == 0:
                continue
            lines = [line for line in out.stderr.splitlines() if line.strip()]
            why = "cannot compile with %s: %s" % (" ".join(flags) or "no flags", lines[-1] if lines else "")
        raise ImageError("toolchain", " ".join((command,) + tuple(flags)),
                         "%s; %s needs it (Debian: apt-get install %s)" % (why, target, " ".join(packages)))


def cached_image(target: str, fw_dir: Path | None = None, cache_dir: Path | None = None) -> Image | None:
    check_target(target)
    fw_dir = firmware_dir() if fw_dir is None else fw_dir
    key = image_key(target, fw_dir)
    path = (cache_root() if cache_dir is None else cache_dir) / "images" / ("%s-%s" % (target, key)) \
        / TARGETS[target].image
    return Image(target, path, key, False) if path.is_file() else None


@contextlib.contextmanager
def _locked(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _say(text: str) -> None:
    print("bms-twin firmware: " + text, file=sys.stderr, flush=True)


def build_image(target: str, source: str | None = None, cache_dir: Path | None = None, rebuild: bool = False,
                fw_dir: Path | None = None, say=_say, env=None) -> Image:
    """`target` (TARGETS) with the firmware frozen in, from the cache or built.
    `source`: the --micropython-src option (twin/images/source.py says what else is tried).
    Raises ImageError for bad input (nothing built), BuildFailed when make fails."""
    env = os.environ if env is None else env
    check_target(target)
    if source is not None:
        given_source(source, "--micropython-src")
    elif env.get(ENV_VAR):
        given_source(env[ENV_VAR], ENV_VAR)
    fw_dir = firmware_dir() if fw_dir is None else fw_dir
    root = cache_root(env) if cache_dir is None else Path(cache_dir)
    if not rebuild:
        hit = cached_image(target, fw_dir, root)
        if hit is not None:
            return hit
    check_tools(target)
    src = find_source(source, env)
    with _locked(root):
        if not rebuild:
            hit = cached_image(target, fw_dir, root)
            if hit is not None:     # another process built it while we waited
                return hit
        t0 = time.perf_counter()
        tree = unpack(src, root)
        build_root = root / ("build-" + src.ident)
        mpy_cross = _mpy_cross(tree, build_root / "mpy-cross", say)
        images = root / "images"
        images.mkdir(exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=target + "-", suffix=".tmp", dir=images))
        try:
            shutil.copytree(fw_dir, stage / "firmware",
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.mpy"))
            # The key of what is frozen: the copy, not fw_dir (which may change meanwhile).
            key = image_key(target, stage / "firmware")
            # The log stays beside the images if make fails (the stage does not).
            log = images / ("%s-%s.log" % (target, key))
            log.write_text("")
            image = _make_target(target, tree, stage, build_root, mpy_cross, root, src, log, say)
            log.rename(stage / "build.log")
            _write_json(stage / "image.json", {
                "micropython": MICROPYTHON_VERSION, "target": target, "key": key,
                "what": TARGETS[target].what, "source": src._asdict(), "make": list(TARGETS[target].make_vars),
                "manifest_options": MANIFEST_OPTIONS, "build_seconds": round(time.perf_counter() - t0, 1)})
            final = images / ("%s-%s" % (target, key))
            if final.exists():
                shutil.rmtree(final)
            stage.rename(final)
            # The manifest kept names the kept copy (make read the same files in the stage).
            _write_manifest(final, target)
        finally:
            if stage.exists():
                shutil.rmtree(stage)
    return Image(target, final / image.name, key, True)


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def _make_env():
    return {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV and not k.startswith("MICROPY_")}


def _make(args: list, log: Path, what: str) -> None:
    with open(log, "a") as fh:
        fh.write("$ make %s\n" % " ".join(args))
        fh.flush()
        try:
            code = subprocess.run(["make", *args], stdout=fh, stderr=subprocess.STDOUT, env=_make_env(),
                                  timeout=MAKE_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            code = "timeout after %d s" % MAKE_TIMEOUT_S
    if code != 0:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower() and not line.startswith("$ make")]
        raise BuildFailed("make of %s failed (exit %s): %s; the whole log: %s"
                          % (what, code, (errors or lines or ["no output"])[0], log))


def _jobs() -> str:
    return "-j%d" % (os.cpu_count() or 1)


def _mpy_cross(tree: Path, build: Path, say) -> Path:
    exe = build / "mpy-cross"
    if not exe.is_file():
        say("building mpy-cross %s (about a minute, once per source)" % MICROPYTHON_VERSION)
        build.mkdir(parents=True, exist_ok=True)
        log = build.parent / "mpy-cross.log"
        log.write_text("")
        _make(["-C", str(tree / "mpy-cross"), _jobs(), "BUILD=%s" % build], log, "mpy-cross")
    return exe


def _write_manifest(image_dir: Path, target: str) -> Path:
    """The board manifest: image_dir/firmware's manifest.py with MANIFEST_OPTIONS."""
    options = ", ".join("%s=%r" % kv for kv in sorted(MANIFEST_OPTIONS.items()))
    manifest = image_dir / "manifest.py"
    manifest.write_text("# bms-twin %s: the firmware's link component (twin/images/targets.py)\n"
                        "include(%r, %s)\n" % (target, str(image_dir / "firmware" / "manifest.py"), options))
    return manifest


def _make_target(target: str, tree: Path, stage: Path, build_root: Path, mpy_cross: Path, root: Path,
                 src, log: Path, say) -> Path:
    """Run the port's make with the manifest of `stage`; the image copied into `stage`."""
    t = TARGETS[target]
    lib = root / "mpy-lib"
    lib.mkdir(exist_ok=True)
    (lib / "README.md").write_text("An empty stand-in for micropython-lib: bms-twin's firmware "
                                   "manifest requires nothing from it (twin/images/build.py).\n")
    manifest = _write_manifest(stage, target)
    build = build_root / ("%s-%s" % (target, recipe_hash(target)))
    # makemanifest reuses a frozen .mpy that is newer than its source, by mtime: another
    # checkout's older edit would slip by, so the frozen part is always made afresh.
    shutil.rmtree(build / "frozen_mpy", ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (build / "frozen_content.c").unlink()
    say("building %s with the firmware frozen in, from %s (%s)" % (target, src.where, t.what))
    _make(["-C", str(tree / "ports" / t.port), _jobs(), *t.make_vars, "BUILD=%s" % build,
           "MICROPY_MPYCROSS=%s" % mpy_cross, "MPY_LIB_DIR=%s" % lib, "FROZEN_MANIFEST=%s" % manifest],
          log, target)
    image = stage / t.image
    shutil.copy2(build / t.image, image)
    return image
