"""Build a TASeg dataset from a survey: temperature TIFFs, corridor masks and hand labels.

Inputs (top-level files only; sub-folders are not searched):

- ``tiff_dir``: one single-band float temperature TIFF/GeoTIFF (degC) per frame,
  ``<stem>.tif`` or ``<stem>.tiff``. A 3-band ``(T_m, T_m, T_u)`` TIFF is accepted too; its
  ``T_u`` is recomposed with the corridor mask.
- ``corridor_dir``: one pipeline corridor mask per frame, matched by file stem:
  ``<stem>.png``, ``<stem>.tif``, ``<stem>.tiff`` or ``<stem>.npy``, nonzero = corridor.
  It may be the same folder as ``tiff_dir``.
- ``labels_dir`` (optional): hand-drawn leak footprints ``<stem>.png`` holding 0/1 or 0/255.
  Frames without one go to ``generated_set`` only.
- ``review`` (optional): a ``review.json`` exported by ``taseg report``'s page
  (:mod:`.review`). A frame without a hand label whose every listed anomaly was decided leak
  or false alarm gets the confirmed leaks' footprints as its ``manual_set`` label; every
  decided component becomes an example for the false-alarm stage in
  ``<out_dir>/review_examples.json``.

Output, in the layout the training loader reads (:mod:`.io.datasets`) and the same
``dataset_info.json`` format as :func:`.synthetic.write_dataset`::

    <out_dir>/generated_set/dataset_info.json
    <out_dir>/generated_set/image/<subset>_<split>/<id>.npy.lz4   (T_m, T_m, T_u) float32
    <out_dir>/generated_set/label/<subset>_<split>/<id>.png       triangle auto-label, 0/1
    <out_dir>/generated_set/preview/<subset>_<split>/<id>.png     T_u + corridor + label
    <out_dir>/manual_set/...                                       same, hand labels

``generated_set`` holds every usable frame, labelled by :func:`.classical.classical_label`;
``manual_set`` holds the frames with a usable hand label (it is not written when there is
none). ``<id>`` is the sanitised frame stem (:func:`.io.frames.frame_stem`).

Splits are seeded and disjoint, and a frame has the same split in both sets: hand-labelled
frames are split first (so ``manual_set`` gets the requested shares), then the others, and
``generated_set`` is the union. Pre-training on the auto-labelled ``generated_set`` therefore
never sees a frame of the ``manual_set`` validation or test split.

Bad inputs: folder-level problems (missing folder, no TIFF, bad arguments, existing output)
raise at once. A bad frame (no corridor mask, corrupt file, size mismatch, implausible
temperatures) is skipped with a warning and listed in :attr:`BuildReport.skipped`; a bad hand
label (not binary, wrong size, corrupt) drops only that frame from ``manual_set``. The build
fails only when no frame is usable. The dataset is built in a hidden sibling folder and renamed
into place at the end, so a failed or interrupted build leaves nothing behind and an existing
non-empty ``out_dir`` is never touched.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.config import GSD_MAX_M
from thermal_anomaly_segmenter.datasets.staging import (
    SET_GENERATED,
    SET_MANUAL,
    Corridor,
    Skipped,
    StagedFrame,
    Staging,
    stage_frames,
)
from thermal_anomaly_segmenter.errors import (
    DatasetError,
    DatasetExistsError,
    DatasetNotFoundError,
    InvalidInputError,
)
from thermal_anomaly_segmenter.io.atomic import atomic_write, move_into_place
from thermal_anomaly_segmenter.io.dataset_writer import check_split_shares, split_counts, write_info

log = logging.getLogger(__name__)


#: Version of the build recipe; recorded in dataset_info.json, bumped when outputs change.
BUILDER_VERSION = 1
#: Suffixes of frame TIFFs in ``tiff_dir`` (compared case-insensitively).
TIFF_SUFFIXES: tuple[str, ...] = (".tif", ".tiff")
#: Suffixes of corridor masks in ``corridor_dir``, in order of preference.
CORRIDOR_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff", ".npy")
#: Suffix of hand labels in ``labels_dir``.
LABEL_SUFFIX = ".png"

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class BuildOptions:
    """How :func:`build_dataset` reads a survey and lays out the dataset.

    Checked on construction (InvalidInputError); ``splits`` is kept as three floats.
    """

    #: Folder of hand-drawn labels ``<stem>.png`` (0/1 or 0/255), or None.
    labels_dir: str | os.PathLike[str] | None = None
    #: Pipe network layer instead of a corridor folder: each georeferenced TIFF gets the
    #: corridor buffered from its lines (:mod:`.geo.network`); others are skipped.
    pipes: str | os.PathLike[str] | None = None
    #: Full corridor width with ``pipes``, metres (default 8).
    corridor_width_m: float | None = None
    #: Prefix of the subset folders (``<subset>_train`` ...).
    subset: str = "survey"
    #: Shares of (train, val, test), non-negative, summing to 1.
    splits: Sequence[float] = (0.7, 0.15, 0.15)
    #: Seed of the split (>= 0).
    seed: int = 0
    #: Write ``preview/<subset>_<split>/<id>.png`` per set.
    previews: bool = True
    #: A ``review.json`` of ``report.html`` (see the module docstring).
    review: str | os.PathLike[str] | None = None
    #: Ground sampling distance (m/px) of the frames without a metric georeference,
    #: recorded per frame (training and evaluation use it: scale matching,
    #:mod:`~thermal_anomaly_segmenter.io.gsd`).
    gsd_m: float | None = None

    def __post_init__(self) -> None:
        gsd_m, seed, subset = self.gsd_m, self.seed, self.subset
        if gsd_m is not None and not 0 < gsd_m <= GSD_MAX_M:
            raise InvalidInputError(
                f"gsd_m must be within 0..{GSD_MAX_M:g} m per pixel, got {gsd_m}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InvalidInputError(f"seed must be an integer >= 0, got {seed!r}")
        if not isinstance(subset, str) or not _NAME_RE.match(subset):
            raise InvalidInputError(
                f"subset {subset!r} must be a plain folder name (letters, digits, '.', '_', '-')"
            )
        object.__setattr__(self, "seed", int(seed))
        object.__setattr__(self, "splits", tuple(check_split_shares(self.splits)))


@dataclass
class BuildReport:
    """What :func:`build_dataset` wrote and what it left out.

    Attributes:
        out_dir: The dataset folder (holds ``generated_set`` and maybe ``manual_set``).
        splits: ``{set name: {split: [ids]}}`` of every written set.
        skipped: Frames and labels left out, with the reason.
        unmatched_labels: Label files in ``labels_dir`` without a frame of the same stem.
        warnings: Other things to check (e.g. an empty split, no ``manual_set``).
    """

    out_dir: Path
    splits: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    unmatched_labels: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Frames labelled from the review, and components kept as false-alarm stage examples.
    reviewed_frames: list[str] = field(default_factory=list)
    review_examples: int = 0

    def count(self, set_name: str) -> int:
        """Number of frames written to ``set_name`` (0 when the set was not written)."""
        return sum(len(ids) for ids in self.splits.get(set_name, {}).values())

    def summary(self) -> str:
        """A few lines for a terminal: counts per set and split, then what was left out."""
        lines = [f"dataset: {self.out_dir}"]
        for set_name, splits in self.splits.items():
            parts = ", ".join(f"{split} {len(ids)}" for split, ids in splits.items())
            lines.append(f"  {set_name}: {self.count(set_name)} frames ({parts})")
        lines += [f"  skipped {s.kind} {s.name}: {s.reason}" for s in self.skipped]
        if self.reviewed_frames or self.review_examples:
            lines.append(f"  review: {len(self.reviewed_frames)} frame(s) labelled, "
                         f"{self.review_examples} component(s) kept as false-alarm examples")
        if self.unmatched_labels:
            lines.append(f"  labels without a frame: {', '.join(self.unmatched_labels)}")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _check_dir(kind: str, path: str | os.PathLike[str]) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise DatasetNotFoundError(f"{kind} {folder} does not exist")
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{kind} {folder} is not a folder")
    return folder


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DatasetExistsError(
            f"{out_dir} already exists and is not an empty folder; refusing to overwrite it. "
            "Remove it or choose another output folder."
        )


def _files_by_stem(folder: Path, suffixes: Sequence[str]) -> dict[str, list[Path]]:
    """Top-level files of ``folder`` with one of ``suffixes``, grouped by their stem."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        suffix = path.suffix.lower()
        if suffix in suffixes and path.stem and path.is_file():
            found.setdefault(path.stem, []).append(path)
    return found


