"""Retention of the server's prediction outputs.

Every API request writes its outputs under ``<model_dir>/predictions/``; without a bound
they accumulate forever on a server. After each request (after its own files, which for a
JSON answer are written in the background: :mod:`.deferred`) the newest
``TASEG_KEEP_PREDICTIONS`` frames' or orthomosaics' outputs are kept there (every kind the
API writes: PNGs, JSON, GeoJSON, GeoTIFFs, GeoPackages) and older ones removed. Only files
named like TASeg outputs are ever removed, and only in that folder. The command lines
(``taseg predict`` and the published ``python -m cli predict``) write for their user and
never prune.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from thermal_anomaly_segmenter.outputs.names import ORTHO_NAMES
from thermal_anomaly_segmenter.outputs.write import OUTPUT_NAMES

log = logging.getLogger(__name__)


def output_suffixes() -> tuple[str, ...]:
    """The file-name suffixes of every output kind the API writes: a frame's and an
    orthomosaic's (GeoTIFFs, GeoPackage), longest first so ``_mask.tif`` beats nothing."""
    return tuple(sorted({*OUTPUT_NAMES.values(), *ORTHO_NAMES.values()}, key=len, reverse=True))


def _stem(name: str, suffixes: tuple[str, ...]) -> str | None:
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def prune_outputs(out_dir: Path, keep: int) -> int:
    """Remove the outputs of all but the newest ``keep`` frames in ``out_dir``.

    A frame's outputs share a stem; a stem's age is its newest file's. Returns how many
    files were removed. ``keep`` of 0 keeps everything.
    """
    if keep <= 0:
        return 0
    stems: dict[str, list[tuple[float, Path]]] = {}
    suffixes = output_suffixes()
    try:
        with os.scandir(out_dir) as entries:
            for entry in entries:
                stem = _stem(entry.name, suffixes)
                if stem is not None and entry.is_file(follow_symlinks=False):
                    stems.setdefault(stem, []).append(
                        (entry.stat(follow_symlinks=False).st_mtime, Path(entry.path)))
    except OSError as exc:
        log.warning("cannot list %s for retention: %s", out_dir, exc)
        return 0
    if len(stems) <= keep:
        return 0
    by_age = sorted(stems.values(), key=lambda files: max(t for t, _ in files), reverse=True)
    removed = 0
    for files in by_age[keep:]:
        for _, path in files:
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue  # another request pruned it first
            except OSError as exc:
                log.warning("cannot remove old prediction %s: %s", path, exc)
    log.info("retention: removed %d files of %d old predictions in %s (keeping %d)",
             removed, len(by_age) - keep, out_dir, keep)
    return removed
