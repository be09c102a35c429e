"""Seeded synthetic winter-night thermal scenes and datasets in the TASeg layout.

A scene imitates a drone thermal frame of a street at night, like the sample frame
``KA1_DJI_0_0095_R`` (``T_u`` about -4..8 degC, mean about -1.3 degC): a ground temperature
with low-frequency drift and texture; asphalt roads slightly warmer than the ground; buildings
with cold or warm roofs, warm edges and hot vents; cold tree crowns with bare branches; parked
cars with cold bodies and, when recently driven, hot engine blocks; very hot street lamps with
a halo; warm manholes; and a district-heating pipe that follows the main road, with its faint
warm trace and a corridor of varying width around it (15-25 % of the frame unless the frame
is very elongated). Zero to three leaks are diffuse, elongated warm plumes on the pipe
(+1.5..+5 degC at their peak, 150-3000 px at 512 x 640). The sensor adds a slight optical
blur and noise (0.05-0.09 degC).

That scene is the family ``karlsruhe_winter``, the default. Other families
(:data:`.scenes.FAMILIES`: ``suburb_snow``, ``city_wet``, ``industrial_gravel``,
``rural_coarse``, ``campus_mixed``) vary what real night flights vary: GSD 3-15 cm/px with
object sizes scaling, ambient -15..+10 degC, NETD 30-80 mK, stripes, vignetting and blur,
snow, gravel and wet patches, branches and broken pipe traces, round, elongated, irregular,
merged, tiny and faint leaks, and many leak-free frames. Scenes are painted as a sequence of
named layers (:mod:`.scenes`).

A seed gives a bit-identical scene and different seeds give different scenes. Features are
sized for 512 x 640 frames and scale with the frame (leaks stay at least a few pixels wide).

Label convention (every family): a leak label covers the area the leak makes clearly warmer
than its local surroundings -- the pixels where the leak adds at least 30 % of its peak heat
(and at least two NETD), one piece per leak, inside the corridor -- not its faint halo. The
pipe's heat trace, lamps, manholes, engines and building heat are never labelled; they are
recorded in the scene's distractor instance map (``instances``, ``instance_classes``).
``bait_mask`` marks the objects that fool the classical method: lamps, manholes, engine
blocks and roof vents.

:func:`write_dataset` writes ``generated_set`` (labels by :func:`.classical.classical_label`,
noisy like the published automatic labels) and ``manual_set`` (labels = ``leak_mask``).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thermal_anomaly_segmenter.errors import DatasetExistsError, InvalidInputError
from thermal_anomaly_segmenter.io.atomic import move_into_place
from thermal_anomaly_segmenter.io.dataset_writer import check_split_shares, split_counts, write_info
from thermal_anomaly_segmenter.io.formats import write_frame, write_label
from thermal_anomaly_segmenter.scenes import (
    DEFAULT_FAMILY,
    FAMILIES,
    LEAK_MASK_FRACTION,
    Scene,
    get_family,
    render_scene,
)
from thermal_anomaly_segmenter.scenes.render import MAX_SIDE, MIN_SIDE, check_int

__all__ = [
    "DEFAULT_AMBIENT_DEGC",
    "DEFAULT_FAMILY",
    "FAMILIES",
    "GENERATOR_VERSION",
    "LEAK_MASK_FRACTION",
    "Scene",
    "make_scene",
    "write_dataset",
]

#: Ground temperature of the default scene, chosen so the frame mean is about -1.3 degC.
DEFAULT_AMBIENT_DEGC = FAMILIES[DEFAULT_FAMILY].ambient_centre_degc
#: Version of the scene recipe; recorded in dataset_info.json, bumped when scenes change
#: (2: scene families; ``karlsruhe_winter`` frames are unchanged from version 1).
GENERATOR_VERSION = 2

_MIN_SIDE = MIN_SIDE
_MAX_SIDE = MAX_SIDE
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SPLIT_NAMES = ("train", "val", "test")
_check_int = check_int


#: Render one seeded synthetic night-flight scene: the published name of
#: :func:`.scenes.render.render_scene`.
make_scene = render_scene


# --------------------------------------------------------------------------- datasets


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInputError(
            f"{kind} {name!r} must be a plain folder name (letters, digits, '.', '_', '-')"
        )
    return name


def _stream_key(name: str) -> int:
    # Stable across processes and Python versions, unlike hash(); keys a set's seed stream.
    return zlib.crc32(name.encode("utf-8"))


def _frame_seed(seed: int, set_name: str, index: int) -> int:
    ss = np.random.SeedSequence(seed, spawn_key=(_stream_key(set_name), index))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def write_dataset(
    root: str | Path,
    n_frames: int,
    *,
    seed: int = 0,
    height: int = 512,
    width: int = 640,
    splits: Sequence[float] = (0.7, 0.15, 0.15),
    sets: Sequence[str] = ("generated_set", "manual_set"),
    subset: str = "synthetic",
    families: Sequence[str] | str = (DEFAULT_FAMILY,),
) -> Path:
    """Write synthetic datasets in the TASeg layout under ``root``.

    Per set, the frames are split (seeded, disjoint) into train/val/test and written as::

        <root>/<set>/dataset_info.json
        <root>/<set>/image/<subset>_<split>/<id>.npy.lz4
        <root>/<set>/label/<subset>_<split>/<id>.png

    ``dataset_info.json`` follows the published TASeg format: ``subsets`` lists the subset
    folders and ``default_splits`` maps each split to the subset folders it reads (the
    published loader takes every file of those folders), here ``{"train":
    ["<subset>_train"], ...}``. The key ``generator`` records the recipe and, under
    ``split_ids``, each split's frames as ``"<subset folder>/<id>"``. Ids are
    ``frame_0000``, ``frame_0001``, ... in generation order.

    ``generated_set`` labels come from :func:`.classical.classical_label` (noisy automatic
    labels); every other set is labelled with the exact leak footprints (``manual_set``).
    Each set draws its frames from its own seed stream (derived from ``seed`` and the set
    name), so the sets hold different frames, and a set's frames do not depend on which other
    sets are written. With several ``families``, frame ``i`` is of family
    ``families[i % len(families)]``; frames of a family other than ``karlsruhe_winter`` also
    key their seed on the family name.

    Each frame's distractor instance map goes to
    ``<root>/<set>/distractors/<subset>_<split>/<id>.png`` (uint16, 0 = none) and the class of
    each instance id to ``generator.frames[<id>].distractor_classes`` (id ``k`` at ``k - 1``),
    for training a false-alarm classifier; TASeg's loaders ignore that folder.

    Args:
        root: Folder to write into; created if missing.
        n_frames: Frames per set (>= 1).
        seed: Base seed (>= 0).
        height: Frame height in pixels.
        width: Frame width in pixels.
        splits: Shares of (train, val, test), non-negative, summing to 1.
        sets: Set folder names.
        subset: Prefix of the subset folder names.
        families: Scene family names (see :data:`.scenes.FAMILIES`), used in turn.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        DatasetExistsError: If a set folder already exists and is not empty (a
            ``FileExistsError`` and a ``TasegError``, so adapters report it in one line).
        InvalidInputError: If an argument is invalid.
    """
    n_frames = _check_int("n_frames", n_frames, 1)
    seed = _check_int("seed", seed, 0)
    height = _check_int("height", height, _MIN_SIDE, _MAX_SIDE)
    width = _check_int("width", width, _MIN_SIDE, _MAX_SIDE)
    subset = _check_name("subset", subset)
    sets = _check_sets(sets)
    recipe = _Recipe(n_frames, seed, height, width, check_split_shares(splits), subset,
                     _check_families(families))
    root = Path(root)
    for name in sets:
        target = root / name
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise DatasetExistsError(
                f"{target} already exists and is not an empty folder; refusing to overwrite "
                "it. Remove it or choose another root."
            )
    root.mkdir(parents=True, exist_ok=True)
    for name in sets:
        _write_set(root, name, recipe)
    return root


@dataclass(frozen=True)
class _Recipe:
    """The checked arguments of :func:`write_dataset` that every set shares."""

    n_frames: int
    seed: int
    height: int
    width: int
    fractions: list[float]
    subset: str
    families: tuple[str, ...]


def _check_sets(sets: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(sets, str):
        sets = (sets,)
    sets = tuple(_check_name("set name", s) for s in sets)
    if not sets or len(set(sets)) != len(sets):
        raise InvalidInputError(f"sets must be non-empty and without duplicates, got {sets}")
    return sets


def _check_families(families: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(families, str):
        families = (families,)
    families = tuple(get_family(f).name for f in families)
    if not families or len(set(families)) != len(families):
        raise InvalidInputError(
            f"families must be non-empty and without duplicates, got {families}"
        )
    return families


def _split_plan(name: str, recipe: _Recipe) -> tuple[dict[str, str], dict[str, list[str]],
                                                     list[int]]:
    """Set ``name``'s seeded split: the subset folder of each frame id, the ids of each split
    (as ``"<subset folder>/<id>"``) and the frames per split."""
    n_frames, subset = recipe.n_frames, recipe.subset
    ids = [f"frame_{i:04d}" for i in range(n_frames)]
    order = np.random.Generator(
        np.random.PCG64(
            np.random.SeedSequence(recipe.seed, spawn_key=(_stream_key(name), 1 << 31)))
    ).permutation(n_frames)
    counts = split_counts(n_frames, recipe.fractions)
    bounds = np.cumsum([0, *counts])
    split_of: dict[str, str] = {}
    split_ids: dict[str, list[str]] = {}
    for k, split in enumerate(_SPLIT_NAMES):
        members = sorted(int(j) for j in order[bounds[k] : bounds[k + 1]])
        folder = f"{subset}_{split}"
        split_ids[split] = [f"{folder}/{ids[j]}" for j in members]
        for j in members:
            split_of[ids[j]] = folder
    return split_of, split_ids, counts


def _write_frames(folder: Path, name: str, recipe: _Recipe,
                  split_of: dict[str, str]) -> dict[str, dict]:
    """Render and write set ``name``'s frames, labels and distractor maps into ``folder``;
    return each frame's record for ``dataset_info.json``."""
    from thermal_anomaly_segmenter.models.triangle import classical_label

    auto = name == "generated_set"
    families = recipe.families
    frames: dict[str, dict] = {}
    for i in range(recipe.n_frames):
        frame_id = f"frame_{i:04d}"
        family = families[i % len(families)]
        key = name if family == DEFAULT_FAMILY else f"{name}/{family}"
        frame_seed = _frame_seed(recipe.seed, key, i)
        scene = make_scene(frame_seed, recipe.height, recipe.width, family=family)
        label = classical_label(scene.data, scene.corridor) if auto else scene.leak_mask
        subset_folder = split_of[frame_id]
        write_frame(folder / "image" / subset_folder / f"{frame_id}.npy.lz4", scene.data)
        write_label(folder / "label" / subset_folder / f"{frame_id}.png", label)
        _write_instances(folder / "distractors" / subset_folder / f"{frame_id}.png", scene)
        frames[frame_id] = {
            "seed": frame_seed,
            "n_leaks": scene.n_leaks,
            "family": family,
            "gsd_m": round(scene.gsd_m, 4),
            "distractor_classes": list(scene.instance_classes),
        }
    return frames


