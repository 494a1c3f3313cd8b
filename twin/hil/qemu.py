"""The QEMU board: the firmware frozen into MicroPython's qemu port, on QEMU's
mps2-an385 (Cortex-M3), with its UART0 as the HIL link.

The qemu port runs no main.py: it offers the REPL on UART0. So the twin boots the
board with UART0 on QEMU's stdio, which is one end of a socket pair (the twin holds
the other), and starts the firmware the way mpremote runs code: Ctrl-A enters the
raw REPL, the code goes in, Ctrl-D runs it and the board answers "OK". The code is
the firmware's HIL entry point with its options,

    from bmsfw import link_main
    link_main.main(["--config", "...", "--device-id", "..."])

which, with no --port, carries the link on sys.stdin/sys.stdout: on this board they
are UART0 (link_main.PollStream: select.poll on stdin, bytes one at a time through
sys.stdin.buffer, Ctrl-C off, so a 0x03 in a frame is data). From "OK" on, every
byte on the UART is the link's. The port's UART has no interrupt and a one-byte
receive register: QEMU hands the guest the next byte when it has read the last, so
nothing is lost and the socket's buffer is the line's. docs/board.md and docs/hil.md
say the same for a real board whose REPL port is the link.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time

from twin.hil.errors import FirmwareFailed, HilError

QEMU = "qemu-system-arm"
MACHINE = "mps2-an385"
BANNER = b">>> "                                # the friendly REPL's prompt after boot
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
RAW_OK = b"OK"
CTRL_A, CTRL_D = b"\x01", b"\x04"
REPL_TIMEOUT_S = 20.0                           # boot to REPL takes ~0.1 s when idle


def qemu_command(elf) -> list:
    """QEMU with the board's UART0 on stdio; no display, no monitor; semihosting
    for the port's exit() (machine.reset() ends QEMU)."""
    return [QEMU, "-machine", MACHINE, "-display", "none", "-monitor", "none", "-semihosting",
            "-serial", "stdio", "-kernel", str(elf)]


def check_qemu() -> None:
    if shutil.which(QEMU) is None:
        raise HilError("--firmware", "qemu", "needs %s on PATH (Debian: apt-get install qemu-system-arm)" % QEMU)


def start_code(argv: list) -> bytes:
    """What the raw REPL runs: link_main with `argv` (MicroPython reads Python's repr of a list of str)."""
    return ("from bmsfw import link_main\nlink_main.main(%r)\n" % list(argv)).encode()


def boot_board(elf, stderr, **popen):
    """(QEMU process, the twin's socket end): QEMU started with its UART on the other end."""
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(qemu_command(elf), stdin=theirs.fileno(), stdout=theirs.fileno(),
                                stderr=stderr, **popen)
    except OSError:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


def read_until(sock, token: bytes, timeout_s: float, proc) -> tuple:
    """(True, bytes up to and with token) or (False, what came). One byte at a time,
    so nothing after the token is taken from the link."""
    got = bytearray()
    deadline = time.monotonic() + timeout_s
    sock.settimeout(0.05)
    try:
        while not got.endswith(token):
            if time.monotonic() > deadline or proc.poll() is not None:
                return False, bytes(got)
            try:
                byte = sock.recv(1)
            except socket.timeout:
                continue
            if not byte:
                return False, bytes(got)
            got += byte
    finally:
        sock.settimeout(None)
    return True, bytes(got)


def run_in_raw_repl(sock, proc, code: bytes, timeout_s: float = REPL_TIMEOUT_S) -> None:
    """Enter the raw REPL and run `code`; return when the board said OK (it runs).
    Raises FirmwareFailed with what the board said when it does not get there."""
    steps = ((None, BANNER, "REPL prompt after boot"), (CTRL_A, RAW_PROMPT, "raw REPL prompt"),
             (code + CTRL_D, RAW_OK, "OK from the raw REPL"))
    for send, token, what in steps:
        if send is not None:
            sock.sendall(send)
        ok, said = read_until(sock, token, timeout_s, proc)
        if not ok:
            raise FirmwareFailed("the qemu board gave no %s on its UART within %.0f s; it said %r"
                                 % (what, timeout_s, said[-200:].decode("utf-8", "replace")))