def assign_splits(
    labelled: Sequence[str], unlabelled: Sequence[str], fractions: Sequence[float], seed: int
) -> dict[str, str]:
    """Seeded split of frame ids, stratified by having a hand label.

    Each group is shuffled with its own seeded stream and cut by the shares, so the hand-
    labelled frames get the requested shares on their own and the result depends only on the
    ids, the shares and the seed (not on the order ids are given in).

    Args:
        labelled: Ids of frames with a hand label.
        unlabelled: Ids of the other frames.
        fractions: Shares of (train, val, test).
        seed: Seed (>= 0).

    Returns:
        ``{id: split}`` with split ``"train"``, ``"val"`` or ``"test"``.
    """
    split_of: dict[str, str] = {}
    for group, ids in (("labelled", labelled), ("unlabelled", unlabelled)):
        ordered = sorted(ids)
        # crc32 keys a stable stream per group (hash() changes between processes).
        stream = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(group.encode()),))
        order = np.random.default_rng(stream).permutation(len(ordered))
        bounds = np.cumsum([0, *split_counts(len(ordered), fractions)])
        for k, split in enumerate(SPLIT_NAMES):
            for j in order[bounds[k] : bounds[k + 1]]:
                split_of[ordered[int(j)]] = split
    return split_of


def _pick_one(candidates: list[Path], frame: Path, corridor_dir: Path) -> Path:
    """The one corridor mask of ``frame``; InvalidInputError when there is none or several."""
    candidates = [p for p in candidates if p.resolve() != frame.resolve()]
    if not candidates:
        names = "/".join(f"{frame.stem}{suffix}" for suffix in CORRIDOR_SUFFIXES)
        raise InvalidInputError(f"no corridor mask {names} in {corridor_dir}")
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise InvalidInputError(f"several corridor masks match ({names}); keep one")
    return candidates[0]


