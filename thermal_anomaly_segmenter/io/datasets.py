"""Datasets in the TASeg layout: finding, validating, reading and writing them.

A dataset folder holds ``generated_set`` (automatic labels, for pre-training) and/or
``manual_set`` (hand-drawn labels, for fine-tuning), each a folder or a ``.zip`` of one::

    <set>/dataset_info.json          "default_splits": {"train": [<subset>, ...], "val": ...}
    <set>/image/<subset>/<id>.npy.lz4
    <set>/label/<subset>/<id>.png    0 = background, 1 = anomaly (0/255 converted, warned)

Reading only reads user files: a zipped set is extracted to a separate work folder (and
reused while the zip is unchanged); the zip itself is never moved, changed or deleted (the
published loader deleted it, even on remote storage). :class:`SplitIndex` is the validated
list of samples of one split. Writing a set (split shares, ``dataset_info.json``) is
:mod:`.dataset_writer`'s.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from thermal_anomaly_segmenter import limits
from thermal_anomaly_segmenter.config import GSD_MAX_M, get_settings
from thermal_anomaly_segmenter.errors import DatasetError, DatasetNotFoundError, InvalidInputError
from thermal_anomaly_segmenter.io.atomic import move_into_place
from thermal_anomaly_segmenter.io.frames import FRAME_SUFFIXES
from thermal_anomaly_segmenter.io.read import read_frame

if TYPE_CHECKING:
    from thermal_anomaly_segmenter.config import Settings

log = logging.getLogger(__name__)


SET_NAMES: tuple[str, ...] = ("generated_set", "manual_set")
INFO_NAME = "dataset_info.json"
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Other spellings of split names found in TASeg-style ``default_splits``.
_SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
#: Where zipped sets are extracted unless a caller names another folder.
DEFAULT_WORK_DIR = Path(tempfile.gettempdir()) / "taseg-datasets"


def has_set(folder: Path, name: str) -> bool:
    """Whether ``folder`` holds the set ``name`` as a folder or a zip."""
    return (folder / name).is_dir() or (folder / f"{name}.zip").is_file()


def list_dataset_folders(root: str | os.PathLike[str], depth: int = 2) -> list[Path]:
    """Folders under ``root`` (itself included) holding both ``generated_set`` and ``manual_set``.

    Each set may be a folder or a ``.zip``. Hidden folders are skipped; at most ``depth``
    levels below ``root`` are searched. The result is sorted.
    """
    root = Path(root)
    found: list[Path] = []
    level = [root] if root.is_dir() else []
    for _ in range(depth + 1):
        nxt: list[Path] = []
        for folder in level:
            if all(has_set(folder, name) for name in SET_NAMES):
                found.append(folder)
                continue
            try:
                nxt.extend(
                    p for p in folder.iterdir()
                    if p.is_dir() and not p.name.startswith(".") and p.name not in SET_NAMES
                )
            except OSError:
                continue
        level = sorted(nxt)
    return sorted(found)


def resolve_dataset_path(
    path: str | os.PathLike[str] | None, settings: Settings | None = None
) -> Path:
    """The dataset folder to train on.

    A given ``path`` must exist and hold ``generated_set`` or ``manual_set`` (folder or zip).
    Without one, the first folder of :func:`list_dataset_folders` under REMOTE_PATH, then
    DATA_PATH (the published order).

    Raises:
        DatasetNotFoundError: Nothing usable at ``path``, or no dataset folder found.
    """
    from thermal_anomaly_segmenter.config import get_settings

    settings = settings or get_settings()
    if path not in (None, ""):
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise DatasetNotFoundError(f"dataset_path {folder} does not exist or is not a folder")
        if not any(has_set(folder, name) for name in SET_NAMES):
            raise DatasetNotFoundError(
                f"dataset_path {folder} holds neither generated_set nor manual_set "
                "(folder or .zip); point it at the folder that contains them"
            )
        return folder.resolve()
    for root in (settings.remote_path, settings.data_path):
        found = list_dataset_folders(root)
        if found:
            return found[0].resolve()
    raise DatasetNotFoundError(
        f"no dataset folder (with generated_set and manual_set) under REMOTE_PATH="
        f"{settings.remote_path} or DATA_PATH={settings.data_path}; pass dataset_path"
    )


def _zip_key(zip_path: Path) -> str:
    stat = zip_path.stat()
    raw = f"{zip_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _find_set_root(folder: Path) -> Path | None:
    if (folder / INFO_NAME).is_file():
        return folder
    candidates = [p for p in folder.iterdir() if p.is_dir() and (p / INFO_NAME).is_file()]
    return candidates[0] if len(candidates) == 1 else None


def _extract_zip(zip_path: Path, work_dir: Path) -> Path:
    """Extract ``zip_path`` into a private folder of ``work_dir`` (once) and return the set root."""
    target = work_dir / f"{zip_path.name[:-4]}-{_zip_key(zip_path)}"
    if target.is_dir():
        root = _find_set_root(target)
        if root is not None:
            return root
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=work_dir))
    try:
        try:
            with zipfile.ZipFile(zip_path) as archive:
                total = packed = 0
                for info in archive.infolist():
                    name = info.filename
                    # Zip-slip: no absolute paths, drive letters or parent references.
                    parts = Path(name.replace("\\", "/")).parts
                    if name.startswith(("/", "\\")) or ".." in parts or ":" in name:
                        raise DatasetError(f"{zip_path.name}: unsafe member path {name!r}")
                    total += info.file_size
                    packed += info.compress_size
                # zipfile never inflates a member past its declared size: bounding the
                # declared total bounds the disk an extraction can fill.
                limits.check_archive_bytes(total, zip_path.name, packed,
                    limit=get_settings().max_extract_bytes)
                free = shutil.disk_usage(work_dir).free
                if total > free:
                    raise DatasetError(
                        f"{zip_path.name} needs {total / 1e9:.1f} GB to extract but {work_dir} "
                        f"has {free / 1e9:.1f} GB free; extract it yourself or free space"
                    )
                archive.extractall(tmp)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DatasetError(f"cannot extract {zip_path}: {exc}") from None
        if _find_set_root(tmp) is None:
            raise DatasetError(
                f"{zip_path.name} holds no {INFO_NAME} (at its top or in one top folder)"
            )
        if target.exists():
            shutil.rmtree(target)  # an incomplete extraction of an older run
        move_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("extracted %s to %s", zip_path, target)
    _remove_stale_extractions(target)
    return _find_set_root(target)  # type: ignore[return-value]


def _remove_stale_extractions(target: Path) -> None:
    """Remove extractions of earlier versions of the same zip (same name, other key)."""
    stem, _, key = target.name.rpartition("-")
    for old in target.parent.glob(f"{glob.escape(stem)}-*"):
        old_key = old.name[len(stem) + 1:]
        if (old != target and old.is_dir() and not old.is_symlink() and len(old_key) == len(key)
                and all(c in "0123456789abcdef" for c in old_key)):
            log.info("removing stale extraction %s", old)
            shutil.rmtree(old, ignore_errors=True)


def open_set(dataset_path: str | os.PathLike[str], name: str, work_dir: Path | None = None) -> Path:
    """The folder of set ``name`` in ``dataset_path``, extracting ``<name>.zip`` if needed.

    Raises:
        DatasetNotFoundError: Neither ``<name>/`` nor ``<name>.zip`` exists.
    """
    root = Path(dataset_path)
    folder = root / name
    if folder.is_dir():
        return folder
    archive = root / f"{name}.zip"
    if archive.is_file():
        return _extract_zip(archive, work_dir or DEFAULT_WORK_DIR)
    raise DatasetNotFoundError(f"{root} has no {name} (neither a folder nor {name}.zip)")


@dataclass(frozen=True)
class Sample:
    """One frame of a split and its label file."""

    id: str
    image: Path
    label: Path
    anomaly_px: int
    #: Ground sampling distance (m/px) of the frame when the set states it (:func:`frame_gsds`).
    gsd_m: float | None = None
    #: Read the frame shrunk by this factor (training at the model's GSD, :mod:`..scale`).
    scale: float | None = None


@dataclass
class SplitIndex:
    """The validated samples of one split of one set."""

    set_name: str
    split: str
    samples: list[Sample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def filtered(self, min_label_px: int) -> SplitIndex:
        """Samples whose label has more than ``min_label_px`` anomaly pixels."""
        kept = [s for s in self.samples if s.anomaly_px > min_label_px]
        return SplitIndex(self.set_name, self.split, kept)

    def repeated(self, times: int) -> SplitIndex:
        return SplitIndex(self.set_name, self.split, list(self.samples) * max(1, int(times)))


#: Largest dataset_info.json read (a real one lists a few subset names).
INFO_MAX_BYTES = 2**20


def read_info(set_dir: Path) -> dict[str, Any]:
    """Read and check ``dataset_info.json`` of a set folder."""
    path = set_dir / INFO_NAME
    if not path.is_file():
        raise DatasetError(f"{set_dir.name}: missing {INFO_NAME} in {set_dir}")
    try:
        if path.stat().st_size > INFO_MAX_BYTES:
            raise DatasetError(f"{set_dir.name}: {INFO_NAME} is larger than "
                               f"{INFO_MAX_BYTES // 2**20} MiB")
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{set_dir.name}: cannot read {INFO_NAME}: {exc}") from None
    except (ValueError, RecursionError):  # a 5,000-digit number, 100,000-deep nesting
        raise DatasetError(f"{set_dir.name}: {INFO_NAME} nests too deep or holds a number "
                           "too long to read") from None
    splits = info.get("default_splits") if isinstance(info, dict) else None
    if not isinstance(splits, dict):
        raise DatasetError(
            f"{set_dir.name}: {INFO_NAME} needs 'default_splits' mapping train/val/test to "
            "lists of subset folders"
        )
    return info


def _split_subsets(info: dict[str, Any], split: str, set_name: str) -> list[str]:
    splits = info["default_splits"]
    for key in _SPLIT_ALIASES.get(split, (split,)):
        if key in splits:
            subsets = splits[key]
            if isinstance(subsets, str):
                subsets = [subsets]
            if not isinstance(subsets, list) or not all(isinstance(s, str) for s in subsets):
                raise DatasetError(f"{set_name}: default_splits[{key!r}] must be a list of names")
            for i, subset in enumerate(subsets):
                parts = subset.replace("\\", "/").split("/")
                if not subset.strip() or subset.startswith(("/", "\\", "~")) or ".." in parts \
                        or ":" in subset or "\0" in subset:
                    # The entry is not echoed: it may name something outside the set.
                    raise DatasetError(
                        f"{set_name}: default_splits[{key!r}] entry {i + 1} is not a subset "
                        "folder name inside the set (absolute paths and '..' are refused)"
                    )
            return subsets
    raise DatasetError(
        f"{set_name}: {INFO_NAME} default_splits has no {split!r} entry "
        f"(has: {', '.join(splits) or 'none'})"
    )


def frame_gsds(info: dict[str, Any]) -> tuple[float | None, dict[str, float]]:
    """The ground sampling distances a set's ``dataset_info.json`` states, in m/px.

    ``gsd_m`` at the top level holds for every frame of the set (a user's survey flown at
    one height); ``generator.frames[<frame id>].gsd_m`` (``taseg synth``) or
    ``builder.frames[<frame id>].gsd_m`` (``taseg build-dataset`` from metric GeoTIFFs) per
    frame. Values that are not positive numbers are ignored.
    """

    def valid(value: Any) -> float | None:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and 0 < value <= GSD_MAX_M)
        return float(value) if ok else None

    per_frame: dict[str, float] = {}
    for maker in ("generator", "builder"):
        made = info.get(maker)
        frames = made.get("frames") if isinstance(made, dict) else None
        for frame_id, meta in frames.items() if isinstance(frames, dict) else ():
            g = valid(meta.get("gsd_m")) if isinstance(meta, dict) else None
            if g is not None:
                per_frame[str(frame_id)] = g
    return valid(info.get("gsd_m")), per_frame


def _frame_id(path: Path) -> str | None:
    lower = path.name.lower()
    for suffix in FRAME_SUFFIXES:
        if lower.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def read_label_mask(path: Path) -> np.ndarray:
    """A label PNG's raw values (``H x W``), without checks; first channel of colour PNGs."""
    import cv2

    from thermal_anomaly_segmenter.config import get_settings

    try:
        limits.check_png(path, str(path), "label", get_settings().max_pixels,
            max_bytes=get_settings().max_decoded_bytes)
    except InvalidInputError as exc:
        raise DatasetError(str(exc)) from None
    raw = np.fromfile(path, dtype=np.uint8)
    label = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if label is None:
        raise DatasetError(f"label {path} is not a readable PNG")
    return label[..., 0] if label.ndim == 3 else label


