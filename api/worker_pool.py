"""The server's model worker processes, supervised: a worker that dies does not take it down.

DEEPaaS 2.6 runs ``warm``, ``predict`` and ``train`` in one-process ``multiprocessing.Pool``s.
When such a worker dies (a segfault in a native library, the kernel's OOM killer) the pool
quietly starts another and the request waits for an answer that never comes; cancelling it
then SIGKILLs the idle replacement while it holds the pool's queue lock, and the
``Pool.terminate()`` that follows, run in the event loop, blocks the whole server for good.

:class:`SupervisedPool` takes the place of DEEPaaS's pool (same ``apply``/``shutdown``): each
slot is a one-process :class:`~concurrent.futures.ProcessPoolExecutor`, which notices a dead
worker at once. The call then fails with :class:`WorkerDiedError` naming the signal or exit
status, the DEEPaaS temp copies of its uploads are removed (the dead worker cannot), and the
slot gets a fresh worker; a cancelled call (timeout, client gone, DELETE of a training) is
killed without any blocking wait in the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import uploads

log = logging.getLogger(__name__)


class WorkerDiedError(RuntimeError):
    """The worker running a request ended without answering (``status`` is the HTTP one)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def describe_exit(exitcode: int | None) -> tuple[str, int]:
    """A message and an HTTP status for a worker that ended with ``exitcode``."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == signal.SIGKILL:  # the OOM killer's signal, or an operator's
            return (f"the model worker was killed ({name}), most likely for lack of memory; "
                    "it was replaced: send a smaller input or retry"), 503
        return (f"the model worker crashed ({name}) while serving this request; it was "
                "replaced and the request's uploads removed"), 500
    return (f"the model worker ended unexpectedly (exit status {exitcode}); it was "
            "replaced"), 500


class SupervisedPool:
    """DEEPaaS's ``CancellablePool`` interface over self-healing one-process executors."""

    def __init__(self, max_workers: int = 1) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._free = {self._new_slot() for _ in range(max(1, max_workers))}
        self._working: set[ProcessPoolExecutor] = set()
        self._change = asyncio.Event()

    def _new_slot(self) -> ProcessPoolExecutor:
        from thermal_anomaly_segmenter.processes import die_with_parent

        # Unlike Pool's, an executor's worker keeps its queue's write end and so never sees
        # its server go away: it asks the kernel to end it with the server (spawned from the
        # event loop's thread, which lives as long as the server).
        slot = ProcessPoolExecutor(max_workers=1, mp_context=self._context,
                                   initializer=die_with_parent)
        slot.submit(os.getpid)  # start the worker now, not on the next request
        return slot

    @staticmethod
    def _processes(slot: ProcessPoolExecutor) -> list[multiprocessing.process.BaseProcess]:
        return list((getattr(slot, "_processes", None) or {}).values())

    def _discard(self, slot: ProcessPoolExecutor) -> int | None:
        """Kill what is left of ``slot`` without waiting; the exit code of its worker."""
        exitcode = None
        for process in self._processes(slot):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                if process.exitcode is None:
                    process.kill()
                process.join(timeout=2)
                exitcode = process.exitcode if exitcode is None else exitcode
        slot.shutdown(wait=False, cancel_futures=True)
        return exitcode

    async def apply(self, fn: Any, *args: Any) -> dict[str, Any] | None:
        """Run ``fn(*args)`` in a free worker, as DEEPaaS's pool: ``{"output", "finish_date"}``.

        Raises:
            WorkerDiedError: The worker died before answering; it was replaced.
        """
        while not self._free:
            await self._change.wait()
            self._change.clear()
        slot = replacement = self._free.pop()
        self._working.add(slot)
        try:
            try:
                future = slot.submit(fn, *args)
            except BrokenProcessPool:  # died while idle: a fresh worker takes the call
                self._discard(slot)
                slot = replacement = self._new_slot()
                future = slot.submit(fn, *args)
            output = await asyncio.wrap_future(future)
            return {"output": output, "finish_date": str(datetime.datetime.now())}
        except BrokenProcessPool:
            replacement = self._new_slot()
            exitcode = await asyncio.get_running_loop().run_in_executor(
                None, self._discard, slot)
            removed = uploads.remove_temp_copy_of_call(fn)
            message, status = describe_exit(exitcode)
            log.error("%s (temp uploads removed: %d)", message, removed)
            raise WorkerDiedError(message, status) from None
        except asyncio.CancelledError:
            # As DEEPaaS's pool: a cancelled call kills its worker and answers None.
            replacement = self._new_slot()
            await asyncio.get_running_loop().run_in_executor(None, self._discard, slot)
            uploads.remove_temp_copy_of_call(fn)
            return None
        finally:
            self._working.discard(slot)
            self._free.add(replacement)
            self._change.set()

    def shutdown(self) -> None:
        """Stop every worker (the server is closing)."""
        for slot in (*self._working, *self._free):
            self._discard(slot)
        self._free.clear()


def supervise_deepaas_workers() -> int:
    """Put a :class:`SupervisedPool` in place of each DEEPaaS model's pool; how many.

    Called while DEEPaaS builds its routes, when its idle pools can still be closed safely.
    """
    import sys

    registry = getattr(sys.modules.get("deepaas.model.v2"), "MODELS", None) or {}
    swapped = 0
    for wrapper in registry.values():
        old = getattr(wrapper, "_executor", None)
        if old is None or isinstance(old, SupervisedPool):
            continue
        wrapper._executor = SupervisedPool(getattr(wrapper, "_workers", 1) or 1)
        with contextlib.suppress(Exception):
            for pool in getattr(old, "_free", ()):
                pool.terminate()  # idle, never killed: terminate does not block
        swapped += 1
    return swapped
