"""``train``: chain the phases of a recipe on Lightning and write the model folder.

A run lives in ``MODELS_PATH/.runs/<name>``: per phase ``best.ckpt`` and ``last.ckpt``
(written atomically), ``metrics.csv`` (one row per epoch), ``best.safetensors`` and
``test_metrics.json`` once the phase is done; ``run.json`` holds the options and progress, so
``train(TrainOptions(resume=run_dir))`` continues an interrupted run from its last checkpoint.
Lightning checkpoints are pickles: they are only ever loaded from a run folder this code
wrote. The model folder (safetensors) goes to ``MODELS_PATH/<model_type>_<loss>_<timestamp>``.

Multi-device training uses Lightning DDP (gloo on CPU, nccl on GPU). Worker processes are
started per phase (forked on CPU, spawned on GPU), so training works from the CLI, the API and
tests alike; under an external launcher (torchrun, SLURM) the launcher's processes are used.
Opening a run (new or resumed: options, data, GSD, size, normalisation) is :mod:`.opening`'s.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pickle  # nosec B403
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thermal_anomaly_segmenter._compat import ensure_torchvision

ensure_torchvision()

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint  # noqa: E402

from thermal_anomaly_segmenter.config import Settings, TrainOptions, get_settings  # noqa: E402
from thermal_anomaly_segmenter.errors import InvalidInputError  # noqa: E402
from thermal_anomaly_segmenter.models.folder import ModelConfig, save_model_folder  # noqa: E402
from thermal_anomaly_segmenter.models.normalization import Normalization  # noqa: E402
from thermal_anomaly_segmenter.models.registry import build_model, resolve_architecture  # noqa: E402
from thermal_anomaly_segmenter.train.datamodule import (  # noqa: E402
    ThermalDataModule,
    augment_site,
    default_worker_count,
)
from thermal_anomaly_segmenter.train.hardware import (  # noqa: E402
    accelerator_for,
    ddp_strategy,
    precision_for,
    progress_bar,
)
from thermal_anomaly_segmenter.train.opening import (  # noqa: E402
    Run,
    at_gsd,
    open_run,
    training_gsd,
)
from thermal_anomaly_segmenter.train.plots import plot_curves  # noqa: E402
from thermal_anomaly_segmenter.train.runs import (  # noqa: E402
    AtomicCheckpointIO,
    TrainResult,
    _options_dict,
    _state_from_ckpt,
    _write_json,
    epoch_rows,
    write_csv_rows,
)
from thermal_anomaly_segmenter.train.task import MONITOR, SegmentationTask  # noqa: E402

if TYPE_CHECKING:
    from thermal_anomaly_segmenter.train.recipe import PhaseRecipe

log = logging.getLogger(__name__)

#: Epoch bound of a phase that fills its share of a time budget (the budget ends it first).
OPEN_ENDED_EPOCHS = 100_000


def train(options: TrainOptions, *, settings: Settings | None = None) -> TrainResult:
    """Run (or resume) a training run and write its model folder.

    Stages: open the run (new or resumed) with its data, size and normalisation; start
    tracking; run each phase from the previous phase's best weights; write the model folder.

    Args:
        options: What to train; ``options.resume`` continues the run folder it names.
        settings: Environment (MODELS_PATH, MLflow, ...); default :func:`get_settings`.

    Returns:
        The model folder, the run folder and the final phase's test metrics.

    Raises:
        DatasetError: The dataset is missing or malformed.
        InvalidInputError: Invalid options.
    """
    settings = settings or get_settings()
    started = time.monotonic()
    run = open_run(options, settings)
    tracker = _start_tracking(run)
    options = run.options
    deadline = None if options.max_time is None else started + options.max_time * 60
    architecture, weights, start = _starting_point(options, run.norm, settings)
    # Windows of frames read at the model's GSD (.scale); whole frames are resized to one
    # size anyway. Fixed for the run, as its frame size (resume keeps it).
    windows = options.input_size is not None
    if "gsd_m" not in run.state:
        run.state["gsd_m"] = training_gsd(run.splits, start.get("gsd_m"), rescale=windows)
    if windows:
        run.splits = at_gsd(run.splits, run.state["gsd_m"])
    if run.rank_zero and run.state.get("start_weights") != start:
        run.state["start_weights"] = start
        run.save_state()
    run.params["start_weights"] = start
    phase_metrics: dict[str, dict[str, float]] = {}
    skipped: list[str] = []
    epoch_offset = 0
    model = None
    status = "FAILED"
    try:
        for recipe in run.recipes:
            done = run.state["phases"].get(recipe.name, {})
            if done.get("done"):
                from safetensors.torch import load_file

                weights = load_file(str(run.run_dir / recipe.name / "best.safetensors"))
                phase_metrics[recipe.name] = done["test_metrics"]
            elif _budget_spent(deadline) and weights is not None:
                log.warning("time budget spent: skipping phase %s", recipe.name)
                skipped.append(recipe.name)
                continue
            else:
                model, weights, phase_metrics[recipe.name] = _run_phase(
                    run, recipe, architecture, weights, _allotment(run, recipe, deadline),
                    tracker, epoch_offset)
            epoch_offset += recipe.epochs
        final_metrics = phase_metrics[[r.name for r in run.recipes if r.name in phase_metrics][-1]]
        if model is None:  # every phase was done before this resume
            model = build_model(options.model_type, architecture)
            model.load_state_dict(weights)
        model_dir = _write_model_folder(run, model, architecture, final_metrics, skipped, tracker)
        status = "FINISHED"
    finally:
        tracker.end(status)
    log.info("model folder %s (test_dataset_iou %.4f)", model_dir,
             final_metrics.get("test_dataset_iou", math.nan))
    return TrainResult(model_dir=model_dir, run_dir=run.run_dir, metrics=final_metrics,
                       phase_metrics=phase_metrics, skipped_phases=skipped,
                       mlflow_run_id=tracker.run_id, mlflow_tracking_uri=tracker.uri)


def _start_tracking(run: Run):
    """Start (or continue) the run's MLflow run with its parameters."""
    from thermal_anomaly_segmenter.train.tracking import Tracker

    tracker = Tracker(run.settings, enabled=run.options.mlflow and run.rank_zero)
    params = {k: v for k, v in _options_dict(run.options).items() if k != "resume"}
    params.update(dataset_path=str(run.dataset_path), input_size=list(run.size),
                  normalization=run.norm.mode)
    for r in run.recipes:
        params[f"{r.name}_epochs"], params[f"{r.name}_lr"] = r.epochs, r.lr
    run.params = params
    previous = run.state.get("mlflow") or {}
    tracker.start(run.name, params, tags={"taseg.run_dir": str(run.run_dir)},
                  resume=(previous["uri"], previous["run_id"]) if previous else None)
    if tracker.run_id and run.rank_zero:
        run.state["mlflow"] = {"uri": tracker.uri, "run_id": tracker.run_id}
        run.save_state()
    return tracker


