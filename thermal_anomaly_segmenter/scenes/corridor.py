"""Streets, the pipe, its corridor (with an optional branch) and the pipe's heat trace."""

from __future__ import annotations

import math

import numpy as np

from thermal_anomaly_segmenter.scenes.canvas import Canvas
from thermal_anomaly_segmenter.scenes.geometry import inside, int_pts, pt, resample, route, tangents


def streets(c: Canvas) -> None:
    """Main street (the pipe runs under it) with sidewalks, and straight side streets."""
    import cv2

    f, rng = c.family, c.rng
    c.route = route(rng, c.height, c.width, c.scale, f.bend_sigma, f.corner_p)
    c.tangent = tangents(c.route)
    c.normal = np.stack([-c.tangent[:, 1], c.tangent[:, 0]], axis=1)
    c.road_w = rng.uniform(*f.road_w) * c.scale
    c.walk_w = rng.uniform(*f.walk_w) * c.scale
    c.road_dt = rng.uniform(*f.road_dt)
    street = [int_pts(c.route[::3])]
    cv2.polylines(c.surface, street, False, rng.uniform(*f.walk_dt),
                  thickness=max(int(c.road_w + 2 * c.walk_w), 3), shift=2)
    cv2.polylines(c.surface, street, False, c.road_dt, thickness=max(int(c.road_w), 2), shift=2)
    cv2.polylines(c.blocked, street, False, 1, thickness=max(int(c.road_w + 3 * c.walk_w), 3),
                  shift=2)
    for _ in range(int(rng.integers(f.side_streets[0], f.side_streets[1] + 1))):
        ang = rng.uniform(0, math.pi)
        centre = np.array([rng.uniform(0, c.width), rng.uniform(0, c.height)])
        d = np.array([math.cos(ang), math.sin(ang)]) * 2 * max(c.height, c.width)
        w = max(int(rng.uniform(20, 40) * c.scale), 2)
        dt = c.road_dt + rng.uniform(-0.25, 0.1)
        cv2.line(c.surface, pt(centre - d), pt(centre + d), dt, w, shift=2)
        cv2.line(c.blocked, pt(centre - d), pt(centre + d), 1, int(w + 3 * c.walk_w), shift=2)


def corridor(c: Canvas) -> None:
    """The pipe under the street and a corridor of slowly varying width around it."""
    import cv2

    f, rng = c.family, c.rng
    c.pipe = c.route + c.normal * rng.uniform(-0.35, 0.35) * c.road_w
    c.inside = np.flatnonzero(inside(c.pipe, c.height, c.width))
    if c.inside.size == 0:  # pragma: no cover - route() guarantees a long stretch inside
        c.inside = np.arange(len(c.pipe))
    target = rng.uniform(*f.corridor_share)
    arc = np.arange(len(c.pipe), dtype=np.float64)
    c.profile = 1 + rng.uniform(0.05, 0.2) * np.sin(
        2 * math.pi * arc / (rng.uniform(300, 800) * c.scale) + rng.uniform(0, 2 * math.pi)
    )
    r0 = target * c.height * c.width / (2 * max(c.inside.size, 1))
    mask = np.zeros(c.shape, np.uint8)
    centres = int_pts(c.pipe[::2], shift=0).reshape(-1, 2)
    for _ in range(3):  # the first guess ignores clipped ends and bends; correct it
        r0 = float(np.clip(r0, 3.0, 0.35 * min(c.height, c.width)))
        mask[:] = 0
        for (x, y), p in zip(centres, c.profile[::2], strict=True):
            cv2.circle(mask, (int(x), int(y)), max(int(r0 * p), 2), 1, -1)
        frac = mask.mean()
        if abs(frac - target) < 0.01 or frac == 0:
            break
        r0 *= target / frac
    c.r0 = r0
    _branch(c, mask)
    c.corridor = mask.astype(bool)
    c.blocked |= mask


def _branch(c: Canvas, mask: np.ndarray) -> None:
    """A branch pipe leaving the main pipe at a T, under a side street, to the frame edge."""
    import cv2

    ex = c.extra
    if c.family.branch_p <= 0 or ex.random() >= c.family.branch_p:
        return
    i = int(ex.choice(c.inside))
    turn = ex.choice([-1.0, 1.0]) * ex.uniform(math.radians(60), math.radians(120))
    t = c.tangent[i]
    heading = math.atan2(t[1], t[0]) + turn
    direction = np.array([math.cos(heading), math.sin(heading)])
    diag = math.hypot(c.height, c.width)
    pts = resample(np.stack([c.pipe[i], c.pipe[i] + direction * 2 * diag]))
    keep = inside(pts, c.height, c.width)
    if keep.sum() < 10:
        return
    pts = pts[: int(np.flatnonzero(keep)[-1]) + 1]
    road = max(int(c.road_w * ex.uniform(0.5, 0.8)), 2)
    cv2.polylines(c.surface, [int_pts(pts[::3])], False, c.road_dt, thickness=road, shift=2)
    cv2.polylines(c.blocked, [int_pts(pts[::3])], False, 1, thickness=int(road + 2 * c.walk_w),
                  shift=2)
    half = max(c.r0 * ex.uniform(0.55, 0.8), 2.0)
    for x, y in int_pts(pts[::2], shift=0).reshape(-1, 2):
        cv2.circle(mask, (int(x), int(y)), int(half), 1, -1)
    c.branch_sites = (pts, tangents(pts), half)


def pipe_trace(c: Canvas) -> None:
    """The pipe's own faint, continuous (sometimes broken) warm trace: never a leak."""
    import cv2

    f, rng = c.family, c.rng
    c.trace = np.zeros(c.shape, np.float32)
    thickness = max(int(4 * c.scale), 2)
    pieces = [c.pipe]
    if c.branch_sites is not None:
        pieces.append(c.branch_sites[0])
    amp = rng.uniform(*f.trace_dt)
    if f.trace_break_p > 0 and c.extra.random() < f.trace_break_p:
        pieces = [p for piece in pieces for p in _broken(c.extra, piece, c.scale)]
    for piece in pieces:
        if len(piece) >= 2:
            cv2.polylines(c.trace, [int_pts(piece[::3])], False, amp, thickness=thickness,
                          shift=2)
    c.trace = cv2.GaussianBlur(c.trace, (0, 0), max(5.0 * c.scale, 1.0))
    peak = float(c.trace.max())
    if peak > 0:
        c.instances[c.trace > 0.3 * peak] = c.new_instance("pipe_trace")


def _broken(ex: np.random.Generator, pts: np.ndarray, scale: float) -> list[np.ndarray]:
    """Pieces of a polyline with gaps (insulation intact, pipe deeper, snow cover)."""
    out, i = [], 0
    while i < len(pts):
        run = int(ex.uniform(40, 200) * scale) + 2
        if ex.random() < 0.7:
            out.append(pts[i : i + run])
        i += run + int(ex.uniform(10, 60) * scale)
    return out or [pts]

