"""DEEPaaS V2 interface of TASeg: a thin adapter over :mod:`thermal_anomaly_segmenter`.

Each entry point validates its arguments with :mod:`api.schemas`, calls the core and
formats the answer with :mod:`api.responses`. DEEPaaS runs ``warm``, ``predict`` and
``train`` in spawned worker processes; errors leave them as :class:`~api.responses.ApiError`
(4xx for bad input, JSON body), so a bad request never takes the worker down.
``run_predict`` and ``run_train`` are shared with the root ``cli.py``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web
from marshmallow import fields as ma_fields

from thermal_anomaly_segmenter.config import PredictOptions, Settings, TrainOptions, get_settings
from thermal_anomaly_segmenter.errors import InvalidInputError, TasegError

from . import (
    config,
    lifecycle,
    report_response,
    request_limits,
    responses,
    schemas,
    uploads,
    worker_pool,
)

log = logging.getLogger(__name__)

__all__ = [
    "get_metadata",
    "get_predict_args",
    "get_train_args",
    "predict",
    "run_predict",
    "run_train",
    "train",
    "warm",
]


def get_metadata() -> dict[str, Any]:
    """Project metadata plus the model and dataset folders found now.

    Keys as published (name, description, license, version, url, author, author-email,
    datasets_local, datasets_remote, models_local, models_remote), plus ``model_types``
    (what ``train`` can build) and ``default_model`` (what ``predict`` uses by default).
    """
    from thermal_anomaly_segmenter.io.datasets import list_dataset_folders
    from thermal_anomaly_segmenter.models.folder import list_model_folders
    from thermal_anomaly_segmenter.models.registry import TRAINABLE_TYPES

    settings = get_settings()
    config.configure_logging(settings)
    return {
        **config.project_metadata(),
        "datasets_local": [str(p) for p in list_dataset_folders(settings.data_path)],
        "datasets_remote": [str(p) for p in list_dataset_folders(settings.remote_path)],
        "models_local": [str(p) for p in list_model_folders(settings.models_path)],
        "models_remote": [str(p) for p in list_model_folders(settings.remote_path)],
        "model_types": list(TRAINABLE_TYPES),
        "default_model": schemas.default_model_dir(),
    }


def warm() -> None:
    """Load the default model into this worker, so the first prediction is fast.

    Without a model the server still starts: predict then answers 404 with the reason.
    """
    from thermal_anomaly_segmenter.inference.segmenter import get_segmenter
    from thermal_anomaly_segmenter.models.folder import resolve_model_dir

    settings = get_settings()
    config.configure_logging(settings)
    try:
        folder = resolve_model_dir(None, settings)
        get_segmenter(folder, settings.device, settings.backend)
    except TasegError as exc:
        log.warning("warm: no model loaded (%s); predict loads one on first use", exc)
        return
    log.info("warm: loaded %s", folder)


def _guard_server_app() -> None:
    """Supervise DEEPaaS's model workers (:mod:`api.worker_pool`), add
    :func:`~api.responses.malformed_request_as_json`, then (inside it)
    :func:`~api.request_limits.bounded_body` and :func:`~api.lifecycle.request_lifecycle` to
    DEEPaaS's aiohttp app, and answer what its HTTP parser refuses in JSON
    (:func:`~api.responses.answer_protocol_errors_as_json`).

    DEEPaaS asks for the arguments while it builds its routes, before the server starts:
    that is the one moment its app (``deepaas.api.APP``) can still take a middleware.
    Elsewhere (``deepaas-cli``, workers, the CLI) there is no such app and nothing happens.
    """
    app = getattr(sys.modules.get("deepaas.api"), "APP", None)
    if not isinstance(app, web.Application) or app.frozen:
        return
    responses.answer_protocol_errors_as_json()
    worker_pool.supervise_deepaas_workers()
    for guard in (responses.malformed_request_as_json, request_limits.bounded_body,
                  lifecycle.request_lifecycle):
        if guard not in app.middlewares:
            app.middlewares.append(guard)


def get_predict_args() -> dict[str, ma_fields.Field]:
    """The predict arguments (a fresh schema: DEEPaaS edits the ``accept`` field it gets)."""
    _guard_server_app()
    return schemas.PredArgsSchema().fields


def get_train_args() -> dict[str, ma_fields.Field]:
    """The train arguments."""
    _guard_server_app()
    return schemas.TrainArgsSchema().fields


def _client_name(upload: Any) -> str:
    """The client's file name for messages: its last part, printable, at most 100 chars."""
    name = re.split(r"[\\/]", str(getattr(upload, "original_filename", None) or "upload"))[-1]
    return re.sub(r"[^\w.+ -]", "_", name)[:100] or "upload"


