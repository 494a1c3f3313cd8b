"""The byte stream under the HIL link: a pty, a serial device or a TCP serial bridge,
as a file descriptor with timed reads (select) and writes with a deadline.

A stream says why it ended (`end_reason`): the other end closed it (EOF), a write
the other end did not take within `write_timeout_s` (a peer that never reads), or
an error. tcp:// reconnects: a closed connection is opened again for up to
`reconnect_s` before the stream gives up."""
from __future__ import annotations

import os
import select
import socket
import time

from twin.hil.errors import HilError

WRITE_TIMEOUT_S = 2.0       # a write the firmware does not take within this ends the stream
RECONNECT_S = 10.0          # tcp://: how long to keep reconnecting after the bridge closed
RECONNECT_EVERY_S = 0.2


class FdLink:
    """A file descriptor (pty master, serial device, socket) as a byte stream."""

    def __init__(self, fd: int, closer=None, write_timeout_s: float = WRITE_TIMEOUT_S):
        self.fd = fd
        self._closer = closer
        self.write_timeout_s = write_timeout_s
        self.eof = False
        self.end_reason: str | None = None
        self._nonblocking = False

    def _end(self, why: str) -> None:
        if not self.eof:
            self.eof = True
            self.end_reason = why

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        if self.eof:
            time.sleep(timeout_s)
            return b""
        if not select.select([self.fd], [], [], max(0.0, timeout_s))[0]:
            return b""
        try:
            data = os.read(self.fd, max_bytes)
        except BlockingIOError:
            return b""
        except OSError as error:     # EIO: the pty's slave side is gone
            self._lost(f"EOF: the firmware's end closed ({error.strerror})")
            return b""
        if not data:
            self._lost("EOF: the firmware's end closed the stream")
        return data

    def _lost(self, why: str) -> None:
        self._end(why)

    def write(self, data) -> bool:
        """Write all of `data` within write_timeout_s; False (and the stream ended,
        end_reason saying why) if the other end did not take it in time."""
        if self.eof:
            return False
        if not self._nonblocking:       # set here: the QEMU board's REPL start changed it before
            os.set_blocking(self.fd, False)
            self._nonblocking = True
        view = memoryview(data)
        deadline = time.monotonic() + self.write_timeout_s
        while len(view):
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._end(f"write stalled: the firmware took no bytes for {self.write_timeout_s:g} s "
                              "(a peer that does not read)")
                    return False
                select.select([], [self.fd], [], min(left, 0.1))
                continue
            except OSError as error:
                self._lost(f"EOF: the firmware's end closed ({error.strerror})")
                return False
            view = view[n:]
        return True

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None


class TcpLink(FdLink):
    """tcp://host:port: a serial-to-TCP bridge. A closed connection is reopened
    (every RECONNECT_EVERY_S, for up to reconnect_s); while it is down, reads
    return nothing and writes are dropped, as on a line that is out. `reconnects`
    counts the connections opened again."""

    def __init__(self, host: str, port: int, write_timeout_s: float = WRITE_TIMEOUT_S,
                 reconnect_s: float = RECONNECT_S):
        self.addr = (host, port)
        self.reconnect_s = reconnect_s
        self.reconnects = 0
        self.sock: socket.socket | None = None
        self._down_since: float | None = None
        self._next_try = 0.0
        self._down_why = ""
        sock = self._connect(10.0)
        super().__init__(sock.fileno(), self._close_sock, write_timeout_s)

    def _connect(self, timeout_s: float) -> socket.socket:
        sock = socket.create_connection(self.addr, timeout=timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        return sock

    def _close_sock(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _lost(self, why: str) -> None:
        # Not the end yet: the bridge may come back.
        self._close_sock()
        self._down_since = time.monotonic()
        self._down_why = why
        self._next_try = 0.0

    def _up(self) -> bool:
        if self.sock is not None:
            return True
        now = time.monotonic()
        if now - self._down_since > self.reconnect_s:
            self._end(f"{self._down_why}; no reconnect to tcp://{self.addr[0]}:{self.addr[1]} "
                      f"within {self.reconnect_s:g} s")
            return False
        if now < self._next_try:
            return False
        self._next_try = now + RECONNECT_EVERY_S
        try:
            sock = self._connect(RECONNECT_EVERY_S)
        except OSError:
            return False
        self.fd = sock.fileno()
        self._nonblocking = False
        self.reconnects += 1
        return True

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        if not self.eof and not self._up():
            time.sleep(min(timeout_s, RECONNECT_EVERY_S))
            return b""
        return super().read(max_bytes, timeout_s)

    def write(self, data) -> bool:
        if not self.eof and not self._up():
            return True         # the line is down: the bytes are lost, as on a cut wire
        return super().write(data)


def open_port(port: str, baud: int = 115200, write_timeout_s: float = WRITE_TIMEOUT_S,
              reconnect_s: float = RECONNECT_S):
    """(stream, slave_path or None). `pty` makes a raw pseudo-terminal pair and
    keeps the slave open (so reads before the firmware opens it do not fail);
    `tcp://host:port` connects to a serial bridge; anything else is a serial device."""
    if port == "pty":
        import tty

        master, slave = os.openpty()
        tty.setraw(slave)           # no echo, no line editing: bytes pass as they are
        path = os.ttyname(slave)

        def close():
            os.close(master)
            os.close(slave)
        return FdLink(master, close, write_timeout_s), path
    if port.startswith("tcp://"):
        host, _, num = port[6:].rpartition(":")
        if not host or not num.isdigit():
            raise HilError("port", port, "expected tcp://host:port")
        try:
            return TcpLink(host, int(num), write_timeout_s, reconnect_s), None
        except OSError as error:
            raise HilError("port", port, f"cannot connect: {error.strerror or error}") from None
    if not os.path.exists(port):
        raise HilError("port", port, "no such device (use a device path, pty or tcp://host:port)")
    import serial   # pyserial: sets the line discipline and baud rate of a real port

    ser = serial.Serial(port, baudrate=baud, timeout=0)
    return FdLink(ser.fileno(), ser.close, write_timeout_s), None
