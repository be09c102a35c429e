"""Clutter layers: buildings (roof edges, vents, chimneys, windows), manholes, cars with
engines, trees with shadows and street lamps. Each object is recorded in the distractor
instance map with its class."""

from __future__ import annotations

import math

import numpy as np

from thermal_anomaly_segmenter.scenes.canvas import Canvas
from thermal_anomaly_segmenter.scenes.geometry import box, inside, int_pts, pt, stamp_free


def buildings(c: Canvas) -> None:
    """Rows along the street beyond the corridor, and blocks further away."""
    import cv2

    f, rng = c.family, c.rng
    n_build = c.count(*f.buildings)
    placed = 0
    for attempt in range(8 * n_build):
        if placed >= n_build:
            break
        length, depth = rng.uniform(50, 160) * c.scale, rng.uniform(35, 100) * c.scale
        i = int(rng.integers(0, len(c.route)))
        angle = math.atan2(c.tangent[i, 1], c.tangent[i, 0])
        if attempt % 2 == 0:  # facing the street
            side = rng.choice([-1.0, 1.0])
            gap = (c.r0 * c.profile[min(i, len(c.profile) - 1)] + depth / 2
                   + rng.uniform(2, 25) * c.scale)
            centre = c.route[i] + c.normal[i] * side * gap
        else:
            centre = np.array([rng.uniform(-0.1, 1.1) * c.width,
                               rng.uniform(-0.1, 1.1) * c.height])
            angle += rng.choice([0.0, math.pi / 2])
        corners = box(*centre, length, depth, angle + rng.normal(0, 0.03))
        if not stamp_free(c.blocked, corners):
            continue
        placed += 1
        poly = int_pts(corners)
        cv2.fillConvexPoly(c.roofs, poly, 1, shift=2)
        roof = rng.uniform(*f.roof_dt)
        cv2.fillConvexPoly(c.surface, poly, roof, shift=2)
        cv2.polylines(c.surface, [poly], True, roof + rng.uniform(0.8, 2.5),
                      thickness=max(int(2.5 * c.scale), 1), shift=2)
        cv2.fillConvexPoly(c.instances, poly, c.new_instance("building"), shift=2)
        for _ in range(int(rng.integers(f.vents[0], f.vents[1] + 1))):  # chimneys and vents
            w = rng.dirichlet(np.ones(4)) * 0.8 + 0.05
            vent_c = (w / w.sum()) @ corners
            size = max(rng.uniform(2, 5) * c.scale, 1.5)
            vent = int_pts(box(*vent_c, size, size, angle))
            cv2.fillConvexPoly(c.surface, vent, roof + rng.uniform(*f.vent_dt), shift=2)
            cv2.fillConvexPoly(c.bait, vent, 1, shift=2)
            cv2.fillConvexPoly(c.instances, vent, c.new_instance("building"), shift=2)
        if f.windows_p > 0 and c.extra.random() < f.windows_p:
            _windows(c, corners, roof)


def _windows(c: Canvas, corners: np.ndarray, roof: float) -> None:
    """Warm windows (dormers, skylights, a facade seen obliquely) along one roof edge."""
    import cv2

    ex = c.extra
    k = int(ex.integers(0, 4))
    a, b = corners[k], corners[(k + 1) % 4]
    inward = corners.mean(axis=0) - (a + b) / 2
    inward /= max(float(np.hypot(*inward)), 1e-6)
    edge = b - a
    angle = math.atan2(edge[1], edge[0])
    n = int(ex.integers(2, 7))
    size = max(ex.uniform(3, 6) * c.scale, 1.5)
    for t in np.linspace(0.15, 0.85, n):
        centre = a + t * edge + inward * size * 1.2
        win = int_pts(box(*centre, size * 1.4, size, angle))
        cv2.fillConvexPoly(c.surface, win, roof + ex.uniform(1.0, 3.5), shift=2)
        cv2.fillConvexPoly(c.instances, win, c.new_instance("building"), shift=2)


def manholes(c: Canvas) -> None:
    """District-heating chambers on the pipe (warm) and sewers on the road (mild)."""
    import cv2

    f, rng = c.family, c.rng
    n = int(rng.integers(f.manholes[0], f.manholes[1] + 1)) + int(rng.integers(0, 3))
    for k in range(n):
        on_pipe = k == 0 or rng.random() < f.manhole_pipe_p
        i = int(rng.choice(c.inside))
        centre = (c.pipe[i] if on_pipe
                  else c.route[i] + c.normal[i] * rng.uniform(-0.4, 0.4) * c.road_w)
        dt = rng.uniform(1.0, 3.0) if on_pipe else rng.uniform(0.5, 1.5)
        r = max(rng.uniform(2.0, 4.0) * c.scale, 2.0)
        cv2.circle(c.surface, pt(centre), int(r * 4), c.road_dt + dt, -1, shift=2)
        cv2.circle(c.bait, pt(centre), int(r * 4), 1, -1, shift=2)
        cv2.circle(c.instances, pt(centre), int(r * 4), c.new_instance("manhole"), -1, shift=2)


def cars(c: Canvas) -> None:
    """Parked cars in rows along the kerb: cold bodies, hot engines when recently driven."""
    f, rng = c.family, c.rng
    for _ in range(c.count(*f.car_rows)):
        i = int(rng.choice(c.inside))
        side = rng.choice([-1.0, 1.0])
        for _ in range(int(rng.integers(1, 7))):
            if i >= len(c.route):
                break
            length = max(rng.uniform(15, 21) * c.scale, 4.0)
            car_w = max(rng.uniform(7, 9.5) * c.scale, 2.0)
            offset = side * max(c.road_w / 2 - car_w / 2 - rng.uniform(0, 2) * c.scale, 0.0)
            angle = math.atan2(c.tangent[i, 1], c.tangent[i, 0]) + rng.choice([0.0, math.pi])
            _car(c, c.route[i] + c.normal[i] * offset, length, car_w, angle)
            i += int(length + rng.uniform(2, 25) * c.scale)


