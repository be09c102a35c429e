"""An inspector's review (``review.json`` exported by ``report.html``) as training material.

Decisions per anomaly: ``leak`` (confirmed), ``false_alarm`` (with its cause) or ``unsure``.
:meth:`Review.label` turns a frame whose every listed anomaly is decided leak or false alarm
into a label (the confirmed leaks' footprints): a ``manual_set`` label for
``taseg build-dataset --review``. :func:`component_examples` turns every decided component
(any frame) into a feature row with its cause for the false-alarm stage
(:mod:`~thermal_anomaly_segmenter.false_alarms.classifier`), kept in the dataset as
:data:`EXAMPLES_NAME` and read back by
:func:`read_examples` (``taseg train --review`` adds them to the stage's training set).

A leak the report did not list, outlined by the inspector on the whole frame, is a decision
``{"id": "added-<n>", "decision": "leak", "added": true, "outline": ...}`` (:func:`is_added`):
a positive in the labels, but no listed anomaly (:meth:`Review.complete`) and no component of
the network to learn the false-alarm stage from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError

SCHEMA = "taseg.review/1"
DECISIONS = ("leak", "false_alarm", "unsure")
#: File of a dataset (at its root) holding the reviewed components as stage examples.
EXAMPLES_NAME = "review_examples.json"
EXAMPLES_SCHEMA = "taseg.review_examples/1"
#: Id prefix of a leak the inspector added (one the report did not list).
ADDED_PREFIX = "added-"
#: Width of the band left out of the loss around a confirmed leak that was not outlined, in
#: equivalent radii of its footprint (:meth:`Review.partial_label`).
EXTENT_BAND = 1.0


@dataclass
class Review:
    """The decisions of one review, by frame."""

    source: str
    frames: dict[str, dict[str, Any]]
    decisions: dict[str, list[dict[str, Any]]]
    #: The report the review was made on (``report_id`` of its page), when it says.
    report_id: str | None = None

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Review:
        from thermal_anomaly_segmenter.false_alarms.classifier import CAUSES
        from thermal_anomaly_segmenter.io.json_input import load_json

        path = Path(path)
        data = load_json(path, "review")
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise InvalidInputError(f"{path.name} is not a TASeg review ({SCHEMA}; export it "
                                    "from report.html)")
        frames = _checked_frames(data.get("frames") or {}, path.name)
        decisions = data.get("decisions") or []
        if not isinstance(decisions, list):
            raise InvalidInputError(f"review {path.name}: decisions must be a list")
        by_frame: dict[str, list[dict[str, Any]]] = {}
        for d in decisions:
            if not isinstance(d, dict) or d.get("decision") not in DECISIONS or \
                    not isinstance(d.get("frame"), str) or d["frame"] not in frames or \
                    isinstance(d.get("id"), bool) or not isinstance(d.get("id"), (int, str)):
                raise InvalidInputError(f"review {path.name}: bad decision {str(d)[:120]}")
            if d["decision"] == "false_alarm" and d.get("cause") not in CAUSES:
                raise InvalidInputError(f"review {path.name}: unknown cause "
                                        f"{str(d.get('cause'))[:40]!r}")
            what = f"review {path.name}: {d['frame']}/{str(d['id'])[:40]}"
            if d.get("polygon") is not None:
                _check_polygon(d["polygon"], what)
            if "added" in d:
                _check_added(d, what)
            if "outline" in d:
                _check_outline(d, what)
            by_frame.setdefault(d["frame"], []).append(d)
        _check_added_ids(by_frame, path.name)
        return cls(str(path), frames, by_frame, data.get("report_id"))

    def complete(self, frame: str) -> bool:
        """Every anomaly the report listed for ``frame`` is decided leak or false alarm (a leak
        the inspector added is none of them)."""
        decided = [d for d in self.decisions.get(frame, []) if not is_added(d)]
        n = int(self.frames.get(frame, {}).get("anomalies") or 0)
        firm = {d["id"] for d in decided if d["decision"] in ("leak", "false_alarm")}
        return bool(decided) and len(firm) == n and len(decided) == n

    def label(self, frame: str, shape: tuple[int, int]) -> np.ndarray | None:
        """The frame's label (uint8 0/1: the confirmed leaks, outlined where the inspector drew
        one), or None if not fully decided."""
        if not self.complete(frame):
            return None
        self._check_shape(frame, shape)
        label = np.zeros(shape, np.uint8)
        for d in self.decisions[frame]:
            if d["decision"] == "leak":
                label[leak_extent(d, shape)] = 1
        return label

    def firm(self, frame: str) -> list[dict[str, Any]]:
        """The frame's decisions that say leak or false alarm (not unsure)."""
        return [d for d in self.decisions.get(frame, [])
                if d["decision"] in ("leak", "false_alarm")]

    def counts(self) -> dict[str, int]:
        """Decisions made, by kind."""
        out = dict.fromkeys(DECISIONS, 0)
        for decided in self.decisions.values():
            for d in decided:
                out[d["decision"]] += 1
        return out

    def partial_label(self, frame: str, shape: tuple[int, int],
                      extent_band: float = EXTENT_BAND, seen_only: bool = False
                      ) -> np.ndarray | None:
        """The frame's label from every click (uint8 PNG values): 1 on confirmed leaks, 0 on
        false alarms, and elsewhere 0 where the frame is :meth:`complete`, else
        ``UNDECIDED_PNG`` (left out of the loss). None when nothing firm was decided.

        A confirmed leak the inspector did not outline has the start network's footprint,
        whose edge is a guess: a band around it, ``extent_band`` times its equivalent radius
        wide, is left out of the loss instead of taught as background (an outlined leak's
        edge is the inspector's and is kept). With ``seen_only`` a complete frame is
        background only inside the crops the inspector decided on (:func:`crop_window`):
        the rest of it was never looked at and may hold a leak the start network missed."""
        from thermal_anomaly_segmenter.io.datasets import UNDECIDED_PNG

        firm = self.firm(frame)
        if not firm:
            return None
        self._check_shape(frame, shape)
        label = np.full(shape, 0 if self.complete(frame) else UNDECIDED_PNG, np.uint8)
        if seen_only and self.complete(frame):
            label[:] = UNDECIDED_PNG
            for d in firm:  # an added leak's crop: the box of its outline
                label[crop_window(_outline_box(d) if is_added(d) else d["bbox"], shape)] = 0
        footprints = [(d, leak_extent(d, shape) if d["decision"] == "leak"
                       else rasterize_footprint(d, shape) > 0) for d in firm]
        for d, mask in footprints:
            if d["decision"] == "leak" and not d.get("outline") and extent_band > 0:
                label[_band(mask, extent_band)] = UNDECIDED_PNG
        for d, mask in sorted(footprints, key=lambda f: f[0]["decision"] == "leak"):
            label[mask] = 1 if d["decision"] == "leak" else 0  # leaks drawn last win
        return label

    def _check_shape(self, frame: str, shape: tuple[int, int]) -> None:
        info = self.frames.get(frame, {})
        want = (info.get("height"), info.get("width"))
        if None not in want and tuple(want) != tuple(shape):
            raise InvalidInputError(f"review {self.source}: frame {frame} was {want[0]} x "
                                    f"{want[1]} px in the report but is {shape[0]} x {shape[1]}")


