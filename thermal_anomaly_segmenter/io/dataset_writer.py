"""Writing a set in the TASeg layout: split shares, frames per split, ``dataset_info.json``.

:func:`write_info` is the one writer of ``dataset_info.json`` (used by the synthetic generator
and the dataset builder); :mod:`thermal_anomaly_segmenter.io.datasets` reads what it
writes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.io.atomic import atomic_write
from thermal_anomaly_segmenter.io.datasets import INFO_NAME, SPLITS


def check_split_shares(splits: Sequence[float]) -> list[float]:
    """``splits`` as three non-negative (train, val, test) shares summing to 1, or an error."""
    try:
        fractions = [float(f) for f in splits]
    except (TypeError, ValueError):
        raise InvalidInputError(f"splits must be three numbers, got {splits!r}") from None
    if (
        len(fractions) != 3
        or any(not math.isfinite(f) or f < 0 for f in fractions)
        or abs(sum(fractions) - 1.0) > 1e-6
    ):
        raise InvalidInputError(
            f"splits must be three non-negative shares (train, val, test) summing to 1, "
            f"got {tuple(splits)}"
        )
    return fractions


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Frames per split for ``n`` frames and shares ``fractions`` (largest remainder).

    Every split with a positive share gets a frame when there are enough frames.
    """
    raw = [n * f for f in fractions]
    counts = [math.floor(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda k: raw[k] - counts[k], reverse=True)
    for k in order[: n - sum(counts)]:
        counts[k] += 1
    for k, f in enumerate(fractions):
        if f > 0 and counts[k] == 0:
            donor = max(range(len(counts)), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[k] += 1
    return counts


def write_info(
    set_dir: Path, subset: str, used: Sequence[str], provenance_key: str, provenance: dict
) -> Path:
    """Write a set's ``dataset_info.json`` in the published format, atomically.

    Split ``s`` reads the subset folder ``<subset>_<s>`` when ``s`` is in ``used`` and
    nothing otherwise; ``provenance`` (how the set was made) goes under ``provenance_key``.
    """
    info = {
        "image_type": "thermal",
        "masked": True,
        "subsets": [f"{subset}_{s}" for s in SPLITS if s in used],
        "labels": ["background", "thermal"],
        "default_splits": {s: [f"{subset}_{s}"] if s in used else [] for s in SPLITS},
        "channel_mode": "mixed",
        provenance_key: provenance,
    }
    path = set_dir / INFO_NAME
    atomic_write(path, json.dumps(info, indent=2) + "\n")
    return path