#: Value of a label PNG pixel nobody decided (partial labels from a review, ``taseg adapt``):
#: neither leak nor background. Hand labels hold 0/1 or 0/255 and never this value.
UNDECIDED_PNG = 2
#: The same pixels in a label as read for training and scoring (:func:`decode_label`):
#: left out of the loss and the metrics.
IGNORE = 255


def decode_label(raw: np.ndarray) -> np.ndarray:
    """A label PNG's values as 0 (background), 1 (anomaly) or :data:`IGNORE` (undecided)."""
    label = (raw > 0).astype(np.uint8)
    label[raw == UNDECIDED_PNG] = IGNORE
    return label


def check_label(path: Path) -> tuple[int, bool]:
    """Anomaly pixel count of a label and whether it was 0/255.

    Raises:
        DatasetError: Unreadable, or values other than 0/1 and 0/255.
    """
    label = read_label_mask(path)
    if label.dtype == np.uint8:
        values = {int(v) for v in np.flatnonzero(np.bincount(label.ravel(), minlength=256))}
    else:
        values = {int(v) for v in np.unique(label)}
    if values <= {0, 1}:
        return int(np.count_nonzero(label)), False
    if values <= {0, 1, UNDECIDED_PNG}:  # a partial label: its anomaly pixels are the 1s
        return int(np.count_nonzero(label == 1)), False
    if values <= {0, 255}:
        return int(np.count_nonzero(label)), True
    shown = ", ".join(str(v) for v in sorted(values)[:6])
    raise DatasetError(
        f"label {path} holds values {shown}; expected 0 (background) and 1 (anomaly), or "
        f"0/255 (or 0/1/{UNDECIDED_PNG} for a partial label)"
    )


