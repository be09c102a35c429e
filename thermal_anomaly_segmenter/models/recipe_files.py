"""Per-model training configuration files in the published format.

``thermal_anomaly_segmenter/configurations/train_<model_type>.json`` holds the recipe of one
model type as the published TASeg wrote it (keys ``model``, ``config_name``, ``batch_size``,
``loss_fn``, ``datasets``, ``train_phases``, ``train_phase_order``, ...). Training reads its
defaults from the file of the model type it trains (epochs, learning rate and frozen encoder per
phase, the set each phase reads and how often its training frames repeat, the temperature
offset range, and on the published recipe batch size, loss and phases), so an edited file
takes effect. ``taseg train --config FILE`` accepts such a file too.

Read, not used: ``output_path`` (TASeg writes under MODELS_PATH), ``pretrained_weights``
(nothing is downloaded; see ``--weights``), ``gpus`` and ``worker_count`` (hardware: derived from
the machine unless given, or taken from a file passed with ``--config``), ``lr_scheduler``
(always poly) and the dataset paths beyond the set name they end in.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thermal_anomaly_segmenter.config import LOSS_FUNCTIONS, PHASES, TrainOptions
from thermal_anomaly_segmenter.errors import InvalidInputError

log = logging.getLogger(__name__)


CONFIG_DIR = Path(__file__).resolve().parent.parent / "configurations"
#: Set a dataset entry of the file reads, by its key when its path does not name one.
_SET_BY_KEY = {"main_dataset": "generated_set", "manual_dataset": "manual_set"}
_SETS = ("generated_set", "manual_set")
_SMP_TYPES = {"deeplabv3plus": "smp_deeplabV3plus", "unet": "smp_unet", "pspnet": "smp_pspnet"}


@dataclass(frozen=True)
class PhaseSpec:
    """One phase of a configuration file."""

    name: str
    set_name: str
    epochs: int
    lr: float
    frozen: bool
    repeat_train_images: int
    augmentation_range: tuple[float, float]


@dataclass(frozen=True)
class RecipeFile:
    """A validated published-format training configuration."""

    path: Path
    model_type: str
    #: Phases in the file's ``train_phase_order``.
    phases: dict[str, PhaseSpec]
    batch_size: int
    loss_fn: str
    encoder_name: str | None
    worker_count: int | None

    @property
    def phase_order(self) -> tuple[str, ...]:
        return tuple(self.phases)


def config_path(model_type: str) -> Path:
    """The shipped configuration file of ``model_type``."""
    return CONFIG_DIR / f"train_{model_type}.json"


def is_recipe_file_data(data: Any) -> bool:
    """Whether a parsed JSON object is in the published format (not TASeg train options)."""
    return isinstance(data, dict) and "model" in data and isinstance(
        data.get("train_phases"), dict)


def recipe_for(model_type: str) -> RecipeFile:
    """The recipe file of ``model_type``, read now (so an edited file takes effect)."""
    path = config_path(model_type)
    if not path.is_file():
        raise InvalidInputError(
            f"no training configuration for {model_type}: {path} is missing (restore it from "
            "the package or pass --config FILE)")
    return read_recipe_file(path, model_type)


def read_recipe_file(path: str | os.PathLike[str], model_type: str | None = None) -> RecipeFile:
    """Read and validate a published-format configuration file.

    Args:
        path: The JSON file.
        model_type: The zoo type it is for; ``None`` infers it from the file
            (``pretrained_weights`` of SegFormer, ``smp_arch`` of smp).

    Raises:
        InvalidInputError: The file is unreadable or a value is missing or out of range,
            with the key that is wrong.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read training configuration {path}: {exc}") from None
    if not is_recipe_file_data(data):
        raise InvalidInputError(
            f"{path} is not a published training configuration (needs 'model' and a "
            "'train_phases' object)")

    def fail(key: str, rule: str) -> InvalidInputError:
        return InvalidInputError(f"{path}: {key} {rule}")

    family = data["model"]
    if family not in ("segformer", "smp"):
        raise fail("model", f"must be 'segformer' or 'smp', got {family!r}")
    model_type = model_type or infer_model_type(data, fail)
    datasets = data.get("datasets") or {}
    if not isinstance(datasets, dict):
        raise fail("datasets", "must be an object")
    order = data.get("train_phase_order") or list(data["train_phases"])
    if not isinstance(order, list) or not order:
        raise fail("train_phase_order", "must be a non-empty list of phase names")
    phases: dict[str, PhaseSpec] = {}
    for name in order:
        if name not in PHASES:
            raise fail("train_phase_order", f"names unknown phase {name!r}; phases: "
                       f"{', '.join(PHASES)}")
        spec = data["train_phases"].get(name)
        if not isinstance(spec, dict):
            raise fail(f"train_phases.{name}", "is missing")
        phases[name] = _phase(name, spec, datasets, fail)
    batch = data.get("batch_size", 16)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise fail("batch_size", f"must be a whole number >= 1, got {batch!r}")
    workers = data.get("worker_count")
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise fail("worker_count", f"must be a whole number >= 0, got {workers!r}")
    encoder = data.get("smp_encoder") if family == "smp" else None
    if encoder is not None and not isinstance(encoder, str):
        raise fail("smp_encoder", f"must be an encoder name, got {encoder!r}")
    return RecipeFile(path, model_type, phases, batch, _loss(data.get("loss_fn"), fail),
                      encoder, workers)