def _budget_spent(deadline: float | None) -> bool:
    return deadline is not None and deadline - time.monotonic() <= 0


def _allotment(run: Run, recipe: PhaseRecipe, deadline: float | None) -> float | None:
    """This phase's share of the time left: the phases left share it by their work (epochs x
    frames); time a phase does not use goes to the next ones."""
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    left = [r for r in run.recipes[run.recipes.index(recipe):]
            if not run.state["phases"].get(r.name, {}).get("done")]
    work = {r.name: r.epochs * r.repeat_train_images
            * max(1, len(run.splits[r.set_name]["train"])) for r in left}
    return max(remaining * work[recipe.name] / sum(work.values()), 1.0)


def _run_phase(run: Run, recipe: PhaseRecipe, architecture: dict[str, Any] | None,
               weights: dict[str, torch.Tensor] | None, allotment: float | None, tracker,
               epoch_offset: int):
    """Train one phase from ``weights``, test its best weights and record them.

    Returns:
        The network, its best weights and the phase's test metrics.
    """
    options = run.options
    phase_dir = run.run_dir / recipe.name
    accelerator = accelerator_for(options)
    # Filling a time budget: the phase runs until its share of it is spent, and its learning
    # rate decays over that time (the epoch count is then only an upper bound).
    epochs = OPEN_ENDED_EPOCHS if run.state.get("fill_budget") and allotment else recipe.epochs
    L.seed_everything(options.seed, workers=True, verbose=False)
    phase_dir.mkdir(parents=True, exist_ok=True)
    task = SegmentationTask(
        options.model_type, architecture, options.loss_fn, recipe.lr,
        epochs, recipe.frozen,
        weights=options.weights if weights is None else None,
        metrics_csv=str(phase_dir / "metrics.csv"),
        time_budget_s=allotment,
    )
    if weights is not None:
        task.model.load_state_dict(weights)
    data = _phase_data(run, recipe, accelerator)
    trainer, checkpoint = _phase_trainer(options, accelerator, epochs, allotment, phase_dir)
    _fit(trainer, task, data, phase_dir / "last.ckpt", recipe, bool(options.resume))
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    if best is not None and best.is_file():
        weights = _state_from_ckpt(best)
    else:
        log.warning("phase %s: no validated checkpoint; keeping its last weights", recipe.name)
        weights = {k: v.detach().cpu().clone() for k, v in task.model.state_dict().items()}
    task.model.load_state_dict(weights)
    results = trainer.test(task, datamodule=data, verbose=False)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()
               if k.startswith("test_") and k != "test_loss"}
    if run.rank_zero:
        _record_phase(run, recipe, weights, metrics, tracker, epoch_offset)
    return task.model, weights, metrics