@dataclass
class _Survey:
    """The checked inputs of a build: folders, pipe network, review, and the files found."""

    tiff_dir: Path
    corridor_dir: Path | None
    labels: Path | None
    network: Any = None
    width: float | None = None
    review: Any = None
    tiffs: list[Path] = field(default_factory=list)
    corridors: dict[str, list[Path]] = field(default_factory=dict)
    label_files: dict[str, list[Path]] = field(default_factory=dict)

    def corridor_for(self, tiff: Path) -> Corridor:
        """The TIFF's corridor (InvalidInputError when it has none)."""
        if self.network is not None:
            return (self.network.source, self.network.raster_corridor(tiff, self.width))
        return _pick_one(self.corridors.get(tiff.stem, []), tiff, self.corridor_dir)


def _open_survey(
    tiff_dir: str | os.PathLike[str],
    corridor_dir: str | os.PathLike[str] | None,
    options: BuildOptions,
) -> _Survey:
    """Check the input folders and read the pipe network and the review, if any."""
    tiffs = _check_dir("tiff_dir", tiff_dir)
    if (corridor_dir is None) == (options.pipes is None):
        raise InvalidInputError("give either a corridor mask folder or a pipe network")
    survey = _Survey(tiffs, None, None)
    if options.pipes is not None:
        from thermal_anomaly_segmenter.geo.network import DEFAULT_CORRIDOR_WIDTH_M, PipeNetwork

        survey.network = PipeNetwork.read(options.pipes)
        survey.width = (DEFAULT_CORRIDOR_WIDTH_M if options.corridor_width_m is None
                        else options.corridor_width_m)
    else:
        survey.corridor_dir = _check_dir("corridor_dir", corridor_dir)  # type: ignore[arg-type]
    if options.labels_dir is not None:
        survey.labels = _check_dir("labels_dir", options.labels_dir)
    if options.review is not None:
        from thermal_anomaly_segmenter.false_alarms.review import Review

        survey.review = Review.read(options.review)
    return survey


