"""Seeded synthetic winter-night thermal scenes and datasets in the TASeg layout.

A scene imitates a drone thermal frame of a street at night, like the sample frame
``KA1_DJI_0_0095_R`` (``T_u`` about -4..8 degC, mean about -1.3 degC): a ground temperature
with low-frequency drift and texture; asphalt roads slightly warmer than the ground; buildings
with cold or warm roofs, warm edges and hot vents; cold tree crowns with bare branches; parked
cars with cold bodies and, when recently driven, hot engine blocks; very hot street lamps with
a halo; warm manholes; and a district-heating pipe that follows the main road, with its faint
warm trace and a corridor of varying width around it (15-25 % of the frame unless the frame
is very elongated). Zero to three leaks are diffuse, elongated warm plumes on the pipe
(+1.5..+5 degC at their peak, 150-3000 px at 512 x 640). The sensor adds a slight optical
blur and noise (0.05-0.09 degC).

Everything comes from one ``numpy.random.Generator(PCG64(seed))``, so a seed gives a
bit-identical scene and different seeds give different scenes. Features are sized for
512 x 640 frames and scale with the frame (leaks stay at least a few pixels wide).

``leak_mask`` is the exact leak footprint (what a person would draw): the pixels where a leak
adds more than 30 % of its peak heat, inside the corridor. ``bait_mask`` marks the objects that
fool the classical method: lamps, manholes, engine blocks and roof vents.

:func:`write_dataset` writes ``generated_set`` (labels by :func:`.classical.classical_label`,
noisy like the published automatic labels) and ``manual_set`` (labels = ``leak_mask``).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetExistsError, InvalidInputError
from .frame_io import compose_frame, write_frame, write_label

#: Ground temperature of the default scene, chosen so the frame mean is about -1.3 degC.
DEFAULT_AMBIENT_DEGC = -1.5
#: A leak pixel belongs to the footprint where the leak adds more than this share of its peak.
LEAK_MASK_FRACTION = 0.3
#: Version of the scene recipe; recorded in dataset_info.json, bumped when scenes change.
GENERATOR_VERSION = 1

_REF_AREA = 512 * 640  # frame size the feature sizes below are tuned for
_MIN_SIDE = 32
_MAX_SIDE = 8192
_MAX_LEAKS = 10
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class Scene:
    """One synthetic frame with its ground truth.

    Attributes:
        data: ``H x W x 3`` float32 frame ``(T_m, T_m, T_u)`` in degC, from ``compose_frame``.
        corridor: ``H x W`` bool mask of the pipeline corridor.
        leak_mask: ``H x W`` uint8 0/1, exact leak footprints (a manual label).
        bait_mask: ``H x W`` uint8 0/1, false-alarm objects (lamps, manholes, engines, vents).
        n_leaks: Number of leaks in the scene.
    """

    data: np.ndarray
    corridor: np.ndarray
    leak_mask: np.ndarray
    bait_mask: np.ndarray
    n_leaks: int

    @property
    def t_u(self) -> np.ndarray:
        """``H x W`` temperature image (channel 2 of ``data``)."""
        return self.data[..., 2]


# --------------------------------------------------------------------------- helpers


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise InvalidInputError(f"{name} must be {bound}, got {value}")
    return value


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int], amplitude: float
) -> np.ndarray:
    """Zero-mean random field varying over about ``cells`` periods, standard deviation ~amp."""
    import cv2

    grid = rng.normal(0.0, amplitude, size=(cells[0] + 1, cells[1] + 1)).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _gauss1d(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a 1-D signal with edge replication (keeps the curve's ends)."""
    if sigma < 0.5 or len(values) < 3:
        return values
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, radius, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _resample(points: np.ndarray, step: float = 1.0) -> np.ndarray:
    """Points spaced ``step`` pixels apart along a polyline."""
    seg = np.hypot(*np.diff(points, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.arange(0.0, arc[-1] + 1e-9, step)
    return np.stack([np.interp(s, arc, points[:, 0]), np.interp(s, arc, points[:, 1])], axis=1)


def _route(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """A smooth street-like curve through the frame, as ~1 px spaced (x, y) points.

    Grown both ways from a point near the centre, in straight stretches with gentle bends and
    the occasional right-angle street corner, then rounded; it may end inside the frame.
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
                    corner = rng.random() < 0.2
                    heading += rng.choice([-1, 1]) * math.pi / 2 if corner else rng.normal(0, 0.2)
                pts.append(pts[-1] + seg_len * np.array([math.cos(heading), math.sin(heading)]))
            halves.append(np.array(pts))
        poly = np.concatenate([halves[1][::-1], halves[0][1:]])
        pts = _resample(poly)
        sigma = 14.0 * scale
        pts = np.stack([_gauss1d(pts[:, 0], sigma), _gauss1d(pts[:, 1], sigma)], axis=1)
        pts = _resample(pts)
        inside = _inside(pts, height, width)
        if inside.sum() >= 0.5 * min(height, width):
            return pts
    # Pathological draws only: a straight line through the centre always works.
    t = np.linspace(-0.5, 0.5, int(diag) + 1)[:, None]
    return np.array([width / 2, height / 2]) + t * np.array([width, height])


def _inside(pts: np.ndarray, height: int, width: int, margin: float = 0.0) -> np.ndarray:
    return (
        (pts[:, 0] >= -margin)
        & (pts[:, 0] <= width - 1 + margin)
        & (pts[:, 1] >= -margin)
        & (pts[:, 1] <= height - 1 + margin)
    )


def _tangents(pts: np.ndarray) -> np.ndarray:
    d = np.gradient(pts, axis=0)
    return d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]


def _int_pts(pts: np.ndarray, shift: int = 2) -> np.ndarray:
    """Fixed-point int32 coordinates for cv2 drawing with ``shift`` fractional bits."""
    return np.round(pts * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)


def _pt(xy: np.ndarray, shift: int = 2) -> tuple[int, int]:
    """One fixed-point (x, y) point for cv2 drawing."""
    return int(round(float(xy[0]) * (1 << shift))), int(round(float(xy[1]) * (1 << shift)))


def _add_gaussian(img: np.ndarray, cx: float, cy: float, sigma: float, amp: float) -> None:
    """Add an isotropic gaussian glow, evaluated only in its 3-sigma window."""
    r = int(math.ceil(3 * sigma))
    x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 1, img.shape[1])
    y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 1, img.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    gx = np.exp(-0.5 * ((np.arange(x0, x1) - cx) / sigma) ** 2)
    gy = np.exp(-0.5 * ((np.arange(y0, y1) - cy) / sigma) ** 2)
    img[y0:y1, x0:x1] += (amp * gy[:, None] * gx[None, :]).astype(np.float32)


def _box(cx: float, cy: float, length: float, width: float, angle: float) -> np.ndarray:
    """Corners (4 x 2) of a rectangle centred at (cx, cy), long side along ``angle`` (rad)."""
    import cv2

    return cv2.boxPoints(((cx, cy), (length, width), math.degrees(angle)))


def _stamp_free(blocked: np.ndarray, corners: np.ndarray) -> bool:
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
    cv2.fillConvexPoly(stamp, _int_pts(corners - (x0, y0)), 1, shift=2)
    window = blocked[y0:y1, x0:x1]
    if not stamp.any() or (stamp & window).any():
        return False
    window |= stamp
    return True


def _draw_car(
    rng: np.random.Generator,
    surface: np.ndarray,
    bait: np.ndarray,
    centre: np.ndarray,
    length: float,
    width: float,
    angle: float,
) -> None:
    """A parked car: cold body and glass; a hot engine block if it was driven recently."""
    import cv2

    cv2.fillConvexPoly(
        surface, _int_pts(_box(*centre, length, width, angle)), rng.uniform(-1.3, -0.4), shift=2
    )
    forward = np.array([math.cos(angle), math.sin(angle)])
    # The cabin's glass reflects the cold sky: the coldest part of a car.
    glass = _box(*(centre - forward * 0.08 * length), 0.4 * length, 0.8 * width, angle)
    cv2.fillConvexPoly(surface, _int_pts(glass), rng.uniform(-2.2, -1.4), shift=2)
    if rng.random() < 0.4:
        hood = rng.uniform(0.25, 0.32) * length
        hood_centre = centre + forward * (length - hood) / 2
        engine = _int_pts(_box(*hood_centre, hood, 0.85 * width, angle))
        cv2.fillConvexPoly(surface, engine, rng.uniform(1.5, 5.0), shift=2)
        cv2.fillConvexPoly(bait, engine, 1, shift=2)


# --------------------------------------------------------------------------- scene


def make_scene(
    seed: int,
    height: int = 512,
    width: int = 640,
    n_leaks: int | None = None,
    *,
    ambient_degc: float | None = None,
) -> Scene:
    """Render one seeded synthetic winter-night thermal scene.

    Args:
        seed: Non-negative integer; the same seed gives a bit-identical scene.
        height: Frame height in pixels (32..8192).
        width: Frame width in pixels (32..8192).
        n_leaks: Number of leaks (0..10); by default drawn from 0..3 (mostly 1 or 2).
        ambient_degc: Ground temperature in degC. The default draws it around
            :data:`DEFAULT_AMBIENT_DEGC` (+-0.5). Changing it shifts the whole scene by the
            same amount and leaves everything else unchanged.

    Returns:
        The :class:`Scene`.

    Raises:
        InvalidInputError: If an argument is out of range.
    """
    import cv2

    seed = _check_int("seed", seed, 0)
    height = _check_int("height", height, _MIN_SIDE, _MAX_SIDE)
    width = _check_int("width", width, _MIN_SIDE, _MAX_SIDE)
    if n_leaks is not None:
        n_leaks = _check_int("n_leaks", n_leaks, 0, _MAX_LEAKS)
    if ambient_degc is not None:
        try:
            ambient_degc = float(ambient_degc)
        except (TypeError, ValueError):
            msg = f"ambient_degc must be a number, got {ambient_degc!r}"
            raise InvalidInputError(msg) from None
        if not math.isfinite(ambient_degc) or abs(ambient_degc) > 100:
            raise InvalidInputError(f"ambient_degc must be within -100..100, got {ambient_degc}")

    rng = np.random.Generator(np.random.PCG64(seed))
    shape = (height, width)
    scale = math.sqrt(height * width / _REF_AREA)
    area_factor = height * width / _REF_AREA

    def count(lo: int, hi: int) -> int:
        # Object counts follow the frame area so small frames are not crowded.
        return int(rng.integers(lo, hi + 1) * area_factor + rng.random())

    # Drawn even when the caller fixes the ambient, so the rest of the scene stays the same.
    ambient_jitter = rng.uniform(-0.5, 0.5)
    ambient = DEFAULT_AMBIENT_DEGC + ambient_jitter if ambient_degc is None else ambient_degc
    if n_leaks is None:
        n_leaks = int(rng.choice(4, p=[0.15, 0.4, 0.3, 0.15]))
    else:
        rng.random()  # keep the stream aligned with the default case

    # Surface temperatures relative to ambient, painted in order (later objects cover earlier).
    surface = np.zeros(shape, np.float32)
    glow = np.zeros(shape, np.float32)  # additive heat: halos, leaks
    bait = np.zeros(shape, np.uint8)
    blocked = np.zeros(shape, np.uint8)  # streets, corridor and buildings: no new building here
    roofs = np.zeros(shape, np.uint8)

    # --- parcels: lawns, yards and car parks of slightly different temperature
    for _ in range(count(3, 8)):
        centre = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        size = rng.uniform(80, 260, size=2) * scale
        corners = _box(*centre, *size, rng.uniform(0, math.pi))
        cv2.fillConvexPoly(surface, _int_pts(corners), rng.uniform(-0.4, 0.4), shift=2)

    # --- main street (the pipe runs under it), sidewalks, side streets
    route = _route(rng, height, width, scale)
    tangent = _tangents(route)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    road_w = rng.uniform(30, 50) * scale
    walk_w = rng.uniform(6, 14) * scale
    road_dt = rng.uniform(0.3, 0.8)
    street = [_int_pts(route[::3])]
    cv2.polylines(
        surface,
        street,
        False,
        rng.uniform(-0.1, 0.5),
        thickness=max(int(road_w + 2 * walk_w), 3),
        shift=2,
    )
    cv2.polylines(surface, street, False, road_dt, thickness=max(int(road_w), 2), shift=2)
    cv2.polylines(blocked, street, False, 1, thickness=max(int(road_w + 3 * walk_w), 3), shift=2)
    for _ in range(int(rng.integers(0, 3))):  # straight side streets
        ang = rng.uniform(0, math.pi)
        c = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        d = np.array([math.cos(ang), math.sin(ang)]) * 2 * max(height, width)
        w = max(int(rng.uniform(20, 40) * scale), 2)
        cv2.line(surface, _pt(c - d), _pt(c + d), road_dt + rng.uniform(-0.25, 0.1), w, shift=2)
        cv2.line(blocked, _pt(c - d), _pt(c + d), 1, int(w + 3 * walk_w), shift=2)

    pipe = route + normal * rng.uniform(-0.35, 0.35) * road_w
    inside = np.flatnonzero(_inside(pipe, height, width))
    if inside.size == 0:  # pragma: no cover - _route guarantees a long stretch inside
        inside = np.arange(len(pipe))

    # --- corridor: a band of slowly varying width around the pipe, 15-25 % of the frame
    target = rng.uniform(0.15, 0.25)
    arc = np.arange(len(pipe), dtype=np.float64)
    profile = 1 + rng.uniform(0.05, 0.2) * np.sin(
        2 * math.pi * arc / (rng.uniform(300, 800) * scale) + rng.uniform(0, 2 * math.pi)
    )
    r0 = target * height * width / (2 * max(inside.size, 1))
    corridor_u8 = np.zeros(shape, np.uint8)
    centres = _int_pts(pipe[::2], shift=0).reshape(-1, 2)
    for _ in range(3):  # the first guess ignores clipped ends and bends; correct it
        r0 = float(np.clip(r0, 3.0, 0.35 * min(height, width)))
        corridor_u8[:] = 0
        for (x, y), p in zip(centres, profile[::2], strict=True):
            cv2.circle(corridor_u8, (int(x), int(y)), max(int(r0 * p), 2), 1, -1)
        frac = corridor_u8.mean()
        if abs(frac - target) < 0.01 or frac == 0:
            break
        r0 *= target / frac
    corridor = corridor_u8.astype(bool)
    blocked |= corridor_u8

    # faint warm trace of the (insulated, but not perfectly) pipe
    trace = np.zeros(shape, np.float32)
    cv2.polylines(
        trace,
        [_int_pts(pipe[::3])],
        False,
        rng.uniform(0.1, 0.4),
        thickness=max(int(4 * scale), 2),
        shift=2,
    )
    trace = cv2.GaussianBlur(trace, (0, 0), max(5.0 * scale, 1.0))

    # --- buildings: rows along the street beyond the corridor, and blocks further away
    n_build = count(3, 9)
    placed = 0
    for attempt in range(8 * n_build):
        if placed >= n_build:
            break
        length, depth = rng.uniform(50, 160) * scale, rng.uniform(35, 100) * scale
        i = int(rng.integers(0, len(route)))
        angle = math.atan2(tangent[i, 1], tangent[i, 0])
        if attempt % 2 == 0:  # facing the street
            side = rng.choice([-1.0, 1.0])
            gap = r0 * profile[min(i, len(profile) - 1)] + depth / 2 + rng.uniform(2, 25) * scale
            centre = route[i] + normal[i] * side * gap
        else:
            centre = np.array([rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height])
            angle += rng.choice([0.0, math.pi / 2])
        corners = _box(*centre, length, depth, angle + rng.normal(0, 0.03))
        if not _stamp_free(blocked, corners):
            continue
        placed += 1
        cv2.fillConvexPoly(roofs, _int_pts(corners), 1, shift=2)
        roof = rng.uniform(-0.9, 1.6)
        cv2.fillConvexPoly(surface, _int_pts(corners), roof, shift=2)
        cv2.polylines(
            surface,
            [_int_pts(corners)],
            True,
            roof + rng.uniform(0.8, 2.5),
            thickness=max(int(2.5 * scale), 1),
            shift=2,
        )
        for _ in range(int(rng.integers(0, 4))):  # chimneys and vents
            w = rng.dirichlet(np.ones(4)) * 0.8 + 0.05
            vent_c = (w / w.sum()) @ corners
            size = max(rng.uniform(2, 5) * scale, 1.5)
            vent = _int_pts(_box(*vent_c, size, size, angle))
            cv2.fillConvexPoly(surface, vent, roof + rng.uniform(2.0, 6.0), shift=2)
            cv2.fillConvexPoly(bait, vent, 1, shift=2)

    # --- manholes: district-heating chambers on the pipe (warm), sewers on the road (mild)
    for k in range(int(rng.integers(1, 4)) + int(rng.integers(0, 3))):
        on_pipe = k == 0 or rng.random() < 0.6
        i = int(rng.choice(inside))
        centre = pipe[i] if on_pipe else route[i] + normal[i] * rng.uniform(-0.4, 0.4) * road_w
        dt = rng.uniform(1.0, 3.0) if on_pipe else rng.uniform(0.5, 1.5)
        r = max(rng.uniform(2.0, 4.0) * scale, 2.0)
        cv2.circle(surface, _pt(centre), int(r * 4), road_dt + dt, -1, shift=2)
        cv2.circle(bait, _pt(centre), int(r * 4), 1, -1, shift=2)

    # --- parked cars in rows along the kerb: cold bodies, hot engines when recently driven
    for _ in range(count(1, 4)):
        i = int(rng.choice(inside))
        side = rng.choice([-1.0, 1.0])
        for _ in range(int(rng.integers(1, 7))):
            if i >= len(route):
                break
            length = max(rng.uniform(15, 21) * scale, 4.0)
            car_w = max(rng.uniform(7, 9.5) * scale, 2.0)
            offset = side * max(road_w / 2 - car_w / 2 - rng.uniform(0, 2) * scale, 0.0)
            angle = math.atan2(tangent[i, 1], tangent[i, 0]) + rng.choice([0.0, math.pi])
            _draw_car(rng, surface, bait, route[i] + normal[i] * offset, length, car_w, angle)
            i += int(length + rng.uniform(2, 25) * scale)

    # --- trees: cold crowns with bare branches, lining the street and in gardens
    for k in range(count(5, 16)):
        if k % 3 != 2:
            i = int(rng.integers(0, len(route)))
            side = rng.choice([-1.0, 1.0])
            centre = route[i] + normal[i] * side * (road_w / 2 + walk_w * rng.uniform(0.3, 1.5))
        else:
            centre = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        radius = max(rng.uniform(5, 18) * scale, 2.0)
        dt = rng.uniform(-1.8, -0.8)
        x, y = int(centre[0]), int(centre[1])
        if 0 <= x < width and 0 <= y < height and roofs[y, x]:
            continue  # no trees on roofs
        for _ in range(int(rng.integers(3, 10))):
            ang = rng.uniform(0, 2 * math.pi)
            tip = centre + radius * rng.uniform(1.1, 2.2) * np.array([math.cos(ang), math.sin(ang)])
            cv2.line(surface, _pt(centre), _pt(tip), 0.5 * dt, 1, shift=2)
        for _ in range(int(rng.integers(1, 5))):
            c = centre + rng.normal(0, 0.4 * radius, size=2)
            r = radius * rng.uniform(0.5, 1.0)
            cv2.circle(surface, _pt(c), int(4 * r), dt + rng.uniform(-0.2, 0.2), -1, shift=2)

    # --- street lamps: tiny very hot heads with a halo, along the street and anywhere
    lamps: list[np.ndarray] = []
    spacing = rng.uniform(70, 130) * scale
    side = rng.choice([-1.0, 1.0])
    for i in range(int(rng.uniform(0, spacing)), len(route), max(int(spacing), 1)):
        lamps.append(route[i] + normal[i] * side * (road_w / 2 + rng.uniform(0.2, 0.8) * walk_w))
    for _ in range(count(1, 4)):
        lamps.append(np.array([rng.uniform(0, width), rng.uniform(0, height)]))
    for centre in lamps:
        if not _inside(centre[None], height, width, margin=8)[0]:
            continue
        r = int(rng.integers(1, 4))
        cv2.circle(surface, _pt(centre), 4 * r, rng.uniform(5.0, 9.0), -1, shift=2)
        cv2.circle(bait, _pt(centre), 4 * (r + 1), 1, -1, shift=2)
        _add_gaussian(glow, centre[0], centre[1], rng.uniform(2.5, 5.0), rng.uniform(0.4, 1.4))

    # --- ground and sensor noise, drawn before the leaks so that the same seed with another
    # n_leaks gives the same scene apart from the leaks
    t_u = _smooth_noise(rng, shape, (int(rng.integers(2, 5)),) * 2, 0.35)
    t_u += _smooth_noise(rng, shape, (max(height // 12, 2), max(width // 12, 2)), 0.12)
    noise = rng.normal(0.0, rng.uniform(0.05, 0.09), size=shape).astype(np.float32)

    # --- leaks: elongated diffuse plumes on the pipe, each a few anisotropic gaussians
    leak = np.zeros(shape, np.uint8)
    min_gap = 80 * scale
    chosen: list[int] = []
    # Leak centres keep off the frame edge, so the footprint is not cut to a sliver.
    sites = np.flatnonzero(_inside(pipe, height, width, margin=-max(10 * scale, 3)))
    if sites.size == 0:  # pragma: no cover - only for pipes hugging the frame edge
        sites = inside
    for _ in range(n_leaks):
        for _attempt in range(30):
            i = int(rng.choice(sites))
            if all(abs(i - j) >= min_gap for j in chosen):
                break
        chosen.append(i)
        _add_leak(rng, glow, leak, pipe[i], tangent[i], r0 * profile[i], scale)

    t_u += cv2.GaussianBlur(surface, (0, 0), max(0.8 * scale, 0.5))
    t_u += trace
    t_u += glow
    t_u = cv2.GaussianBlur(t_u, (0, 0), 0.6)  # optics
    t_u += noise
    t_u += np.float32(ambient)

    leak &= corridor_u8
    return Scene(
        data=compose_frame(t_u, corridor),
        corridor=corridor,
        leak_mask=leak,
        bait_mask=bait,
        n_leaks=n_leaks,
    )


def _add_leak(
    rng: np.random.Generator,
    glow: np.ndarray,
    leak: np.ndarray,
    centre: np.ndarray,
    tangent: np.ndarray,
    half_width: float,
    scale: float,
) -> None:
    """Add one leak plume to ``glow`` and its footprint to ``leak``.

    The plume spreads mostly along the pipe (warm water follows the trench) and a little
    across it, stays well inside the corridor and has an irregular, soft edge.
    """
    height, width = glow.shape
    normal = np.array([-tangent[1], tangent[0]])
    centre = centre + normal * rng.uniform(-0.25, 0.25) * half_width
    n_blobs = int(rng.integers(2, 6))
    size = math.exp(rng.uniform(0.0, math.log(2.6)))  # log-uniform: small leaks are common
    spread = rng.uniform(5, 20) * size * scale
    along = rng.uniform(-1, 1, n_blobs) * spread
    across = rng.normal(0, 2.0 * scale, n_blobs)
    s_along = np.maximum(rng.uniform(4, 12, n_blobs) * size * scale, 3.0)
    s_across = np.maximum(rng.uniform(2.5, 6, n_blobs) * size * scale, 2.0)
    s_across = np.minimum(s_across, 0.35 * half_width + 1.0)
    s_along = np.maximum(s_along, s_across)
    weights = rng.uniform(0.5, 1.0, n_blobs)
    peak_dt = rng.uniform(1.5, 5.0)
    wobble = rng.normal(0, 1, (5, 5)).astype(np.float32)

    r = int(math.ceil(np.max(np.abs(along) + 3 * s_along)))
    x0, x1 = max(int(centre[0]) - r, 0), min(int(centre[0]) + r + 1, width)
    y0, y1 = max(int(centre[1]) - r, 0), min(int(centre[1]) + r + 1, height)
    if x0 >= x1 or y0 >= y1:  # pragma: no cover - centres lie on the pipe inside the frame
        return
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(centre[0])
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(centre[1])
    u = xs * np.float32(tangent[0]) + ys * np.float32(tangent[1])  # along the pipe
    v = xs * np.float32(normal[0]) + ys * np.float32(normal[1])  # across
    heat = np.zeros((y1 - y0, x1 - x0), np.float32)
    for a, c, sa, sc, w in zip(along, across, s_along, s_across, weights, strict=True):
        heat += np.float32(w) * np.exp(-0.5 * (((u - a) / sa) ** 2 + ((v - c) / sc) ** 2))
    import cv2

    # Low-frequency multiplicative wobble makes the outline irregular, not elliptical.
    heat *= 1.0 + 0.35 * cv2.resize(wobble, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
    np.maximum(heat, 0, out=heat)
    heat *= np.float32(peak_dt / max(float(heat.max()), 1e-6))
    glow[y0:y1, x0:x1] += heat
    footprint = (heat > LEAK_MASK_FRACTION * peak_dt).view(np.uint8)
    # A person draws one outline per leak: keep the main piece, drop wobble fragments.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(footprint, connectivity=8)
    if n > 2:
        footprint = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).view(np.uint8)
    leak[y0:y1, x0:x1] |= footprint


# --------------------------------------------------------------------------- datasets


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInputError(
            f"{kind} {name!r} must be a plain folder name (letters, digits, '.', '_', '-')"
        )
    return name


def _split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder counts; every split with a positive share gets a frame if possible."""
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


def _stream_key(name: str) -> int:
    # Stable across processes and Python versions, unlike hash(); keys a set's seed stream.
    return zlib.crc32(name.encode("utf-8"))


def _frame_seed(seed: int, set_name: str, index: int) -> int:
    ss = np.random.SeedSequence(seed, spawn_key=(_stream_key(set_name), index))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def write_dataset(
    root: str | Path,
    n_frames: int,
    *,
    seed: int = 0,
    height: int = 512,
    width: int = 640,
    splits: Sequence[float] = (0.7, 0.15, 0.15),
    sets: Sequence[str] = ("generated_set", "manual_set"),
    subset: str = "synthetic",
) -> Path:
    """Write synthetic datasets in the TASeg layout under ``root``.

    Per set, the frames are split (seeded, disjoint) into train/val/test and written as::

        <root>/<set>/dataset_info.json
        <root>/<set>/image/<subset>_<split>/<id>.npy.lz4
        <root>/<set>/label/<subset>_<split>/<id>.png

    ``dataset_info.json`` follows the published TASeg format: ``subsets`` lists the subset
    folders and ``default_splits`` maps each split to the subset folders it reads (the
    published loader takes every file of those folders), here ``{"train":
    ["<subset>_train"], ...}``. The key ``generator`` records the recipe and, under
    ``split_ids``, each split's frames as ``"<subset folder>/<id>"``. Ids are
    ``frame_0000``, ``frame_0001``, ... in generation order.

    ``generated_set`` labels come from :func:`.classical.classical_label` (noisy automatic
    labels); every other set is labelled with the exact leak footprints (``manual_set``).
    Each set draws its frames from its own seed stream (derived from ``seed`` and the set
    name), so the sets hold different frames, and a set's frames do not depend on which other
    sets are written.

    Args:
        root: Folder to write into; created if missing.
        n_frames: Frames per set (>= 1).
        seed: Base seed (>= 0).
        height: Frame height in pixels.
        width: Frame width in pixels.
        splits: Shares of (train, val, test), non-negative, summing to 1.
        sets: Set folder names.
        subset: Prefix of the subset folder names.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        DatasetExistsError: If a set folder already exists and is not empty (a
            ``FileExistsError`` and a ``TasegError``, so adapters report it in one line).
        InvalidInputError: If an argument is invalid.
    """
    from .classical import classical_label

    n_frames = _check_int("n_frames", n_frames, 1)
    seed = _check_int("seed", seed, 0)
    height = _check_int("height", height, _MIN_SIDE, _MAX_SIDE)
    width = _check_int("width", width, _MIN_SIDE, _MAX_SIDE)
    subset = _check_name("subset", subset)
    if isinstance(sets, str):
        sets = (sets,)
    sets = tuple(_check_name("set name", s) for s in sets)
    if not sets or len(set(sets)) != len(sets):
        raise InvalidInputError(f"sets must be non-empty and without duplicates, got {sets}")
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

    root = Path(root)
    for name in sets:
        target = root / name
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise DatasetExistsError(
                f"{target} already exists and is not an empty folder; refusing to overwrite "
                "it. Remove it or choose another root."
            )
    root.mkdir(parents=True, exist_ok=True)

    split_names = ("train", "val", "test")
    for name in sets:
        ids = [f"frame_{i:04d}" for i in range(n_frames)]
        order = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_stream_key(name), 1 << 31)))
        ).permutation(n_frames)
        counts = _split_counts(n_frames, fractions)
        bounds = np.cumsum([0, *counts])
        split_of: dict[str, str] = {}
        split_ids: dict[str, list[str]] = {}
        for k, split in enumerate(split_names):
            members = sorted(int(j) for j in order[bounds[k] : bounds[k + 1]])
            folder = f"{subset}_{split}"
            split_ids[split] = [f"{folder}/{ids[j]}" for j in members]
            for j in members:
                split_of[ids[j]] = folder
        used = [f"{subset}_{s}" for s, c in zip(split_names, counts, strict=True) if c > 0]
        auto = name == "generated_set"
        frames: dict[str, dict] = {}

        # Build in a hidden sibling folder and rename at the end: readers never see a
        # half-written set, and a failure leaves nothing behind.
        tmp = root / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        tmp.mkdir()  # not mkdtemp: its 0700 mode would stay on the finished set
        try:
            for i, frame_id in enumerate(ids):
                frame_seed = _frame_seed(seed, name, i)
                scene = make_scene(frame_seed, height, width)
                label = classical_label(scene.data, scene.corridor) if auto else scene.leak_mask
                folder = split_of[frame_id]
                write_frame(tmp / "image" / folder / f"{frame_id}.npy.lz4", scene.data)
                write_label(tmp / "label" / folder / f"{frame_id}.png", label)
                frames[frame_id] = {"seed": frame_seed, "n_leaks": scene.n_leaks}
            for folder in used:  # an empty split still gets its (empty) folders
                (tmp / "image" / folder).mkdir(parents=True, exist_ok=True)
                (tmp / "label" / folder).mkdir(parents=True, exist_ok=True)
            info = {
                "image_type": "thermal",
                "masked": True,
                "subsets": used,
                "labels": ["background", "thermal"],
                "default_splits": {
                    s: [f"{subset}_{s}"] if c > 0 else []
                    for s, c in zip(split_names, counts, strict=True)
                },
                "channel_mode": "mixed",
                "generator": {
                    "name": "taseg.synthetic",
                    "version": GENERATOR_VERSION,
                    "seed": seed,
                    "height": height,
                    "width": width,
                    "n_frames": n_frames,
                    "splits": fractions,
                    "labels_from": "classical_label" if auto else "leak_mask",
                    "split_ids": split_ids,
                    "frames": frames,
                },
            }
            (tmp / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")
            target = root / name
            if target.exists():
                target.rmdir()  # empty (checked above); rename cannot replace it everywhere
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return root
