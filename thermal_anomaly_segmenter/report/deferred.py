"""Output files written after the answer, by one background thread per process.

The API answers a JSON request from the in-memory report; only the file that claims the
output name (the mask PNG) is written before it answers. The probability PNG, the overlay,
the GeoJSON and the JSON report are written right after, here, in request order and each
atomically (temp file + rename), the JSON report last: its presence marks a complete set.
They take about 45 ms of CPU for a 512 x 640 frame (benchmarks/RESULTS.md, "CPU serving"),
later under load; at most :data:`MAX_PENDING` jobs wait (two per request: its files, then
the retention), then a new request waits for them.

Nothing is lost on a normal exit: the thread is joined at interpreter exit, and a process
stopped with SIGTERM (how DEEPaaS stops its workers) first finishes what is pending.
Only SIGKILL (a predict cancelled for its time budget or a vanished client) can lose
pending files, never leave half of one. The thread runs at a lower CPU priority (nice
:data:`NICE`), so that it yields the cores to the next request's forward pass.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

#: Jobs that may wait at once (a request submits two: its files, then the retention);
#: beyond it the next one waits (bounded memory: each holds its frame and probability map).
MAX_PENDING = 4
#: Nice increment of the writer thread (Linux: per thread).
NICE = 10

_lock = threading.Lock()
_slots = threading.BoundedSemaphore(MAX_PENDING)
_executor: ThreadPoolExecutor | None = None
_pending: set[Future] = set()
_held: list[list[tuple[Callable[..., Any], tuple, str]]] = []
_sigterm_hooked = False


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


def _run(fn: Callable[..., Any], args: tuple, name: str) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("writing %s after the answer failed", name)
    finally:
        _slots.release()


def submit(fn: Callable[..., Any], *args: Any, name: str = "outputs") -> None:
    """Run ``fn(*args)`` on the background writer, after everything submitted before (and,
    inside :func:`held`, once it ends).

    Blocks while :data:`MAX_PENDING` calls wait. A failure is logged (naming ``name``): the
    answer has gone already.
    """
    with _lock:
        if _held:
            _held[-1].append((fn, args, name))
            return
    _start(fn, args, name)


def _start(fn: Callable[..., Any], args: tuple, name: str) -> None:
    global _executor
    _slots.acquire()  # outside the lock: the running jobs release the slots
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(1, thread_name_prefix="taseg-deferred",
                                           initializer=_lower_priority)
        future = _executor.submit(_run, fn, args, name)
        _pending.add(future)
    future.add_done_callback(_pending.discard)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Start nothing submitted inside until the block ends (the answer is built by then: the
    writer then takes no CPU or GIL from it)."""
    jobs: list[tuple[Callable[..., Any], tuple, str]] = []
    with _lock:
        _held.append(jobs)
    try:
        yield
    finally:
        with _lock:
            _held.remove(jobs)
            if _held:  # an outer block still holds: they start with its jobs
                _held[-1].extend(jobs)
                jobs = []
        for job in jobs:
            _start(*job)


def wait(timeout: float | None = None) -> bool:
    """Wait until everything submitted so far (outside :func:`held`) is written; False if
    ``timeout`` ran out."""
    from concurrent.futures import wait as wait_futures

    with _lock:
        pending = set(_pending)
    return not wait_futures(pending, timeout=timeout).not_done


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
