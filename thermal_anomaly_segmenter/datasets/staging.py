"""Staging a survey's frames for the dataset builder (:mod:`.dataset_builder`).

Each usable frame is read, auto-labelled by :func:`.classical.classical_label`, given its hand
label (or its review's label) and written, per set, into the builder's hidden staging folder:
``<staging>/<set>/{image,label,preview}/<id>.*``. The builder then moves the staged files into
their split folders. A frame that cannot be used is recorded as :class:`Skipped`, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.io.atomic import atomic_write
from thermal_anomaly_segmenter.io.formats import write_frame, write_label
from thermal_anomaly_segmenter.io.frames import Frame, frame_stem
from thermal_anomaly_segmenter.io.masks import read_label
from thermal_anomaly_segmenter.io.read import read_frame
from thermal_anomaly_segmenter.outputs.preview import render_preview

log = logging.getLogger(__name__)

SET_GENERATED = "generated_set"
SET_MANUAL = "manual_set"

#: A frame's corridor: a mask file, or a (source name, mask) rasterised from a pipe network.
Corridor = Path | tuple[str, np.ndarray]


@dataclass(frozen=True)
class Skipped:
    """An input left out of the dataset.

    Attributes:
        name: File name of the frame (or of the label).
        kind: ``"frame"`` (left out of both sets) or ``"label"`` (the frame is in
            ``generated_set`` but not in ``manual_set``).
        reason: One-line reason.
    """

    name: str
    kind: str
    reason: str


@dataclass
class StagedFrame:
    """One usable frame, written to the staging folder and waiting for its split."""

    frame_id: str
    source: str
    corridor: str
    label: str | None
    height: int
    width: int
    geo: dict[str, Any] | None
    has_manual: bool = False
    #: Metres per pixel: a metric georeference's, else what the caller stated.
    gsd_m: float | None = None


@dataclass
class Staging:
    """Where frames are staged, and what staging them recorded."""

    folder: Path
    previews: bool
    #: The :class:`.review.Review` labelling frames without a hand label, or None.
    review: Any = None
    #: False-alarm stage examples of the reviewed components.
    examples: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    reviewed_frames: list[str] = field(default_factory=list)


def stage_frames(
    tiffs: Sequence[Path],
    corridor_for: Callable[[Path], Corridor],
    label_files: dict[str, list[Path]],
    staging: Staging,
) -> list[StagedFrame]:
    """Stage every usable TIFF (in name order); the others go to ``staging.skipped``.

    ``corridor_for`` gives a TIFF's corridor or raises InvalidInputError.
    """
    items: list[StagedFrame] = []
    seen: dict[str, str] = {}
    for tiff in sorted(tiffs, key=lambda p: p.name):
        frame_id = frame_stem(tiff)
        try:
            if frame_id in seen:
                raise InvalidInputError(
                    f"its id {frame_id!r} is already taken by {seen[frame_id]}; rename it"
                )
            matches = label_files.get(tiff.stem, [])
            label = matches[0] if matches else None
            items.append(_stage_frame(tiff, corridor_for(tiff), label, frame_id, staging))
            seen[frame_id] = tiff.name
        except InvalidInputError as exc:
            log.warning("frame %s skipped: %s", tiff.name, exc)
            staging.skipped.append(Skipped(tiff.name, "frame", str(exc)))
    return items


def _geo_dict(frame: Frame) -> dict[str, Any] | None:
    if frame.geo is None:
        return None
    return {
        "transform": [float(v) for v in frame.geo.transform],
        "crs": frame.geo.crs,
        "metric": frame.geo.metric,
    }


def _hand_label(label_path: Path | None, frame: Frame, staging: Staging) -> np.ndarray | None:
    """The frame's hand label, or None (none given, or unusable: recorded as skipped)."""
    if label_path is None:
        return None
    try:
        manual = read_label(label_path)
        if manual.shape != frame.shape:
            raise InvalidInputError(
                f"{label_path.name}: label is {manual.shape[0]} x {manual.shape[1]} px but "
                f"the frame is {frame.shape[0]} x {frame.shape[1]} px"
            )
    except InvalidInputError as exc:
        log.warning("hand label skipped: %s", exc)
        staging.skipped.append(Skipped(label_path.name, "label", str(exc)))
        return None
    return manual


def _stage_frame(
    tiff: Path, corridor_path: Corridor, label_path: Path | None, frame_id: str, staging: Staging
) -> StagedFrame:
    """Read, label and write one frame into the staging folder; InvalidInputError if unusable."""
    from thermal_anomaly_segmenter.models.triangle import classical_label
    from thermal_anomaly_segmenter.outputs.write import encode_png

    # A (name, mask) pair is a corridor rasterised from the pipe network.
    corridor_name, corridor = (
        corridor_path if isinstance(corridor_path, tuple) else (corridor_path.name, corridor_path)
    )
    frame = read_frame(tiff, corridor=corridor, name=frame_id)
    auto = classical_label(frame.data, frame.corridor)
    manual = _hand_label(label_path, frame, staging)
    label_name = label_path.name if manual is not None and label_path is not None else None
    review = staging.review
    if review is not None:
        from thermal_anomaly_segmenter.false_alarms.review import component_examples

        if manual is None:
            manual = review.label(frame_id, frame.shape)
            if manual is not None:
                label_name = f"review:{Path(review.source).name}"
                staging.reviewed_frames.append(frame_id)
        staging.examples.extend(component_examples(review, frame_id, frame.t_u, frame.corridor))
    for set_name, label in ((SET_GENERATED, auto), (SET_MANUAL, manual)):
        if label is None:
            continue
        # Each set gets its own copy of the frame: sets are used (and zipped) independently.
        folder = staging.folder / set_name
        write_frame(folder / "image" / f"{frame_id}.npy.lz4", frame.data)
        write_label(folder / "label" / f"{frame_id}.png", label)
        if staging.previews:
            preview = render_preview(frame.data, frame.corridor, label)
            atomic_write(folder / "preview" / f"{frame_id}.png", encode_png(preview))
    return StagedFrame(
        frame_id=frame_id,
        source=tiff.name,
        corridor=corridor_name,
        label=label_name,
        height=frame.shape[0],
        width=frame.shape[1],
        geo=_geo_dict(frame),
        has_manual=manual is not None,
        # recorded per frame, read back by io.datasets.frame_gsds (scale matching)
        gsd_m=None if frame.geo is None or frame.geo.gsd_m is None else round(frame.geo.gsd_m, 6),
    )
