"""The overlay PNG of a streamed orthomosaic (:mod:`.ortho`): a downsampled overview drawn
like a frame's overlay, its background sampled from the blocks the stream reads anyway."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from thermal_anomaly_segmenter.config import PredictOptions
from thermal_anomaly_segmenter.geo.ortho_anomalies import Fragment
from thermal_anomaly_segmenter.geo.ortho_source import Source
from thermal_anomaly_segmenter.inference.postprocess import Anomaly, Prediction
from thermal_anomaly_segmenter.inference.segmenter import Segmenter
from thermal_anomaly_segmenter.io.frames import T_MAX_DEGC, T_MIN_DEGC, Frame

#: Largest side of the downsampled overlay PNG.
OVERLAY_MAX_SIDE = 2048


class OverlayCanvas:
    """The overlay's background, T_u every ``k``-th pixel, sampled from the blocks the stream
    reads anyway, so the overlay costs no read of its own."""

    def __init__(self, height: int, width: int) -> None:
        self.k = max(1, math.ceil(max(height, width) / OVERLAY_MAX_SIDE))
        self.shape = (math.ceil(height / self.k), math.ceil(width / self.k))
        self.image = np.full(self.shape, np.nan, np.float32)

    def add(self, row: int, col: int, t_u: np.ndarray, valid: np.ndarray) -> None:
        k = self.k
        fy, fx = -row % k, -col % k  # the window's first rows / columns on the k-grid
        sample = t_u[fy::k, fx::k]
        usable = valid[fy::k, fx::k] & (sample >= T_MIN_DEGC) & (sample <= T_MAX_DEGC)
        y, x = (row + fy) // k, (col + fx) // k
        self.image[y:y + sample.shape[0], x:x + sample.shape[1]] = np.where(usable, sample,
                                                                           np.nan)

    def t_u(self, median: float) -> np.ndarray:
        """T_u per cell; cells of blocks never read (away from the pipes) and unusable
        pixels get the corridor median."""
        return np.where(np.isnan(self.image), np.float32(median), self.image)


def write_overlay(src: Source, canvas: OverlayCanvas, merged: list[Fragment], median: float,
                   segmenter: Segmenter, options: PredictOptions, target: Path,
                   stem: str) -> None:
    """A downsampled overview PNG drawn by
    :func:`~thermal_anomaly_segmenter.outputs.overlay.render_overlay`.

    The background is the input's own overviews when it has some (one cheap decimated
    read), else T_u sampled from the blocks while streaming (:class:`OverlayCanvas`).
    """
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.features import rasterize

    from thermal_anomaly_segmenter.io.atomic import atomic_write
    from thermal_anomaly_segmenter.outputs.overlay import render_overlay
    from thermal_anomaly_segmenter.outputs.write import encode_png

    ds = src.ds
    h, w = canvas.shape
    if ds.overviews(src.band):
        t_u = ds.read(src.band, out_shape=(h, w), out_dtype="float32",
                      resampling=Resampling.average, boundless=False)
        bad = ~np.isfinite(t_u) | (t_u < T_MIN_DEGC) | (t_u > T_MAX_DEGC)
        if src.nodata is not None and not math.isnan(src.nodata):
            bad |= t_u == np.float32(src.nodata)
        t_u[bad] = median
    else:
        t_u = canvas.t_u(median)
    small = ds.transform @ Affine.scale(canvas.k)
    corr = src.corridor.mask(small, (h, w))
    to_small = Affine.scale(1 / canvas.k)
    labels = np.zeros((h, w), np.int32)
    anomalies = []
    if merged:
        import shapely

        m = [to_small.a, to_small.b, to_small.d, to_small.e, to_small.c, to_small.f]
        scaled = [shapely.affinity.affine_transform(f.geom, m) for f in merged]
        labels = rasterize(((g, i) for i, g in enumerate(scaled, 1)), out_shape=(h, w),
                           all_touched=True, dtype="int32")
        for i, (frag, g) in enumerate(zip(merged, scaled, strict=True), start=1):
            x0, y0, x1, y1 = g.bounds
            mean_t = frag.sum_t / frag.n
            anomalies.append(Anomaly(
                id=i, area_px=frag.n, area_m2=None,
                bbox=(int(x0), int(y0), max(int(x0) + 1, math.ceil(x1)),
                      max(int(y0) + 1, math.ceil(y1))),
                centroid=(g.centroid.x, g.centroid.y), max_t_degc=frag.max_t,
                mean_t_degc=mean_t, mean_dt_degc=mean_t - median,
                mean_probability=frag.sum_p / frag.n,
            ))
    # render_overlay draws T_u only: a broadcast view stands for the three channels (two
    # three-channel copies of the canvas cost 0.2 s at 16000^2)
    data = np.broadcast_to(t_u.astype(np.float32, copy=False)[..., None], (h, w, 3))
    pred = Prediction(
        frame=Frame(data, corr, stem, None), probability=np.zeros((h, w), np.float32),
        mask=(labels > 0).view(np.uint8) if merged else np.zeros((h, w), np.uint8),
        labels=labels, anomalies=anomalies, corridor_median_degc=median,
        threshold=options.threshold, model_name=segmenter.model_type,
    )
    atomic_write(target, encode_png(render_overlay(pred, max_side=OVERLAY_MAX_SIDE + 256)))