def run_predict(
    args: Mapping[str, Any],
    input_path: str | os.PathLike[str],
    *,
    corridor_path: str | os.PathLike[str] | None = None,
    name: str | None = None,
    pipes_path: str | os.PathLike[str] | None = None,
    defaulted: Iterable[str] = (),
    answer_first: bool = False,
):
    """Predict one frame with validated ``args`` and write its outputs.

    ``defaulted`` names the arguments the caller did not give: a threshold left out is the
    model folder's stored one (0.5 for a folder without one). With ``answer_first`` only the
    mask PNG is written before returning; the other files follow in the background
    (:mod:`thermal_anomaly_segmenter.outputs.deferred`).

    Returns:
        The :class:`~thermal_anomaly_segmenter.predict.files.FrameResult` of the frame.

    Raises:
        ApiError: The frame or an argument is unusable, or the outputs cannot be written.
    """
    from thermal_anomaly_segmenter.io.frames import frame_stem
    from thermal_anomaly_segmenter.predict.files import (
        OUTPUT_KINDS,
        PredictRequest,
        predict_paths,
    )

    settings = get_settings()
    size = args.get("tile_size")
    options = PredictOptions(
        threshold=None if "threshold" in defaulted else args["threshold"],
        device=settings.device,
        tile_size=(size, size) if size else None,
        gsd_m=args.get("gsd"),
        match_gsd=not args.get("native_scale"),
        conditions=schemas.conditions_from_args(args),
    )
    if not args.get("model_dir"):
        from thermal_anomaly_segmenter.models.folder import resolve_model_dir

        resolve_model_dir(None, settings)  # raises ModelNotFoundError with the reason
    # The client's file name only names the outputs, sanitised; it never becomes a path.
    stem = frame_stem(name or Path(input_path).name)
    # Exhaust the generator here: left suspended, it would shut its thread pools down
    # whenever the garbage collector finalises it, which can deadlock a later request.
    request = PredictRequest(model_dir=args["model_dir"], options=options,
                             corridor=corridor_path, names=[stem], pipes=pipes_path,
                             corridor_width_m=args.get("corridor_width"),
                             false_alarms=True if args.get("false_alarms") else None,
                             deferred_outputs=OUTPUT_KINDS if answer_first else ())
    [result] = predict_paths([input_path], request, settings=settings)
    if not result.ok:
        raise responses.frame_error(result)
    return result


def _previous_path(upload: Any, pipes_path: Path | None) -> Path | None:
    """The earlier survey's GeoPackage (``previous_file``), read once to refuse a bad one
    before any prediction."""
    if not upload:
        return None
    if not pipes_path:
        raise InvalidInputError("previous_file needs a georeferenced input with its "
                                "pipe network (pipes_file)")
    from thermal_anomaly_segmenter.geo.survey_layer import read_survey

    path = uploads.upload_path(upload, "previous_file")
    read_survey(path, "previous_file")
    return path


def _upload_paths(kwargs: Mapping[str, Any], args: Mapping[str, Any],
                  settings: Settings) -> report_response.UploadPaths:
    """The request's uploaded files, checked together and against the upload bound."""
    input_path = uploads.upload_path(kwargs.get("input_file"), "input_file")
    corridor = kwargs.get("corridor_file")
    corridor_path = uploads.upload_path(corridor, "corridor_file") if corridor else None
    pipes = kwargs.get("pipes_file")
    pipes_path = uploads.upload_path(pipes, "pipes_file") if pipes else None
    if pipes_path and corridor_path:
        raise InvalidInputError("give either corridor_file or pipes_file, not both")
    if args.get("corridor_width") is not None and not pipes_path:
        raise InvalidInputError("corridor_width needs a pipes_file")
    previous_path = _previous_path(kwargs.get("previous_file"), pipes_path)
    for path in filter(None, (input_path, corridor_path, pipes_path, previous_path)):
        if path.stat().st_size > settings.max_upload_bytes:
            raise responses.UploadTooLargeError(
                f"upload is larger than {settings.max_upload_bytes // 2**20} MiB "
                "(TASEG_MAX_UPLOAD_MB)")
    return report_response.UploadPaths(input_path, corridor_path, pipes_path, previous_path)


