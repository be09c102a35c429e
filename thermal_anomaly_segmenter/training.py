"""Training: TASeg's three-phase recipe on Lightning.

Pieces, in the torchgeo spirit: :class:`~.datasets.ThermalDataset` (file I/O),
:class:`ThermalDataModule` (splits, loaders, augmentation), :class:`SegmentationTask` (model,
loss, optimiser, metrics; one shared step for train/val/test) and :func:`train`, which chains
the phases and writes the model folder.

Recipe (published defaults, overridable per phase): ``pre_train_frozen`` (generated_set,
encoder frozen), ``pre_train_unfrozen`` (generated_set), ``fine_tune`` (manual_set, train
frames repeated twice); epochs 15/35/60 (SegFormer-B4 fine_tune 95); learning rates
SegFormer 1e-4/6e-5/2.5e-5, smp 3e-3/2e-3/1e-3; AdamW (eps 1e-8) with a poly schedule
(power 1; stepped per batch rather than per epoch, and with ``--max-time`` over each phase's
share of the time budget when that runs out first). Each phase starts from the previous
phase's *best* weights (by ``val_dataset_iou``), not its last ones.

A run lives in ``MODELS_PATH/.runs/<name>``: per phase ``best.ckpt`` and ``last.ckpt``
(written atomically, removed once the phase is done), ``metrics.csv`` (one row per epoch),
``best.safetensors`` and ``test_metrics.json`` once the phase is done; ``run.json`` holds
the options and progress, so ``train(TrainOptions(resume=run_dir))`` continues an interrupted
run from its last checkpoint.
Lightning checkpoints are pickles: they are only ever loaded from a run folder this code
wrote. The model folder (safetensors) goes to ``MODELS_PATH/<model_type>_<loss>_<timestamp>``.

Multi-device training uses Lightning DDP (gloo on CPU, nccl on GPU). Worker processes are
started per phase (forked on CPU, spawned on GPU), so training works from the CLI, the API and
tests alike; under an external launcher (torchrun, SLURM) the launcher's processes are used.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import pickle  # nosec B403
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ._compat import ensure_torchvision

ensure_torchvision()  # lightning imports torchmetrics, which imports torchvision

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint  # noqa: E402
from lightning.pytorch.plugins.io import TorchCheckpointIO  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from .config import PHASES, Settings, TrainOptions, get_settings  # noqa: E402
from .datasets import (  # noqa: E402
    SplitIndex,
    ThermalDataset,
    dataset_statistics,
    frame_size,
    load_split,
    open_set,
    resolve_dataset_path,
)
from .errors import DatasetError, InvalidInputError  # noqa: E402
from .metrics import STAT_COLUMNS, summarize  # noqa: E402
from .model_folder import ModelConfig, save_model_folder  # noqa: E402
from .normalization import Normalization  # noqa: E402
from .processes import die_with_parent  # noqa: E402
from .zoo import TRAINABLE_TYPES, build_model, get_spec  # noqa: E402

log = logging.getLogger(__name__)

MONITOR = "val_dataset_iou"
RUN_STATE = "run.json"

# --------------------------------------------------------------------------- recipe


@dataclass(frozen=True)
class PhaseRecipe:
    """One phase: which set it reads, whether the encoder is frozen, epochs and LR."""

    name: str
    set_name: str
    frozen: bool
    epochs: int
    lr: float
    repeat_train_images: int
    #: Range of the global temperature offset of the augmentation, degC.
    augmentation_range: tuple[float, float] = (-2.0, 2.0)


def phase_recipes(options: TrainOptions) -> list[PhaseRecipe]:
    """The phases of a run, in recipe order, with the options' overrides applied.

    Epochs, learning rate, frozen encoder, set, repeats and augmentation range of each phase
    come from the model type's configuration file (``options.recipe_file`` or the shipped
    ``configurations/train_<model_type>.json``, see :mod:`.recipe_files`), read now.
    Options not yet :meth:`~.config.TrainOptions.resolved` get the published recipe.
    """
    from .recipe_files import read_recipe_file, recipe_for

    if options.model_type is None or options.train_phases is None:
        options = options.resolved("gpu")
    assert options.model_type is not None and options.train_phases is not None  # nosec B101
    get_spec(options.model_type)
    if options.model_type not in TRAINABLE_TYPES:
        raise InvalidInputError(
            f"{options.model_type} does not train; choose one of {', '.join(TRAINABLE_TYPES)}"
        )
    source = (read_recipe_file(options.recipe_file, options.model_type) if options.recipe_file
              else recipe_for(options.model_type))
    epochs_by_phase = {name: p.epochs for name, p in source.phases.items()}
    if isinstance(options.epochs, int) and not isinstance(options.epochs, bool):
        epochs_by_phase = dict.fromkeys(PHASES, options.epochs)
    elif isinstance(options.epochs, dict):
        epochs_by_phase.update(_check_phase_map("epochs", options.epochs))
    elif options.epochs is not None:
        raise InvalidInputError(
            f"epochs must be a number or phase -> number, got {options.epochs!r}"
        )
    lrs = {name: p.lr for name, p in source.phases.items()}
    lrs.update(_check_phase_map("lr", options.lr or {}))
    recipes = []
    for name in PHASES:  # recipe order, whatever order the caller listed them in
        if name not in options.train_phases:
            continue
        if name not in source.phases:
            raise InvalidInputError(f"phase {name} is not in {source.path}; its phases: "
                                    f"{', '.join(source.phases)}")
        phase = source.phases[name]
        epochs, lr = int(epochs_by_phase[name]), float(lrs[name])
        if epochs < 1:
            raise InvalidInputError(f"epochs of {name} must be >= 1, got {epochs}")
        if not lr > 0:
            raise InvalidInputError(f"lr of {name} must be > 0, got {lr}")
        recipes.append(PhaseRecipe(name, phase.set_name, phase.frozen, epochs, lr,
                                   phase.repeat_train_images, phase.augmentation_range))
    return recipes


def _check_phase_map(what: str, values: dict[str, Any]) -> dict[str, Any]:
    bad = [k for k in values if k not in PHASES]
    if bad:
        raise InvalidInputError(f"{what} names unknown phases {bad}; phases: {', '.join(PHASES)}")
    return dict(values)


def default_worker_count() -> int:
    """Loader workers from cores and memory: ``min(4, cores - 1, GiB / 4)``, at least 0."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        ram_gib = 8.0
    return max(0, min(4, (cores or 1) - 1, int(ram_gib // 4)))


# --------------------------------------------------------------------------- task


def make_loss(name: str) -> torch.nn.Module:
    """The smp loss of a published name (Tversky alpha 0.3 / beta 0.7)."""
    from segmentation_models_pytorch import losses

    if name == "Tversky":
        return losses.TverskyLoss(mode="binary", alpha=0.3, beta=0.7)
    if name == "Dice":
        return losses.DiceLoss(mode="binary")
    if name == "Jaccard":
        return losses.JaccardLoss(mode="binary")
    if name == "Focal":
        return losses.FocalLoss(mode="binary")
    if name == "BCE":
        return losses.SoftBCEWithLogitsLoss()
    raise InvalidInputError(f"unknown loss {name!r}; choose Tversky, Dice, BCE, Jaccard or Focal")


class SegmentationTask(L.LightningModule):
    """A zoo network trained with one loss; val/test compute pixel and object metrics.

    Args:
        model_type: Zoo model type.
        architecture: Overrides of the zoo's architecture arguments.
        loss_fn: Published loss name.
        lr: Initial learning rate.
        epochs: Epochs of the phase (length of the poly schedule).
        frozen: Freeze the encoder (weights and batch-norm statistics).
        weights: Initial weights for :func:`~.zoo.build_model`.
        metrics_csv: File that gets one row per epoch (rank 0 only).
        min_area_px: Predicted components smaller than this are ignored by object metrics.
        time_budget_s: Wall time this phase may train. The learning rate then decays by
            whichever runs out first, steps or time, so a run stopped by ``--max-time`` ends
            at a small learning rate instead of wherever the step schedule was.
    """

    def __init__(
        self,
        model_type: str,
        architecture: dict[str, Any] | None = None,
        loss_fn: str = "Tversky",
        lr: float = 1e-4,
        epochs: int = 1,
        frozen: bool = False,
        weights: str | None = None,
        metrics_csv: str | None = None,
        min_area_px: int = 4,
        time_budget_s: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model_type, architecture, weights)
        # Convolutions run much faster in channels-last layout (1.6x for a U-Net training step
        # on a 2-core CPU, more with bf16); it changes no result. SegFormer is mostly matmuls.
        self.channels_last = get_spec(model_type).family == "smp"
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.loss = make_loss(loss_fn)
        self.frozen = frozen
        if frozen:
            self.model.encoder().requires_grad_(False)
        self._stats: dict[str, list[torch.Tensor]] = {"val": [], "test": []}
        self._train_loss = [0.0, 0]
        self._epoch_lr = float(lr)
        self._last_val: dict[str, float] = {}
        self._total_steps = 1
        # Share of the time budget spent, carried over a resume in the checkpoint.
        self._time_progress = 0.0
        self._time_start = (0.0, 0.0)  # (monotonic clock, progress) when training (re)started

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_train_start(self) -> None:
        self._time_start = (time.monotonic(), self._time_progress)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        budget = self.hparams.time_budget_s
        if not budget:
            return
        clock, done = self._time_start
        progress = done + (1.0 - done) * (time.monotonic() - clock) / budget
        if self.trainer.world_size > 1:  # every rank must use the same learning rate
            progress = self.trainer.strategy.broadcast(progress, src=0)
        self._time_progress = min(1.0, max(self._time_progress, progress))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["taseg_time_progress"] = self._time_progress

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._time_progress = float(checkpoint.get("taseg_time_progress", 0.0))

    def _lr_factor(self, step: int) -> float:
        """Poly decay (power 1) over the phase's steps or its time budget, whichever is less."""
        progress = max(step / self._total_steps, self._time_progress)
        return max(0.0, 1.0 - progress)

    def on_train_epoch_start(self) -> None:
        if self.frozen:  # a frozen encoder keeps its batch-norm statistics too
            self.model.encoder().eval()
        self._train_loss = [0.0, 0]
        # Read now: the epoch-interval scheduler steps before on_train_epoch_end.
        self._epoch_lr = float(self.trainer.optimizers[0].param_groups[0]["lr"])

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        image, target = batch["image"], batch["mask"]
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        logits = self.model(image).float()
        loss = self.loss(logits, target)
        size = image.shape[0]
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=size, sync_dist=stage != "train")
        if stage == "train":
            self._train_loss[0] += float(loss.detach()) * size
            self._train_loss[1] += size
        else:
            # Predictions count inside the corridor only, as inference reports them.
            pred = (logits.detach() > 0) & batch["corridor"][:, None].bool()
            from .metrics import batch_stats

            self._stats[stage].append(
                batch_stats(pred, target.long(), self.hparams.min_area_px)
            )
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def _epoch_end(self, stage: str) -> dict[str, float]:
        rows, self._stats[stage] = self._stats[stage], []
        stats = torch.cat(rows) if rows else torch.zeros((0, len(STAT_COLUMNS)), dtype=torch.long)
        if self.trainer.world_size > 1:
            # DistributedSampler gives every rank the same number of frames.
            stats = self.all_gather(stats.to(self.device)).reshape(-1, len(STAT_COLUMNS)).cpu()
        metrics = summarize(stats, prefix=f"{stage}_")
        if metrics:
            self.log_dict(metrics, sync_dist=True)
        return metrics

    def on_validation_epoch_end(self) -> None:
        metrics = self._epoch_end("val")
        if not self.trainer.sanity_checking:
            self._last_val = metrics

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    def on_train_epoch_end(self) -> None:
        path = self.hparams.metrics_csv
        if not path or self.trainer.global_rank != 0 or self.trainer.sanity_checking:
            return
        total, count = self._train_loss
        row: dict[str, Any] = {
            "epoch": self.current_epoch,
            "lr": self._epoch_lr,
            "train_loss": total / count if count else float("nan"),
        }
        val_loss = self.trainer.callback_metrics.get("val_loss")
        if val_loss is not None:
            row["val_loss"] = float(val_loss)
        row.update(self._last_val)
        append_csv_row(Path(path), row)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.hparams.lr, eps=1e-8)
        self._total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler,
                                                          "interval": "step"}}


