"""Evaluation of a model folder on a split of a TASeg dataset: pixel and object metrics.

The frames run through the same :class:`~.inference.Segmenter` as ``predict`` (whole or tiled,
predictions inside the corridor only), so the figures are what a user gets. A threshold sweep
gives the pixel precision-recall curve (written as a PNG) and the threshold with the best
pixel F1; the metrics at the model's own threshold (or the one given) are reported with the
published names (``test_dataset_iou``, ``test_per_image_f2``, ``test_object_recall``, ...),
with false alarms per frame and per leak-free frame.

:func:`select_threshold` picks the threshold a model folder stores: the best pixel F1 among
the thresholds that keep object recall >= :data:`MIN_OBJECT_RECALL` at object precision
>= :data:`MIN_OBJECT_PRECISION` (else the best object F2); training calls
:func:`store_validation_threshold` on the validation split.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.config import PredictOptions, Settings
from thermal_anomaly_segmenter.errors import DatasetError, InvalidInputError
from thermal_anomaly_segmenter.evaluation.metrics import (
    RELIABILITY_BINS,
    object_counts,
    object_scores,
    reliability,
    reliability_counts,
    summarize,
)
from thermal_anomaly_segmenter.inference.postprocess import anomaly_mask
from thermal_anomaly_segmenter.io.atomic import atomic_write
from thermal_anomaly_segmenter.io.datasets import (
    IGNORE,
    decode_label,
    load_split,
    open_set,
    read_label_mask,
    resolve_dataset_path,
)
from thermal_anomaly_segmenter.io.frames import Frame
from thermal_anomaly_segmenter.io.read import read_frame
from thermal_anomaly_segmenter.outputs.plots import plot_pr_curve, plot_reliability

log = logging.getLogger(__name__)

#: Thresholds of the sweep.
SWEEP: tuple[float, ...] = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))
#: Object recall the stored threshold must keep on validation data.
MIN_OBJECT_RECALL = 0.95
#: Object precision it must keep while doing so (see :func:`select_threshold`).
MIN_OBJECT_PRECISION = 0.5


def select_threshold(curve: list[dict[str, float]],
                     min_object_recall: float = MIN_OBJECT_RECALL,
                     min_object_precision: float = MIN_OBJECT_PRECISION) -> float:
    """Best pixel F1 among sweep rows with object recall >= ``min_object_recall`` and object
    precision >= ``min_object_precision``.

    The precision floor keeps a small validation split from buying its last missed leak with
    a flood of false alarms (a threshold of 0.05 with one true leak in ten components is no
    dig list). When no threshold meets both, the best object F2 wins (recall weighted twice
    over precision: a missed leak costs more than an inspection), then pixel F1; ties prefer
    thresholds nearer 0.5.
    """
    if not curve:
        raise InvalidInputError("select_threshold needs a non-empty sweep")
    ok = [r for r in curve if r["object_recall"] >= min_object_recall
          and r.get("object_precision", 1.0) >= min_object_precision]
    if ok:
        best = max(ok, key=lambda r: (r["f1"], -abs(r["threshold"] - 0.5)))
    else:
        best = max(curve, key=lambda r: (_object_f2(r), r["f1"], -abs(r["threshold"] - 0.5)))
    return float(best["threshold"])


def _object_f2(row: dict[str, float]) -> float:
    p, r = row.get("object_precision", 1.0), row["object_recall"]
    return 5 * p * r / (4 * p + r) if p + r else 0.0


def _f(num: float, den: float, empty: float = 1.0) -> float:
    return float(num / den) if den else empty


def _gsd_range(gsds: set[float | None]) -> list[float] | None:
    """``[lowest, highest]`` frame GSD, or ``None`` when no frame had one."""
    known = [g for g in gsds if g is not None]
    return [min(known), max(known)] if known else None


@dataclass(frozen=True)
class EvaluateOptions:
    """How :func:`evaluate` scores a model folder on a split."""

    #: ``manual_set`` (hand labels) or ``generated_set``.
    set_name: str = "manual_set"
    #: Probability threshold; ``None``: the model's recommended threshold.
    threshold: float | None = None
    #: Where ``evaluation_<set>_<split>.json``, ``pr_curve_<set>_<split>.png`` and the
    #: reliability diagram go; ``None``: ``<model_dir>/evaluation``.
    out_dir: str | os.PathLike[str] | None = None
    #: Predicted components smaller than this are specks (as in predict).
    min_area_px: int = 4
    #: ``auto``, ``cpu`` or ``cuda``.
    device: str = "auto"
    #: A false-alarm classifier (:mod:`~thermal_anomaly_segmenter.false_alarms.classifier` JSON, or
    #: a folder holding one) applied
    #: to the mask at ``threshold`` before scoring (the sweep is scored without it).
    false_alarms: str | os.PathLike[str] | None = None
    #: Ground sampling distance of every frame (m/px); ``None``: what the set's
    #: ``dataset_info.json`` states (:func:`~.io.datasets.frame_gsds`), if anything.
    gsd_m: float | None = None
    #: See frames finer than the model's GSD at its GSD (:mod:`~thermal_anomaly_segmenter.io.gsd`),
    #: as predict does.
    match_gsd: bool = True

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise InvalidInputError(f"threshold must be within 0..1, got {self.threshold}")


@dataclass
class _Tally:
    """What scoring the frames of a split adds up."""

    #: Per sweep threshold: tp fp fn + the 4 object counts.
    sweep: np.ndarray = field(default_factory=lambda: np.zeros((len(SWEEP), 7), dtype=np.int64))
    #: :func:`.metrics.batch_stats` row of each frame at the threshold.
    rows: list[Any] = field(default_factory=list)
    #: False alarms in all frames, in leak-free frames.
    false_alarms: list[int] = field(default_factory=lambda: [0, 0])
    n_empty: int = 0
    #: Reliability counts over corridor pixels, as predict sees them.
    calibration: np.ndarray = field(default_factory=lambda: np.zeros((3, RELIABILITY_BINS)))
    gsds: set[float | None] = field(default_factory=set)
    #: Frames seen at the model's GSD (.scale).
    rescaled: int = 0
    #: Components the false-alarm stage rejected.
    rejected: int = 0


def labelled_frame(sample: Any) -> tuple[Frame, np.ndarray, np.ndarray]:
    """A dataset sample's frame, its label (0/1) and the pixels to score: the corridor but
    the undecided pixels of a partial label (a review), which count as outside it."""
    frame = read_frame(sample.image)
    label = decode_label(read_label_mask(sample.label))
    scored = frame.corridor & (label != IGNORE)
    label[label == IGNORE] = 0
    if label.shape != frame.shape:
        raise DatasetError(f"label {sample.label} does not match the size of its frame")
    return frame, label, scored


def _score_frame(tally: _Tally, sample: Any, segmenter: Any, predict: PredictOptions,
                 options: EvaluateOptions, stage: Any) -> None:
    """Predict one sample's frame and add its scores to ``tally``."""
    import torch

    from thermal_anomaly_segmenter.evaluation.metrics import batch_stats

    min_area_px = options.min_area_px
    frame, label, scored = labelled_frame(sample)
    gsd = options.gsd_m if options.gsd_m is not None else sample.gsd_m
    tally.gsds.add(gsd)
    frame_options = replace(predict, gsd_m=gsd)
    tally.rescaled += segmenter.scale_factors([frame], frame_options)[0] is not None
    prob = segmenter.probabilities([frame], frame_options)[0]
    truth = label.astype(bool)
    tally.calibration += reliability_counts(prob[scored], truth[scored])
    for i, t in enumerate(SWEEP):
        pred = anomaly_mask(prob, scored, t).view(bool)
        tally.sweep[i, 0] += int(np.count_nonzero(pred & truth))
        tally.sweep[i, 1] += int(np.count_nonzero(pred & ~truth))
        tally.sweep[i, 2] += int(np.count_nonzero(~pred & truth))
        tally.sweep[i, 3:] += object_counts(pred, label, min_area_px)
    pred_np = anomaly_mask(prob, frame.corridor, predict.threshold).view(bool)
    if stage is not None:
        from thermal_anomaly_segmenter.false_alarms.classifier import filter_mask

        pred_np, verdicts = filter_mask(frame.t_u, frame.corridor, pred_np, stage)
        tally.rejected += sum(not v["keep"] for v in verdicts)
    pred_np &= scored
    n_true, _, _, false = object_counts(pred_np, label, min_area_px)
    tally.false_alarms[0] += false
    if n_true == 0:
        tally.n_empty += 1
        tally.false_alarms[1] += false
    pred = torch.from_numpy(pred_np)[None, None]
    tally.rows.append(batch_stats(pred, torch.from_numpy(label)[None, None], min_area_px))


