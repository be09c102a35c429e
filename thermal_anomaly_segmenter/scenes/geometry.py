"""Drawing and geometry helpers shared by the scene layers (numpy + cv2, seeded by callers)."""

from __future__ import annotations

import math

import numpy as np


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int], amplitude: float
) -> np.ndarray:
    """Zero-mean random field varying over about ``cells`` periods, standard deviation ~amp."""
    import cv2

    grid = rng.normal(0.0, amplitude, size=(cells[0] + 1, cells[1] + 1)).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def gauss1d(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a 1-D signal with edge replication (keeps the curve's ends)."""
    if sigma < 0.5 or len(values) < 3:
        return values
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, radius, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def resample(points: np.ndarray, step: float = 1.0) -> np.ndarray:
    """Points spaced ``step`` pixels apart along a polyline."""
    seg = np.hypot(*np.diff(points, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.arange(0.0, arc[-1] + 1e-9, step)
    return np.stack([np.interp(s, arc, points[:, 0]), np.interp(s, arc, points[:, 1])], axis=1)


def route(
    rng: np.random.Generator,
    height: int,
    width: int,
    scale: float,
    bend_sigma: float = 0.2,
    corner_p: float = 0.2,
) -> np.ndarray:
    """A smooth street-like curve through the frame, as ~1 px spaced (x, y) points.

    Grown both ways from a point near the centre, in straight stretches with bends of
    ``bend_sigma`` rad and right-angle street corners (probability ``corner_p`` per
    stretch), then rounded; it may end inside the frame.
    """
    diag = math.hypot(height, width)
    for _ in range(20):
        centre = np.array([width * rng.uniform(0.3, 0.7), height * rng.uniform(0.3, 0.7)])
        theta = rng.uniform(0.0, 2 * math.pi)
        halves = []
        for turn in (0.0, math.pi):
            length = rng.uniform(0.35, 1.0) * diag
            n_seg = int(rng.integers(1, 4))
            heading = theta + turn
            pts = [centre]
            for k, seg_len in enumerate(rng.dirichlet(np.ones(n_seg)) * length):
                if k > 0:
                    corner = rng.random() < corner_p
                    heading += (
                        rng.choice([-1, 1]) * math.pi / 2 if corner else rng.normal(0, bend_sigma)
                    )
                pts.append(pts[-1] + seg_len * np.array([math.cos(heading), math.sin(heading)]))
            halves.append(np.array(pts))
        poly = np.concatenate([halves[1][::-1], halves[0][1:]])
        pts = resample(poly)
        sigma = 14.0 * scale
        pts = np.stack([gauss1d(pts[:, 0], sigma), gauss1d(pts[:, 1], sigma)], axis=1)
        pts = resample(pts)
        if inside(pts, height, width).sum() >= 0.5 * min(height, width):
            return pts
    # Pathological draws only: a straight line through the centre always works.
    t = np.linspace(-0.5, 0.5, int(diag) + 1)[:, None]
    return np.array([width / 2, height / 2]) + t * np.array([width, height])


def inside(pts: np.ndarray, height: int, width: int, margin: float = 0.0) -> np.ndarray:
    return (
        (pts[:, 0] >= -margin)
        & (pts[:, 0] <= width - 1 + margin)
        & (pts[:, 1] >= -margin)
        & (pts[:, 1] <= height - 1 + margin)
    )


def tangents(pts: np.ndarray) -> np.ndarray:
    d = np.gradient(pts, axis=0)
    return d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]


def int_pts(pts: np.ndarray, shift: int = 2) -> np.ndarray:
    """Fixed-point int32 coordinates for cv2 drawing with ``shift`` fractional bits."""
    return np.round(pts * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)


def pt(xy: np.ndarray, shift: int = 2) -> tuple[int, int]:
    """One fixed-point (x, y) point for cv2 drawing."""
    return int(round(float(xy[0]) * (1 << shift))), int(round(float(xy[1]) * (1 << shift)))


def add_gaussian(img: np.ndarray, cx: float, cy: float, sigma: float, amp: float) -> None:
    """Add an isotropic gaussian glow, evaluated only in its 3-sigma window."""
    r = int(math.ceil(3 * sigma))
    x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 1, img.shape[1])
    y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 1, img.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    gx = np.exp(-0.5 * ((np.arange(x0, x1) - cx) / sigma) ** 2)
    gy = np.exp(-0.5 * ((np.arange(y0, y1) - cy) / sigma) ** 2)
    img[y0:y1, x0:x1] += (amp * gy[:, None] * gx[None, :]).astype(np.float32)


def box(cx: float, cy: float, length: float, width: float, angle: float) -> np.ndarray:
    """Corners (4 x 2) of a rectangle centred at (cx, cy), long side along ``angle`` (rad)."""
    import cv2

    return cv2.boxPoints(((cx, cy), (length, width), math.degrees(angle)))


def stamp_free(blocked: np.ndarray, corners: np.ndarray) -> bool:
    """Claim a polygon's pixels in ``blocked`` if it is inside the frame and touches none.

    Works in the polygon's bounding box only: big frames place many buildings.
    """
    import cv2

    height, width = blocked.shape
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 1, (width, height))
    if x0 >= x1 or y0 >= y1:
        return False
    stamp = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(stamp, int_pts(corners - (x0, y0)), 1, shift=2)
    window = blocked[y0:y1, x0:x1]
    if not stamp.any() or (stamp & window).any():
        return False
    window |= stamp
    return True
