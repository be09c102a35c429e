"""Decoded training frames cached as fp16 files, so later epochs skip decoding and resizing.

A training phase reads every frame once per epoch (more with repeated frames), and each read
decompresses an lz4 frame, decodes its label PNG and resizes both. :class:`FrameCache` keeps
the result in a private folder the first time, one uncompressed ``.npz`` per frame and size:
``T_m`` and ``T_u`` minus the frame's corridor median in float16 (exact to 0.008 degC within
32 degC of the median, 0.03 degC within 128), the corridor and the label, and the median
itself in float64. Loader workers in other processes share the files, and the operating
system keeps them in memory as far as memory allows, so there is one copy, not one per
worker. A frame is only written while the disk keeps :data:`RESERVE_FRACTION` of its space
and at least :data:`RESERVE_BYTES` free; past that, frames are decoded as without a cache.
Files are written atomically, so workers racing on one frame never read half a file.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io.atomic import atomic_path
from ..io.datasets import read_sample

if TYPE_CHECKING:
    from ..io.datasets import Sample

#: Share of the cache's disk that must stay free: frames past it are not cached.
RESERVE_FRACTION = 0.05
#: Bytes that must stay free on the cache's disk whatever its size.
RESERVE_BYTES = 2**30


class FrameCache:
    """A folder of decoded frames; ``FrameCache()`` makes a private temporary one, removed
    when the cache is garbage-collected or the process exits."""

    def __init__(self, folder: str | Path | None = None) -> None:
        if folder is None:
            folder = tempfile.mkdtemp(prefix="taseg-frames-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, folder, True)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def __getstate__(self) -> dict[str, Path]:
        # Loader workers read and fill the folder; only the creating process removes it.
        return {"folder": self.folder}

    def __setstate__(self, state: dict[str, Path]) -> None:
        self.folder = state["folder"]

    def _path(self, sample: Sample, size: tuple[int, int] | None) -> Path:
        stats = [(str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size)
                 for p in (sample.image, sample.label)]
        key = hashlib.sha256(repr((stats, size)).encode()).hexdigest()[:32]
        return self.folder / f"{key}.npz"

    def read(self, sample: Sample, size: tuple[int, int] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """``read_sample(sample, size)`` and the corridor median, from the cache when there.

        Returns:
            ``(data H x W x 3 float32 degC, corridor bool, label uint8, median degC)``.
        """
        path = self._path(sample, size)
        try:
            with np.load(path) as stored:
                packed, median = stored["frame"], float(stored["median"])
        except (OSError, KeyError, ValueError):
            data, corridor, label = read_sample(sample, size)
            t_u = data[..., 2]
            median = float(np.median(t_u[corridor] if corridor.any() else t_u))
            self._store(path, data, corridor, label, median)
            return data, corridor, label, median
        rel = packed[..., :2].astype(np.float32) + np.float32(median)
        data = np.stack([rel[..., 0], rel[..., 0], rel[..., 1]], axis=-1)
        return data, packed[..., 2] > 0, packed[..., 3].astype(np.uint8), median

    def _store(self, path: Path, data: np.ndarray, corridor: np.ndarray, label: np.ndarray,
               median: float) -> None:
        packed = np.empty((*data.shape[:2], 4), np.float16)
        packed[..., 0] = data[..., 0] - median
        packed[..., 1] = data[..., 2] - median
        packed[..., 2] = corridor
        packed[..., 3] = label
        try:
            usage = shutil.disk_usage(self.folder)
            if usage.free - 2 * packed.nbytes < max(RESERVE_FRACTION * usage.total,
                                                    RESERVE_BYTES):
                return
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, frame=packed, median=np.float64(median))
        except OSError:  # a full or vanished cache folder only costs speed
            return
