"""Terrain layers: parcels, snow, wet patches, ground drift and texture, gravel."""

from __future__ import annotations

import math

import numpy as np

from thermal_anomaly_segmenter.scenes.canvas import Canvas
from thermal_anomaly_segmenter.scenes.geometry import box, int_pts, pt, smooth_noise


def parcels(c: Canvas) -> None:
    """Lawns, yards and car parks of slightly different temperature."""
    import cv2

    f, rng = c.family, c.rng
    for _ in range(c.count(*f.parcels)):
        centre = np.array([rng.uniform(0, c.width), rng.uniform(0, c.height)])
        size = rng.uniform(80, 260, size=2) * c.scale
        corners = box(*centre, *size, rng.uniform(0, math.pi))
        cv2.fillConvexPoly(c.surface, int_pts(corners), rng.uniform(*f.parcel_dt), shift=2)


def snow(c: Canvas) -> None:
    """Snow on the open ground: cold and smooth (streets, painted later, are cleared)."""
    lo, hi = c.family.snow_cover
    if hi <= 0:
        return
    share = c.extra.uniform(lo, hi)
    field = smooth_noise(c.extra, c.shape, (5, 5), 1.0)
    cover = field > np.quantile(field, 1.0 - share)
    c.surface[cover] = np.float32(c.extra.uniform(-1.2, -0.5))


def wet_patches(c: Canvas) -> None:
    """Puddles and wet ground: low emissivity, so they look colder; some on the street."""
    import cv2

    lo, hi = c.family.wet_patches
    if hi <= 0:
        return
    ex = c.extra
    for _ in range(int(ex.integers(lo, hi + 1))):
        if c.route is not None and ex.random() < 0.4:
            centre = c.route[int(ex.integers(0, len(c.route)))] + ex.normal(0, 15 * c.scale, 2)
        else:
            centre = np.array([ex.uniform(0, c.width), ex.uniform(0, c.height)])
        axes = (max(int(4 * ex.uniform(8, 40) * c.scale), 4),
                max(int(4 * ex.uniform(5, 25) * c.scale), 4))
        dt = c.road_dt + ex.uniform(-1.5, -0.4)
        cv2.ellipse(c.surface, pt(centre), axes, ex.uniform(0, 180), 0, 360, dt, -1, shift=2)


def ground(c: Canvas) -> None:
    """Ground drift (a few periods per frame) and texture."""
    f, rng = c.family, c.rng
    c.ground = smooth_noise(rng, c.shape, (int(rng.integers(2, 5)),) * 2, f.ground_drift_degc)
    c.ground += smooth_noise(
        rng, c.shape, (max(c.height // 12, 2), max(c.width // 12, 2)), f.ground_texture_degc
    )


def gravel(c: Canvas) -> None:
    """Fine grain of gravel and cobbles, a few pixels across."""
    amp = c.family.gravel_degc
    if amp <= 0:
        return
    cells = (max(c.height // 3, 2), max(c.width // 3, 2))
    grain = smooth_noise(c.extra, c.shape, cells, amp)
    grain[c.roofs.astype(bool)] = 0
    c.surface += grain
