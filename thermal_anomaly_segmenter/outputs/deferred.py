"""Output files written after the answer, by one background thread per process.

The API answers a JSON request from the in-memory report; only the file that claims the
output name (the mask PNG) is written before it answers. The probability PNG, the overlay,
the GeoJSON and the JSON report are written afterwards, here, in request order and each
atomically (temp file + rename), the JSON report last: its presence marks a complete set.
They take about 20 ms of CPU for a 512 x 640 frame (benchmarks/RESULTS.md D06).

They yield to requests: on a two-core machine those 20 ms would otherwise run beside the
next request's forward pass and slow it by as much. So a job (and each file of one, at the
:func:`pause_point` between them) starts only once no request has run in this process for
:data:`QUIET_S` (requests mark themselves with :func:`busy`). A job never waits longer than
:data:`MAX_DELAY_S`, and never once the backlog is full: at most :data:`MAX_PENDING` jobs and
:data:`MAX_PENDING_BYTES` of the arrays they hold wait (one job always may), beyond that a
new request waits for the writer, which then runs without pausing.

Nothing is lost on a normal exit: the thread is joined at interpreter exit, and a process
stopped with SIGTERM (how DEEPaaS stops its workers) first finishes what is pending.
Only SIGKILL (a predict cancelled for its time budget or a vanished client) can lose
pending files, never leave half of one. The thread also runs at a lower CPU priority (nice
:data:`NICE`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

#: Jobs that may wait at once (a request submits two: its files, then the retention) ...
MAX_PENDING = 64
#: ... and the bytes of the arrays they keep alive (frame, probability, labels); a single
#: job is always admitted, however large.
MAX_PENDING_BYTES = 256 * 2**20
#: A job starts once no request has run in this process for this long ...
QUIET_S = 0.05
#: ... or once it has waited this long, whatever the load.
MAX_DELAY_S = 2.0
#: Nice increment of the writer thread (Linux: per thread).
NICE = 10

_cond = threading.Condition()
_executor: ThreadPoolExecutor | None = None
_pending: set[Future] = set()
_held: list[list[tuple[Callable[..., Any], tuple, str, int]]] = []
_waiting_jobs = 0
_waiting_bytes = 0
_active = 0  # requests running in this process (busy)
_last_end = 0.0  # time.monotonic() when the last one ended
_urgent = 0  # threads waiting for the writer: it then runs without pausing
_writer = threading.local()
_sigterm_hooked = False


def _init_writer() -> None:
    _writer.is_writer = True
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


@contextlib.contextmanager
def busy() -> Iterator[None]:
    """Mark a request running in this process: pending files wait until it is over."""
    global _active, _last_end
    with _cond:
        _active += 1
    try:
        yield
    finally:
        with _cond:
            _active -= 1
            _last_end = time.monotonic()
            _cond.notify_all()


def _yield_to_requests(since: float) -> None:
    with _cond:
        while not _urgent:
            now = time.monotonic()
            left = since + MAX_DELAY_S - now
            if left <= 0:
                return
            if not _active:
                quiet_left = _last_end + QUIET_S - now
                if quiet_left <= 0:
                    return
                left = min(left, quiet_left)
            _cond.wait(left)


def pause_point() -> None:
    """Between two steps of a job: wait here while requests run (a no-op outside the
    writer thread, so a job's function also works when called directly)."""
    since = getattr(_writer, "job_started", None)
    if since is not None:
        _yield_to_requests(since)


def _run(fn: Callable[..., Any], args: tuple, name: str, cost: int, submitted: float) -> None:
    global _waiting_jobs, _waiting_bytes
    try:
        _yield_to_requests(submitted)
        _writer.job_started = submitted
        fn(*args)
    except Exception:
        log.exception("writing %s after the answer failed", name)
    finally:
        _writer.job_started = None
        with _cond:
            _waiting_jobs -= 1
            _waiting_bytes -= cost
            _cond.notify_all()


def submit(fn: Callable[..., Any], *args: Any, name: str = "outputs", cost: int = 0) -> None:
    """Run ``fn(*args)`` on the background writer, after everything submitted before (and,
    inside :func:`held`, once it ends).

    ``cost`` is the bytes the call keeps alive until it has run. Blocks while the backlog is
    full. A failure is logged (naming ``name``): the answer has gone already.
    """
    with _cond:
        if _held:
            _held[-1].append((fn, args, name, cost))
            return
    _start(fn, args, name, cost)


def _admissible(cost: int) -> bool:
    return _waiting_jobs < MAX_PENDING and (
        not _waiting_jobs or _waiting_bytes + cost <= MAX_PENDING_BYTES)


def _start(fn: Callable[..., Any], args: tuple, name: str, cost: int) -> None:
    global _executor, _waiting_jobs, _waiting_bytes, _urgent
    with _cond:
        if not _admissible(cost):
            _urgent += 1  # the writer stops pausing until there is room
            _cond.notify_all()
            try:
                _cond.wait_for(lambda: _admissible(cost))
            finally:
                _urgent -= 1
        _waiting_jobs += 1
        _waiting_bytes += cost
        if _executor is None:
            _executor = ThreadPoolExecutor(1, thread_name_prefix="taseg-deferred",
                                           initializer=_init_writer)
        future = _executor.submit(_run, fn, args, name, cost, time.monotonic())
        _pending.add(future)
    future.add_done_callback(_pending.discard)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Start nothing submitted inside until the block ends (the answer is built by then: the
    writer then takes no CPU or GIL from it)."""
    jobs: list[tuple[Callable[..., Any], tuple, str, int]] = []
    with _cond:
        _held.append(jobs)
    try:
        yield
    finally:
        with _cond:
            _held.remove(jobs)
            if _held:  # an outer block still holds: they start with its jobs
                _held[-1].extend(jobs)
                jobs = []
        for job in jobs:
            _start(*job)


def wait(timeout: float | None = None) -> bool:
    """Write everything submitted so far (outside :func:`held`) without pausing for
    requests, and wait for it; False if ``timeout`` ran out."""
    global _urgent
    from concurrent.futures import wait as wait_futures

    with _cond:
        pending = set(_pending)
        _urgent += 1
        _cond.notify_all()
    try:
        return not wait_futures(pending, timeout=timeout).not_done
    finally:
        with _cond:
            _urgent -= 1


def finish_on_sigterm() -> None:
    """On SIGTERM, finish the pending files, then die of SIGTERM as before.

    Does something only once, where SIGTERM still has its default action, and in the main
    thread (the only one that may set handlers); elsewhere a normal exit still joins the
    writer.
    """
    global _sigterm_hooked
    if _sigterm_hooked or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_hooked = True
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def finish_then_die(signum: int, frame: Any) -> None:
        wait(timeout=60)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, finish_then_die)
