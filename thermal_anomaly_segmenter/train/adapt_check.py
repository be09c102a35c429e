"""Whether fine-tuning helped, judged on the inspector's own decisions.

A decided anomaly is scored by the highest probability a model gives inside its footprint
(what the report's masks threshold: the anomaly is kept where that exceeds the threshold).

The decisions cannot rank the fine-tuned network against the start one: they were made on
the start network's own detections, so the start keeps every confirmed leak by construction
and the leaks it missed (where fine-tuning gains most) are in the review only where the
inspector added one by hand (``added``, not scored here: it has no component to keep). What they can
show is a network that learned to predict nothing, which a few positives teach (measured on
25 decisions of a held-out family, 2 of them leaks: object recall 0.56 -> 0.00). So:

- with fewer than :data:`MIN_LEAKS` confirmed leaks the network is not fine-tuned: the folder
  keeps the start network, and the survey's false-alarm stage is what adapts;
- the fine-tuned network gets the highest threshold that keeps :data:`KEEP_LEAKS` of the
  confirmed leaks (never above the one its validation chose, never under
  :data:`MIN_THRESHOLD`);
- where even then it keeps under :data:`COLLAPSED` of them, it has collapsed and the start
  network's weights, calibration and threshold come back.
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
#: Fewest confirmed leaks to fine-tune the network on (``taseg adapt --min-leaks``).
MIN_LEAKS = 10
#: Share of the confirmed leaks under which a fine-tuned network counts as collapsed.
COLLAPSED = 0.5


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
    """Score every firm decision of ``review`` on a listed anomaly with the model folder's
    probabilities (a leak the inspector added has no component of the start network: the
    threshold is still chosen on the anomalies it listed)."""
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.false_alarms.review import is_added, rasterize_footprint
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter

    segmenter = Segmenter.from_folder(model_dir, device=device, backend="torch")
    options = PredictOptions(device=segmenter.device)
    scores: dict[str, list[float]] = {"leak": [], "false_alarm": []}
    for name, frame in frames.items():
        firm = [d for d in review.firm(name) if not is_added(d)]
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
    # a thousandth under the need-th leak's score, so that leak is kept (masks use prob >
    # threshold) and the stored threshold reads as the reports print it (3 decimals)
    below = round(math.ceil(kth * 1000) / 1000 - 0.001, 3)
    return float(max(MIN_THRESHOLD, min(validation, below)))


@dataclass(frozen=True)
class Verdict:
    """The outcome of the check, as recorded in ``adapt.json``."""

    fine_tuned_kept: bool
    reason: str
    threshold: float
    leaks: int
    false_alarms: int
    #: (confirmed leaks kept, false alarms rejected) by the fine-tuned network
    adapted: tuple[int, int] | None = None

    def record(self) -> dict[str, Any]:
        def side(t: tuple[int, int] | None) -> dict[str, int] | None:
            return None if t is None else {"leaks_kept": t[0], "false_alarms_rejected": t[1]}

        return {"network": "fine-tuned" if self.fine_tuned_kept else "start",
                "reason": self.reason, "leaks": self.leaks, "false_alarms": self.false_alarms,
                "fine_tuned": side(self.adapted),
                "threshold": self.threshold}


def too_few_leaks(leaks: int, false_alarms: int, threshold: float,
                  min_leaks: int = MIN_LEAKS) -> Verdict | None:
    """The verdict without fine-tuning, where the review has too few confirmed leaks."""
    if leaks >= min_leaks:
        return None
    return Verdict(False, f"{leaks} confirmed leak(s): the network is fine-tuned from "
                          f"{min_leaks} on (fewer teach it to predict nothing)", threshold,
                   leaks, false_alarms)


def judge(adapted: DecisionScores, validation_threshold: float,
          start_threshold: float) -> Verdict:
    """The fine-tuned network's threshold, and whether it collapsed (see the module doc)."""
    threshold = threshold_for(adapted, validation_threshold)
    after = adapted.tally(threshold)
    n, m = int(adapted.leaks.size), int(adapted.false_alarms.size)
    if n and after[0] < COLLAPSED * n:
        return Verdict(False, f"the fine-tuned network keeps {after[0]} of the {n} confirmed "
                              f"leaks at any threshold >= {MIN_THRESHOLD}: collapsed",
                       start_threshold, n, m, after)
    return Verdict(True, f"keeps {after[0]} of the {n} confirmed leaks and rejects {after[1]} "
                         f"of the {m} false alarms at threshold {threshold:.3f}", threshold, n,
                   m, after)


def apply_verdict(model_dir: Path, start_dir: Path, verdict: Verdict) -> None:
    """Write the verdict into the adapted folder: the chosen threshold, or the start
    network's weights and configuration (calibration, threshold, GSD, normalisation)."""
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
        # everything that decides how the network sees a frame comes back with it (its GSD
        # too: reviewed frames without one would leave the fine-tuned config without it)
        start.train_args = config.train_args
        config = start
    config.train_args["network"] = "fine-tuned" if verdict.fine_tuned_kept else "start"
    atomic_write(model_dir / CONFIG_NAME, config.to_json() + "\n")


def start_folder(start_dir: Path, dest: Path) -> Path:
    """The start network as the adapted folder's network (no fine-tuning)."""
    from thermal_anomaly_segmenter.models.folder import save_model_folder
    from thermal_anomaly_segmenter.models.load import load_model_folder

    network, config = load_model_folder(start_dir)  # also a published start folder
    config.train_args = {**config.train_args, "network": "start"}
    return save_model_folder(dest, config, network)