def crop_window(bbox: Any, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The frame pixels an anomaly's crop in the report shows around its box ``[x0, y0, x1,
    y1]``: the box's longer side plus 12 px on every side of its centre."""
    x0, y0, x1, y1 = (float(v) for v in bbox)
    half = max(x1 - x0, y1 - y0) + 12
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def span(centre: float, size: int) -> slice:  # clipped to the frame: empty outside it
        lo = min(size, max(0, int(centre - half)))
        return slice(lo, max(lo, min(size, int(np.ceil(centre + half)))))

    return span(cy, shape[0]), span(cx, shape[1])


def _band(mask: np.ndarray, factor: float) -> np.ndarray:
    """Pixels within ``factor`` equivalent radii of ``mask`` (at least 2 px), mask included."""
    import cv2

    radius = max(2, round(factor * float(np.sqrt(mask.sum() / np.pi))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


#: Bounds of a review's footprints: pixel coordinates, points per review.
MAX_COORD_PX, MAX_POINTS = 1e6, 1_000_000


def _checked_frames(frames: Any, name: str) -> dict[str, dict[str, Any]]:
    """The review's ``frames``: names -> ``anomalies`` count and optional height/width."""
    from thermal_anomaly_segmenter.io.json_input import number

    if not isinstance(frames, dict):
        raise InvalidInputError(f"review {name}: frames must be an object")
    for frame, info in frames.items():
        if not isinstance(info, dict):
            raise InvalidInputError(f"review {name}: frames.{frame[:60]} must be an object")
        number(info.get("anomalies") or 0, f"review {name}: frames.{frame[:60]}.anomalies",
               low=0, high=MAX_POINTS, integer=True)
        for key in ("height", "width"):
            if info.get(key) is not None:
                number(info[key], f"review {name}: frames.{frame[:60]}.{key}", low=1,
                       high=MAX_COORD_PX, integer=True)
    return frames


def is_added(decision: dict[str, Any]) -> bool:
    """A leak the inspector outlined on the whole frame that the report did not list."""
    return decision.get("added") is True


def _check_added(decision: dict[str, Any], what: str) -> None:
    """``added``: JSON ``true`` on a leak with an outline and an ``added-<n>`` id."""
    if decision["added"] is not True:
        raise InvalidInputError(f"{what}: added must be true (a leak the report did not list)")
    if decision["decision"] != "leak":
        raise InvalidInputError(f"{what}: an added {decision['decision']} decision (only a "
                                "missed leak is added)")
    if not isinstance(decision["id"], str) or not decision["id"].startswith(ADDED_PREFIX):
        raise InvalidInputError(f"{what}: an added leak's id must start with {ADDED_PREFIX!r}")
    if "outline" not in decision:
        raise InvalidInputError(f"{what}: an added leak needs its outline")


def _check_added_ids(by_frame: dict[str, list[dict[str, Any]]], name: str) -> None:
    """An added leak's id is its own: no listed anomaly's, no other added leak's."""
    from collections import Counter

    for frame, decided in by_frame.items():
        ids = Counter(d["id"] for d in decided if is_added(d))
        twice = sorted(i for i, n in ids.items() if n > 1)
        if twice:
            raise InvalidInputError(f"review {name}: {frame[:60]}/{twice[0][:40]}: an added "
                                    "leak's id is used twice")
        for d in decided:
            if not is_added(d) and str(d["id"]).startswith(ADDED_PREFIX):
                raise InvalidInputError(
                    f"review {name}: {frame[:60]}/{str(d['id'])[:40]}: an id starting with "
                    f"{ADDED_PREFIX!r} is an added leak's (added: true)")


def _outline_box(decision: dict[str, Any]) -> list[float]:
    """``[x0, y0, x1, y1]`` around a decision's outline."""
    points = np.asarray([p for rings in decision["outline"] for ring in rings for p in ring],
                        np.float64)
    return [*points.min(0), *points.max(0)]


def _check_outline(decision: dict[str, Any], what: str) -> None:
    """``outline``: the leak's extent the inspector drew on the report (pixel-corner rings
    like ``polygon``, which stays the network's footprint); only on a leak decision."""
    if decision["decision"] != "leak":
        raise InvalidInputError(f"{what}: an outline on a {decision['decision']} decision "
                                "(only a leak is outlined)")
    if not decision["outline"]:
        raise InvalidInputError(f"{what}: an empty outline")
    _check_polygon(decision["outline"], f"{what}: outline")


def leak_extent(decision: dict[str, Any], shape: tuple[int, int]) -> np.ndarray:
    """A confirmed leak's pixels (bool): its outline where the inspector drew one, else the
    network's footprint."""
    if decision.get("outline"):
        return rasterize_footprint({**decision, "polygon": decision["outline"]}, shape) > 0
    return rasterize_footprint(decision, shape) > 0


def _check_polygon(polygons: Any, what: str) -> None:
    """A footprint: a list of polygons, each a list of rings of finite ``[x, y]`` pixels."""
    from thermal_anomaly_segmenter.io.json_input import number

    points = 0
    if not isinstance(polygons, list):
        raise InvalidInputError(f"{what}: polygon must be a list of polygons")
    for rings in polygons:
        if not isinstance(rings, list) or not rings:
            raise InvalidInputError(f"{what}: a polygon must be a list of rings")
        for ring in rings:
            if not isinstance(ring, list) or len(ring) < 3:
                raise InvalidInputError(f"{what}: a ring must list at least 3 [x, y] points")
            points += len(ring)
            if points > MAX_POINTS:
                raise InvalidInputError(f"{what}: more than {MAX_POINTS} footprint points")
            for point in ring:
                if not isinstance(point, list) or len(point) != 2:
                    raise InvalidInputError(f"{what}: a point must be [x, y]")
                for v in point:
                    number(v, f"{what}: footprint coordinate", low=-MAX_COORD_PX,
                           high=MAX_COORD_PX)


def rasterize_footprint(decision: dict[str, Any], shape: tuple[int, int]) -> np.ndarray:
    """A decision's footprint (pixel-corner rings, holes after the exterior) as a 0/1 mask."""
    from affine import Affine
    from rasterio.features import rasterize

    polygons = decision.get("polygon")
    if not polygons:
        raise InvalidInputError(f"review: anomaly {decision.get('frame')}/{decision.get('id')} "
                                "has no footprint")
    # Pixel coordinates are meant, but rasterio warns (NotGeoreferencedWarning) about an
    # identity transform: shift the rings and the grid by one pixel (exact for pixel corners).
    geoms = [{"type": "Polygon",
              "coordinates": [[[x + 1, y + 1] for x, y in ring] for ring in rings]}
             for rings in polygons]
    return rasterize(((g, 1) for g in geoms), out_shape=shape, dtype="uint8",
                     transform=Affine.translation(1, 1))


def component_examples(review: Review, frame_name: str, t_u: np.ndarray,
                       corridor: np.ndarray) -> list[dict[str, Any]]:
    """Features and cause of each component of ``frame_name`` decided leak or false alarm."""
    from thermal_anomaly_segmenter.false_alarms.classifier import component_features

    # an added leak is no component of the network: the stage never sees it
    decided = [d for d in review.decisions.get(frame_name, [])
               if d["decision"] in ("leak", "false_alarm") and not is_added(d)]
    if not decided:
        return []
    review._check_shape(frame_name, t_u.shape)
    labels = np.zeros(t_u.shape, np.int32)
    for k, d in enumerate(decided, start=1):
        labels[(rasterize_footprint(d, t_u.shape) > 0) & (labels == 0)] = k
    feats = component_features(t_u, corridor, labels, len(decided) + 1)
    return [{"frame": frame_name, "id": d["id"],
             "cause": "leak" if d["decision"] == "leak" else d["cause"],
             "features": [float(v) for v in row]}
            for d, row in zip(decided, feats, strict=True)]


def examples_document(examples: list[dict[str, Any]], review_source: str) -> dict[str, Any]:
    from thermal_anomaly_segmenter.false_alarms.classifier import FEATURES

    return {"schema": EXAMPLES_SCHEMA, "review": review_source, "features": list(FEATURES),
            "components": examples}


def read_examples(dataset: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
    """``(features, causes)`` of a dataset's reviewed components (empty when it has none)."""
    from thermal_anomaly_segmenter.false_alarms.classifier import FEATURES

    path = Path(dataset)
    if path.is_dir():
        path = path / EXAMPLES_NAME
    if not path.is_file():
        return np.zeros((0, len(FEATURES)), np.float32), []
    from thermal_anomaly_segmenter.false_alarms.classifier import CAUSES
    from thermal_anomaly_segmenter.io.json_input import load_json, number

    data = load_json(path, "review examples")
    if not isinstance(data, dict) or data.get("schema") != EXAMPLES_SCHEMA or \
            data.get("features") != list(FEATURES) or \
            not isinstance(data.get("components", []), list):
        raise InvalidInputError(f"{path} is not a TASeg review examples file of these features")
    comps = data.get("components", [])
    for c in comps:
        if not isinstance(c, dict) or c.get("cause") not in CAUSES or \
                not isinstance(c.get("features"), list) or len(c["features"]) != len(FEATURES):
            raise InvalidInputError(f"{path.name}: bad component {str(c)[:120]}")
        for v in c["features"]:
            number(v, f"{path.name}: a component feature")
    x = np.asarray([c["features"] for c in comps], np.float32).reshape(-1, len(FEATURES))
    return x, [c["cause"] for c in comps]
