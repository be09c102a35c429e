"""Marshmallow schemas of the predict and train arguments.

Names, defaults and choices are those of the published TASeg API (see docs and
``/work/shared/REFERENCE.md``); extras are optional. Defaults that depend on the folders on
disk (model_dir, dataset_path) are computed when a request is parsed, never at import.
Fields keep their declaration order (marshmallow 3.26 preserves it and deprecates
``Meta.ordered``), which is the order of the Swagger form and of ``--help``.
The same schemas drive the root ``cli.py`` through :func:`add_schema_arguments`, so the
HTTP API, ``deepaas-cli`` and ``python -m cli`` accept the same arguments.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import marshmallow
from marshmallow import ValidationError, fields, validate

from thermal_anomaly_segmenter import limits
from thermal_anomaly_segmenter.config import (
    LOSSES,
    MAX_TILE_SIZE,
    PHASES,
    RECIPE_CHOICES,
    get_settings,
)
from thermal_anomaly_segmenter.errors import TasegError
from thermal_anomaly_segmenter.models.folder import CONFIG_NAME, is_model_folder
from thermal_anomaly_segmenter.models.registry import TRAINABLE_TYPES

from . import config

#: (min, max) of the numeric train arguments (worker_count: this machine's cores).
_BOUNDS = limits.train_bounds()

log = logging.getLogger(__name__)

#: Response types of predict, the published two first (DEEPaaS adds ``*/*``).
ACCEPT_TYPES: tuple[str, ...] = (
    "application/json",
    "image/png",
    "application/zip",
    "application/geo+json",
    "text/html",
)


class RuntimeDefault:
    """A default computed when arguments are loaded; its text shows in ``deepaas-cli --help``."""

    def __init__(self, func: Callable[[], Any], text: str) -> None:
        self.func, self.text = func, text

    def __call__(self) -> Any:
        return self.func()

    def __repr__(self) -> str:
        return self.text


def default_model_dir() -> str | None:
    """The default model folder now (``None`` when there is none: predict then answers 404)."""
    from thermal_anomaly_segmenter.models.folder import resolve_model_dir

    try:
        return str(resolve_model_dir(None, get_settings()))
    except TasegError as exc:
        log.warning("no default model: %s", exc)
        return None


def default_dataset_path() -> str | None:
    """The default dataset folder now (``None`` lets the training report what is missing)."""
    from thermal_anomaly_segmenter.io.datasets import resolve_dataset_path

    try:
        return str(resolve_dataset_path(None, get_settings()))
    except (TasegError, OSError) as exc:
        log.warning("no default dataset: %s", exc)
        return None


class PathString(fields.String):
    """A string that also takes a ``pathlib.Path`` (published in-process callers pass both)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        return super()._deserialize(value, attr, data, **kwargs)


class OneOrMany(fields.List):
    """A list that also takes a single item (``train_phases="fine_tune"``, as published)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list:
        if isinstance(value, str):
            value = [value]
        return super()._deserialize(value, attr, data, **kwargs)


class ModelDir(PathString):
    """A model folder under MODELS_PATH or REMOTE_PATH (after symlinks), as an absolute path."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            folder = config.confine(text, config.model_roots(get_settings()), "model_dir")
        except TasegError as exc:
            raise ValidationError(str(exc)) from None
        if not is_model_folder(folder):
            raise ValidationError(f"model_dir {text!r} is not a model folder (no {CONFIG_NAME})")
        return str(folder)


class DatasetDir(PathString):
    """An existing folder under REMOTE_PATH or DATA_PATH (after symlinks), as an absolute path.

    What it holds (generated_set, manual_set, their splits) is checked where the training
    starts, as published: the request is refused there with the reason
    (:class:`~thermal_anomaly_segmenter.errors.DatasetNotFoundError`, HTTP 404 / exit 2).
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            folder = config.confine(text, config.dataset_roots(get_settings()), "dataset_path")
        except TasegError as exc:
            raise ValidationError(str(exc)) from None
        if not folder.is_dir():
            raise ValidationError(f"dataset_path {text!r} does not exist or is not a folder")
        return str(folder)


class DataPath(PathString):
    """A file or folder under REMOTE_PATH or DATA_PATH (after symlinks), as an absolute path
    (the review and frames of ``taseg adapt`` given to train)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            path = config.confine(text, config.dataset_roots(get_settings()), attr or "path")
        except TasegError as exc:
            raise ValidationError(str(exc)) from None
        if not path.exists():
            raise ValidationError(f"{text!r} does not exist")
        return str(path)


