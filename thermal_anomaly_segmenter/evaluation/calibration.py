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
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.inference.calibration import Calibration, fit_platt

log = logging.getLogger(__name__)

#: Corridor pixels drawn (uniformly, seeded) from the validation frames for the fit.
FIT_PIXELS = 1_000_000


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
    from thermal_anomaly_segmenter.evaluation.evaluate import (
        labelled_frame,
        store_validation_threshold,
    )
    from thermal_anomaly_segmenter.evaluation.metrics import reliability, reliability_counts
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.io.atomic import atomic_write
    from thermal_anomaly_segmenter.io.datasets import load_split, open_set, resolve_dataset_path
    from thermal_anomaly_segmenter.models.folder import CONFIG_NAME
    from thermal_anomaly_segmenter.models.load import read_model_config

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
        frame, label, scored = labelled_frame(sample)  # a partial label's undecided pixels: out
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