def load_split(set_dir: Path, split: str, set_name: str | None = None) -> SplitIndex:
    """Index and validate one split: every frame needs a binary label of the same id.

    Raises:
        DatasetError: Missing subset folders, frames without labels, bad labels, empty split.
    """
    set_name = set_name or set_dir.name
    info = read_info(set_dir)
    subsets = _split_subsets(info, split, set_name)
    set_gsd, gsds = frame_gsds(info)
    samples: list[Sample] = []
    missing: list[str] = []
    wide = 0
    for subset in subsets:
        image_dir, label_dir = set_dir / "image" / subset, set_dir / "label" / subset
        inside = set_dir.resolve()
        if not all(d.resolve().is_relative_to(inside) for d in (image_dir, label_dir)):
            raise DatasetError(f"{set_name}: subset folder {subset!r} links outside the set")
        if not image_dir.is_dir():
            raise DatasetError(
                f"{set_name}: default_splits[{split!r}] names subset {subset!r}, but folder "
                f"image/{subset} does not exist"
            )
        for image in sorted(image_dir.iterdir()):
            frame_id = _frame_id(image)
            if frame_id is None or not image.is_file():
                continue
            label = label_dir / f"{frame_id}.png"
            if not label.is_file():
                missing.append(f"{subset}/{frame_id}")
                continue
            count, was_255 = check_label(label)
            wide += was_255
            samples.append(Sample(f"{subset}/{frame_id}", image, label, count,
                                  gsds.get(frame_id, set_gsd)))
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        shown = ", ".join(missing[:5]) + more
        raise DatasetError(
            f"{set_name}/{split}: {len(missing)} frame(s) have no label PNG in label/<subset>/: "
            f"{shown}"
        )
    if not samples:
        raise DatasetError(
            f"{set_name}: split {split!r} is empty (subsets {subsets or 'none'} hold no "
            f"frames with labels); add frames or fix default_splits in {INFO_NAME}"
        )
    if wide:
        log.warning("%s/%s: %d label(s) hold 0/255; reading them as 0/1", set_name, split, wide)
    return SplitIndex(set_name, split, samples)


