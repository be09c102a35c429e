"""Requests that end early: a cancelled training and a client that went away.

DEEPaaS 2.6 cancels a training on ``DELETE .../train/<uuid>`` by killing its worker, then
fails to describe the killed task: the client gets a 500
(its response builder then also fails on the result of a killed training: a TypeError).
A predict whose client disconnected kept its worker busy until the end (aiohttp does not
cancel handlers on disconnect); cancelling the handler makes DEEPaaS kill and replace the
worker, so the next request is served at once. A predict that runs past its time budget
(``TASEG_PREDICT_TIMEOUT_S``) is cancelled the same way and answers 503 naming the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from thermal_anomaly_segmenter.config import get_settings
from thermal_anomaly_segmenter.errors import TasegError

from . import uploads
from .responses import ApiError, error_for
from .worker_pool import WorkerDiedError

log = logging.getLogger(__name__)

#: How often a running predict checks whether its client is still connected.
POLL_S = 0.5


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def request_lifecycle(request: web.Request, handler: Callable[..., Any]) -> Any:
    """Answer a cancelled training with JSON; cancel a predict whose client disconnected."""
    if request.method == "DELETE" and "/train/" in request.path:
        from thermal_anomaly_segmenter.processes import kill_orphans, process_trees

        # DEEPaaS SIGKILLs the training's worker, which cannot stop its own children (data
        # loaders, anything the model started): they are killed here, by what was seen.
        trees = process_trees(os.getpid())
        try:
            return await handler(request)
        except web.HTTPException:
            raise  # 404: no such training
        except (asyncio.CancelledError, Exception):
            # DEEPaaS removes and kills the training before it builds its answer: whatever
            # fails after that, the training is cancelled.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this request itself is being cancelled
            uuid = request.match_info.get("uuid", "")
            log.info("training %s cancelled", uuid)
            return web.json_response({"uuid": uuid, "status": "cancelled"})
        finally:
            if killed := kill_orphans(trees):
                log.info("killed %d processes left by the cancelled training", killed)
    if request.method != "POST" or not request.path.rstrip("/").endswith("/predict"):
        return await handler(request)
    try:
        return await _predict_within_budget(request, handler)
    except WorkerDiedError as exc:  # a segfault or an OOM kill: named, the server goes on
        raise ApiError(exc.status, str(exc)) from None


async def _predict_within_budget(request: web.Request, handler: Callable[..., Any]) -> Any:
    """Run a predict; cancel it when its client goes away or its time budget runs out."""
    try:
        budget = get_settings().predict_timeout_s
    except TasegError as exc:  # a malformed TASEG_PREDICT_TIMEOUT_S, named
        raise error_for(exc) from None
    # The budget starts once the upload is in (bounded_body has read it), so a slow client
    # is not charged; waiting for a busy worker counts, as the client waits too.
    deadline = time.monotonic() + budget if budget else None
    task = asyncio.ensure_future(handler(request))
    while not task.done():
        await asyncio.wait({task}, timeout=POLL_S)
        if task.done():
            break
        if _client_gone(request):
            log.warning("%s: client disconnected; predict cancelled", request.path)
            await _cancel(task)
            # Nobody reads this answer; 499 (client closed request) for the access log.
            return web.Response(status=499)
        if deadline is not None and time.monotonic() > deadline:
            message = (f"predict did not finish within {budget} s (TASEG_PREDICT_TIMEOUT_S); "
                       "it was cancelled: send a smaller frame or raise the limit")
            log.warning("%s: %s", request.path, message)
            await _cancel(task)
            raise ApiError(503, message)
    return task.result()


async def _cancel(task: asyncio.Future[Any]) -> None:
    """Cancel a predict: DEEPaaS then kills its worker and starts a fresh one; the killed
    worker's temp copies of the uploads are removed here."""
    held = uploads.temp_copies_held_by_children()
    task.cancel()
    # DEEPaaS's pool swallows the cancellation and returns None, on which its handler then
    # fails (a TypeError): the handler's end is of no interest once it is cancelled.
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    if removed := uploads.remove_temp_copies_of_ended(held):
        log.info("removed %d temp uploads of the cancelled predict", removed)
