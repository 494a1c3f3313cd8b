"""Where variants run: in this process, in local worker processes, or on Dask.

All three hand back concurrent.futures.Future objects (Dask through its
ClientExecutor), so the runner's loop is the same code for each. Local
parallelism uses processes, not threads: an open-loop variant spends most of
its time in Python between C segments and a closed loop runs the firmware in
Python, so both hold the GIL (the fleet, whose work is all in C, uses threads).
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor

from twin.fleet import available_cores


class InProcess:
    """Runs each submitted call at once, in this process (one worker, no pickling)."""

    def submit(self, fn, *args):
        future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as error:     # handed to the caller through the future, as a pool does
            future.set_exception(error)
        return future


def _ignore_sigint() -> None:
    """In a worker: a Ctrl-C at the terminal reaches the whole process group, but
    only the client should act on it (store what is done, stop the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _children_ignore_sigint():
    """Processes started inside inherit an ignored SIGINT (see _ignore_sigint)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Where:
    """An executor and how many workers it has (to keep them all busy)."""

    def __init__(self, executor, workers: int, label: str):
        self.executor = executor
        self.workers = workers
        self.label = label


@contextlib.contextmanager
def open_executor(workers: int | None = None, dask: bool = False, scheduler: str | None = None):
    """workers: local processes (default: every core); dask: a LocalCluster of
    `workers` processes; scheduler: the address of a running Dask scheduler."""
    if scheduler is not None or dask:
        with _dask(workers, scheduler) as where:
            yield where
        return
    workers = workers or available_cores()
    if workers == 1:
        yield Where(InProcess(), 1, "1 process")
        return
    # spawn, not fork: the parent may hold threads (the progress bar, a fleet pool)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_ignore_sigint)
    try:
        yield Where(pool, workers, "%d local processes" % workers)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _dask(workers, scheduler):
    from distributed import Client, LocalCluster

    if scheduler is not None:
        client = None
        try:
            client = Client(scheduler, timeout="30s")
            client.wait_for_workers(1, timeout=60)
        except (OSError, TimeoutError) as error:
            if client is not None:
                client.close()
            raise OSError("--scheduler %s: %s (is a Dask scheduler with workers running there?)"
                          % (scheduler, error)) from None
        cluster = None
        label = "Dask scheduler %s" % scheduler
    else:
        with _children_ignore_sigint():
            cluster = LocalCluster(n_workers=workers or available_cores(), threads_per_worker=1,
                                   processes=True, dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        label = "Dask LocalCluster"
    try:
        n = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1
        yield Where(client.get_executor(pure=False), n, "%s (%d workers)" % (label, n))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