def _car(c: Canvas, centre: np.ndarray, length: float, width: float, angle: float) -> None:
    import cv2

    f, rng = c.family, c.rng
    body = int_pts(box(*centre, length, width, angle))
    cv2.fillConvexPoly(c.surface, body, rng.uniform(-1.3, -0.4), shift=2)
    cv2.fillConvexPoly(c.instances, body, c.new_instance("vehicle"), shift=2)
    forward = np.array([math.cos(angle), math.sin(angle)])
    # The cabin's glass reflects the cold sky: the coldest part of a car.
    glass = box(*(centre - forward * 0.08 * length), 0.4 * length, 0.8 * width, angle)
    cv2.fillConvexPoly(c.surface, int_pts(glass), rng.uniform(-2.2, -1.4), shift=2)
    if rng.random() < f.engine_p:
        hood = rng.uniform(0.25, 0.32) * length
        hood_centre = centre + forward * (length - hood) / 2
        engine = int_pts(box(*hood_centre, hood, 0.85 * width, angle))
        cv2.fillConvexPoly(c.surface, engine, rng.uniform(*f.engine_dt), shift=2)
        cv2.fillConvexPoly(c.bait, engine, 1, shift=2)


def trees(c: Canvas) -> None:
    """Cold crowns with bare branches, lining the street and in gardens; some cast shadows."""
    import cv2

    f, rng = c.family, c.rng
    for k in range(c.count(*f.trees)):
        if k % 3 != 2:
            i = int(rng.integers(0, len(c.route)))
            side = rng.choice([-1.0, 1.0])
            centre = c.route[i] + c.normal[i] * side * (
                c.road_w / 2 + c.walk_w * rng.uniform(0.3, 1.5))
        else:
            centre = np.array([rng.uniform(0, c.width), rng.uniform(0, c.height)])
        radius = max(rng.uniform(5, 18) * c.scale, 2.0)
        dt = rng.uniform(*f.tree_dt)
        x, y = int(centre[0]), int(centre[1])
        if 0 <= x < c.width and 0 <= y < c.height and c.roofs[y, x]:
            continue  # no trees on roofs
        instance = c.new_instance("other")
        if f.tree_shadow_p > 0 and c.extra.random() < f.tree_shadow_p:
            # Ground under a crown lost less heat to the sky: a cold shadow is the evening's
            # sun shade; both appear in real night flights, here the cold one.
            ex = c.extra
            off = centre + ex.normal(0, 0.8 * radius, 2)
            axes = (int(4 * radius * ex.uniform(1.0, 1.8)), int(4 * radius * ex.uniform(0.7, 1.2)))
            cv2.ellipse(c.surface, pt(off), axes, ex.uniform(0, 180), 0, 360,
                        ex.uniform(-0.8, -0.3), -1, shift=2)
            cv2.ellipse(c.instances, pt(off), axes, 0, 0, 360, c.new_instance("other"), -1,
                        shift=2)
        for _ in range(int(rng.integers(3, 10))):
            ang = rng.uniform(0, 2 * math.pi)
            tip = centre + radius * rng.uniform(1.1, 2.2) * np.array([math.cos(ang), math.sin(ang)])
            cv2.line(c.surface, pt(centre), pt(tip), 0.5 * dt, 1, shift=2)
        for _ in range(int(rng.integers(1, 5))):
            cc = centre + rng.normal(0, 0.4 * radius, size=2)
            r = radius * rng.uniform(0.5, 1.0)
            cv2.circle(c.surface, pt(cc), int(4 * r), dt + rng.uniform(-0.2, 0.2), -1, shift=2)
            cv2.circle(c.instances, pt(cc), int(4 * r), instance, -1, shift=2)


def lamps(c: Canvas) -> None:
    """Tiny very hot lamp heads with a halo, along the street and anywhere."""
    import cv2

    from thermal_anomaly_segmenter.scenes.geometry import add_gaussian

    f, rng = c.family, c.rng
    spots: list[np.ndarray] = []
    spacing = rng.uniform(*f.lamp_spacing) * c.scale
    side = rng.choice([-1.0, 1.0])
    for i in range(int(rng.uniform(0, spacing)), len(c.route), max(int(spacing), 1)):
        spots.append(c.route[i] + c.normal[i] * side * (
            c.road_w / 2 + rng.uniform(0.2, 0.8) * c.walk_w))
    for _ in range(c.count(*f.extra_lamps)):
        spots.append(np.array([rng.uniform(0, c.width), rng.uniform(0, c.height)]))
    for centre in spots:
        if not inside(centre[None], c.height, c.width, margin=8)[0]:
            continue
        r = int(rng.integers(1, 4))
        cv2.circle(c.surface, pt(centre), 4 * r, rng.uniform(*f.lamp_dt), -1, shift=2)
        cv2.circle(c.bait, pt(centre), 4 * (r + 1), 1, -1, shift=2)
        cv2.circle(c.instances, pt(centre), 4 * (r + 1), c.new_instance("lamp"), -1, shift=2)
        add_gaussian(c.glow, centre[0], centre[1], rng.uniform(2.5, 5.0), rng.uniform(0.4, 1.4))
