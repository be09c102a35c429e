"""The false-alarm stage at predict time: each component of a prediction gets a cause and a
leak score (:mod:`~thermal_anomaly_segmenter.false_alarms.classifier`); the components it rejects
leave the mask but stay listed.

Off by default (``benchmarks/RESULTS.md`` D12: it raises precision on five of six held-out
families but rejected two real leaks on ``city_wet``). Turned on with ``taseg predict
--false-alarms`` / ``taseg report --false-alarms`` or the API's ``false_alarms`` flag, it uses
the classifier stored in the model folder (``false_alarms.json``) or a given file; a model
folder without one gets one trained from the synthetic scene families, stored beside the
weights as a new file (never replacing one) where the folder is writable.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from pathlib import Path

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.false_alarms.classifier import (
    FILE_NAME,
    FalseAlarmClassifier,
    component_features,
)
from thermal_anomaly_segmenter.inference.postprocess import Prediction

log = logging.getLogger(__name__)

#: Scenes per family and their size when a model folder's classifier is trained on demand
#: (classical candidates, exact leaks and distractor pieces: about a minute on 2 cores).
ON_DEMAND_FRAMES = 6
ON_DEMAND_SIZE = (256, 320)
_lock = threading.Lock()
_cache: dict[tuple[str, int | None], FalseAlarmClassifier] = {}


def classifier_for(spec: str | os.PathLike[str] | bool, model_dir: Path | None,
                   ) -> FalseAlarmClassifier:
    """The classifier named by ``spec``: a JSON file (or a folder holding
    ``false_alarms.json``), or ``True`` for the model folder's own (trained on demand)."""
    if spec is not True:
        path = Path(spec)
        if not path.exists():
            raise InvalidInputError(f"false-alarm classifier {path} does not exist")
        return FalseAlarmClassifier.load(path)
    if model_dir is None:
        raise InvalidInputError("the false-alarm stage needs a model folder or a classifier file")
    path = Path(model_dir) / FILE_NAME
    with _lock:
        key = (str(path.resolve()), _stamp(path))
        if key in _cache:
            return _cache[key]
        if path.is_file():
            clf = FalseAlarmClassifier.load(path)
        else:
            clf = train_on_demand()
            _store(clf, path)
            key = (key[0], _stamp(path))
        _cache[key] = clf
        return clf


def _stamp(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def train_on_demand(seed: int = 0, extra: tuple[np.ndarray, list[str]] | None = None,
                    ) -> FalseAlarmClassifier:
    """A classifier trained on components of seeded scenes of every synthetic family, plus
    ``extra`` ``(features, causes)`` (e.g. reviewed components, :func:`.review.read_examples`)."""
    from thermal_anomaly_segmenter.false_alarms.classifier import (
        synthetic_training_set,
        train_classifier,
    )
    from thermal_anomaly_segmenter.scenes import FAMILIES

    log.info("false-alarm stage: training a classifier on the synthetic families (%d scenes "
             "each)", ON_DEMAND_FRAMES)
    x, y = synthetic_training_set(FAMILIES, ON_DEMAND_FRAMES, seed=seed,
                                  height=ON_DEMAND_SIZE[0], width=ON_DEMAND_SIZE[1])
    n_extra = 0
    if extra is not None and len(extra[1]):
        x = np.concatenate([x, np.asarray(extra[0], np.float32)])
        y = [*y, *extra[1]]
        n_extra = len(extra[1])
    clf = train_classifier(x, y, n_estimators=80, seed=seed)
    clf.info["trained_by"] = "taseg.screening.train_on_demand"
    clf.info["reviewed_components"] = n_extra
    return clf


def train_for_model(model_dir: Path, dataset: Path) -> Path:
    """Train the stage on the synthetic families plus ``dataset``'s reviewed components
    (``review_examples.json``) and store it in ``model_dir`` (a new file only)."""
    from thermal_anomaly_segmenter.false_alarms.review import read_examples

    x, y = read_examples(dataset)
    if not y:
        raise InvalidInputError(f"{dataset} holds no reviewed components (review_examples.json"
                                "; build it with taseg build-dataset --review)")
    path = Path(model_dir) / FILE_NAME
    if path.exists():
        raise InvalidInputError(f"{path} already exists; nothing is overwritten")
    clf = train_on_demand(extra=(x, y))
    _store(clf, path)
    if not path.is_file():
        raise InvalidInputError(f"cannot store the false-alarm classifier in {model_dir}")
    return path


def _store(clf: FalseAlarmClassifier, path: Path) -> None:
    """Keep the classifier in the model folder: a new file only, never replacing one.

    Written to a temporary name and hard-linked into place, so another process never reads
    a half-written file and an existing one is never replaced."""
    import json
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(prefix=".false_alarms.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        log.warning("false-alarm classifier not stored in %s: %s", path.parent,
                    exc.strerror or exc)
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(clf.to_dict()) + "\n")
        os.chmod(tmp, 0o644)
        os.link(tmp, path)
        log.info("false-alarm classifier stored as %s", path)
    except OSError as exc:  # FileExistsError included: another process stored one first
        log.warning("false-alarm classifier not stored as %s: %s", path, exc.strerror or exc)
    finally:
        Path(tmp).unlink(missing_ok=True)


def screen(pred: Prediction, classifier: FalseAlarmClassifier,
           source: str | None = None) -> Prediction:
    """Judge every component of ``pred``; a new :class:`Prediction` whose ``anomalies`` are
    the kept components (ids ``1..k`` in their order by area) and ``rejected`` the others
    (ids ``k+1..n``), ``mask`` the kept pixels only, and ``verdicts`` per id."""
    n = len(pred.anomalies)
    feats = component_features(pred.frame.t_u, pred.frame.corridor, pred.labels, n + 1)
    judged = classifier.judge(feats)
    by_id = {a.id: v for a, v in zip(pred.anomalies, judged, strict=True)}
    kept = [a for a in pred.anomalies if by_id[a.id]["keep"]]
    dropped = [a for a in pred.anomalies if not by_id[a.id]["keep"]]
    lut = np.zeros(n + 1, dtype=np.int32)
    verdicts: dict[int, dict] = {}
    renamed = []
    for new_id, a in enumerate(kept + dropped, start=1):
        lut[a.id] = new_id
        v = by_id[a.id]
        verdicts[new_id] = {"cause": v["cause"], "leak_score": v["leak_score"]}
        renamed.append(dataclasses.replace(a, id=new_id))
    labels = lut[pred.labels] if n else pred.labels
    mask = ((labels > 0) & (labels <= len(kept))).view(np.uint8)
    return dataclasses.replace(
        pred, labels=labels, mask=mask, anomalies=renamed[: len(kept)],
        rejected=renamed[len(kept):], verdicts=verdicts,
        screening={"classifier": source, "keep_threshold": classifier.keep_threshold},
    )
