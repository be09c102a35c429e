"""Opening a training run, new or resumed: its options, data, GSD, frame size and normalisation.

A new run resolves its options from the recipe (:mod:`.recipe_files`) and gets a unique name
under ``MODELS_PATH/.runs``; a resumed one reads them back from its ``run.json`` (only the
time budget and the hardware may change). Everything fixed for the run (frame size,
normalisation, the model's GSD) is stored in that state, so a resume trains on the same.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thermal_anomaly_segmenter.config import Settings, TrainOptions
from thermal_anomaly_segmenter.errors import DatasetError, InvalidInputError
from thermal_anomaly_segmenter.io.datasets import (
    Sample,
    SplitIndex,
    frame_size,
    load_split,
    open_set,
    read_label_mask,
    resolve_dataset_path,
)
from thermal_anomaly_segmenter.models.normalization import Normalization, dataset_statistics
from thermal_anomaly_segmenter.train.hardware import accelerator_for, is_rank_zero
from thermal_anomaly_segmenter.train.recipe import phase_recipes
from thermal_anomaly_segmenter.train.runs import (
    RUN_STATE,
    _options_dict,
    _options_from_dict,
    _unique_name,
    _write_json,
)

if TYPE_CHECKING:
    from thermal_anomaly_segmenter.train.recipe import PhaseRecipe

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Run:
    """One run's fixed facts and its progress (``state``, saved as ``run.json``)."""

    options: TrainOptions
    settings: Settings
    name: str
    run_dir: Path
    state: dict[str, Any]
    dataset_path: Path
    recipes: list[PhaseRecipe]
    splits: dict[str, dict[str, SplitIndex]]
    size: tuple[int, int]
    norm: Normalization
    rank_zero: bool
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def save_state(self) -> None:
        if self.rank_zero:
            _write_json(self.run_dir / RUN_STATE, self.state)



def open_run(options: TrainOptions, settings: Settings) -> Run:
    """A new run, or the one ``options.resume`` names: options, data, size, normalisation."""
    models_path = Path(settings.models_path)
    name = ""  # a new run's name is chosen once the dataset is validated: a bad one leaves none
    run_dir = Path()
    state: dict[str, Any]
    if options.resume:
        options, run_dir, state = _resumed(options)
        name = state["name"]
    dataset_path = resolve_dataset_path(options.dataset_path, settings)
    window_from_recipe = False
    if not options.resume:
        window_from_recipe = options.input_size is None
        epochs_given = options.epochs is not None
        options = _resolve_options(options, dataset_path)
        # The CPU recipe's epochs only share out a time budget: the budget ends its run.
        fill = options.max_time is not None and not epochs_given and options.recipe == "cpu"
        state = {"options": _options_dict(options), "phases": {}, "fill_budget": fill}
    recipes = phase_recipes(options)
    splits = load_splits(dataset_path, recipes, options, models_path / ".runs" / ".datasets")

    # Frame size and normalisation are fixed for the whole run (stored for resume).
    size = _run_size(state, options, splits[recipes[0].set_name]["train"], window_from_recipe)
    norm = _run_normalization(state, options, splits, recipes)
    state.update(input_size=list(size), normalization=norm.to_dict(),
                 dataset_path=str(dataset_path))
    rank_zero = is_rank_zero()
    if not name:
        stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
        name = _unique_name(models_path, f"{options.model_type}_{options.loss_fn}_{stamp}",
                            reserve=rank_zero)
        run_dir = models_path / ".runs" / name
        state["name"] = name
    if rank_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
    run = Run(options, settings, name, run_dir, state, dataset_path, recipes, splits,
              size, norm, rank_zero)
    run.save_state()
    log.info("training run folder %s (continue an interrupted run with --resume %s)",
             run_dir, run_dir)
    return run


def _resumed(options: TrainOptions) -> tuple[TrainOptions, Path, dict[str, Any]]:
    """The options, folder and state of the run ``options.resume`` names."""
    run_dir = Path(options.resume).expanduser().resolve()  # type: ignore[arg-type]
    state_path = run_dir / RUN_STATE
    if not state_path.is_file():
        raise InvalidInputError(
            f"resume: {run_dir} is not a training run folder (no {RUN_STATE})"
        )
    state = json.loads(state_path.read_text(encoding="utf-8"))
    saved = _options_from_dict(state["options"])
    # The run's own recipe wins; only the time budget and hardware may change.
    options = dataclasses.replace(
        saved, resume=str(run_dir), max_time=options.max_time, gpu=options.gpu,
        devices=options.devices, num_nodes=options.num_nodes,
        worker_count=options.worker_count if options.worker_count is not None
        else saved.worker_count, mlflow=options.mlflow and saved.mlflow,
    )
    log.info("resuming run %s", run_dir)
    return options, run_dir, state


def _run_size(state: dict[str, Any], options: TrainOptions, first: SplitIndex,
              window_from_recipe: bool) -> tuple[int, int]:
    """The run's (height, width): stored, given, or the first training frame's."""
    if "input_size" in state:
        return tuple(state["input_size"])  # type: ignore[return-value]
    size = tuple(options.input_size) if options.input_size else frame_size(first.samples[0])
    if window_from_recipe and options.input_size:  # a recipe's window fits small frames
        frame_h, frame_w = frame_size(first.samples[0])
        size = (min(size[0], frame_h), min(size[1], frame_w))
    return size  # type: ignore[return-value]