def _list_files(survey: _Survey) -> list[str]:
    """Find the survey's TIFFs, corridor masks and labels; return the labels without a frame."""
    survey.tiffs = [
        p for paths in _files_by_stem(survey.tiff_dir, TIFF_SUFFIXES).values() for p in paths
    ]
    if not survey.tiffs:
        raise DatasetError(f"tiff_dir {survey.tiff_dir} holds no .tif/.tiff file")
    if survey.network is None:
        survey.corridors = _files_by_stem(survey.corridor_dir, CORRIDOR_SUFFIXES)  # type: ignore[arg-type]
    if survey.labels is not None:
        survey.label_files = _files_by_stem(survey.labels, (LABEL_SUFFIX,))
        if not survey.label_files:
            raise DatasetError(f"labels_dir {survey.labels} holds no .png label")
    frame_stems = {p.stem for p in survey.tiffs}
    unmatched = sorted(p.name for stem, paths in survey.label_files.items()
                       if stem not in frame_stems for p in paths)
    for name in unmatched:
        log.warning("label %s has no frame of the same stem in %s; ignored", name,
                    survey.tiff_dir)
    return unmatched


def _finish_set(
    set_dir: Path,
    items: list[StagedFrame],
    split_of: dict[str, str],
    options: BuildOptions,
    labels_from: str,
) -> dict[str, list[str]]:
    """Move a set's staged files into their split folders and write dataset_info.json."""
    subset, previews = options.subset, options.previews
    kinds = [("image", ".npy.lz4"), ("label", ".png")] + ([("preview", ".png")] if previews else [])
    split_ids: dict[str, list[str]] = {split: [] for split in SPLIT_NAMES}
    for item in sorted(items, key=lambda it: it.frame_id):
        split_ids[split_of[item.frame_id]].append(item.frame_id)
    for split, ids in split_ids.items():
        folder = f"{subset}_{split}"
        for kind, suffix in kinds:
            (set_dir / kind / folder).mkdir(parents=True, exist_ok=True)
            for frame_id in ids:
                name = f"{frame_id}{suffix}"
                move_into_place(set_dir / kind / name, set_dir / kind / folder / name)
    for split, ids in split_ids.items():
        if not ids:  # keep the synthetic layout: only used subsets have folders
            for kind, _ in kinds:
                (set_dir / kind / f"{subset}_{split}").rmdir()
    write_info(set_dir, subset, [s for s in SPLIT_NAMES if split_ids[s]], "builder", {
            "name": "taseg.dataset_builder",
            "version": BUILDER_VERSION,
            "seed": options.seed,
            "splits": list(options.splits),
            "labels_from": labels_from,
            "split_ids": {
                s: [f"{subset}_{s}/{frame_id}" for frame_id in ids] for s, ids in split_ids.items()
            },
            "frames": {
                item.frame_id: {
                    "source": item.source,
                    "corridor": item.corridor,
                    **({"label": item.label} if labels_from != "classical_label" else {}),
                    "height": item.height,
                    "width": item.width,
                    **({"geo": item.geo} if item.geo is not None else {}),
                    **({"gsd_m": item.gsd_m} if item.gsd_m is not None else {}),
                }
                for item in sorted(items, key=lambda it: it.frame_id)
            },
        })
    return split_ids


def _write_sets(staging: Path, items: list[StagedFrame], survey: _Survey, options: BuildOptions,
                report: BuildReport) -> None:
    """Split the staged frames and finish ``generated_set`` and (if any) ``manual_set``."""
    manual = [it for it in items if it.has_manual]
    split_of = assign_splits(
        [it.frame_id for it in manual],
        [it.frame_id for it in items if not it.has_manual],
        options.splits,
        options.seed,
    )
    report.splits[SET_GENERATED] = _finish_set(
        staging / SET_GENERATED, items, split_of, options, "classical_label")
    if manual:
        labels_from = "hand_label" if survey.review is None else (
            "review" if survey.labels is None else "hand_label+review")
        report.splits[SET_MANUAL] = _finish_set(
            staging / SET_MANUAL, manual, split_of, options, labels_from)
    else:
        report.warnings.append(
            "no usable hand label: manual_set was not written, so the fine_tune phase "
            "cannot run on this dataset"
        )
    for set_name, set_splits in report.splits.items():
        empty = [
            s
            for s, f in zip(SPLIT_NAMES, options.splits, strict=True)
            if f > 0 and not set_splits[s]
        ]
        if empty:
            report.warnings.append(
                f"{set_name}: split(s) {', '.join(empty)} are empty (only "
                f"{report.count(set_name)} frame(s)); add frames before training on them"
            )


