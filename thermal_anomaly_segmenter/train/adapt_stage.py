"""The false-alarm stage of one survey, trained on that survey's reviewed components alone.

Cheap (seconds): the components the inspector decided become feature rows
(:func:`thermal_anomaly_segmenter.false_alarms.review.component_examples`) and a classifier is
fitted on
them. Whether the adapted model folder turns it on is decided by cross-validation on the
reviewed components (:func:`stage_decision`): the stage is switched on only when, with at
least :data:`MIN_LEAKS` decided leaks and :data:`MIN_FALSE_ALARMS` decided false alarms,
the folds together keep at least :data:`MIN_CV_LEAK_RECALL` of the held-out leaks and
reject at least one held-out false alarm. A stage that might drop a confirmed leak is worse
than no stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Fewest decided leaks / false alarms to train and cross-validate a survey's own stage.
MIN_LEAKS = 4
MIN_FALSE_ALARMS = 3
#: Held-out leaks (all folds together) the stage must keep to be switched on.
MIN_CV_LEAK_RECALL = 0.95
#: Most folds (one per leak when there are fewer leaks).
MAX_FOLDS = 5
#: Trees of the survey's stage (few components: a small forest, fitted in a second).
N_ESTIMATORS = 60

RULE = (f"on when >= {MIN_LEAKS} leaks and >= {MIN_FALSE_ALARMS} false alarms were decided and "
        f"{MAX_FOLDS}-fold cross-validation on them keeps >= {MIN_CV_LEAK_RECALL:.0%} of the "
        "held-out leaks while rejecting at least one held-out false alarm")


@dataclass
class StageDecision:
    """The cross-validation verdict on a survey's own false-alarm stage."""

    on: bool
    reason: str
    leaks: int
    false_alarms: int
    cv: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"on": self.on, "reason": self.reason, "rule": RULE, "leaks": self.leaks,
                "false_alarms": self.false_alarms, "cross_validation": self.cv}


def _folds(y: np.ndarray, seed: int) -> np.ndarray:
    """Fold number per component, leaks and false alarms each spread evenly (stratified)."""
    leaks = int((y == "leak").sum())
    k = max(2, min(MAX_FOLDS, leaks, int((y != "leak").sum())))
    fold = np.zeros(len(y), np.int64)
    rng = np.random.default_rng(seed)
    for group in (y == "leak", y != "leak"):
        idx = np.flatnonzero(group)
        fold[rng.permutation(idx)] = np.arange(len(idx)) % k
    return fold


def cross_validate(x: np.ndarray, causes: list[str], seed: int = 0) -> dict[str, Any]:
    """Held-out leaks kept and false alarms rejected over stratified folds."""
    from thermal_anomaly_segmenter.false_alarms.classifier import train_classifier

    y = np.asarray(causes)
    fold = _folds(y, seed)
    kept = rejected = 0
    per_fold = []
    for f in np.unique(fold):
        test = fold == f
        train_y = y[~test]
        if not (train_y == "leak").any() or (train_y == "leak").all():
            continue
        clf = train_classifier(x[~test], train_y, n_estimators=N_ESTIMATORS, seed=seed)
        keep = clf.predict_proba(x[test])[:, clf.classes.index("leak")] >= clf.keep_threshold
        leak = y[test] == "leak"
        kept += int((keep & leak).sum())
        rejected += int((~keep & ~leak).sum())
        per_fold.append({"leaks": int(leak.sum()), "kept": int((keep & leak).sum()),
                         "false_alarms": int((~leak).sum()),
                         "rejected": int((~keep & ~leak).sum())})
    n_leaks, n_fa = int((y == "leak").sum()), int((y != "leak").sum())
    recalls = [p["kept"] / p["leaks"] for p in per_fold if p["leaks"]]
    return {"folds": len(per_fold), "leak_recall": kept / n_leaks if n_leaks else None,
            "false_alarms_rejected": rejected / n_fa if n_fa else None,
            "fold_leak_recall_spread": (max(recalls) - min(recalls)) if recalls else None,
            "per_fold": per_fold}


def stage_decision(x: np.ndarray, causes: list[str], seed: int = 0) -> StageDecision:
    """Whether the survey's own stage may be switched on (see the module docstring)."""
    leaks = sum(c == "leak" for c in causes)
    fas = len(causes) - leaks
    if leaks < MIN_LEAKS or fas < MIN_FALSE_ALARMS:
        return StageDecision(False, f"too few decisions to check it ({leaks} leak(s), {fas} "
                             f"false alarm(s); needs {MIN_LEAKS} and {MIN_FALSE_ALARMS})",
                             leaks, fas)
    cv = cross_validate(x, causes, seed)
    recall, rejected = cv["leak_recall"], cv["false_alarms_rejected"]
    on = recall is not None and recall >= MIN_CV_LEAK_RECALL and bool(rejected)
    reason = (f"cross-validation kept {recall:.0%} of the held-out leaks and rejected "
              f"{rejected:.0%} of the held-out false alarms")
    return StageDecision(on, reason, leaks, fas, cv)


def train_survey_stage(x: np.ndarray, causes: list[str], seed: int = 0):
    """The stage fitted on every reviewed component of the survey."""
    from thermal_anomaly_segmenter.false_alarms.classifier import train_classifier

    clf = train_classifier(x, causes, n_estimators=N_ESTIMATORS, seed=seed)
    clf.info["trained_by"] = "taseg adapt (this survey's reviewed components only)"
    clf.info["reviewed_components"] = len(causes)
    return clf
