"""The byte stream under the HIL link: a pty, a serial device or a TCP serial bridge,
as a file descriptor with timed reads (select) and whole writes."""
from __future__ import annotations

import os
import select
import socket
import time

from twin.hil.errors import HilError


class FdLink:
    """A file descriptor (pty master, serial device, socket) as a byte stream."""

    def __init__(self, fd: int, closer=None):
        self.fd = fd
        self._closer = closer
        self.eof = False

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        if self.eof:
            time.sleep(timeout_s)
            return b""
        if not select.select([self.fd], [], [], max(0.0, timeout_s))[0]:
            return b""
        try:
            data = os.read(self.fd, max_bytes)
        except OSError:     # EIO: the pty's slave side is gone
            data = b""
        if not data:
            self.eof = True
        return data

    def write(self, data) -> None:
        view = memoryview(data)
        while len(view):
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                select.select([], [self.fd], [], 0.1)
                continue
            except OSError:
                self.eof = True
                return
            view = view[n:]

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None


def open_port(port: str, baud: int = 115200):
    """(FdLink, slave_path or None). `pty` makes a raw pseudo-terminal pair and
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
        return FdLink(master, close), path
    if port.startswith("tcp://"):
        host, _, num = port[6:].rpartition(":")
        if not host or not num.isdigit():
            raise HilError("port", port, "expected tcp://host:port")
        sock = socket.create_connection((host, int(num)), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return FdLink(sock.fileno(), sock.close), None
    if not os.path.exists(port):
        raise HilError("port", port, "no such device (use a device path, pty or tcp://host:port)")
    import serial   # pyserial: sets the line discipline and baud rate of a real port

    ser = serial.Serial(port, baudrate=baud, timeout=0)
    return FdLink(ser.fileno(), ser.close), None
