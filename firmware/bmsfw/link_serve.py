# The HIL loop: boot() and serve() run the controller over a LinkHal
# (bmsfw/link_hal.py, docs/hil.md). The composition roots call them:
# bmsfw/link_main.py on a PC, main.py on a board with HAL_KIND = "link".
from .compat import const, ticks_diff, ticks_ms
from . import link_codec as lc
from .commands import request_error
from .link_hal import COMMAND, END, HELLO_MS, REQUEST, TICK

# how long the firmware answers a repeated END after the first (the twin sends
# END again for up to its end_timeout_s, 1 s by default)
END_LINGER_MS = const(1500)

# No try blocks in the tick loop (see twin/images/wasm.py on the
# WASI build's GC defect). The link timeout is the board's own wall clock: no
# valid TICK for link_timeout_ms -> Controller.report_link_lost() (current 0,
# relay open, LINK_LOST latched); the answer is still sent (the twin may hear
# it) and HELLOs ask the twin to re-sync.
def _answer(link, controller, ticked):
    for ev in controller.pop_events():
        link.add_event(ev)
    link.send_answer(controller.telemetry(), ticked)


def boot(link, config, device_id, hello_ms=HELLO_MS, boot_timeout_ms=None, clock=None):
    """HELLO until the twin's boot TICK, then build the controller on it (its
    record, its time) and send the boot answer. None if the twin never came."""
    if clock is None:
        clock = ticks_ms
    t0 = clock()
    while not link.synced:
        link.hello(True, device_id)
        link.poll(hello_ms)
        if link.synced:
            break
        if getattr(link.stream, "eof", False):
            return None
        if boot_timeout_ms is not None and ticks_diff(clock(), t0) >= boot_timeout_ms:
            return None
    from .controller import Controller

    controller = Controller(link, config, device_id=device_id)
    link.begin_answer()
    _answer(link, controller, False)
    return controller


def _linger(link):
    """After answering END: answer it again each time the twin sends it again
    (our answer was lost on the line), until the twin closes the stream or
    END_LINGER_MS pass without one. The last word of a session cannot be known
    to have arrived; this keeps its loss from ending the session unacknowledged."""
    since_ms = link.ms_since_tick()
    while link.ms_since_tick() - since_ms < END_LINGER_MS and not getattr(link.stream, "eof", False):
        if link.poll(END_LINGER_MS) == END:
            link.send_end()
            since_ms = link.ms_since_tick()


def serve(link, controller, device_id, link_timeout_ms, hello_ms=HELLO_MS, max_ticks=None,
          exit_on_eof=True):
    """Tick `controller` once per TICK from the twin. Returns the number of
    ticks run when max_ticks is reached, when the twin ended the session (END:
    link.ended), or when the stream closed (EOF) after the link was declared
    lost (exit_on_eof)."""
    n_ticks = 0
    lost = False
    last_hello_ms = 0
    while max_ticks is None or n_ticks < max_ticks:
        wait = link_timeout_ms - link.ms_since_tick()
        if lost or wait > hello_ms:
            wait = hello_ms
        if wait < 1:
            wait = 1
        got = link.poll(wait)
        if got == TICK:
            lost = False
            link.begin_answer()
            controller.tick()
            n_ticks += 1
            _answer(link, controller, True)
        elif got == COMMAND:
            ok, code = controller.command(link.cmd_name, link.cmd_args)
            link.send_command_result(link.cmd_id, ok, code)
        elif got == REQUEST:
            # the cycler's duty request, as Controller.request_current_ua takes it
            # in-process (READY only, clamped to CCL/DCL); one beyond the source's
            # limit is the twin's mistake: counted, never raised into the loop
            if request_error(link.request_ua, controller.config.source_max_ua):
                link.bad_payload = lc.sat(link.bad_payload + 1)
            else:
                controller.request_current_ua(link.request_ua)
        elif got == END:
            link.send_end()         # the twin ended the session: a clean end, not a lost link
            _linger(link)
            return n_ticks
        elif not lost:
            if link.ms_since_tick() >= link_timeout_ms:
                lost = True
                link.link_lost += 1
                link.lost_flag = True
                link.begin_answer()
                controller.report_link_lost()
                _answer(link, controller, False)
                link.hello(False, device_id)
                last_hello_ms = link.ms_since_tick()
        else:
            if exit_on_eof and getattr(link.stream, "eof", False):
                return n_ticks
            since = link.ms_since_tick()
            if since - last_hello_ms >= hello_ms:
                link.hello(False, device_id)
                last_hello_ms = since
    return n_ticks
