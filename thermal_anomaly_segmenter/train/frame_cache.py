"""Decoded training frames cached as fp16 files, so later epochs skip decoding and resizing.

A training phase reads every frame once per epoch (more with repeated frames), and each read
decompresses an lz4 frame, decodes its label PNG and resizes both. :class:`FrameCache` keeps
the result in a private folder the first time, one uncompressed ``.npz`` per frame and size:
``T_m`` and ``T_u`` minus the frame's corridor median as float16 planes (exact to 0.008 degC
within 32 degC of the median, 0.03 degC within 128), the corridor and the label as uint8
planes, and the median itself in float64. Batches augmented on the device take the float16
planes as they are (:meth:`FrameCache.read_relative`). Loader workers in other processes
share the files, and the operating system keeps them in memory as far as memory allows, so
there is one copy, not one per worker. A frame is only written while the disk keeps
:data:`RESERVE_FRACTION` of its space and at least :data:`RESERVE_BYTES` free; past that,
frames are decoded as without a cache.
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

from thermal_anomaly_segmenter.io.atomic import atomic_path
from thermal_anomaly_segmenter.io.datasets import read_sample

if TYPE_CHECKING:
    from thermal_anomaly_segmenter.io.datasets import Sample

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
        key = hashlib.sha256(repr((stats, size, sample.scale)).encode()).hexdigest()[:32]
        return self.folder / f"{key}.npz"

    def read(self, sample: Sample, size: tuple[int, int] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """``read_sample(sample, size)`` and the corridor median, from the cache when there.

        Returns:
            ``(data H x W x 3 float32 degC, corridor bool, label uint8, median degC)``.
        """
        rel, corridor, label, median = self.read_relative(sample, size)
        data = np.empty((*rel.shape[1:], 3), np.float32)
        np.add(rel[0], np.float32(median), out=data[..., 0], dtype=np.float32)
        data[..., 1] = data[..., 0]
        np.add(rel[1], np.float32(median), out=data[..., 2], dtype=np.float32)
        return data, corridor, label, median

    def read_relative(self, sample: Sample, size: tuple[int, int] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """The cached form itself: ``(2 x H x W float16 (T_m, T_u) minus the median,
        corridor bool, label uint8, median degC)``; decoded and stored on a miss."""
        path = self._path(sample, size)
        try:
            with np.load(path) as stored:
                rel, masks = stored["relative"], stored["masks"]
                median = float(stored["median"])
            return rel, masks[0].view(bool), masks[1], median
        except (OSError, KeyError, ValueError):
            pass
        data, corridor, label = read_sample(sample, size)
        t_u = data[..., 2]
        median = float(np.median(t_u[corridor] if corridor.any() else t_u))
        rel = np.stack([data[..., 0], data[..., 2]]) - np.float32(median)
        rel = rel.astype(np.float16)
        masks = np.stack([corridor.view(np.uint8), label.astype(np.uint8)])
        self._store(path, rel, masks, median)
        return rel, masks[0].view(bool), masks[1], median

    def _store(self, path: Path, rel: np.ndarray, masks: np.ndarray, median: float) -> None:
        try:
            usage = shutil.disk_usage(self.folder)
            if usage.free - 2 * (rel.nbytes + masks.nbytes) < max(
                    RESERVE_FRACTION * usage.total, RESERVE_BYTES):
                return
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, relative=rel, masks=masks, median=np.float64(median))
        except OSError:  # a full or vanished cache folder only costs speed
            return