def _file_field(description: str, required: bool) -> fields.Field:
    # Exactly ``fields.Field`` with type "file": DEEPaaS turns it into a multipart upload and
    # deepaas-cli recognises it as a file argument only for this exact class.
    with warnings.catch_warnings():  # marshmallow 3.26 warns against a bare Field
        warnings.simplefilter("ignore")
        return fields.Field(
            required=required,
            metadata={"type": "file", "location": "form", "description": description},
        )


class _DefaultStr(str):
    pass


class _DefaultInt(int):
    pass


class _DefaultFloat(float):
    pass


class _DefaultList(list):
    pass


def published_default(value: Any) -> Any:
    """``value`` marked as "filled in, not given by the caller".

    DEEPaaS fills missing arguments with ``load_default`` before TASeg sees them. The marked
    copy equals the value (Swagger shows it, JSON writes it unchanged) but keeps its type, so
    :func:`defaulted_args` can tell an explicit ``model_type=segformer_b0`` from the default.
    """
    kind = {str: _DefaultStr, int: _DefaultInt, float: _DefaultFloat,
            list: _DefaultList}[type(value)]
    return kind(value)


_MARKERS = (_DefaultStr, _DefaultInt, _DefaultFloat, _DefaultList)


def defaulted_args(schema: marshmallow.Schema, values: Mapping[str, Any]) -> set[str]:
    """Arguments of ``schema`` the caller did not give: missing from ``values`` (an in-process
    or command-line call) or holding a :func:`published_default` marker (filled in by DEEPaaS).
    """
    return (set(schema.fields) - set(values)) | {
        k for k, v in values.items() if isinstance(v, _MARKERS)}


def _plain(value: Any) -> Any:
    for marker, kind in zip(_MARKERS, (str, int, float, list), strict=True):
        if isinstance(value, marker):
            return kind(value)
    return value


