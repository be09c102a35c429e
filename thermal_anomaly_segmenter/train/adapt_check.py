"""Whether fine-tuning helped, judged on the inspector's own decisions.

A decided anomaly is scored by the highest probability a model gives inside its footprint
(what the report's masks threshold: the anomaly is kept where that exceeds the threshold).
The adapted network gets the highest threshold that keeps :data:`KEEP_LEAKS` of the confirmed
leaks (never above the one its validation chose, never under :data:`MIN_THRESHOLD`), then
it is compared with the network it started from at that one's own threshold: it replaces
it only where it keeps at least as many confirmed leaks and, at equal leaks, rejects at
least as many false alarms. Otherwise the adapted folder keeps the start network's weights,
calibration and threshold (a few decisions can teach a network to predict nothing:
measured on 25 decisions of a held-out family, object recall 0.56 -> 0.00) and the
survey's false-alarm stage is what adapts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Share of the confirmed leaks the adapted threshold keeps on the reviewed frames.
KEEP_LEAKS = 0.95
#: Lowest threshold the adapted network may get: below it a network that learned to predict
#: nothing (calibrated probabilities of 1e-4 everywhere) would mark every pixel.
MIN_THRESHOLD = 0.05


@dataclass(frozen=True)
class DecisionScores:
    """Per decided anomaly, the highest probability inside its footprint."""

    leaks: np.ndarray
    false_alarms: np.ndarray

    def tally(self, threshold: float) -> tuple[int, int]:
        """(confirmed leaks kept, false alarms rejected) at ``threshold``."""
        return (int((self.leaks > threshold).sum()),
                int((self.false_alarms <= threshold).sum()))


def decision_scores(model_dir: Path, review, frames: dict[str, Any],
                    device: str = "cpu") -> DecisionScores:
    """Score every firm decision of ``review`` with the model folder's probabilities."""
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.false_alarms.review import rasterize_footprint
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter

    segmenter = Segmenter.from_folder(model_dir, device=device, backend="torch")
    options = PredictOptions(device=segmenter.device)
    scores: dict[str, list[float]] = {"leak": [], "false_alarm": []}
    for name, frame in frames.items():
        firm = review.firm(name)
        if not firm:
            continue
        prob = segmenter.probabilities([frame], options)[0]
        for d in firm:
            inside = rasterize_footprint(d, prob.shape) > 0
            scores[d["decision"]].append(float(prob[inside].max()) if inside.any() else 0.0)
    return DecisionScores(np.asarray(scores["leak"], np.float64),
                          np.asarray(scores["false_alarm"], np.float64))


def threshold_for(scores: DecisionScores, validation: float) -> float:
    """The highest threshold (at most ``validation``, at least :data:`MIN_THRESHOLD`) that
    keeps :data:`KEEP_LEAKS` of the confirmed leaks; ``validation`` where there is none."""
    if not scores.leaks.size:
        return validation
    need = math.ceil(KEEP_LEAKS * scores.leaks.size)
    kth = float(np.sort(scores.leaks)[::-1][need - 1])
    # just under the need-th leak's score, so that leak is kept (masks use prob > threshold)
    return float(max(MIN_THRESHOLD, min(validation, np.nextafter(kth, 0.0))))


@dataclass(frozen=True)
class Verdict:
    """The outcome of the comparison, as recorded in ``adapt.json``."""

    fine_tuned_kept: bool
    threshold: float
    start: tuple[int, int]
    adapted: tuple[int, int]
    leaks: int
    false_alarms: int

    def record(self) -> dict[str, Any]:
        def side(t: tuple[int, int]) -> dict[str, int]:
            return {"leaks_kept": t[0], "false_alarms_rejected": t[1]}

        return {"network": "fine-tuned" if self.fine_tuned_kept else "start",
                "rule": "the fine-tuned network replaces the start network where, on the "
                        "reviewed decisions, it keeps at least as many confirmed leaks and, at "
                        "equal leaks, rejects at least as many false alarms",
                "leaks": self.leaks, "false_alarms": self.false_alarms,
                "start": side(self.start), "fine_tuned": side(self.adapted),
                "threshold": self.threshold}


def judge(start: DecisionScores, start_threshold: float, adapted: DecisionScores,
          validation_threshold: float) -> Verdict:
    """Compare the adapted network with the start network on the same decisions."""
    threshold = threshold_for(adapted, validation_threshold)
    before, after = start.tally(start_threshold), adapted.tally(threshold)
    kept = after[0] > before[0] or (after[0] == before[0] and after[1] >= before[1])
    return Verdict(kept, threshold, before, after, int(start.leaks.size),
                   int(start.false_alarms.size))


def apply_verdict(model_dir: Path, start_dir: Path, verdict: Verdict) -> None:
    """Write the verdict into the adapted folder: the chosen threshold, or the start
    network's weights, calibration and threshold."""
    from thermal_anomaly_segmenter.io.atomic import atomic_write
    from thermal_anomaly_segmenter.models.folder import CONFIG_NAME, WEIGHTS_NAME
    from thermal_anomaly_segmenter.models.load import read_model_config

    config = read_model_config(model_dir)
    if verdict.fine_tuned_kept:
        config.threshold = verdict.threshold
    else:
        from safetensors.torch import save_file

        from thermal_anomaly_segmenter.io.atomic import atomic_path
        from thermal_anomaly_segmenter.models.load import load_model_folder

        network, start = load_model_folder(start_dir)  # also a published start folder
        state = {k: v.detach().cpu().contiguous().clone() for k, v in network.state_dict().items()}
        with atomic_path(model_dir / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        config.threshold, config.calibration = start.threshold, start.calibration
    config.train_args["network"] = "fine-tuned" if verdict.fine_tuned_kept else "start"
    atomic_write(model_dir / CONFIG_NAME, config.to_json() + "\n")