def _write_review_examples(staging: Staging, items: list[StagedFrame],
                           report: BuildReport) -> None:
    """Write the reviewed components as false-alarm stage examples (``review_examples.json``)."""
    import json

    from thermal_anomaly_segmenter.false_alarms.review import EXAMPLES_NAME, examples_document

    review = staging.review
    unknown = sorted(set(review.decisions) - {it.frame_id for it in items})
    if unknown:
        report.warnings.append(f"review: no usable frame for {', '.join(unknown[:5])}")
    report.review_examples = len(staging.examples)
    atomic_write(staging.folder / EXAMPLES_NAME, json.dumps(
        examples_document(staging.examples, review.source), indent=1) + "\n")


def _build_in(tmp: Path, survey: _Survey, options: BuildOptions, report: BuildReport) -> None:
    """Stage the usable frames in ``tmp``, then lay out the sets there."""
    staging = Staging(tmp, options.previews, survey.review)
    items = stage_frames(survey.tiffs, survey.corridor_for, survey.label_files, staging)
    report.skipped, report.reviewed_frames = staging.skipped, staging.reviewed_frames
    for item in items:
        item.gsd_m = item.gsd_m if item.gsd_m is not None else options.gsd_m
    if not items:
        first = "; ".join(f"{s.name}: {s.reason}" for s in report.skipped[:3])
        raise DatasetError(
            f"none of the {len(survey.tiffs)} TIFF(s) in {survey.tiff_dir} is usable ({first})"
        )
    _write_sets(tmp, items, survey, options, report)
    if survey.review is not None:
        _write_review_examples(staging, items, report)
    for warning in report.warnings:
        log.warning("%s", warning)


def build_dataset(
    tiff_dir: str | os.PathLike[str],
    corridor_dir: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    options: BuildOptions | None = None,
) -> BuildReport:
    """Turn a survey's temperature TIFFs and corridor masks into a TASeg dataset.

    See the module docstring for the input and output layout and the handling of bad inputs.

    Args:
        tiff_dir: Folder of single-band float temperature TIFFs (degC), one per frame.
        corridor_dir: Folder of corridor masks matched by stem (PNG/TIFF/npy, nonzero =
            corridor); may equal ``tiff_dir``. None with ``options.pipes``.
        out_dir: Dataset folder to create; must not exist or be empty.
        options: Labels, pipe network, subset name, splits, seed, previews, review, GSD
            (:class:`BuildOptions`; default its defaults).

    Returns:
        What was written and what was skipped.

    Raises:
        DatasetNotFoundError: An input folder is missing or not a folder.
        DatasetExistsError: ``out_dir`` exists and is not empty (nothing is written).
        DatasetError: No TIFF in ``tiff_dir``, no PNG in ``labels_dir``, or no usable frame.
        InvalidInputError: An argument is invalid.
    """
    options = options or BuildOptions()
    survey = _open_survey(tiff_dir, corridor_dir, options)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    report = BuildReport(out_dir=out_dir)
    report.unmatched_labels = _list_files(survey)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # A hidden sibling, renamed at the end: readers never see a half-built dataset, a failure
    # leaves nothing behind, and the rename stays on one file system.
    tmp = out_dir.parent / f".{out_dir.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()  # not mkdtemp: its 0700 mode would stay on the finished dataset
    try:
        _build_in(tmp, survey, options, report)
        _check_out_dir(out_dir)  # again: another process may have filled it meanwhile
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked); rename cannot replace a folder everywhere
        move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report