def _run_normalization(state: dict[str, Any], options: TrainOptions,
                       splits: dict[str, dict[str, SplitIndex]],
                       recipes: list[PhaseRecipe]) -> Normalization:
    """The run's normalisation: stored, measured on the training frames, or fixed."""
    if "normalization" in state:
        return Normalization.from_dict(state["normalization"])
    if options.normalization == "dataset":
        stats_set = "generated_set" if "generated_set" in splits else recipes[0].set_name
        return dataset_statistics(splits[stats_set]["train"])
    return Normalization(mode=options.normalization)  # type: ignore[arg-type]


def _resolve_options(options: TrainOptions, dataset_path: Path) -> TrainOptions:
    """Fill in what the recipe supplies, for the hardware the run trains on."""
    from thermal_anomaly_segmenter.io.datasets import has_set
    from thermal_anomaly_segmenter.models.folder import is_model_folder
    from thermal_anomaly_segmenter.models.load import read_model_config

    folder = Path(options.weights).expanduser() if options.weights else None
    if options.model_type is None and folder is not None and is_model_folder(folder):
        # Fine-tuning a model folder: its own model type and architecture.
        options = dataclasses.replace(options, model_type=read_model_config(folder).model_type)
    from thermal_anomaly_segmenter.models.recipe_files import published_defaults

    resolved = options.resolved(accelerator_for(options), has_set(dataset_path, "manual_set"),
                                has_set(dataset_path, "generated_set"))
    given = {f.name for f in dataclasses.fields(options) if getattr(options, f.name) is not None}
    resolved = published_defaults(resolved, given)
    filled = [f"{k}={getattr(resolved, k)}" for k in
              ("model_type", "architecture", "train_phases", "loss_fn", "batch_size",
               "input_size", "epochs") if k not in given and getattr(resolved, k) is not None]
    if filled:
        log.info("recipe %s: %s", resolved.recipe, ", ".join(filled))
    return resolved


def load_splits(dataset_path: Path, recipes: list[PhaseRecipe], options: TrainOptions,
                 work_dir: Path) -> dict[str, dict[str, SplitIndex]]:
    """Index and validate every split the phases need, before any training starts."""
    out: dict[str, dict[str, SplitIndex]] = {}
    for set_name in dict.fromkeys(r.set_name for r in recipes):
        set_dir = open_set(dataset_path, set_name, work_dir)
        splits = {s: load_split(set_dir, s, set_name) for s in ("train", "val", "test")}
        kept = splits["train"].filtered(options.min_label_px)
        if not len(kept):
            raise DatasetError(
                f"{set_name}: no training frame has more than {options.min_label_px} anomaly "
                f"pixels (of {len(splits['train'])}); lower min_label_px"
            )
        if len(kept) < len(splits["train"]):
            log.info("%s: %d of %d training frames kept (> %d anomaly pixels)", set_name,
                     len(kept), len(splits["train"]), options.min_label_px)
        splits["train"] = kept
        out[set_name] = splits
    return out



#: Training frames whose GSDs spread wider than this ratio leave the model's GSD unknown.
GSD_SPREAD_MAX = 1.5


def training_gsd(splits: dict[str, dict[str, SplitIndex]],
                 start_gsd: float | None = None, rescale: bool = True) -> float | None:
    """The model's GSD (m/px, :mod:`..scale`), when every training frame states its own.

    Frames within :data:`GSD_SPREAD_MAX` of each other: their median. Wider apart, with
    ``rescale`` (training on windows, where :func:`at_gsd` can shrink the finer frames):
    the start model's GSD if it states one (fine-tuning keeps the scale it learned), else
    their median; without ``rescale``: ``None``. ``None`` too when a frame's GSD is unknown.
    """
    gsds = [s.gsd_m for sets in splits.values() for s in sets["train"].samples]
    if not gsds or any(g is None for g in gsds):
        return None
    lo, hi = min(gsds), max(gsds)
    if hi > GSD_SPREAD_MAX * lo:
        if not rescale:
            log.info("training frames span %.3f..%.3f m/px: the model's GSD is left unknown "
                     "(frames are used at their own pixels)", lo, hi)
            return None
        if start_gsd is not None:
            return float(start_gsd)
    return round(statistics.median(gsds), 4)


def at_gsd(splits: dict[str, dict[str, SplitIndex]], gsd: float | None
           ) -> dict[str, dict[str, SplitIndex]]:
    """The splits with every frame finer than ``gsd`` marked to be read at it (as predict
    sees such frames); coarser frames are used as they are."""
    if gsd is None:
        return splits
    from thermal_anomaly_segmenter.io.gsd import TOLERANCE, scale_factor

    def factor(s: Sample) -> float | None:
        if s.gsd_m is None or s.gsd_m >= (1.0 - TOLERANCE) * gsd:
            return None
        shape = read_label_mask(s.label).shape  # the frame's size, from its small label
        return scale_factor(shape, s.gsd_m, gsd)

    def scaled(index: SplitIndex) -> SplitIndex:
        samples = [dataclasses.replace(s, scale=factor(s)) for s in index.samples]
        return dataclasses.replace(index, samples=samples)

    out = {name: {split: scaled(index) for split, index in sets.items()}
           for name, sets in splits.items()}
    n = sum(s.scale is not None for sets in out.values() for i in sets.values()
            for s in i.samples)
    if n:
        log.info("%d frames finer than %.3f m/px are read at that GSD (scale matching)", n, gsd)
    return out