def _sweep_curve(sweep: np.ndarray) -> list[dict[str, float]]:
    """Pixel and object scores of each sweep threshold."""
    curve = []
    for t, (tp, fp, fn, n_true, found, n_pred, false) in zip(SWEEP, sweep, strict=True):
        precision, recall = _f(tp, tp + fp), _f(tp, tp + fn)
        row = {
            "threshold": t,
            "precision": precision,
            "recall": recall,
            "f1": _f(2 * tp, 2 * tp + fp + fn),
            "iou": _f(tp, tp + fp + fn),
        }
        row.update(object_scores(int(n_true), int(found), int(n_pred), int(false)))
        curve.append(row)
    return curve


def _write_outputs(result: dict[str, Any], best: dict[str, float], out: Path, title: str,
                   stem: str) -> None:
    """Write the PR curve (``best`` marked), the reliability diagram and the metrics JSON;
    record their paths in ``result``."""
    out.mkdir(parents=True, exist_ok=True)
    png = plot_pr_curve(result["sweep"], best, out / f"pr_curve_{stem}.png",
                        f"{title} ({result['n_frames']} frames)")
    result["pr_curve"] = str(png)
    result["reliability_diagram"] = str(plot_reliability(
        result["reliability"], result[f"{result['split']}_expected_calibration_error"],
        out / f"reliability_{stem}.png", f"{title}: calibration"))
    json_path = out / f"evaluation_{stem}.json"
    result["metrics_json"] = str(json_path)
    atomic_write(json_path, json.dumps(result, indent=2) + "\n")


