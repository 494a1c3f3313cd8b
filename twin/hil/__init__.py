"""Hardware-in-the-loop: the twin plays the cell for a firmware on the other end
of a byte stream (a board on USB serial, a pty, a TCP serial bridge).

Per tick the twin lets simulated time pass on its board (TwinBoard.advance,
which latches one ADC scan), sends the scan in a TICK, and applies the REPLY's
setpoint and relay to the board; the REPLY's telemetry frame and the EVENT
frames go to the run's recorder and to the sinks, exactly as `bms-twin run`
feeds them from the in-process controller. SAVE_RECORD frames land in the
board's record store, and the record goes back to the firmware in the boot
TICK that answers its HELLO, as a board's flash would. The protocol is in
docs/hil.md and firmware/bmsfw/link_codec.py.

Two pacings:
  lockstep  the twin waits for each REPLY (sending the TICK again at once on
            evidence of a loss -- a NAK, a damaged frame -- else on an adaptive
            timer; marking the firmware dead after reply_timeout_s), and for
            the firmware's latest record before time moves on: deterministic,
            as fast as both ends go.
  realtime  a TICK every tick_ms of wall time whatever the firmware does; a
            late reply is applied when it comes; no valid reply for
            link_timeout_ms puts the board safe (setpoint 0, relay open).

A session ends with END (the firmware answers and exits 0). The package, one
module per job: transport.py (the byte stream: pty, serial device, TCP that
reconnects, writes with a deadline), link_end.py (the twin's end of the link
protocol, the retry timer), reply.py (the
REPLY decoder), server.py (HilServer, the session), cli.py (`bms-twin hil`),
errors.py (HilError).
"""
from twin.hil.cli import add_arguments, main
from twin.hil.errors import HilError
from twin.hil.link_end import FRAME_GAP_S, TWIN_COUNTERS, TwinLinkEnd
from twin.hil.reply import decode_reply
from twin.hil.server import HilServer, RemoteController
from twin.hil.transport import FdLink, open_port

__all__ = ["FRAME_GAP_S", "TWIN_COUNTERS", "FdLink", "HilError", "HilServer", "RemoteController",
           "TwinLinkEnd", "add_arguments", "decode_reply", "main", "open_port"]
