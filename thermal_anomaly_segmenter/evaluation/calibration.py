"""Calibrated probabilities: Platt scaling of the network's logits, fitted on validation data.

A segmentation network trained with Dice loss gives nearly binary probabilities: its "0.99"
pixels are not anomalous 99 % of the time. Platt scaling replaces ``sigmoid(z)`` by
``sigmoid(scale * z + bias)``, with the two numbers fitted by maximum likelihood on the
corridor pixels of a validation split (the pixels predict scores). It is monotone, so it
changes no ranking, only what a probability means; the stored threshold must then be chosen on
the calibrated probabilities (:func:`calibrate_model_folder` does both).

The numbers live in the model folder's ``train_config.json`` under ``calibration``
(``{"method": "platt", "scale": ..., "bias": ...}`` plus how they were fitted); the inference
engine applies them to the logits of either backend (PyTorch or ONNX Runtime) before the
sigmoid. A folder without them gives the network's own probabilities.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError

log = logging.getLogger(__name__)

#: Corridor pixels drawn (uniformly, seeded) from the validation frames for the fit.
FIT_PIXELS = 1_000_000
#: Probabilities are clipped to [EPS, 1 - EPS] before taking logits (fp32 saturates at 1.0).
EPS = 1e-7


@dataclass(frozen=True)
class Calibration:
    """``sigmoid(scale * z + bias)`` in place of ``sigmoid(z)``; identity by default."""

    scale: float = 1.0
    bias: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and math.isfinite(self.bias)) or self.scale <= 0:
            raise InvalidInputError(
                f"calibration needs a finite scale > 0 and a finite bias, got scale "
                f"{self.scale!r}, bias {self.bias!r}"
            )

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.bias == 0.0

    def apply_logits(self, logits):
        """Calibrated logits (NumPy arrays and torch tensors alike)."""
        return logits if self.identity else logits * self.scale + self.bias

    def apply_probabilities(self, prob: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from uncalibrated ones (used for the fit's report)."""
        z = self.apply_logits(logits_of(prob))
        return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)

    @classmethod
    def from_config(cls, data: dict[str, Any] | None) -> Calibration:
        """From ``train_config.json``'s ``calibration`` (``{}`` or missing: identity)."""
        if not data:
            return cls()
        if not isinstance(data, dict) or data.get("method") != "platt":
            raise InvalidInputError(
                f"calibration must be {{'method': 'platt', 'scale': ..., 'bias': ...}}, "
                f"got {data!r:.200}"
            )
        try:
            return cls(float(data["scale"]), float(data["bias"]))
        except (KeyError, TypeError, ValueError):
            raise InvalidInputError(
                f"calibration needs numbers 'scale' and 'bias', got {data!r:.200}"
            ) from None

    def to_config(self) -> dict[str, Any]:
        return {"method": "platt", "scale": self.scale, "bias": self.bias}


def logits_of(prob: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(prob, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def fit_platt(prob: np.ndarray, truth: np.ndarray) -> Calibration:
    """Fit ``scale`` and ``bias`` by logistic regression of the labels on the logits.

    Args:
        prob: Uncalibrated probabilities (any shape).
        truth: Labels of the same pixels (bool or 0/1).

    Raises:
        InvalidInputError: When the pixels hold only one class (nothing to fit).
    """
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(truth, dtype=bool).ravel()
    if y.all() or not y.any():
        raise InvalidInputError("calibration needs anomalous and normal pixels to fit")
    z = logits_of(prob).reshape(-1, 1)
    # No regularisation worth the name: two parameters, up to a million pixels.
    model = LogisticRegression(C=1e6, max_iter=1000).fit(z, y)
    scale, bias = float(model.coef_[0, 0]), float(model.intercept_[0])
    if scale <= 0:  # the logits rank pixels the wrong way round: keep the network's own
        log.warning("Platt fit gave scale %.3g <= 0; keeping uncalibrated probabilities", scale)
        return Calibration()
    return Calibration(scale, bias)


def calibrate_model_folder(
    model_dir: str | os.PathLike[str],
    dataset_path: str | os.PathLike[str],
    set_name: str = "manual_set",
    *,
    split: str = "val",
    device: str = "cpu",
    settings=None,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit the calibration on ``split`` and store it, then the threshold chosen on it.

    The network runs on every frame of the split exactly as predict runs it (with the
    folder's existing calibration switched off); the fit draws up to :data:`FIT_PIXELS`
    corridor pixels. The folder's ``train_config.json`` gets ``calibration`` (with the split,
    pixel count and validation ECE before and after), and then
    :func:`.evaluation.store_validation_threshold` chooses the threshold on the calibrated
    probabilities.

    Returns:
        The stored ``calibration`` entry and the new ``threshold``.
    """
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.evaluation.evaluate import store_validation_threshold
    from thermal_anomaly_segmenter.evaluation.metrics import reliability, reliability_counts
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.io.atomic import atomic_write
    from thermal_anomaly_segmenter.io.datasets import (
        IGNORE,
        decode_label,
        load_split,
        open_set,
        read_label_mask,
        resolve_dataset_path,
    )
    from thermal_anomaly_segmenter.io.read import read_frame
    from thermal_anomaly_segmenter.models.folder import CONFIG_NAME, read_model_config

    model_dir = Path(model_dir)
    segmenter = Segmenter.from_folder(model_dir, device=device)
    if segmenter.config.family == "classical":
        raise InvalidInputError("the classical model has no logits to calibrate")
    segmenter.calibration = Calibration()  # fit on the network's own probabilities
    root = resolve_dataset_path(dataset_path, settings)
    index = load_split(open_set(root, set_name), split, set_name)
    if not len(index):
        raise InvalidInputError(f"{set_name}/{split} of {root} has no frames to calibrate on")
    options = PredictOptions(device=segmenter.device)
    probs, truths = [], []
    for sample in index.samples:
        frame = read_frame(sample.image)
        label = decode_label(read_label_mask(sample.label))
        scored = frame.corridor & (label != IGNORE)  # a partial label's undecided pixels: out
        # at the GSD predict will see the frame at (.scale), as evaluate does
        prob = segmenter.probabilities([frame], replace(options, gsd_m=sample.gsd_m))[0]
        probs.append(prob[scored])
        truths.append(label[scored] == 1)
    prob, truth = np.concatenate(probs), np.concatenate(truths)
    rng = np.random.default_rng(seed)
    if prob.size > FIT_PIXELS:
        pick = rng.choice(prob.size, FIT_PIXELS, replace=False)
        prob_fit, truth_fit = prob[pick], truth[pick]
    else:
        prob_fit, truth_fit = prob, truth
    calibration = fit_platt(prob_fit, truth_fit)
    _, ece_before = reliability(reliability_counts(prob, truth))
    _, ece_after = reliability(reliability_counts(calibration.apply_probabilities(prob), truth))
    entry = {**calibration.to_config(), "fitted_on": {
        "set": set_name, "split": split, "frames": len(index), "pixels": int(prob_fit.size),
        "ece_before": ece_before, "ece_after": ece_after}}
    config = read_model_config(model_dir)
    config.calibration = entry
    atomic_write(model_dir / CONFIG_NAME, config.to_json() + "\n")
    log.info("calibration scale %.3f bias %.3f on %s/%s (ECE %.4f -> %.4f)",
             calibration.scale, calibration.bias, set_name, split, ece_before, ece_after)
    threshold = store_validation_threshold(model_dir, root, set_name, device=device,
                                           settings=settings)
    return {"calibration": entry, "threshold": threshold}