def predict(**kwargs: Any) -> Any:
    """Segment the uploaded frame; answer in the ``accept`` format.

    The outputs are written under ``<model_dir>/predictions/`` with a name no other request
    has; the answer refers to this request's files only. DEEPaaS's temp uploads are removed.
    In a server's worker a JSON answer is built from memory and sent before its files but
    the mask PNG are written (they follow at once, the JSON report last); other answers,
    and in-process callers, get them all written first.
    """
    started = time.perf_counter()
    settings = get_settings()
    config.configure_logging(settings)
    files = [kwargs.get(n) for n in ("input_file", "corridor_file", "pipes_file",
                                     "previous_file")]
    # Held open while this predict runs: if it is cancelled, the server finds them by that.
    held = uploads.hold_temp_copies(files)
    try:
        accept = kwargs.get("accept") or schemas.ACCEPT_TYPES[0]
        formatter = (None if accept == report_response.HTML  # answered by report_response
                     else responses.formatter_for(accept))
        schema = schemas.PredArgsSchema()
        args = schemas.load_args(schema, {**kwargs, "accept": None})
        upload = kwargs.get("input_file")
        paths = _upload_paths(kwargs, args, settings)
        if report_response.wanted(accept, paths.input):  # the inspector's report
            return report_response.answer(
                args, accept, paths, name=_client_name(upload),
                defaulted=schemas.defaulted_args(schema, kwargs), settings=settings)
        log.info("predict %s with %s", _client_name(upload),
                 {k: v for k, v in args.items()
                  if k not in ("input_file", "corridor_file", "pipes_file", "previous_file")})
        # A server's worker (a spawned child of deepaas-run) answers JSON before writing
        # the files the answer does not need; in-process callers (deepaas-cli, tests) read
        # the files as soon as predict returns.
        answer_first = (formatter is responses.json_response and paths.previous is None
                        and multiprocessing.parent_process() is not None)
        from thermal_anomaly_segmenter.outputs import deferred

        # The files wait until the answer is built, and then while requests keep coming.
        with deferred.busy(), deferred.held():
            result = run_predict(args, paths.input, corridor_path=paths.corridor,
                                 pipes_path=paths.pipes,
                                 name=str(getattr(upload, "original_filename", None) or "frame"),
                                 defaulted=schemas.defaulted_args(schema, kwargs),
                                 answer_first=answer_first)
            log.info("predict: %s", result.summary())
            if paths.previous is not None:  # statuses since an earlier survey
                from thermal_anomaly_segmenter.geo.compare_outputs import compare_prediction

                compare_prediction(result, paths.previous)
            if result.outputs:  # the server's outputs are bounded; python -m cli's are the user's
                from thermal_anomaly_segmenter.outputs.retention import prune_outputs

                prune = partial(prune_outputs, next(iter(result.outputs.values())).parent,
                                settings.keep_predictions)
                if answer_first:  # after this request's files, not beside them
                    deferred.submit(prune, name="the retention of old predictions")
                else:
                    prune()
            answer = formatter(result)
        log.info("predict: answered in %.1f ms", 1000 * (time.perf_counter() - started))
        return answer
    except Exception as exc:
        error = responses.error_for(exc)
        message = error.message
        for upload in filter(None, files):  # name the client's file, not our temp copy
            temp_name = Path(str(getattr(upload, "filename", "") or "")).name
            if temp_name:
                message = message.replace(temp_name, _client_name(upload))
        log.warning("predict answered %d: %s", error.status_code, message)
        raise responses.ApiError(error.status_code, message) from None
    finally:
        for upload in files:
            uploads.remove_temp_copy(upload)
        held.close()


def run_train(args: Mapping[str, Any], defaulted: Iterable[str] = ()) -> dict[str, Any]:
    """Train with validated ``args``; the published test metrics, the model and run folder.

    ``defaulted`` names the arguments the caller did not give: those of
    ``schemas.RECIPE_ARGS`` are left to the recipe (the published values on a GPU, the CPU
    recipe's on a CPU).
    """
    from thermal_anomaly_segmenter.train import train as train_model

    if args.get("review"):
        return run_adapt(args)
    names = set(TrainOptions.__dataclass_fields__)
    values = {k: v for k, v in args.items() if k in names}
    for name in set(schemas.RECIPE_ARGS) & set(defaulted):
        values[name] = None
    if values.get("train_phases") is not None:
        values["train_phases"] = tuple(values["train_phases"])
    result = train_model(TrainOptions(**values), settings=get_settings())
    return {
        **{k: float(v) for k, v in result.metrics.items()},
        "model_dir": str(result.model_dir),
        "run_dir": str(result.run_dir),
    }


def run_adapt(args: Mapping[str, Any]) -> dict[str, Any]:
    """``taseg adapt`` for train's ``review``: a new folder under MODELS_PATH."""
    from datetime import datetime, timezone

    from thermal_anomaly_segmenter.train.adapt import AdaptOptions, adapt

    settings = get_settings()
    frames = args.get("review_frames") or ([args["dataset_path"]] if args.get("dataset_path")
                                           else [])
    if not frames:
        raise InvalidInputError("review needs review_frames (or a dataset_path)")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S_%f")
    result = adapt(AdaptOptions(
        review=args["review"], frames=list(frames), out=str(settings.models_path /
                                                            f"adapted_{stamp}"),
        model_dir=args.get("review_model_dir"), max_time=args.get("max_time") or 15.0,
        gpu=args.get("gpu"), min_leaks=args.get("review_min_leaks", 10),
        extent_band=args.get("review_extent_band", 1.0),
        seen_only=bool(args.get("review_seen_only"))), settings=settings)
    return {"model_dir": str(result.model_dir), "adapt": result.record}


def train(**kwargs: Any) -> dict[str, Any]:
    """Train a model (DEEPaaS runs this asynchronously: POST gives a uuid to poll)."""
    config.configure_logging()
    try:
        schema = schemas.TrainArgsSchema()
        args = schemas.load_args(schema, kwargs)
        log.info("train with %s", args)
        result = run_train(args, schemas.defaulted_args(schema, kwargs))
        log.info("train: %s", result)
        return result
    except Exception as exc:
        error = responses.error_for(exc)
        log.warning("train failed (%d): %s", error.status_code, error.message)
        raise error from None
