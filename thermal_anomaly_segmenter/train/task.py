"""The Lightning task: model, loss, optimiser and metrics, one shared step for train/val/test.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from thermal_anomaly_segmenter._compat import ensure_torchvision

ensure_torchvision()

import lightning as L  # noqa: E402
import torch  # noqa: E402

from thermal_anomaly_segmenter.errors import InvalidInputError  # noqa: E402
from thermal_anomaly_segmenter.evaluation.metrics import STAT_COLUMNS, summarize  # noqa: E402
from thermal_anomaly_segmenter.models.registry import build_model, get_spec  # noqa: E402
from thermal_anomaly_segmenter.train.runs import append_csv_row  # noqa: E402

MONITOR = "val_dataset_iou"


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


#: Label value of pixels left out of the loss and the metrics (partial labels from a review;
#: :data:`..io.datasets.IGNORE`).
IGNORE = 255


def masked_loss(loss: torch.nn.Module, logits: torch.Tensor, target: torch.Tensor
                ) -> torch.Tensor:
    """``loss`` over the decided pixels only: an undecided pixel (``IGNORE``) gets a certain
    background prediction and a background target, so it adds nothing to the overlap terms
    (Tversky, Dice, Jaccard) or the per-pixel ones (BCE, focal), and no gradient."""
    ignored = target == IGNORE
    if not bool(ignored.any()):
        return loss(logits, target)
    logits = torch.where(ignored, torch.full_like(logits, -30.0), logits)
    return loss(logits, torch.where(ignored, torch.zeros_like(target), target))


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
        loss = masked_loss(self.loss, logits, target)
        size = image.shape[0]
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=size, sync_dist=stage != "train")
        if stage == "train":
            self._train_loss[0] += float(loss.detach()) * size
            self._train_loss[1] += size
        else:
            # Predictions count inside the corridor only, as inference reports them.
            decided = target != IGNORE
            pred = (logits.detach() > 0) & batch["corridor"][:, None].bool() & decided
            from thermal_anomaly_segmenter.evaluation.metrics import batch_stats

            self._stats[stage].append(
                batch_stats(pred, (target == 1).long(), self.hparams.min_area_px)
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