def _phase_data(run: Run, recipe: PhaseRecipe, accelerator: str) -> ThermalDataModule:
    """The phase's splits as loaders, with the run's size, normalisation and augmentation."""
    options = run.options
    workers = options.worker_count if options.worker_count is not None else default_worker_count()
    set_splits = run.splits[recipe.set_name]
    return ThermalDataModule(
        set_splits["train"].repeated(recipe.repeat_train_images), set_splits["val"],
        set_splits["test"], run.norm, run.size, options.batch_size, workers,
        options.data_augmentation, pin_memory=accelerator == "gpu",
        crop=options.input_size is not None,
        augmentation_range=recipe.augmentation_range,
        augment_on=augment_site(options.augment_on, accelerator, options.photometric,
                                options.surface_patches),
        frame_cache=accelerator == "gpu",  # issue 17: decoding bound GPU training
        zoom=options.zoom_range,
        photometric=options.photometric,
        surface_patches=options.surface_patches,
    )


def _phase_trainer(options: TrainOptions, accelerator: str, epochs: int,
                   allotment: float | None, phase_dir: Path
                   ) -> tuple[L.Trainer, ModelCheckpoint]:
    """The phase's Lightning trainer and the callback that keeps its best checkpoint."""
    checkpoint = ModelCheckpoint(
        dirpath=phase_dir, filename="best", monitor=MONITOR, mode="max", save_top_k=1,
        save_last=True, enable_version_counter=False, auto_insert_metric_name=False,
    )
    callbacks: list[Any] = [checkpoint, progress_bar()]
    if options.early_stopping:
        callbacks.append(EarlyStopping(monitor=MONITOR, mode="max",
                                       patience=options.early_stopping))
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=options.devices,
        num_nodes=options.num_nodes,
        strategy=ddp_strategy(options, accelerator),
        precision=precision_for(accelerator, options.precision),  # type: ignore[arg-type]
        max_epochs=epochs,
        max_time=None if allotment is None else timedelta(seconds=allotment),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=False,
        default_root_dir=str(phase_dir),
        enable_progress_bar=True,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    return trainer, checkpoint