# --------------------------------------------------------------------------- data module


class ThermalDataModule(L.LightningDataModule):
    """Loaders of one phase: train (filtered, repeated, augmented), val and test.

    Args:
        train: Training split (already filtered and repeated).
        val: Validation split.
        test: Test split, or ``None``.
        normalization: Input normalisation.
        size: Frame size (height, width) every frame is resized to.
        batch_size: Frames per batch (per device).
        workers: Loader worker processes (0 = in the main process).
        augment: Apply :class:`~.augmentation.ThermalAugment` to training frames.
        pin_memory: Pin batches (GPU training).
        crop: Train on random ``size`` windows; validate and test on whole frames (one per
            batch, as their sizes may differ).
    """

    def __init__(
        self,
        train: SplitIndex,
        val: SplitIndex,
        test: SplitIndex | None,
        normalization: Normalization,
        size: tuple[int, int],
        batch_size: int = 16,
        workers: int = 0,
        augment: bool = True,
        pin_memory: bool = False,
        crop: bool = False,
        augmentation_range: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.augmentation_range = augmentation_range
        self.crop = crop
        self.splits = {"train": train, "val": val, "test": test}
        self.normalization = normalization
        self.size = size
        self.batch_size = batch_size
        self.workers = workers
        self.augment = augment
        self.pin_memory = pin_memory

    def _loader(self, split: str) -> DataLoader:
        index = self.splits[split]
        if index is None or not len(index):
            raise DatasetError(f"split {split!r} is empty")
        augment = None
        if split == "train" and self.augment:
            from .augmentation import ThermalAugment

            augment = ThermalAugment(offset_range=self.augmentation_range)
        training = split == "train"
        whole = self.crop and not training
        dataset = ThermalDataset(index.samples, self.normalization,
                                 None if whole else self.size, augment, crop=self.crop)
        return DataLoader(
            dataset,
            batch_size=1 if whole else self.batch_size,
            shuffle=training,
            num_workers=self.workers,
            persistent_workers=self.workers > 0,
            worker_init_fn=die_with_parent,  # a killed training leaves no orphan workers
            pin_memory=self.pin_memory,
            # A last batch of one frame breaks batch norm (PSPNet pools to 1 x 1).
            drop_last=training and len(dataset) % self.batch_size == 1 and len(dataset) > 1,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


# --------------------------------------------------------------------------- helpers


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary sibling and renamed: never half a file on disk."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            torch.save(checkpoint, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def append_csv_row(path: Path, row: dict[str, Any]) -> None:
    """Append a row to a CSV, widening the header when new columns appear."""
    rows = read_csv_rows(path)
    rows.append(row)
    write_csv_rows(path, rows)


def read_csv_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return [
            {k: _number(v) for k, v in row.items() if v not in (None, "")}
            for row in csv.DictReader(fh)
        ]


def write_csv_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def epoch_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a phase's metrics.csv, one per epoch (a resumed epoch keeps its last row)."""
    by_epoch: dict[int, dict[str, Any]] = {}
    for row in read_csv_rows(path):
        by_epoch[int(row.get("epoch", 0))] = row
    return [by_epoch[e] for e in sorted(by_epoch)]


def _number(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _state_from_ckpt(path: Path) -> dict[str, torch.Tensor]:
    """Network weights of a Lightning checkpoint of our own run (``model.`` prefix removed)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InvalidInputError(f"checkpoint {path} refused: it holds more than weights "
                                f"({' '.join(str(exc).split())[:160]})") from None
    state = checkpoint["state_dict"]
    return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}


def _progress_bar():
    """A progress bar on stderr (rich), so stdout keeps only results; tqdm without rich."""
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    try:
        return RichProgressBar(console_kwargs={"stderr": True})
    except ModuleNotFoundError:  # rich is not installed
        return TQDMProgressBar()


def _rank_zero() -> bool:
    """False in the non-zero ranks of an external launcher (torchrun, SLURM)."""
    for key in ("RANK", "SLURM_PROCID"):
        if key in os.environ:
            return os.environ[key] == "0"
    return True


def _strategy(options: TrainOptions, accelerator: str):
    world = options.devices * options.num_nodes
    if world <= 1:
        return "auto"
    from lightning.pytorch.strategies import DDPStrategy

    backend = "nccl" if accelerator == "gpu" else "gloo"
    external = "LOCAL_RANK" in os.environ or "SLURM_PROCID" in os.environ
    if external:
        return DDPStrategy(process_group_backend=backend)
    # CPU: fork, so the children inherit the torchvision repair of ``_compat`` (a spawned child
    # unpickles lightning, and with it torchvision, before any TASeg code could run). GPU:
    # spawn, as CUDA cannot be forked; GPU machines have a working torchvision.
    method = "fork" if accelerator == "cpu" and os.name == "posix" else "spawn"
    return DDPStrategy(start_method=method, process_group_backend=backend)


def _accelerator(options: TrainOptions) -> str:
    cuda = torch.cuda.is_available()
    if options.gpu is True and not cuda:
        raise InvalidInputError("gpu=True but no CUDA GPU is available; pass --no-gpu for CPU")
    return "gpu" if (cuda if options.gpu is None else options.gpu) else "cpu"


def _cpu_has_bf16() -> bool:
    """Whether the CPU computes in bf16 natively (AVX512-BF16 or AMX on x86, BF16 on Arm)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(flag in ("avx512_bf16", "amx_bf16", "bf16")
               for line in text.splitlines() if line.startswith(("flags", "Features"))
               for flag in line.split(":", 1)[-1].split())


def _precision(accelerator: str, precision: str = "auto") -> str:
    """Lightning precision: ``auto`` = bf16 mixed where the hardware has bf16, else fp16 on a
    GPU and fp32 on a CPU."""
    if precision != "auto":
        return precision
    if accelerator == "gpu":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if _cpu_has_bf16() else "32-true"


def _options_dict(options: TrainOptions) -> dict[str, Any]:
    data = dataclasses.asdict(options)
    data["train_phases"] = list(options.train_phases or ())
    if isinstance(options.input_size, (tuple, list)):
        data["input_size"] = list(options.input_size)
    return data


def _options_from_dict(data: dict[str, Any]) -> TrainOptions:
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    values = {k: v for k, v in data.items() if k in known}
    values["train_phases"] = tuple(values.get("train_phases", PHASES))
    if values.get("input_size") is not None:
        values["input_size"] = tuple(values["input_size"])
    return TrainOptions(**values)


# --------------------------------------------------------------------------- result


@dataclass
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    run_dir: Path
    #: Test metrics of the final phase (``test_dataset_iou``, ``test_object_recall``, ...).
    metrics: dict[str, float]
    #: Test metrics of every phase that ran.
    phase_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Phases skipped because the time budget ran out.
    skipped_phases: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None
    mlflow_tracking_uri: str | None = None


# --------------------------------------------------------------------------- train


def _unique_name(models_path: Path, base: str, reserve: bool) -> str:
    """``base`` or ``base-N``, free as a model folder and as a run folder.

    With ``reserve`` the run folder is created here, atomically, so two trainings started in
    the same second (two API requests, a sweep) never share one.
    """
    runs = models_path / ".runs"
    if reserve:
        runs.mkdir(parents=True, exist_ok=True)
    name, n = base, 1
    while True:
        if not (models_path / name).exists():
            if not reserve and not (runs / name).exists():
                return name
            if reserve:
                with contextlib.suppress(FileExistsError):
                    (runs / name).mkdir()
                    return name
        n += 1
        name = f"{base}-{n}"


def _load_splits(dataset_path: Path, recipes: list[PhaseRecipe], options: TrainOptions,
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


def train(options: TrainOptions, *, settings: Settings | None = None) -> TrainResult:
    """Run (or resume) a training run and write its model folder.

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
    models_path = Path(settings.models_path)
    state: dict[str, Any]
    if options.resume:
        run_dir = Path(options.resume).expanduser().resolve()
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
        name = state["name"]
        log.info("resuming run %s", run_dir)
    dataset_path = resolve_dataset_path(options.dataset_path, settings)
    window_from_recipe = False
    if not options.resume:
        window_from_recipe = options.input_size is None
        options = _resolve_options(options, dataset_path)
        name = ""  # chosen once the dataset is validated, so a bad one leaves no folder
        state = {"options": _options_dict(options), "phases": {}}
    recipes = phase_recipes(options)
    splits = _load_splits(dataset_path, recipes, options, models_path / ".runs" / ".datasets")

    # Frame size and normalisation are fixed for the whole run (stored for resume).
    first = splits[recipes[0].set_name]["train"]
    if "input_size" in state:
        size = tuple(state["input_size"])
    else:
        size = tuple(options.input_size) if options.input_size else frame_size(first.samples[0])
        if window_from_recipe and options.input_size:  # a recipe's window fits small frames
            frame_h, frame_w = frame_size(first.samples[0])
            size = (min(size[0], frame_h), min(size[1], frame_w))
    if "normalization" in state:
        norm = Normalization.from_dict(state["normalization"])
    elif options.normalization == "dataset":
        stats_set = "generated_set" if "generated_set" in splits else recipes[0].set_name
        norm = dataset_statistics(splits[stats_set]["train"])
    else:
        norm = Normalization(mode=options.normalization)  # type: ignore[arg-type]
    state.update(input_size=list(size), normalization=norm.to_dict(),
                 dataset_path=str(dataset_path))
    rank_zero = _rank_zero()
    if not name:
        stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
        name = _unique_name(models_path, f"{options.model_type}_{options.loss_fn}_{stamp}",
                            reserve=rank_zero)
        run_dir = models_path / ".runs" / name
        state["name"] = name
    if rank_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_dir / RUN_STATE, state)
    log.info("training run folder %s (continue an interrupted run with --resume %s)",
             run_dir, run_dir)

    from .tracking import Tracker

    tracker = Tracker(settings, enabled=options.mlflow and rank_zero)
    params = {k: v for k, v in _options_dict(options).items() if k != "resume"}
    params.update(dataset_path=str(dataset_path), input_size=list(size),
                  normalization=norm.mode)
    for r in recipes:
        params[f"{r.name}_epochs"], params[f"{r.name}_lr"] = r.epochs, r.lr
    previous = state.get("mlflow") or {}
    tracker.start(name, params, tags={"taseg.run_dir": str(run_dir)},
                  resume=(previous["uri"], previous["run_id"]) if previous else None)
    if tracker.run_id and rank_zero:
        state["mlflow"] = {"uri": tracker.uri, "run_id": tracker.run_id}
        _write_json(run_dir / RUN_STATE, state)

    accelerator = _accelerator(options)
    workers = options.worker_count if options.worker_count is not None else default_worker_count()
    deadline = None if options.max_time is None else started + options.max_time * 60
    architecture, weights = _starting_point(options, norm)
    phase_metrics: dict[str, dict[str, float]] = {}
    skipped: list[str] = []
    epoch_offset = 0
    model = None
    status = "FAILED"
    try:
        for recipe in recipes:
            phase_dir = run_dir / recipe.name
            done = state["phases"].get(recipe.name, {})
            if done.get("done"):
                from safetensors.torch import load_file

                weights = load_file(str(phase_dir / "best.safetensors"))
                phase_metrics[recipe.name] = done["test_metrics"]
                epoch_offset += recipe.epochs
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0 and weights is not None:
                log.warning("time budget spent: skipping phase %s", recipe.name)
                skipped.append(recipe.name)
                continue
            allotment = None
            if remaining is not None:
                # The phases left share the budget by their work (epochs x frames); time a
                # phase does not use goes to the next ones.
                left = [r for r in recipes[recipes.index(recipe):]
                        if not state["phases"].get(r.name, {}).get("done")]
                work = {r.name: r.epochs * r.repeat_train_images
                        * max(1, len(splits[r.set_name]["train"])) for r in left}
                allotment = max(remaining * work[recipe.name] / sum(work.values()), 1.0)
            L.seed_everything(options.seed, workers=True, verbose=False)
            phase_dir.mkdir(parents=True, exist_ok=True)
            task = SegmentationTask(
                options.model_type, architecture, options.loss_fn, recipe.lr,
                recipe.epochs, recipe.frozen,
                weights=options.weights if weights is None else None,
                metrics_csv=str(phase_dir / "metrics.csv"),
                time_budget_s=allotment,
            )
            if weights is not None:
                task.model.load_state_dict(weights)
            set_splits = splits[recipe.set_name]
            data = ThermalDataModule(
                set_splits["train"].repeated(recipe.repeat_train_images), set_splits["val"],
                set_splits["test"], norm, size, options.batch_size, workers,
                options.data_augmentation, pin_memory=accelerator == "gpu",
                crop=options.input_size is not None,
                augmentation_range=recipe.augmentation_range,
            )
            checkpoint = ModelCheckpoint(
                dirpath=phase_dir, filename="best", monitor=MONITOR, mode="max", save_top_k=1,
                save_last=True, enable_version_counter=False, auto_insert_metric_name=False,
            )
            callbacks: list[Any] = [checkpoint, _progress_bar()]
            if options.early_stopping:
                callbacks.append(EarlyStopping(monitor=MONITOR, mode="max",
                                               patience=options.early_stopping))
            trainer = L.Trainer(
                accelerator=accelerator,
                devices=options.devices,
                num_nodes=options.num_nodes,
                strategy=_strategy(options, accelerator),
                precision=_precision(accelerator, options.precision),  # type: ignore[arg-type]
                max_epochs=recipe.epochs,
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
            last = phase_dir / "last.ckpt"
            resume_from = str(last) if options.resume and last.is_file() else None
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
            best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
            if best is not None and best.is_file():
                weights = _state_from_ckpt(best)
            else:
                log.warning("phase %s: no validated checkpoint; keeping its last weights",
                            recipe.name)
                weights = {k: v.detach().cpu().clone() for k, v in task.model.state_dict().items()}
            task.model.load_state_dict(weights)
            results = trainer.test(task, datamodule=data, verbose=False)
            metrics = {k: float(v) for k, v in (results[0] if results else {}).items()
                       if k.startswith("test_") and k != "test_loss"}
            phase_metrics[recipe.name] = metrics
            rows = epoch_rows(phase_dir / "metrics.csv")
            if rank_zero:
                from safetensors.torch import save_file

                save_file({k: v.contiguous() for k, v in weights.items()},
                          str(phase_dir / "best.safetensors"))
                _write_json(phase_dir / "test_metrics.json", metrics)
                state["phases"][recipe.name] = {"done": True, "test_metrics": metrics,
                                                "best_weights": str(phase_dir / "best.safetensors")}
                _write_json(run_dir / RUN_STATE, state)
                # A done phase resumes from best.safetensors: its checkpoints (weights plus
                # optimizer state, ~3x the model) are dead weight on disk.
                for ckpt in phase_dir.glob("*.ckpt"):
                    ckpt.unlink(missing_ok=True)
                tracker.log_metrics(
                    (epoch_offset + int(r["epoch"]),
                     {k: v for k, v in r.items() if isinstance(v, (int, float)) and k != "epoch"})
                    for r in rows
                )
                tracker.log_metrics([(epoch_offset + recipe.epochs,
                                      {f"{recipe.name}_{k}": v for k, v in metrics.items()})])
            epoch_offset += recipe.epochs
            model = task.model
        final_metrics = phase_metrics[[r.name for r in recipes if r.name in phase_metrics][-1]]
        if model is None:  # every phase was done before this resume
            model = build_model(options.model_type, architecture)
            model.load_state_dict(weights)
        model_dir = (
            Path(options.output_dir).expanduser() if options.output_dir else models_path / name
        )
        if rank_zero:
            config = ModelConfig(
                model_type=options.model_type,
                architecture=architecture or {},
                normalization=norm.to_dict(),
                input_size=size,  # type: ignore[arg-type]
                train_args={**params, "phases": [dataclasses.asdict(r) for r in recipes],
                            "skipped_phases": skipped, "run_dir": str(run_dir)},
                metrics=final_metrics,
            )
            save_model_folder(model_dir, config, model.cpu(), overwrite=bool(options.resume))
            _store_threshold(model_dir, dataset_path, recipes[-1].set_name, settings)
            for recipe in recipes:
                csv_path = run_dir / recipe.name / "metrics.csv"
                if csv_path.is_file():
                    write_csv_rows(model_dir / f"metrics_{recipe.name}.csv", epoch_rows(csv_path))
            plot_curves(run_dir, recipes, model_dir / "training_curves.png")
            tracker.log_artifacts(model_dir, "model")
            state["model_dir"] = str(model_dir)
            _write_json(run_dir / RUN_STATE, state)
        status = "FINISHED"
    finally:
        tracker.end(status)
    log.info("model folder %s (test_dataset_iou %.4f)", model_dir,
             final_metrics.get("test_dataset_iou", math.nan))
    return TrainResult(model_dir=model_dir, run_dir=run_dir, metrics=final_metrics,
                       phase_metrics=phase_metrics, skipped_phases=skipped,
                       mlflow_run_id=tracker.run_id, mlflow_tracking_uri=tracker.uri)


def _store_threshold(model_dir: Path, dataset_path: Path, set_name: str,
                     settings: Settings | None) -> None:
    """Store the validation-chosen threshold; a failure keeps the published 0.5."""
    from .evaluation import store_validation_threshold

    try:
        chosen = store_validation_threshold(model_dir, dataset_path, set_name, settings=settings)
    except Exception:  # the trained model matters more than its threshold
        log.warning("could not choose a threshold on validation data; keeping 0.5",
                    exc_info=True)
        return
    if chosen is not None:
        log.info("threshold %.2f chosen on %s/val", chosen, set_name)


def _resolve_options(options: TrainOptions, dataset_path: Path) -> TrainOptions:
    """Fill in what the recipe supplies, for the hardware the run trains on."""
    from .datasets import has_set
    from .model_folder import is_model_folder, read_model_config

    folder = Path(options.weights).expanduser() if options.weights else None
    if options.model_type is None and folder is not None and is_model_folder(folder):
        # Fine-tuning a model folder: its own model type and architecture.
        options = dataclasses.replace(options, model_type=read_model_config(folder).model_type)
    from .recipe_files import published_defaults

    resolved = options.resolved(_accelerator(options), has_set(dataset_path, "manual_set"))
    given = {f.name for f in dataclasses.fields(options) if getattr(options, f.name) is not None}
    resolved = published_defaults(resolved, given)
    filled = [f"{k}={getattr(resolved, k)}" for k in
              ("model_type", "architecture", "train_phases", "loss_fn", "batch_size",
               "input_size", "epochs") if k not in given and getattr(resolved, k) is not None]
    if filled:
        log.info("recipe %s: %s", resolved.recipe, ", ".join(filled))
    return resolved


def _starting_point(
    options: TrainOptions, norm: Normalization
) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor] | None]:
    """Architecture and first weights when ``options.weights`` is a TASeg model folder.

    Fine-tuning a trained model (the shipped default, say) on one's own survey starts from
    its weights and architecture; any other ``weights`` value goes to the zoo's builder.
    """
    from .model_folder import is_model_folder, load_model_folder

    folder = Path(options.weights).expanduser() if options.weights else None
    if folder is None or not is_model_folder(folder):
        return options.architecture, None
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
    log.info("starting from the weights of %s", folder)
    state = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    return options.architecture or config.architecture or None, state


def plot_curves(run_dir: Path, recipes: list[PhaseRecipe], out: Path) -> Path | None:
    """Loss and validation IoU over every phase's epochs, phases separated by lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(11, 4))
    offset = 0
    for recipe in recipes:
        rows = epoch_rows(run_dir / recipe.name / "metrics.csv")
        if not rows:
            continue
        x = [offset + int(r["epoch"]) + 1 for r in rows]
        for ax, key in ((ax_loss, "train_loss"), (ax_loss, "val_loss"),
                        (ax_iou, "val_dataset_iou"), (ax_iou, "val_object_recall"),
                        (ax_iou, "val_object_precision")):
            y = [r.get(key, math.nan) for r in rows]
            ax.plot(x, y, marker=".", label=f"{recipe.name}: {key}")
        offset += max(recipe.epochs, int(rows[-1]["epoch"]) + 1)
        for ax in (ax_loss, ax_iou):
            ax.axvline(offset + 0.5, color="grey", lw=0.5, ls="--")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_iou.set(xlabel="epoch", ylabel="score", title="validation", ylim=(0, 1))
    for ax in (ax_loss, ax_iou):
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out)
    return out