def evaluate(
    model_dir: str | os.PathLike[str],
    dataset_path: str | os.PathLike[str] | None,
    split: str = "test",
    options: EvaluateOptions | None = None,
    *,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Evaluate a model folder on one split.

    Args:
        model_dir: Model folder (any zoo model, ``classical`` included).
        dataset_path: Dataset folder (``None`` finds one as training does).
        split: ``train``, ``val`` or ``test``.
        options: Set, threshold, output folder, speck size, device, false-alarm stage, GSD
            (:class:`EvaluateOptions`; default its defaults).
        settings: Environment; default :func:`~.config.get_settings`.

    Returns:
        Metrics at the threshold, ``best_f1_threshold``, ``best_f1``, the ``sweep`` rows and
        the paths of the written files.
    """
    import torch

    from thermal_anomaly_segmenter.inference.segmenter import Segmenter

    options = options or EvaluateOptions()
    set_name = options.set_name
    segmenter = Segmenter.from_folder(model_dir, device=options.device)
    stage = None
    if options.false_alarms is not None:
        from thermal_anomaly_segmenter.false_alarms.classifier import FalseAlarmClassifier

        stage = FalseAlarmClassifier.load(options.false_alarms)
    threshold = (segmenter.config.threshold if options.threshold is None
                 else float(options.threshold))
    root = resolve_dataset_path(dataset_path, settings)
    index = load_split(open_set(root, set_name), split, set_name)
    predict = PredictOptions(device=segmenter.device, min_area_px=options.min_area_px,
                             threshold=threshold, match_gsd=options.match_gsd)
    tally = _Tally()
    for sample in index.samples:
        _score_frame(tally, sample, segmenter, predict, options, stage)

    prefix = f"{split}_"
    result: dict[str, Any] = summarize(torch.cat(tally.rows), prefix=prefix)
    curve = _sweep_curve(tally.sweep)
    best = max(curve, key=lambda r: (r["f1"], -abs(r["threshold"] - 0.5)))
    n = len(index)
    result[f"{prefix}false_alarms_per_frame"] = _f(tally.false_alarms[0], n, 0.0)
    result[f"{prefix}false_alarms_per_empty_frame"] = _f(tally.false_alarms[1], tally.n_empty,
                                                          0.0)
    table, ece = reliability(tally.calibration)
    result[f"{prefix}expected_calibration_error"] = ece
    result.update(
        model_dir=str(Path(model_dir).resolve()),
        model_type=segmenter.model_type,
        dataset_path=str(root),
        set=set_name,
        split=split,
        n_frames=len(index),
        threshold=threshold,
        frame_gsd_m=_gsd_range(tally.gsds),
        model_gsd_m=segmenter.config.gsd_m,
        frames_at_model_gsd=tally.rescaled,
        best_f1_threshold=best["threshold"],
        best_f1=best["f1"],
        n_empty_frames=tally.n_empty,
        false_alarm_stage=str(options.false_alarms) if stage is not None else None,
        rejected_components=tally.rejected,
        recommended_threshold=select_threshold(curve) if n else threshold,
        min_object_recall=MIN_OBJECT_RECALL,
        sweep=curve,
        reliability=table,
    )
    out = Path(options.out_dir) if options.out_dir is not None else Path(model_dir) / "evaluation"
    _write_outputs(result, best, out, f"{segmenter.model_type} on {set_name}/{split}",
                   f"{set_name}_{split}")
    return result


def store_validation_threshold(
    model_dir: str | os.PathLike[str],
    dataset_path: str | os.PathLike[str],
    set_name: str,
    *,
    device: str = "cpu",
    settings: Settings | None = None,
) -> float | None:
    """Choose the threshold on the ``val`` split and store it in ``train_config.json``.

    Returns:
        The stored threshold, or ``None`` (nothing changed) when the split is empty.
    """
    from thermal_anomaly_segmenter.models.folder import CONFIG_NAME
    from thermal_anomaly_segmenter.models.load import read_model_config

    result = evaluate(model_dir, dataset_path, "val", EvaluateOptions(
        set_name=set_name, threshold=0.5, out_dir=Path(model_dir) / "evaluation", device=device),
        settings=settings)
    if not result["n_frames"]:
        return None
    config = read_model_config(model_dir)
    config.threshold = float(result["recommended_threshold"])
    config.train_args["threshold_selection"] = {
        "set": set_name,
        "split": "val",
        "n_frames": result["n_frames"],
        "rule": f"best pixel F1 at object recall >= {MIN_OBJECT_RECALL} and object "
                f"precision >= {MIN_OBJECT_PRECISION}, else best object F2",
    }
    atomic_write(Path(model_dir) / CONFIG_NAME, config.to_json() + "\n")
    return config.threshold