def infer_model_type(data: dict[str, Any], fail) -> str:
    """The zoo type a published config describes: ``smp_arch`` for smp, the SegFormer size
    in ``pretrained_weights`` (``nvidia/segformer-b<N>-...``) or ``config_name`` (``segfB<N>``).

    ``fail(key, rule)`` makes the error to raise.
    """
    if data.get("model") == "smp":
        arch = str(data.get("smp_arch", "DeepLabV3Plus")).lower()
        if arch not in _SMP_TYPES:
            raise fail("smp_arch", f"must be DeepLabV3Plus, Unet or PSPNet, got {arch!r}")
        return _SMP_TYPES[arch]
    hint = f"{data.get('pretrained_weights', '')} {data.get('config_name', '')}"
    match = re.search(r"segformer-(b[0-5])|segfB([0-5])", hint)
    if not match:
        raise fail("pretrained_weights", "must name the SegFormer size "
                   "(nvidia/segformer-b<N>-...) to tell which model to build")
    return f"segformer_{match.group(1) or 'b' + match.group(2)}"


def _loss(value: Any, fail) -> str:
    by_spelling = {spelling: name for name, spelling in LOSS_FUNCTIONS.items()}
    if value in by_spelling:
        return by_spelling[value]
    if value in LOSS_FUNCTIONS:  # TASeg's own spelling
        return str(value)
    raise fail("loss_fn", f"must be one of {', '.join(by_spelling)} (TASeg's Tversky loss "
               f"uses alpha 0.3, beta 0.7), got {value!r}")


def _phase(name: str, spec: dict[str, Any], datasets: dict[str, Any], fail) -> PhaseSpec:
    key = f"train_phases.{name}"
    dataset_key = spec.get("dataset")
    entry = datasets.get(dataset_key) if isinstance(dataset_key, str) else None
    if not isinstance(entry, dict):
        raise fail(f"{key}.dataset", f"must name an entry of 'datasets', got {dataset_key!r}")
    set_name = Path(str(entry.get("path", ""))).name
    if set_name not in _SETS:
        set_name = _SET_BY_KEY.get(dataset_key, "")
    if set_name not in _SETS:
        raise fail(f"datasets.{dataset_key}.path", "must end in generated_set or manual_set")
    epochs, lr, frozen = spec.get("epochs"), spec.get("lr"), spec.get("freeze_encoder", False)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise fail(f"{key}.epochs", f"must be a whole number >= 1, got {epochs!r}")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        raise fail(f"{key}.lr", f"must be a number > 0, got {lr!r}")
    if not isinstance(frozen, bool):
        raise fail(f"{key}.freeze_encoder", f"must be true or false, got {frozen!r}")
    repeat = entry.get("repeat_train_images", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
        raise fail(f"datasets.{dataset_key}.repeat_train_images",
                   f"must be a whole number >= 1, got {repeat!r}")
    span = entry.get("augmentation_range", [-2, 2]) if entry.get("augment_train", True) else [0, 0]
    if (not isinstance(span, list) or len(span) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in span)
            or span[0] > span[1] or max(abs(v) for v in span) > 20):
        raise fail(f"datasets.{dataset_key}.augmentation_range",
                   f"must be [low, high] degC within -20..20, got {span!r}")
    return PhaseSpec(name, set_name, epochs, float(lr), frozen, repeat,
                     (float(span[0]), float(span[1])))


def options_from_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """TrainOptions values of a published-format file given with ``taseg train --config``.

    The file is kept as the run's recipe (``recipe_file``); its model type, phases, batch size,
    loss and worker count become the run's options, which flags given next to it override.
    """
    recipe = read_recipe_file(path)
    values: dict[str, Any] = {
        "recipe_file": str(Path(path).resolve()),
        "recipe": "published",
        "model_type": recipe.model_type,
        "train_phases": recipe.phase_order,
        "batch_size": recipe.batch_size,
        "loss_fn": recipe.loss_fn,
    }
    if recipe.worker_count is not None:
        # A file written on another machine may name more loader workers than this one has
        # cores (the published files say 12): it gets this machine's share, not an error.
        from thermal_anomaly_segmenter.limits import cpu_cores

        values["worker_count"] = min(recipe.worker_count, cpu_cores())
        if values["worker_count"] < recipe.worker_count:
            log.info("%s: worker_count %d capped at this machine's %d cores", Path(path).name,
                     recipe.worker_count, values["worker_count"])
    if recipe.encoder_name:
        values["architecture"] = {"encoder_name": recipe.encoder_name}
    return values


def published_defaults(options: TrainOptions, given: set[str]) -> TrainOptions:
    """On the published recipe, take phases, batch size, loss and smp encoder not ``given`` by
    the caller from the model type's configuration file (the CPU recipe keeps its own)."""
    if options.recipe != "published" or options.model_type is None:
        return options
    source = (read_recipe_file(options.recipe_file, options.model_type) if options.recipe_file
              else recipe_for(options.model_type))
    changes: dict[str, Any] = {}
    if "train_phases" not in given:
        changes["train_phases"] = source.phase_order
    if "batch_size" not in given:
        changes["batch_size"] = source.batch_size
    if "loss_fn" not in given:
        changes["loss_fn"] = source.loss_fn
    if source.encoder_name and "encoder_name" not in (options.architecture or {}):
        changes["architecture"] = {**(options.architecture or {}),
                                   "encoder_name": source.encoder_name}
    return dataclasses.replace(options, **changes) if changes else options