def _fit(trainer: L.Trainer, task: SegmentationTask, data: ThermalDataModule, last: Path,
         recipe: PhaseRecipe, resume: bool) -> None:
    """Fit the phase, continuing from its ``last`` checkpoint when resuming a run."""
    resume_from = str(last) if resume and last.is_file() else None
    if resume_from:
        log.info("phase %s: continuing from %s", recipe.name, last)
    with warnings.catch_warnings():
        # Resuming writes into the phase folder of the interrupted run on purpose.
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* not empty")
        try:
            trainer.fit(task, datamodule=data, ckpt_path=resume_from)
        except pickle.UnpicklingError as exc:  # only plain tensors are ever loaded
            raise InvalidInputError(
                f"checkpoint {last} refused: it holds more than weights "
                f"({' '.join(str(exc).split())[:160]})"
            ) from None


def _record_phase(run: Run, recipe: PhaseRecipe, weights: dict[str, torch.Tensor],
                  metrics: dict[str, float], tracker, epoch_offset: int) -> None:
    """Save a finished phase's best weights and metrics in the run folder and MLflow."""
    from safetensors.torch import save_file

    phase_dir = run.run_dir / recipe.name
    rows = epoch_rows(phase_dir / "metrics.csv")
    save_file({k: v.contiguous() for k, v in weights.items()},
              str(phase_dir / "best.safetensors"))
    _write_json(phase_dir / "test_metrics.json", metrics)
    run.state["phases"][recipe.name] = {"done": True, "test_metrics": metrics,
                                        "best_weights": str(phase_dir / "best.safetensors")}
    run.save_state()
    # A done phase resumes from best.safetensors: its checkpoints (weights plus optimizer
    # state, ~3x the model) are dead weight on disk.
    for ckpt in phase_dir.glob("*.ckpt"):
        ckpt.unlink(missing_ok=True)
    tracker.log_metrics(
        (epoch_offset + int(r["epoch"]),
         {k: v for k, v in r.items() if isinstance(v, (int, float)) and k != "epoch"})
        for r in rows
    )
    tracker.log_metrics([(epoch_offset + recipe.epochs,
                          {f"{recipe.name}_{k}": v for k, v in metrics.items()})])


def _write_model_folder(run: Run, model, architecture: dict[str, Any] | None,
                        final_metrics: dict[str, float], skipped: list[str], tracker) -> Path:
    """Write the model folder (with its validation threshold, metrics CSV and curves)."""
    options = run.options
    model_dir = (Path(options.output_dir).expanduser() if options.output_dir
                 else Path(run.settings.models_path) / run.name)
    if not run.rank_zero:
        return model_dir
    config = ModelConfig(
        model_type=options.model_type,
        architecture=architecture or {},
        normalization=run.norm.to_dict(),
        input_size=run.size,
        gsd_m=run.state.get("gsd_m"),
        train_args={**run.params, "phases": [dataclasses.asdict(r) for r in run.recipes],
                    "skipped_phases": skipped, "run_dir": str(run.run_dir)},
        metrics=final_metrics,
    )
    save_model_folder(model_dir, config, model.cpu(), overwrite=bool(options.resume))
    _store_threshold(model_dir, run.dataset_path, run.recipes[-1].set_name, run.settings)
    for recipe in run.recipes:
        csv_path = run.run_dir / recipe.name / "metrics.csv"
        if csv_path.is_file():
            write_csv_rows(model_dir / f"metrics_{recipe.name}.csv", epoch_rows(csv_path))
    plot_curves(run.run_dir, run.recipes, model_dir / "training_curves.png")
    tracker.log_artifacts(model_dir, "model")
    run.state["model_dir"] = str(model_dir)
    run.save_state()
    return model_dir


def _store_threshold(model_dir: Path, dataset_path: Path, set_name: str,
                     settings: Settings | None) -> None:
    """Fit the probability calibration on validation data, then store the threshold chosen
    on the calibrated probabilities; a failure keeps the network's own probabilities and
    the published 0.5 (the trained model matters more than either)."""
    from thermal_anomaly_segmenter.evaluation.calibration import calibrate_model_folder
    from thermal_anomaly_segmenter.evaluation.evaluate import store_validation_threshold

    try:
        chosen = calibrate_model_folder(model_dir, dataset_path, set_name,
                                        settings=settings)["threshold"]
    except Exception as exc:  # one line for the user (a tiny validation split is expected)
        log.warning("could not calibrate on validation data (%s); choosing the threshold on "
                    "the network's own probabilities", exc)
        log.debug("calibration failure", exc_info=True)
        try:
            chosen = store_validation_threshold(model_dir, dataset_path, set_name,
                                                settings=settings)
        except Exception as exc2:
            log.warning("could not choose a threshold on validation data (%s); keeping 0.5",
                        exc2)
            log.debug("threshold failure", exc_info=True)
            return
    if chosen is not None:
        log.info("threshold %.2f chosen on %s/val", chosen, set_name)


