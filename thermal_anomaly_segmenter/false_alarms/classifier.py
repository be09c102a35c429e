"""False-alarm stage: judge each predicted component with the features a thermographer uses.

Per component (8-connected, inside the corridor): size, compactness, elongation and its
angle to the local corridor axis, distance to the corridor's centre line, peak and mean dT
against the local background ring and against the corridor median, peak dT in units of the
local noise, edge sharpness, and hot-spot-in-halo structure (:data:`FEATURES`).

A small gradient-boosted tree ensemble names each component's likely cause
(:data:`CAUSES`: a leak or one of the generator's distractor classes) and keeps it when
P(leak) reaches the stored ``keep_threshold``. It is trained with scikit-learn
(:func:`train_classifier`) on components of labelled synthetic scenes (leaks, and the
distractor instance map of :mod:`.scenes`), and stored in the model folder as plain JSON
(arrays of tree nodes: feature, threshold, left, right, value), never pickled; inference
walks the trees in numpy (:class:`FalseAlarmClassifier`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError

#: File name of a stored classifier inside a model folder.
FILE_NAME = "false_alarms.json"
FORMAT = "taseg.false_alarms/1"
#: Causes a component is attributed to; index 0 is a leak.
CAUSES: tuple[str, ...] = ("leak", "lamp", "manhole", "vehicle", "pipe_trace", "building",
                           "other")
#: Lowest stored keep threshold: below it the stage would keep nearly everything.
MIN_KEEP_THRESHOLD = 0.1
FEATURES: tuple[str, ...] = (
    "log_area", "compactness", "log_elongation", "axis_alignment", "centre_offset",
    "peak_dt_local", "mean_dt_local", "peak_dt_corridor", "peak_snr", "edge_sharpness",
    "core_share", "peak_over_mean", "log_core_area",
)


def component_features(
    t_u: np.ndarray, corridor: np.ndarray, labels: np.ndarray, n_labels: int
) -> np.ndarray:
    """``(n_labels - 1) x len(FEATURES)`` float32 features of components ``1..n_labels-1``."""
    import cv2

    t_u = np.asarray(t_u, dtype=np.float32)
    corridor = np.asarray(corridor, dtype=bool)
    out = np.zeros((max(n_labels - 1, 0), len(FEATURES)), np.float32)
    if n_labels <= 1:
        return out
    values = t_u[corridor]
    corridor_median = float(np.median(values)) if values.size else float(np.median(t_u))
    dist = cv2.distanceTransform(corridor.view(np.uint8), cv2.DIST_L2, 5)
    gx = cv2.Sobel(t_u, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(t_u, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    grad = np.hypot(gx, gy)
    any_comp = labels > 0
    height, width = t_u.shape
    ys_all, xs_all = np.nonzero(any_comp)
    order = np.argsort(labels[ys_all, xs_all], kind="stable")
    ys_all, xs_all = ys_all[order], xs_all[order]
    bounds = np.searchsorted(labels[ys_all, xs_all], np.arange(1, n_labels + 1))
    for k in range(1, n_labels):
        ys, xs = ys_all[bounds[k - 1] : bounds[k]], xs_all[bounds[k - 1] : bounds[k]]
        area = len(ys)
        if area == 0:
            continue
        size = math.sqrt(area)
        wide = int(max(24, 5 * size))
        y0, y1 = max(ys.min() - wide, 0), min(ys.max() + wide + 1, height)
        x0, x1 = max(xs.min() - wide, 0), min(xs.max() + wide + 1, width)
        comp = labels[y0:y1, x0:x1] == k
        win_t = t_u[y0:y1, x0:x1]
        r = max(3, int(size / 2))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        ring = cv2.dilate(comp.view(np.uint8), kernel).astype(bool) & ~any_comp[y0:y1, x0:x1]
        ring_corr = ring & corridor[y0:y1, x0:x1]
        ring = ring_corr if ring_corr.sum() >= 8 else ring
        ring_vals = win_t[ring] if ring.any() else win_t[~comp]
        bg = float(np.median(ring_vals)) if ring_vals.size else corridor_median
        noise = (float(np.median(np.abs(ring_vals - bg))) * 1.4826 if ring_vals.size else 0.05)
        vals = win_t[comp]
        peak = float(vals.max()) - bg
        mean = float(vals.mean()) - bg
        # Shape: compactness from the outer contour, elongation from the pixel covariance.
        contours, _ = cv2.findContours(comp.view(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        perimeter = max(sum(cv2.arcLength(c, True) for c in contours), 1.0)
        compactness = min(4 * math.pi * area / perimeter**2, 1.5)
        coords = np.stack([xs, ys], axis=1).astype(np.float64)
        major, elong = _principal(coords)
        # The corridor's local axis: principal direction of the corridor pixels around it.
        cy, cx = np.nonzero(corridor[y0:y1, x0:x1])
        if len(cy) >= 10:
            axis, _ = _principal(np.stack([cx, cy], axis=1).astype(np.float64))
            alignment = abs(float(major @ axis))
        else:
            alignment = 0.5
        mid_y, mid_x = int(round(ys.mean())), int(round(xs.mean()))
        local_max = float(dist[y0:y1, x0:x1].max())
        offset = 1.0 - float(dist[mid_y, mid_x]) / local_max if local_max > 0 else 1.0
        edge = cv2.morphologyEx(comp.view(np.uint8), cv2.MORPH_GRADIENT,
                                np.ones((3, 3), np.uint8)).astype(bool)
        sharp = float(grad[y0:y1, x0:x1][edge].mean()) if edge.any() else 0.0
        scale = max(abs(peak), 0.05)
        core = vals > bg + 0.5 * peak
        out[k - 1] = (
            math.log(area), compactness, math.log(max(elong, 1.0)), alignment, offset,
            peak, mean, float(vals.max()) - corridor_median, peak / max(noise, 0.01),
            sharp / scale, float(core.mean()), (peak - mean) / scale,
            math.log(max(int(core.sum()), 1)),
        )
    return out


def _principal(coords: np.ndarray) -> tuple[np.ndarray, float]:
    """Unit main axis of a point cloud and sqrt of its eigenvalue ratio (>= 1)."""
    if len(coords) < 3:
        return np.array([1.0, 0.0]), 1.0
    cov = np.cov(coords.T)
    evals, evecs = np.linalg.eigh(cov)
    lo, hi = max(float(evals[0]), 1e-3), max(float(evals[1]), 1e-3)
    return evecs[:, 1], math.sqrt(hi / lo)


# --------------------------------------------------------------------------- the classifier


@dataclass
class FalseAlarmClassifier:
    """Gradient-boosted trees as plain arrays: ``trees[m][c]`` is the tree of stage ``m`` for
    class ``c`` with node arrays ``feature``, ``threshold``, ``left``, ``right``, ``value``
    (a leaf has ``left == -1``). The raw score of class ``c`` is ``learning_rate`` times the
    sum of its trees' leaf values; probabilities are its softmax."""

    classes: tuple[str, ...]
    learning_rate: float
    trees: list[list[dict[str, list]]]
    features: tuple[str, ...] = FEATURES
    keep_threshold: float = 0.5
    info: dict[str, Any] = field(default_factory=dict)

    def raw(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise InvalidInputError(
                f"features must be N x {len(self.features)}, got shape {x.shape}")
        n_out = len(self.trees[0]) if self.trees else len(self.classes)
        out = np.zeros((len(x), n_out))
        for stage in self.trees:
            for c, tree in enumerate(stage):
                out[:, c] += _walk(tree, x)
        return out * self.learning_rate

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """``N x len(classes)`` probabilities."""
        raw = self.raw(x)
        if raw.shape[1] == 1:  # binary: one logit for the second class
            p = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            return np.stack([1 - p, p], axis=1)
        raw -= raw.max(axis=1, keepdims=True)
        e = np.exp(raw)
        return e / e.sum(axis=1, keepdims=True)

    def judge(self, x: np.ndarray) -> list[dict[str, Any]]:
        """Per component: ``keep``, ``cause`` (most likely class) and ``leak_score``."""
        if len(x) == 0:
            return []
        proba = self.predict_proba(x)
        leak = proba[:, self.classes.index("leak")]
        return [
            {"keep": bool(p >= self.keep_threshold), "cause": self.classes[int(np.argmax(row))],
             "leak_score": float(p)}
            for p, row in zip(leak, proba, strict=True)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "classes": list(self.classes), "features": list(self.features),
                "learning_rate": self.learning_rate, "keep_threshold": self.keep_threshold,
                "info": self.info, "trees": self.trees}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FalseAlarmClassifier:
        """A classifier from its JSON document, every field checked (a file with a NaN, a
        huge learning rate or a node index out of its tree is refused, never applied)."""
        from thermal_anomaly_segmenter.io.json_input import number, of_type

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InvalidInputError(f"not a TASeg false-alarm classifier ({FORMAT})")
        if not isinstance(data.get("features"), list) or tuple(data["features"]) != FEATURES:
            raise InvalidInputError("false-alarm classifier uses other features than this TASeg")
        classes = of_type(data.get("classes"), list, "false-alarm classifier: classes")
        if not 2 <= len(classes) <= len(CAUSES) or len(set(map(str, classes))) != len(
                classes) or not all(c in CAUSES for c in classes) or "leak" not in classes:
            raise InvalidInputError("false-alarm classifier: classes must be distinct causes "
                                    f"among {', '.join(CAUSES)}, leak included")
        rate = number(data.get("learning_rate"), "false-alarm classifier: learning_rate",
                      low=1e-6, high=10.0)
        keep = number(data.get("keep_threshold"), "false-alarm classifier: keep_threshold",
                      low=0.0, high=1.0)
        info = of_type(data.get("info", {}), dict, "false-alarm classifier: info")
        trees = _checked_trees(data.get("trees"), 1 if len(classes) == 2 else len(classes))
        return cls(classes=tuple(classes), learning_rate=float(rate), trees=trees,
                   features=FEATURES, keep_threshold=float(keep), info=info)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write as JSON (into ``path/false_alarms.json`` when ``path`` is a folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / FILE_NAME
        from thermal_anomaly_segmenter.io.atomic import atomic_write

        # allow_nan=False: a file this writes is always one load() accepts.
        atomic_write(path, json.dumps(self.to_dict(), allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FalseAlarmClassifier:
        path = Path(path)
        if path.is_dir():
            path = path / FILE_NAME
        from thermal_anomaly_segmenter.io.json_input import load_json

        return cls.from_dict(load_json(path, "false-alarm classifier"))


#: Bounds of a stored classifier: stages, nodes per tree, magnitude of a leaf value.
MAX_STAGES, MAX_NODES, MAX_LEAF = 5000, 4096, 1e6


def _checked_trees(trees: Any, n_out: int) -> list[list[dict[str, list]]]:
    """``trees`` if every stage holds ``n_out`` well-formed trees (see the class doc)."""
    from thermal_anomaly_segmenter.io.json_input import number

    what = "false-alarm classifier: trees"
    if not isinstance(trees, list) or not 1 <= len(trees) <= MAX_STAGES:
        raise InvalidInputError(f"{what} must be a list of 1 to {MAX_STAGES} stages")
    for m, stage in enumerate(trees):
        if not isinstance(stage, list) or len(stage) != n_out:
            raise InvalidInputError(f"{what}[{m}] must hold {n_out} trees")
        for c, tree in enumerate(stage):
            name = f"{what}[{m}][{c}]"
            keys = ("feature", "threshold", "left", "right", "value")
            if not isinstance(tree, dict) or not all(isinstance(tree.get(k), list) for k in keys):
                raise InvalidInputError(f"{name} must hold the lists {', '.join(keys)}")
            n = len(tree["value"])
            if not 1 <= n <= MAX_NODES or any(len(tree[k]) != n for k in keys):
                raise InvalidInputError(f"{name}: node lists of 1 to {MAX_NODES} equal lengths")
            for k, low, high in (("feature", 0, len(FEATURES) - 1), ("left", -1, n - 1),
                                 ("right", -1, n - 1)):
                for v in tree[k]:
                    number(v, f"{name}.{k}", low=low, high=high, integer=True)
            for v in tree["threshold"]:
                number(v, f"{name}.threshold")
            for v in tree["value"]:
                number(v, f"{name}.value", low=-MAX_LEAF, high=MAX_LEAF)
    return trees


def _walk(tree: dict[str, list], x: np.ndarray) -> np.ndarray:
    feature = np.asarray(tree["feature"])
    threshold = np.asarray(tree["threshold"])
    left, right = np.asarray(tree["left"]), np.asarray(tree["right"])
    value = np.asarray(tree["value"])
    node = np.zeros(len(x), dtype=np.int64)
    for _ in range(64):  # deeper than any stored tree
        inner = left[node] >= 0
        if not inner.any():
            break
        idx = np.flatnonzero(inner)
        go_left = x[idx, feature[node[idx]]] <= threshold[node[idx]]
        node[idx] = np.where(go_left, left[node[idx]], right[node[idx]])
    return value[node]


def train_classifier(x: np.ndarray, y: Sequence[str], *, n_estimators: int = 120,
                     max_depth: int = 3, learning_rate: float = 0.1, seed: int = 0,
                     min_leak_recall: float = 0.95) -> FalseAlarmClassifier:
    """Fit scikit-learn gradient boosting on features ``x`` and causes ``y``; export it.

    A quarter of the components (seeded) is held back to choose ``keep_threshold``: the
    highest P(leak) that still keeps ``min_leak_recall`` of the held-back leaks, within
    :data:`MIN_KEEP_THRESHOLD`..0.5.
    """
    from sklearn.ensemble import GradientBoostingClassifier

    y = np.asarray(list(y))
    unknown = set(y) - set(CAUSES)
    if unknown:
        raise InvalidInputError(f"unknown causes {sorted(unknown)}; use {', '.join(CAUSES)}")
    if "leak" not in set(y):
        raise InvalidInputError("training components hold no leak")
    x = np.asarray(x, dtype=np.float64)
    held = np.random.default_rng(seed).random(len(y)) < 0.25
    if not (y[~held] == "leak").any() or not (y[held] == "leak").any():
        held[:] = False
    model = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth,
                                       learning_rate=learning_rate, init="zero",
                                       random_state=seed, subsample=0.8)
    model.fit(x[~held], y[~held])
    trees = [[_export(est.tree_) for est in stage] for stage in model.estimators_]
    clf = FalseAlarmClassifier(
        classes=tuple(str(c) for c in model.classes_), learning_rate=learning_rate, trees=trees,
        info={"n_components": int(len(y)),
              "per_cause": {c: int((y == c).sum()) for c in CAUSES if (y == c).any()}},
    )
    if held.any():
        p = clf.predict_proba(x[held])[:, clf.classes.index("leak")]
        leaks = np.sort(p[y[held] == "leak"])
        k = int(math.floor((1.0 - min_leak_recall) * len(leaks)))
        clf.keep_threshold = float(min(max(leaks[k] - 1e-6, MIN_KEEP_THRESHOLD), 0.5))
        clf.info["keep_threshold_from"] = (
            f"{int(held.sum())} held-back components, leak recall >= {min_leak_recall}")
    return clf


def _export(tree) -> dict[str, list]:
    return {
        "feature": [int(f) if f >= 0 else 0 for f in tree.feature],
        "threshold": [float(t) for t in tree.threshold],
        "left": [int(v) for v in tree.children_left],
        "right": [int(v) for v in tree.children_right],
        "value": [float(v) for v in tree.value[:, 0, 0]],
    }


# --------------------------------------------------------------------------- training data


def cause_of(component: np.ndarray, leak_mask: np.ndarray, instances: np.ndarray | None,
             classes: Sequence[str]) -> str:
    """The cause of a component: ``leak`` if it touches a leak label, else its distractor."""
    if (leak_mask[component] > 0).any():
        return "leak"
    if instances is None:
        return "other"
    ids = instances[component]
    ids = ids[ids > 0]
    if ids.size == 0:
        return "other"
    return classes[int(np.bincount(ids).argmax()) - 1]


def scene_components(scene, pred: np.ndarray | None = None,
                     min_area_px: int = 4) -> tuple[np.ndarray, list[str]]:
    """Features and causes of the components of ``pred`` (default: the classical label)."""
    import cv2

    from thermal_anomaly_segmenter.models.triangle import classical_label

    if pred is None:
        pred = classical_label(scene.data, scene.corridor)
    pred = (np.asarray(pred) > 0) & scene.corridor
    n, labels, stats, _ = cv2.connectedComponentsWithStats(pred.view(np.uint8), connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_area_px)
    labels[np.isin(labels, small[small > 0])] = 0
    feats = component_features(scene.t_u, scene.corridor, labels, n)
    keep = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= min_area_px]
    causes = [cause_of(labels == k, scene.leak_mask, scene.instances, scene.instance_classes)
              for k in keep]
    return feats[[k - 1 for k in keep]], causes


def _distractor_pieces(scene, block: int = 32) -> tuple[np.ndarray, int]:
    """Each distractor instance inside the corridor as one component; the pipe trace cut into
    fragments of about ``block`` pixels, as a segmenter would mark it."""
    inst = np.where(scene.corridor, scene.instances, 0).astype(np.int64)
    classes = np.array(("",) + tuple(scene.instance_classes))
    trace = classes[inst] == "pipe_trace"
    yy, xx = np.mgrid[0 : inst.shape[0], 0 : inst.shape[1]]
    tiles = (yy // block) * (inst.shape[1] // block + 1) + xx // block
    n = int(inst.max()) + 1
    inst[trace] = n + tiles[trace]
    _, labels = np.unique(inst, return_inverse=True)
    labels = labels.reshape(inst.shape).astype(np.int32)
    if inst.min() > 0:  # no background pixel: keep ids 1-based anyway
        labels += 1
    return labels, int(labels.max()) + 1


def synthetic_training_set(families: Iterable[str], n_frames: int, *, seed: int = 0,
                           height: int = 256, width: int = 320, segmenter=None,
                           threshold: float = 0.5) -> tuple[np.ndarray, list[str]]:
    """Components of seeded scenes of ``families`` with their causes: the classical
    candidates, the exact leaks, the distractors (pipe trace in fragments) and, with a
    ``segmenter`` (:class:`.inference.Segmenter`), its own predicted components."""
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.io.frames import Frame
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    xs: list[np.ndarray] = []
    ys: list[str] = []
    for family in families:
        for i in range(n_frames):
            scene = make_scene(seed * 100_003 + i, height, width, family=family)
            preds = [None, scene.leak_mask]
            if segmenter is not None:
                frame = Frame(data=scene.data, corridor=scene.corridor, name="s")
                # seen at the GSD predict would see it at (.scale)
                prob = segmenter.probabilities([frame], PredictOptions(
                    device=segmenter.device, gsd_m=scene.gsd_m))
                preds.append(prob[0] > threshold)
            for pred in preds:
                if pred is not None and not pred.any():
                    continue
                x, y = scene_components(scene, pred)
                xs.append(x)
                ys.extend(y)
            labels, n = _distractor_pieces(scene)
            feats = component_features(scene.t_u, scene.corridor, labels, n)
            for k in range(1, n):
                piece = labels == k
                if piece.sum() >= 4:
                    xs.append(feats[k - 1 : k])
                    ys.append(cause_of(piece, scene.leak_mask, scene.instances,
                                       scene.instance_classes))
    x = np.concatenate(xs) if xs else np.zeros((0, len(FEATURES)), np.float32)
    return x, ys


def filter_mask(t_u: np.ndarray, corridor: np.ndarray, mask: np.ndarray,
                classifier: FalseAlarmClassifier) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """``mask`` without the components the classifier rejects, and its verdicts."""
    import cv2

    n, labels = cv2.connectedComponents(np.asarray(mask, dtype=np.uint8), connectivity=8)
    verdicts = classifier.judge(component_features(t_u, corridor, labels, n))
    rejected = [k + 1 for k, v in enumerate(verdicts) if not v["keep"]]
    kept = np.asarray(mask, dtype=bool) & ~np.isin(labels, rejected)
    return kept, verdicts
