"""Segmentation metrics: pixel scores through ``smp.metrics`` and object-level counts.

Pixel metrics come in two steps, as in smp: per-image confusion counts
(:func:`pixel_counts`), then scores with a stated reduction (:func:`pixel_scores`):

* ``dataset_*``: counts pooled over every image (smp ``micro``);
* ``per_image_*``: scores per image, then averaged (smp ``micro-imagewise``).

Scores are ``dice`` (F1), ``f2``, ``iou``, ``precision`` and ``recall``, named as in the
published TASeg (``test_dataset_iou``, ``test_per_image_f2``, ...). An image without any
anomaly, predicted empty, scores 1 (smp's ``zero_division=1``).

Object metrics count what an inspector counts (:func:`object_counts`): a true anomaly (an
8-connected component of the label) is *found* when any predicted pixel overlaps it; a
predicted component overlapping no true anomaly is a *false alarm*.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SCORES: tuple[str, ...] = ("dice", "f2", "iou", "precision", "recall")
#: Columns of a per-image statistics row: pixel confusion counts, then object counts.
STAT_COLUMNS: tuple[str, ...] = (
    "tp", "fp", "fn", "tn", "true_objects", "found_objects", "pred_objects", "false_alarms",
)


def _smp():
    from thermal_anomaly_segmenter._compat import ensure_torchvision

    ensure_torchvision()  # smp imports timm, which imports torchvision
    import segmentation_models_pytorch as smp

    return smp


def pixel_counts(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image ``(tp, fp, fn, tn)`` of binary masks ``B x 1 x H x W``, as ``B x 4`` int64."""
    import torch

    smp = _smp()
    tp, fp, fn, tn = smp.metrics.get_stats(pred.long(), target.long(), mode="binary")
    return torch.cat([tp, fp, fn, tn], dim=1).long()


def pixel_scores(counts: torch.Tensor, prefix: str = "") -> dict[str, float]:
    """Dataset (micro) and per-image (micro-imagewise) scores from ``N x 4`` counts."""
    smp = _smp()
    if counts.numel() == 0:
        return {}
    tp, fp, fn, tn = (counts[:, i : i + 1] for i in range(4))
    out: dict[str, float] = {}
    for reduction, name in (("micro", "dataset"), ("micro-imagewise", "per_image")):
        kwargs = {"reduction": reduction, "zero_division": 1.0}
        values = {
            "dice": smp.metrics.f1_score(tp, fp, fn, tn, **kwargs),
            "f2": smp.metrics.fbeta_score(tp, fp, fn, tn, beta=2.0, **kwargs),
            "iou": smp.metrics.iou_score(tp, fp, fn, tn, **kwargs),
            "precision": smp.metrics.precision(tp, fp, fn, tn, **kwargs),
            "recall": smp.metrics.recall(tp, fp, fn, tn, **kwargs),
        }
        for score, value in values.items():
            # smp leaves 0/0 as NaN under "micro": nothing to find and nothing found is right.
            value = float(value)
            out[f"{prefix}{name}_{score}"] = 1.0 if math.isnan(value) else value
    return out


def object_counts(
    pred: np.ndarray, target: np.ndarray, min_area_px: int = 1
) -> tuple[int, int, int, int]:
    """``(true_objects, found_objects, pred_objects, false_alarms)`` of two ``H x W`` masks.

    Components are 8-connected; predicted components smaller than ``min_area_px`` are
    ignored, as inference drops them as specks.
    """
    import cv2

    pred = np.ascontiguousarray(pred, dtype=np.uint8)
    target = np.ascontiguousarray(target, dtype=np.uint8)
    n_true, true_labels = cv2.connectedComponents(target, connectivity=8)
    n_pred, pred_labels, stats, _ = cv2.connectedComponentsWithStats(pred, connectivity=8)
    keep = np.zeros(n_pred, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area_px
    kept_pred = keep[pred_labels]
    found = np.unique(true_labels[kept_pred & (true_labels > 0)])
    hit_pred = np.unique(pred_labels[kept_pred & (true_labels > 0)])
    pred_objects = int(keep.sum())
    return n_true - 1, int(found.size), pred_objects, pred_objects - int(hit_pred.size)


def batch_stats(
    pred: torch.Tensor, target: torch.Tensor, min_area_px: int = 1
) -> torch.Tensor:
    """Per-image rows of :data:`STAT_COLUMNS` for ``B x 1 x H x W`` binary masks."""
    import torch

    counts = pixel_counts(pred, target)
    p = pred[:, 0].detach().to("cpu", torch.uint8).numpy()
    t = target[:, 0].detach().to("cpu", torch.uint8).numpy()
    objects = torch.tensor(
        [object_counts(pi, ti, min_area_px) for pi, ti in zip(p, t, strict=True)],
        dtype=torch.long,
    ).reshape(-1, 4)
    return torch.cat([counts.cpu(), objects], dim=1)


def object_scores(
    true_objects: int, found_objects: int, pred_objects: int, false_alarms: int, prefix: str = ""
) -> dict[str, float]:
    """Object recall (found / true) and precision (1 - false alarms / predicted).

    With no true anomaly recall is 1; with no predicted component precision is 1.
    """
    recall = found_objects / true_objects if true_objects else 1.0
    precision = 1.0 - false_alarms / pred_objects if pred_objects else 1.0
    return {f"{prefix}object_recall": float(recall), f"{prefix}object_precision": float(precision)}


def summarize(stats: torch.Tensor, prefix: str = "") -> dict[str, float]:
    """Every metric from stacked :func:`batch_stats` rows (``N x 8``)."""
    if stats.numel() == 0:
        return {}
    out = pixel_scores(stats[:, :4], prefix)
    totals = [int(v) for v in stats[:, 4:].sum(dim=0)]
    out.update(object_scores(*totals, prefix=prefix))
    return out


#: Probability bins of the reliability table (equal width, 0..1).
RELIABILITY_BINS = 10


def reliability_counts(prob: np.ndarray, truth: np.ndarray,
                       bins: int = RELIABILITY_BINS) -> np.ndarray:
    """Per probability bin: pixels, sum of predicted probability, anomaly pixels (``3 x bins``).

    Sum the counts of several frames, then turn them into a table with :func:`reliability`.
    """
    p = np.asarray(prob, dtype=np.float64).ravel()
    t = np.asarray(truth, dtype=bool).ravel()
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    return np.stack([np.bincount(idx, minlength=bins).astype(np.float64),
                     np.bincount(idx, weights=p, minlength=bins),
                     np.bincount(idx, weights=t, minlength=bins)])


def reliability(counts: np.ndarray) -> tuple[list[dict[str, float]], float]:
    """Reliability table and expected calibration error from summed :func:`reliability_counts`.

    Each row: the bin's range, its pixel count, mean predicted probability and observed anomaly
    frequency. The ECE is the pixel-weighted mean of ``abs(predicted - observed)`` over the bins: 0
    when probabilities mean what they say.
    """
    n, sum_p, sum_t = counts
    bins = counts.shape[1]
    rows = []
    for k in range(bins):
        if n[k]:
            rows.append({"low": k / bins, "high": (k + 1) / bins, "pixels": int(n[k]),
                         "predicted": float(sum_p[k] / n[k]), "observed": float(sum_t[k] / n[k])})
    total = float(n.sum())
    ece = sum(r["pixels"] * abs(r["predicted"] - r["observed"]) for r in rows) / total if total \
        else 0.0
    return rows, float(ece)