def _starting_point(
    options: TrainOptions, norm: Normalization, settings: Settings
) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor] | None, dict[str, Any]]:
    """Architecture, first weights and a record of where they come from.

    ``options.weights`` naming a TASeg model folder fine-tunes it (its weights and
    architecture); any other ``weights`` value goes to the zoo's builder. Without ``weights``
    the run starts from the shipped default model when its type, architecture and
    normalisation match the run's (as the published recipe starts from ImageNet/ADE weights;
    an offline run downloads nothing), unless ``options.from_scratch``.
    """
    from thermal_anomaly_segmenter.models.folder import is_model_folder
    from thermal_anomaly_segmenter.models.load import read_model_config

    folder = Path(options.weights).expanduser() if options.weights else None
    if folder is not None and is_model_folder(folder):
        return _from_folder(folder, options, norm, "weights")
    if folder is not None:
        return options.architecture, None, {"source": str(options.weights), "kind": "weights"}
    random = {"source": "random", "kind": "random"}
    if options.from_scratch:
        log.info("starting from random weights (from_scratch)")
        return options.architecture, None, {**random, "reason": "from_scratch"}
    default = _shipped_default(settings)
    if default is None:
        log.info("starting from random weights (no shipped default model found)")
        return options.architecture, None, {**random, "reason": "no shipped default"}
    config = read_model_config(default)
    wanted = resolve_architecture(options.model_type, options.architecture)  # type: ignore[arg-type]
    if (config.model_type != options.model_type or config.architecture != wanted
            or config.norm.mode != norm.mode):
        log.info("starting from random weights (the shipped default %s is a %s %s model "
                 "with %s normalisation)", default, config.model_type,
                 config.architecture.get("encoder_name", ""), config.norm.mode)
        return options.architecture, None, {**random, "reason": "architecture differs from "
                                            f"the shipped default {default}"}
    return _from_folder(default, options, norm, "shipped default")


def _shipped_default(settings: Settings) -> Path | None:
    """The default model folder: ``TASEG_DEFAULT_MODEL`` (a folder, or a name under
    MODELS_PATH), else the one shipped in this package's ``models/``."""
    from thermal_anomaly_segmenter.config import BASE_DIR, DEFAULT_MODEL_NAME
    from thermal_anomaly_segmenter.models.folder import default_model_dir, is_model_folder

    shipped = BASE_DIR / "models" / DEFAULT_MODEL_NAME
    return default_model_dir(settings) or (shipped.resolve() if is_model_folder(shipped)
                                           else None)


def _from_folder(
    folder: Path, options: TrainOptions, norm: Normalization, kind: str
) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor], dict[str, Any]]:
    from thermal_anomaly_segmenter.models.load import load_model_folder

    model, config = load_model_folder(folder)
    if model is None:
        raise InvalidInputError(f"{folder} is a {config.model_type} model: it has no weights "
                                "to start a training from")
    if config.model_type != options.model_type:
        raise InvalidInputError(
            f"{folder} holds a {config.model_type} model, not {options.model_type}: "
            f"pass --model-type {config.model_type} to fine-tune it")
    if config.norm.mode != norm.mode:
        log.warning("%s was trained with %s normalisation, this run uses %s",
                    folder, config.norm.mode, norm.mode)
    log.info("starting from the weights of %s (%s%s)", folder, kind,
             "; --from-scratch starts from random weights" if kind == "shipped default" else "")
    state = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    return (options.architecture or config.architecture or None, state,
            {"source": str(folder), "kind": kind,
             **({"gsd_m": config.gsd_m} if config.gsd_m is not None else {})})