def read_sample(sample: Sample, size: tuple[int, int] | None = None):
    """Read a sample as ``(data HxWx3 degC, corridor HxW bool, label HxW uint8)``.

    ``size`` (height, width) resizes frames of another size (bilinear; nearest for masks).
    """
    import cv2

    try:
        frame = read_frame(sample.image, name="sample")
    except InvalidInputError as exc:
        raise DatasetError(f"frame {sample.image}: {exc}") from None
    label = decode_label(read_label_mask(sample.label))
    data, corridor = frame.data, frame.corridor
    if label.shape != data.shape[:2]:
        raise DatasetError(
            f"label {sample.label.name} is {label.shape[0]} x {label.shape[1]} px but its frame "
            f"is {data.shape[0]} x {data.shape[1]} px"
        )
    if sample.scale is not None:  # at the model's GSD, as predict sees the frame
        from thermal_anomaly_segmenter.io.gsd import shrink

        small = shrink(frame, sample.scale)
        data, corridor = small.data, small.corridor
        share = cv2.resize((label == 1).astype(np.float32), corridor.shape[::-1],
                           interpolation=cv2.INTER_AREA)
        ignored = cv2.resize((label == IGNORE).astype(np.float32), corridor.shape[::-1],
                             interpolation=cv2.INTER_AREA)
        label = (share >= 0.5).astype(np.uint8)
        label[(ignored >= 0.5) & (label == 0)] = IGNORE
    if size is not None and tuple(size) != data.shape[:2]:
        dsize = (int(size[1]), int(size[0]))
        data = cv2.resize(data, dsize, interpolation=cv2.INTER_LINEAR)
        corridor = cv2.resize(corridor.view(np.uint8), dsize, interpolation=cv2.INTER_NEAREST) > 0
        label = cv2.resize(label, dsize, interpolation=cv2.INTER_NEAREST)
    return data, corridor, label


def frame_size(sample: Sample) -> tuple[int, int]:
    """(height, width) of a sample's frame."""
    data, _, _ = read_sample(sample)
    return int(data.shape[0]), int(data.shape[1])
