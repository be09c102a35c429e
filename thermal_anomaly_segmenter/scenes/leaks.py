"""Leak layer: warm plumes on the pipe, of several shapes, and their labels.

Label convention (the same in every family): a leak's label covers the area that the leak
makes clearly warmer than its local surroundings, i.e. the pixels where the leak's own
excess heat is at least :data:`LEAK_MASK_FRACTION` of its peak (and at least two NETD), in
one piece per leak, inside the corridor. The faint wide halo around a leak is not labelled,
and neither is anything else (pipe trace, lamps, manholes, engines, buildings).
"""

from __future__ import annotations

import math

import numpy as np

from thermal_anomaly_segmenter.scenes.canvas import Canvas
from thermal_anomaly_segmenter.scenes.geometry import inside

#: A leak pixel is labelled where the leak adds at least this share of its peak heat.
LEAK_MASK_FRACTION = 0.3
#: Leak shapes, in the order of :attr:`.Family.leak_shapes`.
SHAPES: tuple[str, ...] = ("plume", "round", "elongated", "irregular", "merged")
PLUME_WOBBLE = 0.35


def leaks(c: Canvas, n_leaks: int) -> None:
    """Place ``n_leaks`` leaks on the pipe (or a branch) and label them."""
    f, rng = c.family, c.rng
    min_gap = 80 * c.scale
    chosen: list[int] = []
    # Leak centres keep off the frame edge, so the footprint is not cut to a sliver.
    sites = np.flatnonzero(inside(c.pipe, c.height, c.width, margin=-max(10 * c.scale, 3)))
    if sites.size == 0:  # pragma: no cover - only for pipes hugging the frame edge
        sites = c.inside
    weights = np.asarray(f.leak_shapes, dtype=float)
    weights /= weights.sum()
    for _ in range(n_leaks):
        for _attempt in range(30):
            i = int(rng.choice(sites))
            if all(abs(i - j) >= min_gap for j in chosen):
                break
        chosen.append(i)
        centre, tangent, half = c.pipe[i], c.tangent[i], c.r0 * c.profile[i]
        if c.branch_sites is not None and c.leak_rng.random() < 0.3:
            pts, tans, half = c.branch_sites
            k = int(c.leak_rng.integers(0, len(pts)))
            centre, tangent = pts[k], tans[k]
        shape = "plume" if weights[0] == 1.0 else SHAPES[int(c.leak_rng.choice(5, p=weights))]
        _leak(c, shape, centre, tangent, half)
    c.leak &= c.corridor.view(np.uint8)


def _leak(c: Canvas, shape: str, centre: np.ndarray, tangent: np.ndarray, half: float) -> None:
    if shape == "merged":
        ex = c.leak_rng
        normal = np.array([-tangent[1], tangent[0]])
        step = ex.uniform(6, 16) * c.scale
        for k in range(int(ex.integers(2, 4))):
            offset = tangent * step * k + normal * ex.normal(0, 2 * c.scale)
            _leak(c, str(ex.choice(["plume", "round", "irregular"])), centre + offset, tangent,
                  half)
        return
    if shape == "plume":
        blobs = _plume(c, centre, tangent, half)
    else:
        blobs = _other(c, shape, centre, tangent, half)
    _render(c, *blobs)


def _plume(c: Canvas, centre: np.ndarray, tangent: np.ndarray, half: float):
    """The original shape: a diffuse plume spreading mostly along the pipe."""
    f, rng, scale = c.family, c.rng, c.scale
    normal = np.array([-tangent[1], tangent[0]])
    centre = centre + normal * rng.uniform(-0.25, 0.25) * half
    n_blobs = int(rng.integers(2, 6))
    size = math.exp(rng.uniform(0.0, math.log(f.leak_size_max)))  # small leaks are common
    spread = rng.uniform(5, 20) * size * scale
    along = rng.uniform(-1, 1, n_blobs) * spread
    across = rng.normal(0, 2.0 * scale, n_blobs)
    s_along = np.maximum(rng.uniform(4, 12, n_blobs) * size * scale, f.leak_min_sigma[0])
    s_across = np.maximum(rng.uniform(2.5, 6, n_blobs) * size * scale, f.leak_min_sigma[1])
    s_across = np.minimum(s_across, 0.35 * half + 1.0)
    s_along = np.maximum(s_along, s_across)
    weights = rng.uniform(0.5, 1.0, n_blobs)
    peak_dt = rng.uniform(*f.leak_peak_dt)
    wobble = rng.normal(0, 1, (5, 5)).astype(np.float32)
    return centre, tangent, along, across, s_along, s_across, weights, peak_dt, wobble, PLUME_WOBBLE