def _write_set(root: Path, name: str, recipe: _Recipe) -> None:
    """Write set ``name`` under ``root`` (checked empty or absent)."""
    split_of, split_ids, counts = _split_plan(name, recipe)
    used_splits = [s for s, c in zip(_SPLIT_NAMES, counts, strict=True) if c > 0]
    # Build in a hidden sibling folder and rename at the end: readers never see a
    # half-written set, and a failure leaves nothing behind.
    tmp = root / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()  # not mkdtemp: its 0700 mode would stay on the finished set
    try:
        frames = _write_frames(tmp, name, recipe, split_of)
        for split in used_splits:  # an empty split still gets its (empty) folders
            (tmp / "image" / f"{recipe.subset}_{split}").mkdir(parents=True, exist_ok=True)
            (tmp / "label" / f"{recipe.subset}_{split}").mkdir(parents=True, exist_ok=True)
        write_info(tmp, recipe.subset, used_splits, "generator", {
                "name": "taseg.synthetic",
                "version": GENERATOR_VERSION,
                "families": list(recipe.families),
                "seed": recipe.seed,
                "height": recipe.height,
                "width": recipe.width,
                "n_frames": recipe.n_frames,
                "splits": recipe.fractions,
                "labels_from": "classical_label" if name == "generated_set" else "leak_mask",
                "split_ids": split_ids,
                "frames": frames,
        })
        target = root / name
        if target.exists():
            target.rmdir()  # empty (checked above); rename cannot replace it everywhere
        move_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_instances(path: Path, scene: Scene) -> None:
    """The distractor instance map as a lossless uint16 PNG."""
    import cv2

    if scene.instances is None or len(scene.instance_classes) > np.iinfo(np.uint16).max:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), scene.instances.astype(np.uint16)):
        raise OSError(f"could not write {path}")
