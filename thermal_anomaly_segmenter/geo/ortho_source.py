"""The orthomosaic opened for streaming (:mod:`.ortho`) and its first pass: the corridor's
median temperature, the reference of relative inputs and of dT as for a frame, exact to
0.01 degC through a histogram."""

from __future__ import annotations

import math

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.geo.network import Corridor
from thermal_anomaly_segmenter.geo.ortho_tiling import extent
from thermal_anomaly_segmenter.io.frames import T_MAX_DEGC, T_MIN_DEGC

_HIST_STEP = 0.01  # degC per histogram bin of the corridor median


class Source:
    """The orthomosaic opened with rasterio: the T_u band, its validity, the corridor."""

    def __init__(self, dataset, corridor: Corridor, source: str) -> None:
        self.ds, self.corridor, self.source = dataset, corridor, source
        if dataset.count not in (1, 3):
            raise InvalidInputError(
                f"{source}: orthomosaic has {dataset.count} bands; give one band (T_u) or "
                "three (T_m, T_m, T_u)"
            )
        self.band = dataset.count  # T_u is the last band
        self.nodata = dataset.nodatavals[self.band - 1]

    def corridor_mask(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        """The corridor rasterised on a window (before pixel validity)."""
        from rasterio.windows import Window
        from rasterio.windows import transform as window_transform

        return self.corridor.mask(window_transform(Window(col, row, w, h), self.ds.transform),
                                  (h, w))

    def read(self, row: int, col: int, h: int, w: int, corridor: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(T_u float32, valid, corridor)`` of a window (``corridor``: already rasterised)."""
        from rasterio.windows import Window

        t_u = self.ds.read(self.band, window=Window(col, row, w, h), out_dtype="float32")
        valid = np.isfinite(t_u)
        if self.nodata is not None and not math.isnan(self.nodata):
            valid &= t_u != np.float32(self.nodata)
        if corridor is None:
            corridor = self.corridor_mask(row, col, h, w)
        corridor &= valid
        return t_u, valid, corridor


def _check_plausible(values: np.ndarray, source: str) -> None:
    lo, hi = float(values.min()), float(values.max())
    if lo < T_MIN_DEGC or hi > T_MAX_DEGC:
        raise InvalidInputError(
            f"{source}: corridor temperatures {lo:.1f}..{hi:.1f} lie outside "
            f"{T_MIN_DEGC:g}..{T_MAX_DEGC:g} degC; convert raw counts or Kelvin to degC first"
        )


def corridor_statistics(src: Source, blocks) -> tuple[float, int]:
    """Corridor median (histogram, 0.01 degC) and corridor pixel count. Each block is read
    only over its corridor's extent (a block often holds one thin pipe)."""
    bins = int((T_MAX_DEGC - T_MIN_DEGC) / _HIST_STEP) + 1
    hist = np.zeros(bins, np.int64)
    for row, col, h, w in blocks:
        corridor = src.corridor_mask(row, col, h, w)
        if not corridor.any():
            continue
        y0, y1, x0, x1 = extent(corridor)
        t_u, _, corridor = src.read(row + y0, col + x0, y1 - y0, x1 - x0,
                                    corridor[y0:y1, x0:x1])
        values = t_u[corridor]
        if values.size:
            _check_plausible(values, src.source)
            idx = np.rint((values - T_MIN_DEGC) / _HIST_STEP).astype(np.int64)
            hist += np.bincount(idx, minlength=bins)
    total = int(hist.sum())
    if not total:
        raise InvalidInputError(
            f"{src.source}: the pipe corridor covers no valid pixel of the orthomosaic"
        )
    median_bin = int(np.searchsorted(np.cumsum(hist), (total + 1) / 2))
    return T_MIN_DEGC + median_bin * _HIST_STEP, total