def _other(c: Canvas, shape: str, centre: np.ndarray, tangent: np.ndarray, half: float):
    """Round cores, elongated streaks along the pipe, irregular clusters."""
    f, ex, scale = c.family, c.leak_rng, c.scale
    normal = np.array([-tangent[1], tangent[0]])
    centre = centre + normal * ex.uniform(-0.3, 0.3) * half
    size = math.exp(ex.uniform(0.0, math.log(f.leak_size_max)))
    lo_a, lo_c = f.leak_min_sigma
    if shape == "round":
        n = int(ex.integers(1, 3))
        s = np.maximum(ex.uniform(3, 8, n) * size * scale, lo_c)
        along, across = ex.normal(0, 0.3, n) * s, ex.normal(0, 0.3, n) * s
        s_along, s_across, wobble_amp = s, s * ex.uniform(0.85, 1.0, n), 0.15
    elif shape == "elongated":
        n = int(ex.integers(2, 5))
        s_across = np.maximum(ex.uniform(1.5, 4, n) * size * scale, lo_c)
        s_along = np.maximum(s_across * ex.uniform(3, 6, n), lo_a)
        along = np.linspace(-1, 1, n) * s_along.mean() * ex.uniform(0.5, 1.5)
        across = ex.normal(0, 0.5 * scale, n)
        wobble_amp = 0.2
    else:  # irregular
        n = int(ex.integers(4, 9))
        radius = ex.uniform(4, 12) * size * scale
        along, across = ex.normal(0, radius, n), ex.normal(0, 0.6 * radius, n)
        s_along = np.maximum(ex.uniform(2, 6, n) * size * scale, lo_a)
        s_across = np.maximum(ex.uniform(2, 6, n) * size * scale, lo_c)
        wobble_amp = 0.6
    s_across = np.minimum(s_across, 0.4 * half + 1.0)
    weights = ex.uniform(0.5, 1.0, len(along))
    peak_dt = ex.uniform(*f.leak_peak_dt)
    wobble = ex.normal(0, 1, (5, 5)).astype(np.float32)
    return (centre, tangent, along, across, s_along, s_across, weights, peak_dt, wobble,
            wobble_amp)


def _render(c: Canvas, centre, tangent, along, across, s_along, s_across, weights, peak_dt,
            wobble, wobble_amp) -> None:
    """Add one leak's heat (and halo) to ``glow`` and its labelled footprint to ``leak``."""
    import cv2

    f = c.family
    if f.faint_p > 0 and c.leak_rng.random() < f.faint_p:
        peak_dt = c.netd * c.leak_rng.uniform(3.0, 6.0)  # just above the noise
    halo_share = c.leak_rng.uniform(*f.halo) if f.halo[1] > 0 else 0.0
    halo_scale = c.leak_rng.uniform(2.5, 4.0) if halo_share else 1.0
    normal = np.array([-tangent[1], tangent[0]])
    reach = np.max(np.abs(along) + 3 * s_along)
    if wobble_amp != PLUME_WOBBLE:  # the plume keeps the original window (same pixels)
        reach = max(reach, np.max(np.abs(across) + 3 * s_across))
    r = int(math.ceil(reach * halo_scale))
    x0, x1 = max(int(centre[0]) - r, 0), min(int(centre[0]) + r + 1, c.width)
    y0, y1 = max(int(centre[1]) - r, 0), min(int(centre[1]) + r + 1, c.height)
    if x0 >= x1 or y0 >= y1:  # pragma: no cover - centres lie on the pipe inside the frame
        return
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(centre[0])
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(centre[1])
    u = xs * np.float32(tangent[0]) + ys * np.float32(tangent[1])  # along the pipe
    v = xs * np.float32(normal[0]) + ys * np.float32(normal[1])  # across
    heat = np.zeros((y1 - y0, x1 - x0), np.float32)
    for a, cc, sa, sc, w in zip(along, across, s_along, s_across, weights, strict=True):
        heat += np.float32(w) * np.exp(-0.5 * (((u - a) / sa) ** 2 + ((v - cc) / sc) ** 2))
    # Low-frequency multiplicative wobble makes the outline irregular, not elliptical.
    heat *= 1.0 + wobble_amp * cv2.resize(wobble, (x1 - x0, y1 - y0),
                                          interpolation=cv2.INTER_CUBIC)
    np.maximum(heat, 0, out=heat)
    heat *= np.float32(peak_dt / max(float(heat.max()), 1e-6))
    if halo_share:
        # Warm water soaking the ground around the core: wide, faint, never labelled.
        sa, sc = float(np.max(s_along)) * halo_scale, float(np.max(s_across)) * halo_scale
        heat += np.float32(halo_share * peak_dt) * np.exp(-0.5 * ((u / sa) ** 2 + (v / sc) ** 2))
    c.glow[y0:y1, x0:x1] += heat
    level = max(LEAK_MASK_FRACTION * peak_dt, 2.0 * c.netd)
    footprint = (heat > level).view(np.uint8)
    # A person draws one outline per leak: keep the main piece, drop wobble fragments.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(footprint, connectivity=8)
    if n > 2:
        footprint = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).view(np.uint8)
    c.leak[y0:y1, x0:x1] |= footprint