class PredArgsSchema(marshmallow.Schema):
    """Arguments of ``predict``: the published four, then optional extras."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Schemas share their fields' validators; DEEPaaS appends "*/*" to the accept
        # choices it gets, so each schema gets its own list.
        accept = self.fields["accept"]
        accept.validate = validate.OneOf(list(ACCEPT_TYPES))
        accept.validators = [accept.validate]

    input_file = _file_field(
        "Thermal frame to segment: a 3-channel (T_m, T_m, T_u) .npy.lz4 or .npy frame as "
        "published, or a float (Geo)TIFF of T_u together with corridor_file. The format is "
        "recognised by content. A zip of such frames is answered with the inspector's report "
        "(accept text/html or application/zip).",
        required=True,
    )
    model_dir = ModelDir(
        load_default=RuntimeDefault(default_model_dir, "the default model, found at run time"),
        metadata={
            "description": "Model folder (holding train_config.json) under MODELS_PATH or "
            "REMOTE_PATH; a name is looked up there. Default: the default model, else the "
            "first model folder under MODELS_PATH, then REMOTE_PATH, found when the request "
            "arrives. Outputs are also written to <model_dir>/predictions/. The current "
            "folders are listed in the metadata (models_local, models_remote)."
        },
    )
    threshold = fields.Float(
        load_default=published_default(0.5),
        validate=validate.Range(min=0.0, max=1.0),
        metadata={"description": "Probability threshold 0..1 applied to the anomaly "
                  "probability (the classical model maps temperature to a probability). "
                  "Left out: the model folder's stored threshold (chosen on validation data "
                  "by training), or the published 0.5 for a folder without one."},
    )
    accept = fields.String(
        load_default=ACCEPT_TYPES[0],
        validate=validate.OneOf(list(ACCEPT_TYPES)),
        metadata={
            "location": "headers",
            "description": "Response type: application/json (anomalies, summary and the "
            "paths of this request's files; */* gives the same), image/png (the overlay), "
            "application/zip (every output of the frame; for a zip of frames: report.html, "
            "anomalies.csv and anomalies.gpkg), application/geo+json (anomaly polygons), "
            "text/html (the inspector's report: severity classes, crops, review buttons; "
            "also for a zip of frames).",
        },
    )
    corridor_file = _file_field(
        "Optional corridor mask (nonzero = pipeline corridor), .png/.npy/.tif of the frame's "
        "size: needed for a single-band T_u TIFF, replaces the corridor of a 3-channel frame.",
        required=False,
    )
    pipes_file = _file_field(
        "Optional pipe network (GeoJSON, GeoPackage or zipped Shapefile, any CRS) for a "
        "georeferenced GeoTIFF input (frame or orthomosaic of any size): the corridor is "
        "buffered from its lines, the input streamed window by window, and the outputs are "
        "COGs of probability and mask, a GeoPackage and GeoJSON of anomalies with pipe id, "
        "chainage and offset.",
        required=False,
    )
    previous_file = _file_field(
        "Optional GeoPackage of an earlier survey of the same network (layer 'anomalies', "
        "from taseg predict --pipes or taseg report), with pipes_file: each anomaly of the "
        "answer gets its status since then (new, grown, stable, shrunk; 'since_previous' "
        "lists what is gone); the zip answer adds changes.gpkg/csv/geojson and the HTML "
        "report the since-last-survey column.",
        required=False,
    )
    corridor_width = fields.Float(
        load_default=None,
        validate=validate.Range(min=0.0, max=1000.0, min_inclusive=False),
        metadata={"description": "Full corridor width around the pipe axes in metres, with "
                  "pipes_file (default 8)."},
    )
    false_alarms = fields.Boolean(
        load_default=False,
        metadata={"description": "Apply the false-alarm stage: components it rejects leave "
                  "the mask and are listed apart ('rejected', with cause and score). Uses the "
                  "model folder's false_alarms.json (trained from the synthetic families and "
                  "stored there on first use when missing)."},
    )
    tile_size = fields.Integer(
        load_default=None,
        validate=validate.Range(min=32, max=MAX_TILE_SIZE),
        metadata={"description": "Square tile size in pixels for frames larger than the "
                  f"model's training size (at most {MAX_TILE_SIZE}). Default: the model's "
                  "training size."},
    )
    gsd = fields.Float(
        load_default=None,
        validate=validate.Range(min=0.0, min_inclusive=False),
        metadata={"description": "Ground sampling distance in metres per pixel (a GeoTIFF's "
                  "own georeference wins): anomaly areas in m2, and a frame finer than the "
                  "model's training GSD is seen at that GSD."},
    )
    native_scale = fields.Boolean(
        load_default=False,
        metadata={"description": "Run the network at the frame's own pixels even where they "
                  "are finer than the model's training GSD."},
    )
    # The night's conditions of the heat loss estimate; the core checks them, NaN included
    # (thermal_anomaly_segmenter.heat_loss.Conditions): a bad value answers 400 naming it.
    air_temp = fields.Float(load_default=None, allow_nan=True, metadata={
        "description": "Heat loss: air temperature of the survey night, degC (recorded)."})
    wind_speed = fields.Float(load_default=None, allow_nan=True, metadata={
        "description": "Heat loss: wind speed, m/s (default 1; convection by McAdams' "
                       "h_c = 5.7 + 3.8 v)."})
    emissivity = fields.Float(load_default=None, allow_nan=True, metadata={
        "description": "Heat loss: surface emissivity, (0, 1] (default 0.95)."})
    season_hours = fields.Float(load_default=None, allow_nan=True, metadata={
        "description": "Heat loss: heating season, hours a year (default 5000)."})
    heat_price = fields.Float(load_default=None, allow_nan=True, metadata={
        "description": "Heat loss: price of heat per MWh (gives cost_per_year)."})
    currency = fields.String(load_default=None, metadata={
        "description": "Heat loss: currency of heat_price (default EUR)."})
    co2_factor = fields.Float(load_default=None, allow_nan=True, metadata={
        "description": "Heat loss: emission factor, t CO2 per MWh (gives co2_t_per_year)."})


def conditions_from_args(args: Mapping[str, Any]):
    """The heat loss conditions of validated predict ``args`` (defaults where left out)."""
    from thermal_anomaly_segmenter.heat_loss.conditions import OPTION_FIELDS, resolve_conditions

    return resolve_conditions((), None, {k: args.get(k) for k in OPTION_FIELDS}, source="api")


#: Train arguments whose published default gives way to the CPU recipe on a CPU.
RECIPE_ARGS: tuple[str, ...] = ("model_type", "train_phases", "loss_fn", "batch_size")


class TrainArgsSchema(marshmallow.Schema):
    """Arguments of ``train``: every published name, default and choice, then extras."""

    model_type = fields.String(
        load_default=published_default("segformer_b0"),
        validate=validate.OneOf(list(TRAINABLE_TYPES)),
        metadata={"description": "Segmentation model to train (on a CPU, left at the "
                  "default: smp_unet, see recipe)."},
    )
    train_phases = OneOrMany(
        fields.String(validate=validate.OneOf(list(PHASES))),
        load_default=published_default(list(PHASES)),
        validate=validate.Length(min=1),
        metadata={
            "description": "Training phases, run in this order: pre_train_frozen (generated_set"
            ", encoder frozen), pre_train_unfrozen (generated_set), fine_tune (manual_set). "
            "Default: all three (on a CPU: fine_tune, see recipe). fine_tune alone needs "
            "only manual_set.",
        },
    )
    dataset_path = DatasetDir(
        load_default=RuntimeDefault(default_dataset_path,
                                    "the first dataset folder, found at run time"),
        metadata={"description": "Dataset folder holding generated_set and/or manual_set, "
                  "under REMOTE_PATH or DATA_PATH. Default: the first one found there (in "
                  "that order) when the request arrives; see datasets_local/datasets_remote "
                  "in the metadata."},
    )
    data_augmentation = fields.Boolean(
        load_default=True,
        metadata={"description": "Augment training frames (temperature offset, flips, "
                  "shift-scale-rotate, elastic)."},
    )
    loss_fn = fields.String(
        load_default=published_default("Tversky"),
        validate=validate.OneOf(list(LOSSES)),
        metadata={"description": "Loss function (Tversky: alpha 0.3, beta 0.7; on a CPU, "
                  "left at the default: Dice, see recipe)."},
    )
    batch_size = fields.Integer(
        load_default=published_default(16),
        validate=validate.Range(min=1, max=_BOUNDS["batch_size"][1]),
        metadata={"description": "Batch size (SegFormer-B4/B5 on a small GPU: 8 or less; on a "
                  "CPU, left at the default: 8, see recipe)."},
    )
    worker_count = fields.Integer(
        load_default=None,
        validate=validate.Range(min=0, max=_BOUNDS["worker_count"][1]),
        metadata={"description": "Data-loader worker processes. Default: derived from the "
                  "CPU cores and memory; 0 loads in the training process."},
    )
    seed = fields.Integer(
        load_default=10,
        validate=validate.Range(min=1, max=_BOUNDS["seed"][1]),
        metadata={"description": "Random seed (weights, data order, augmentation)."},
    )
    gpu = fields.Boolean(
        load_default=None,
        metadata={"description": "Train on the GPU. Default: when CUDA is available; false "
                  "trains on the CPU."},
    )
    mlflow = fields.Boolean(
        load_default=True,
        metadata={"description": "Log parameters and metrics to MLflow (MLFLOW_TRACKING_URI);"
                  " without a tracking server, metrics are still kept with the run."},
    )
    epochs = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=_BOUNDS["epochs"][1]),
        metadata={"description": "Epochs of every phase. Default: the model's recipe."},
    )
    recipe = fields.String(
        load_default="auto",
        validate=validate.OneOf(list(RECIPE_CHOICES)),
        metadata={"description": "Where model_type, train_phases, loss_fn and batch_size "
                  "left at their defaults (and the training window and epochs) come from: "
                  "'published' = the published TASeg values shown here; 'cpu' = smp_unet "
                  "with a MobileNetV2 encoder, Dice, batch 8, fine_tune only, 256 x 320 "
                  "windows, 20 epochs (about 14 minutes on 2 CPU cores for 200 frames); "
                  "'auto' (default) = published on a GPU, cpu when training on the CPU."},
    )
    max_time = fields.Float(
        load_default=None,
        validate=validate.Range(min=0.0, min_inclusive=False,
                                max=_BOUNDS["max_time"][1]),
        metadata={"description": "Wall-time budget of the whole run in minutes; each phase "
                  "stops early to fit. Default: no limit."},
    )
    from_scratch = fields.Boolean(
        load_default=False,
        metadata={"description": "Start from random weights. Default: from the shipped "
                  "default model's weights where its architecture matches the run's."},
    )


    # taseg adapt through train: a review plus the frames it was made on (issue 29)
    review = DataPath(
        load_default=None,
        metadata={"description": "review.json exported from report.html (under REMOTE_PATH "
                  "or DATA_PATH): adapt a model to the survey from the inspector's decisions "
                  "instead of training on a dataset (see taseg adapt). max_time and gpu apply;"
                  " the other training arguments do not."},
    )
    review_frames = OneOrMany(
        DataPath(), load_default=None,
        metadata={"description": "With review: the reviewed frames (.npy.lz4/.npy files, "
                  "folders of them or a dataset folder). Default: dataset_path."},
    )
    review_model_dir = ModelDir(
        load_default=None,
        metadata={"description": "With review: the model folder to adapt. Default: the "
                  "default model."},
    )
    review_min_leaks = fields.Integer(
        load_default=10,
        metadata={"description": "With review: fewest confirmed leaks to fine-tune the "
                  "network on; with fewer the new folder keeps the start network and only the "
                  "false-alarm stage adapts (taseg adapt --min-leaks)."},
    )
    review_extent_band = fields.Float(
        load_default=1.0,
        metadata={"description": "With review: band left out of the loss around a confirmed "
                  "leak that was not outlined, in radii of its footprint, 0 to 10 (taseg adapt "
                  "--extent-band)."},
    )
    review_seen_only = fields.Boolean(
        load_default=False,
        metadata={"description": "With review: a fully decided frame is background only "
                  "inside the crops that were decided (taseg adapt --seen-only)."},
    )


def load_args(schema: marshmallow.Schema, values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and complete arguments with ``schema``, whoever parsed them before.

    DEEPaaS has already loaded them over HTTP, but ``deepaas-cli`` hands over its raw argparse
    values (callable defaults and ``marshmallow.missing`` even) and in-process callers
    anything: loading them again is idempotent for valid values and gives every caller the
    same checks and defaults.
    Upload fields (``fields.Field``) pass through untouched.

    Raises:
        marshmallow.ValidationError: With the message of every invalid argument.
    """
    data = {
        k: v
        for k, v in values.items()
        if k in schema.fields and v is not None and v is not marshmallow.missing
        and not callable(v)
    }
    # Markers stay here: the core gets plain values (they are pickled into checkpoints).
    return {k: _plain(v) for k, v in schema.load(data).items()}


def validation_message(exc: ValidationError) -> str:
    """One line from a marshmallow error: ``name: problem; name: problem``."""
    messages = exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages}
    parts = []
    for name, problems in messages.items():
        text = " ".join(str(p) for p in problems) if isinstance(problems, list) else problems
        parts.append(f"{name}: {text}" if name != "_" else str(text))
    return "; ".join(parts)
