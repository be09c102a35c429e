"""Independent evaluation scenes: district-heating leaks in drone thermal frames.

What it is for. The held-out quality figure (``benchmarks/heldout_families.py
--independent``) should not be measured only on scenes that share the training generator's
quirks. This module is a second generator, written from physical first principles without
the code or the modelling choices of ``thermal_anomaly_segmenter.scenes.synthetic`` / ``.scenes``.
It is for **evaluation only**: never train, calibrate or pick thresholds on it.

Sub-families (``FAMILIES``):

``indep_oldtown``
    Old town at night, 5-9 cm/px, air -5..+6 degC: setts and asphalt patchwork with tar-sealed
    cracks and trench repairs, a narrow curved street with the corridor following it, parked
    cars (some with warm bonnets and exhausts, warm "shadows" of departed cars), street lamps
    (warm heads and poles with relief displacement, faint warm light pools), round manhole
    covers on and off the corridor, drain gratings, puddles mirroring the cold sky, facades
    (warm windows) and roofs with warm eaves along the frame edges.
``indep_parkland``
    Park with a cycle path, 7-14 cm/px, air -10..+3 degC: mown grass with stripes, soil and
    leaf litter, gravel paths, large cold tree crowns with warm trunks, benches, a cold pond,
    people and dogs as warm blobs, the pipe under the cycle path.

Physics in short: every surface has a temperature (air temperature plus a material offset
that grows with how clear the sky is: low-inertia surfaces cool most) and an emissivity;
the camera sees the apparent temperature ``(eps T^4 + (1 - eps) T_sky^4)^(1/4)``, so tar,
metal and water differ even at one temperature. Buried heat sources (the pipe, leaks) raise
the surface by the flux of a source and its image in a half-space with a convective surface:
``d / (d^2 + x^2)`` across a pipe at depth ``d``, ``(1 + (r / d)^2)^(-3/2)`` for a point
leak (a short line source along the pipe where water spreads in the bedding). The camera:
PSF with a weak scatter halo, optional motion blur, off-centre vignetting, row and column
fixed-pattern offsets, NETD 40-90 mK, dead/hot pixels, 0.01-0.04 degC quantisation.

Label convention (the project's): a leak's label covers the pixels where that leak's own
excess apparent temperature (its component alone, before optics and noise) is at least 30 %
of its peak and at least 2 x NETD, inside the corridor, one connected piece per leak (the
one holding its peak). The pipe trace, lamps, manholes, cars, buildings and people are
never labelled; leak-free frames (35 % of a written set, the others 1-3 leaks) have an
all-zero label.

    python -m heldout.second_generator DIR --family indep_oldtown --frames 40 --seed 4242
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

GENERATOR_NAME = "taseg.heldout.second_generator"
VERSION = 1
#: Subset prefix of the written set (``<SUBSET>_test``), as the project's own test sets.
SUBSET = "synthetic"
LABEL_PEAK_FRACTION = 0.30
LABEL_NETD_FACTOR = 2.0

_K = 273.15


@dataclass(frozen=True)
class FamilySpec:
    """Per-family ranges; everything else is drawn by the family's painter."""

    gsd_m: tuple[float, float]
    t_air_degc: tuple[float, float]
    #: Share of leaks that are tiny (core radius 0.2-0.35 m) and faint (peak 0.4-1 K).
    p_tiny: float
    p_faint: float
    netd_k: tuple[float, float] = (0.040, 0.090)
    #: Probabilities of 0, 1, 2, 3 leaks in a frame drawn alone.
    leak_counts: tuple[float, ...] = (0.35, 0.40, 0.17, 0.08)


SPECS: dict[str, FamilySpec] = {
    "indep_oldtown": FamilySpec(gsd_m=(0.05, 0.09), t_air_degc=(-5.0, 6.0),
                                p_tiny=0.12, p_faint=0.2),
    "indep_parkland": FamilySpec(gsd_m=(0.07, 0.14), t_air_degc=(-10.0, 3.0),
                                 p_tiny=0.25, p_faint=0.2),
}
FAMILIES: tuple[str, ...] = tuple(SPECS)


@dataclass
class Leak:
    """One leak as generated: its peak pixel and its own excess (window of the frame)."""

    row: int
    col: int
    peak_k: float
    core_m: float
    n_sources: int
    window: tuple[slice, slice]
    excess: np.ndarray  # apparent excess temperature of this leak alone over ``window``


@dataclass
class SceneFrame:
    """A generated frame: ``data`` is ``(T_m, T_m, T_u)`` float32 in degC."""

    data: np.ndarray
    label: np.ndarray  # uint8 0/1
    corridor: np.ndarray  # bool
    gsd_m: float
    netd_k: float
    t_air_degc: float
    leaks: list[Leak]
    leak_excess: np.ndarray  # sum of the leaks' own excess, float32
    pipe_trace: np.ndarray  # apparent excess of the pipe's heat trace, float32
    distractors: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _apparent(t_s, eps, t_sky: float):
    """Apparent (black-body equivalent) temperature of a grey surface under a cold sky."""
    tk = np.asarray(t_s, dtype=np.float32) + np.float32(_K)
    sky4 = np.float32((t_sky + _K) ** 4)
    return (eps * tk**4 + (1 - eps) * sky4) ** 0.25 - np.float32(_K)


def _smooth(rng: np.random.Generator, h: int, w: int, scale_px: float) -> np.ndarray:
    """Zero-mean unit-std random field whose blobs are about ``scale_px`` across."""
    scale = max(float(scale_px), 1.0)
    sh, sw = int(math.ceil(h / scale)) + 4, int(math.ceil(w / scale)) + 4
    small = cv2.GaussianBlur(rng.standard_normal((sh, sw)).astype(np.float32), (0, 0), 0.7)
    big = cv2.resize(small, (int(sw * scale), int(sh * scale)), interpolation=cv2.INTER_CUBIC)
    oy, ox = (int(rng.integers(0, max(1, int(scale)))) for _ in range(2))
    out = big[oy + int(scale):oy + int(scale) + h, ox + int(scale):ox + int(scale) + w]
    out = out - out.mean()
    return out / max(float(out.std()), 1e-6)


def _hash01(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic per-cell random numbers in [0, 1) (setts, slabs) without a lookup table."""
    x = (a.astype(np.int64) * 0x9E3779B1 + b.astype(np.int64) * 0x85EBCA77 + salt) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    x = (x * 0x297A2D39) & 0xFFFFFFFF
    x ^= x >> 15
    return (x.astype(np.float32) / np.float32(2**32)).astype(np.float32)


def _window(h: int, w: int, cy: float, cx: float, r: float):
    """Slices of a square window of radius ``r`` px, clipped, and its pixel coordinates."""
    r0, r1 = max(0, int(cy - r)), min(h, int(cy + r) + 2)
    c0, c1 = max(0, int(cx - r)), min(w, int(cx + r) + 2)
    if r0 >= r1 or c0 >= c1:
        return None
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    return (slice(r0, r1), slice(c0, c1)), yy, xx


def _seam_cover(edge_m: np.ndarray, seam_m: float, gsd: float) -> np.ndarray:
    """Share of a pixel covered by a joint ``seam_m`` wide at distance ``edge_m`` from its
    centre (joints are narrower than a pixel: they show as a partial mix, not a line)."""
    lo = np.maximum(edge_m - gsd / 2, -seam_m / 2)
    hi = np.minimum(edge_m + gsd / 2, seam_m / 2)
    return np.clip(hi - lo, 0, None) / gsd


class _Curve:
    """A gently winding line across the frame: ``c + u d + (f(u) + off) n`` in pixels."""

    def __init__(self, rng: np.random.Generator, h: int, w: int, amp: tuple[float, float],
                 wave: tuple[float, float], centre: tuple[float, float] | None = None):
        diag = math.hypot(h, w)
        self.diag = diag
        theta = rng.uniform(0, math.pi)
        self.d = np.array([math.cos(theta), math.sin(theta)])
        self.n = np.array([-self.d[1], self.d[0]])
        if centre is None:
            centre = (rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h)
        self.c = np.array(centre, dtype=float)
        self.amp = rng.uniform(*amp) * diag * rng.choice([-1.0, 1.0])
        self.wave = rng.uniform(*wave) * diag
        self.phase = rng.uniform(0, 2 * math.pi)

    def f(self, u):
        return self.amp * np.sin(2 * np.pi * u / self.wave + self.phase)

    def df(self, u):
        return self.amp * 2 * np.pi / self.wave * np.cos(2 * np.pi * u / self.wave + self.phase)

    def coords(self, x, y):
        """Along (u) and signed normal (n) distance in px; first-order in the curvature."""
        dx, dy = x - self.c[0], y - self.c[1]
        u = dx * self.d[0] + dy * self.d[1]
        v = dx * self.n[0] + dy * self.n[1]
        return u, (v - self.f(u)) / np.sqrt(1 + self.df(u) ** 2)

    def tangent(self, u):
        t = self.d[None, :] + np.atleast_1d(self.df(u))[:, None] * self.n[None, :]
        return t / np.linalg.norm(t, axis=1, keepdims=True)

    def point(self, u, off=0.0):
        """Points at ``u`` shifted by ``off`` px along the local normal."""
        u = np.atleast_1d(np.asarray(u, dtype=float))
        t = self.tangent(u)
        normal = np.stack([-t[:, 1], t[:, 0]], axis=1)
        base = self.c[None, :] + u[:, None] * self.d[None, :] + self.f(u)[:, None] * self.n
        return base + np.atleast_1d(off)[:, None] * normal

    def polyline(self, off=0.0, step=1.0):
        u = np.arange(-self.diag, self.diag, step)
        return self.point(u, off), self.tangent(u)


def _distance_to(lines: list[np.ndarray], h: int, w: int, pad: int) -> np.ndarray:
    """Distance (px) of every pixel to the nearest of ``lines`` (polylines, px), exact to
    half a pixel; the canvas is padded so lines leaving the frame still count."""
    canvas = np.full((h + 2 * pad, w + 2 * pad), 255, np.uint8)
    for pts in lines:
        q = np.round((pts + pad) * 8).astype(np.int64)
        q = np.clip(q, -(1 << 20), 1 << 20).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [q], False, 0, 1, cv2.LINE_8, shift=3)
    dist = cv2.distanceTransform(canvas, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist[pad:pad + h, pad:pad + w]


def _rounded_rect(yy, xx, cy, cx, angle, length, width, radius):
    """Pixel coverage of a rounded rectangle and its along/across coordinates (px)."""
    ca, sa = math.cos(angle), math.sin(angle)
    a = (xx - cx) * ca + (yy - cy) * sa
    b = -(xx - cx) * sa + (yy - cy) * ca
    qa = np.abs(a) - (length / 2 - radius)
    qb = np.abs(b) - (width / 2 - radius)
    outside = np.hypot(np.maximum(qa, 0), np.maximum(qb, 0))
    sdf = outside + np.minimum(np.maximum(qa, qb), 0) - radius
    return np.clip(0.5 - sdf, 0, 1), a, b


# --------------------------------------------------------------------------- the scene


class _Scene:
    """Working state of one frame: ground materials, heat from below, objects on top."""

    def __init__(self, rng: np.random.Generator, h: int, w: int, gsd: float, t_air: float):
        self.rng, self.h, self.w, self.gsd, self.t_air = rng, h, w, gsd, t_air
        # Clear skies are 25-30 K colder than the air, overcast ones a few K.
        self.clear = float(rng.uniform(0, 1))
        self.t_sky = t_air - 4.0 - 24.0 * self.clear
        self.ts = np.full((h, w), t_air, np.float32)
        self.eps = np.full((h, w), 0.95, np.float32)
        self.heat = np.zeros((h, w), np.float32)  # extra surface heat from below/beside
        self.heat_ok = np.ones((h, w), np.float32)  # 0 where the ground is a roof or wall
        self.over = np.zeros((h, w), np.float32)  # premultiplied apparent T of objects
        self.cover = np.zeros((h, w), np.float32)  # their coverage
        self.keepout = np.zeros((h, w), bool)  # leak cores objects must not hide
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)
        # Nadir = optical axis, off-centre; also the vignetting centre and relief origin.
        self.p0 = np.array([w * (0.5 + rng.uniform(-0.1, 0.1)), h * (0.5 + rng.uniform(-0.1, 0.1))])
        self.altitude_m = gsd * rng.uniform(800, 1400)
        self.counts: dict[str, int] = {}

    def m(self, value: float) -> float:
        return value / self.gsd

    def mat(self, a: float, b: float) -> float:
        """Night surface temperature: air + ``a`` + ``b`` x clearness (``b`` < 0 cools)."""
        return self.t_air + a + b * self.clear

    def put(self, mask, t_s, eps, sl=None):
        """Replace ground material by ``mask`` (coverage 0..1)."""
        sl = sl or (slice(None), slice(None))
        self.ts[sl] += mask * (t_s - self.ts[sl])
        self.eps[sl] += mask * (eps - self.eps[sl])

    def relief(self, p: np.ndarray, height_m: float) -> np.ndarray:
        """Where the top of an object ``height_m`` tall standing at ``p`` appears (px)."""
        return p + (p - self.p0) * height_m / max(self.altitude_m - height_m, 1.0)

    def free(self, sl, mask) -> bool:
        return not bool(np.any(self.keepout[sl] & (mask > 0.02)))

    def paint_over(self, sl, alpha, t_s, eps, name: str | None = None) -> None:
        """Composite an object (apparent temperature from its own T and emissivity) on top."""
        app = _apparent(t_s, eps, self.t_sky)
        self.over[sl] = alpha * app + (1 - alpha) * self.over[sl]
        self.cover[sl] = alpha + (1 - alpha) * self.cover[sl]
        if name:
            self.counts[name] = self.counts.get(name, 0) + 1

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def random_point(self, mask: np.ndarray) -> tuple[float, float] | None:
        idx = np.flatnonzero(mask.ravel())
        if idx.size == 0:
            return None
        k = int(idx[self.rng.integers(idx.size)])
        return float(k % self.w), float(k // self.w)

    # -- shared objects

    def lamp(self, ground: np.ndarray, strength: float = 1.0) -> None:
        """Street lamp from above: warm head displaced by relief, warm pole, light pool."""
        rng = self.rng
        h_lamp = rng.uniform(4.5, 7.0)
        head = self.relief(ground, h_lamp)
        pool = _window(self.h, self.w, ground[1], ground[0], self.m(9.0))
        if pool is not None:
            sl, yy, xx = pool
            sig = self.m(rng.uniform(1.5, 3.0))
            r2 = (xx - ground[0]) ** 2 + (yy - ground[1]) ** 2
            self.heat[sl] += strength * rng.uniform(0.08, 0.35) * np.exp(-r2 / (2 * sig**2))
        span = np.hypot(*(head - ground)) + self.m(1.0)
        win = _window(self.h, self.w, (ground[1] + head[1]) / 2, (ground[0] + head[0]) / 2,
                      span / 2 + 3)
        if win is None:
            return
        sl, yy, xx = win
        seg = head - ground
        length2 = max(float(seg @ seg), 1e-6)
        t = np.clip(((xx - ground[0]) * seg[0] + (yy - ground[1]) * seg[1]) / length2, 0, 1)
        d = np.hypot(xx - ground[0] - t * seg[0], yy - ground[1] - t * seg[1])
        pole = np.clip(self.m(rng.uniform(0.07, 0.12)) + 0.5 - d, 0, 1)
        # A thin pole still lights up part of a pixel: keep at least a third of one.
        pole = np.maximum(pole, np.clip(1 - d, 0, 1) * 0.35)
        ang = math.atan2(seg[1], seg[0]) + math.pi / 2
        lamp_head, _, _ = _rounded_rect(yy, xx, head[1], head[0], ang, self.m(0.6),
                                        self.m(0.3), self.m(0.12))
        if not self.free(sl, np.maximum(pole, lamp_head)):
            return
        self.paint_over(sl, pole, self.t_air + 0.5 + 2.5 * t, 0.85)
        self.paint_over(sl, lamp_head, self.t_air + strength * rng.uniform(8, 25), 0.9, "lamp")

    def manhole(self, centre: np.ndarray, warm: float) -> bool:
        rng = self.rng
        rad = self.m(rng.uniform(0.3, 0.4))
        win = _window(self.h, self.w, centre[1], centre[0], rad + 3)
        if win is None:
            return False
        sl, yy, xx = win
        r = np.hypot(xx - centre[0], yy - centre[1])
        disc = np.clip(rad - r + 0.5, 0, 1)
        if not self.free(sl, disc) or self.heat_ok[sl][disc > 0.5].min(initial=1) < 1:
            return False
        ring = disc * np.clip(r - (rad - self.m(0.07)) + 0.5, 0, 1)
        ground = float(np.median(self.ts[sl][disc > 0.5])) if (disc > 0.5).any() else self.t_air
        # Worn cast iron is a poor emitter: mirrors the sky; the chamber air below warms it.
        self.put(disc, ground + warm, rng.uniform(0.55, 0.85), sl)
        self.put(ring, ground + 0.3 * warm, 0.92, sl)
        self.count("manhole")
        return True


# --------------------------------------------------------------------------- pipe and leaks


@dataclass
class _Pipes:
    lines: list[np.ndarray]  # polylines (px)
    tangents: list[np.ndarray]
    dist_main: np.ndarray  # px
    dist_branch: np.ndarray | None
    corridor: np.ndarray


def _pipes(sc: _Scene, main: np.ndarray, main_t: np.ndarray, p_branch: float) -> _Pipes:
    rng = sc.rng
    half_m = rng.uniform(1.0, 3.0)  # corridor 2-6 m wide
    pad = int(sc.m(half_m)) + 4
    lines, tangents = [main], [main_t]
    inside = ((main[:, 0] > 0) & (main[:, 0] < sc.w) & (main[:, 1] > 0) & (main[:, 1] < sc.h))
    branch = None
    if rng.uniform() < p_branch and inside.sum() > 4:
        # A service line leaves the main once: sideways, one bend, often out of the frame.
        idx = np.flatnonzero(inside)
        k = int(idx[rng.integers(len(idx) // 5, max(len(idx) * 4 // 5, len(idx) // 5 + 1))])
        t = main_t[k]
        a0 = math.atan2(t[1], t[0]) + rng.choice([-1, 1]) * (math.pi / 2 + rng.uniform(-0.4, 0.4))
        a1 = a0 + rng.uniform(-0.5, 0.5)
        l0, l1 = sc.m(rng.uniform(3, 12)), sc.m(rng.uniform(5, 40))
        p1 = main[k] + l0 * np.array([math.cos(a0), math.sin(a0)])
        p2 = p1 + l1 * np.array([math.cos(a1), math.sin(a1)])
        n0, n1 = max(int(l0), 2), max(int(l1), 2)
        seg0 = main[k] + np.linspace(0, 1, n0)[:, None] * (p1 - main[k])
        seg1 = p1 + np.linspace(0, 1, n1)[:, None] * (p2 - p1)
        branch = np.vstack([seg0, seg1[1:]])
        tb = np.vstack([np.repeat([[math.cos(a0), math.sin(a0)]], n0, 0),
                        np.repeat([[math.cos(a1), math.sin(a1)]], n1 - 1, 0)])
        lines.append(branch)
        tangents.append(tb)
    dist_main = _distance_to([main], sc.h, sc.w, pad)
    dist_branch = _distance_to([branch], sc.h, sc.w, pad) if branch is not None else None
    dist = dist_main if dist_branch is None else np.minimum(dist_main, dist_branch)
    return _Pipes(lines, tangents, dist_main, dist_branch, dist * sc.gsd <= half_m)


def _pipe_trace(sc: _Scene, pipes: _Pipes) -> np.ndarray:
    """Surface excess over an insulated pipe: the flux of a line source and its image."""
    rng = sc.rng
    depth = rng.uniform(0.6, 1.2)
    peak = rng.uniform(0.1, 0.6)
    x = pipes.dist_main * sc.gsd
    trace = peak * depth**2 / (depth**2 + x**2)
    if pipes.dist_branch is not None:
        xb = pipes.dist_branch * sc.gsd
        trace = np.maximum(trace, rng.uniform(0.4, 0.8) * peak * depth**2 / (depth**2 + xb**2))
    # Insulation quality and soil moisture vary along the line: fading, sometimes broken.
    mod = np.clip(0.8 + 0.3 * _smooth(rng, sc.h, sc.w, sc.m(6.0)), 0.2, 1.0)
    if rng.uniform() < 0.35:
        mod *= np.clip((_smooth(rng, sc.h, sc.w, sc.m(4.0)) + 0.8) / 0.4, 0, 1)
    if rng.uniform() < 0.3:
        ang = rng.uniform(0, 2 * math.pi)
        ramp = ((sc.xx - sc.w / 2) * math.cos(ang) + (sc.yy - sc.h / 2) * math.sin(ang))
        mod *= np.clip(0.5 + 1.5 * ramp / math.hypot(sc.h, sc.w), 0, 1)
    sc.count("pipe_trace")
    return (trace * mod).astype(np.float32)


def _leak_kernel(dx, dy, depth: float, half_len: float):
    """Surface flux of a buried line source (length ``2 half_len`` along x, at ``depth``)
    with its image, relative to its maximum; a point source for ``half_len`` -> 0."""
    rho2 = dy * dy + depth * depth
    a, b = dx + half_len, dx - half_len
    flux = depth / rho2 * (a / np.sqrt(a * a + rho2) - b / np.sqrt(b * b + rho2))
    return flux / (2 * half_len / depth / math.sqrt(half_len**2 + depth**2))


@dataclass
class _LeakDraft:
    window: tuple[slice, slice]
    surface: np.ndarray  # surface excess (K) of this leak alone over its window
    core_m: float
    n_sources: int


def _draw_leak_count(rng: np.random.Generator, spec: FamilySpec) -> int:
    p = np.asarray(spec.leak_counts, dtype=float)
    return int(rng.choice(len(p), p=p / p.sum()))


def _place_leaks(sc: _Scene, pipes: _Pipes, n_leaks: int, spec: FamilySpec) -> list[_LeakDraft]:
    rng, gsd = sc.rng, sc.gsd
    pts = np.vstack(pipes.lines)
    tans = np.vstack(pipes.tangents)
    ok = ((pts[:, 0] >= 1) & (pts[:, 0] < sc.w - 1) & (pts[:, 1] >= 1) & (pts[:, 1] < sc.h - 1))
    pts, tans = pts[ok], tans[ok]
    ok = sc.heat_ok[pts[:, 1].astype(int), pts[:, 0].astype(int)] > 0.99
    pts, tans = pts[ok], tans[ok]
    drafts: list[_LeakDraft] = []
    if len(pts) == 0:
        return drafts
    for _ in range(n_leaks):
        for _attempt in range(40):
            k = int(rng.integers(len(pts)))
            tangent = tans[k]
            normal = np.array([-tangent[1], tangent[0]])
            if rng.uniform() < spec.p_tiny:
                core = rng.uniform(0.2, 0.35)
            else:
                core = math.exp(rng.uniform(math.log(0.35), math.log(1.5)))
            if rng.uniform() < spec.p_faint:
                peak = rng.uniform(0.4, 1.0)
            else:
                peak = math.exp(rng.uniform(0.0, math.log(6.0)))
            # A point source's flux falls to 30 % at r = 1.11 depth: the depth sets the core.
            depth = core / 1.11
            half_len = depth * rng.uniform(0.05, 1.8)  # water spreading in the pipe bedding
            lateral = float(np.clip(rng.normal(0, 0.2), -0.5, 0.5))
            centre = pts[k] + normal * lateral / gsd
            sources = [(centre, depth, half_len, 1.0)]
            if rng.uniform() < 0.25:  # a second source close by, merging with the first
                sep = rng.uniform(0.8, 2.0) * core * rng.choice([-1, 1])
                sources.append((centre + tangent * sep / gsd, depth * rng.uniform(0.7, 1.3),
                                depth * rng.uniform(0.05, 1.0), rng.uniform(0.4, 1.0)))
            reach = max(8 * core + 2 * half_len + abs(float(np.linalg.norm(
                sources[-1][0] - centre))) * gsd, 1.0)
            win = _window(sc.h, sc.w, centre[1], centre[0], reach / gsd + 2)
            if win is None:
                continue
            sl, yy, xx = win
            surface = np.zeros(yy.shape, np.float64)
            for c, d, hl, rel in sources:
                ex, ey = (xx - c[0]) * gsd, (yy - c[1]) * gsd
                along = ex * tangent[0] + ey * tangent[1]
                across = -ex * tangent[1] + ey * tangent[0]
                surface += rel * _leak_kernel(along, across, d, hl)
            # Soil is not uniform: the plume's edge wanders a little.
            hetero = _smooth(rng, yy.shape[0], yy.shape[1], max(core / gsd, 2.0))
            surface *= np.exp(0.15 * hetero)
            surface *= sc.heat_ok[sl]
            top = float(surface.max())
            if top <= 0:
                continue
            surface *= peak / top
            r, c = np.unravel_index(int(np.argmax(surface)), surface.shape)
            gr, gc = r + sl[0].start, c + sl[1].start
            core_zone = surface >= 0.1 * peak
            if not pipes.corridor[gr, gc] or sc.keepout[sl][core_zone].any():
                continue
            zone = cv2.dilate(core_zone.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            sc.keepout[sl] |= zone
            drafts.append(_LeakDraft(sl, surface.astype(np.float32), core, len(sources)))
            break
    return drafts


# --------------------------------------------------------------------------- old town


def _setts(u_m, v_m, stone_l: float, stone_w: float, salt: int):
    """Running-bond stones: per-stone random value and distance to the nearest joint (m)."""
    row = np.floor(v_m / stone_w)
    shift = (row % 2) * 0.5 * stone_l + _hash01(row, row * 0 + 7, salt) * 0.3 * stone_l
    uu = u_m + shift
    col = np.floor(uu / stone_l)
    fu, fv = uu - col * stone_l, v_m - row * stone_w
    edge = np.minimum(np.minimum(fu, stone_l - fu), np.minimum(fv, stone_w - fv))
    return _hash01(row, col, salt), _hash01(col, row, salt + 1), edge


def _oldtown(sc: _Scene, n_leaks: int, spec: FamilySpec, with_objects: bool):
    rng, gsd, h, w = sc.rng, sc.gsd, sc.h, sc.w
    street = _Curve(rng, h, w, amp=(0.02, 0.14), wave=(1.2, 3.0))
    u_px, n_px = street.coords(sc.xx, sc.yy)
    u_m, n_m = u_px * gsd, n_px * gsd
    half = rng.uniform(3.0, 5.0)
    walk = rng.uniform(1.2, 2.5)
    curb = 0.15
    salt = int(rng.integers(1 << 30))
    _, n0 = street.coords(sc.p0[0], sc.p0[1])
    n0 *= gsd

    # Street: setts or asphalt, with patches; sidewalks of flagstones; granite curbs.
    on_street = np.abs(n_m) <= half
    lowfreq = 0.35 * _smooth(rng, h, w, sc.m(8.0)) + 0.15 * _smooth(rng, h, w, sc.m(1.5))
    sc.ts[:] = sc.mat(1.2, -0.6) + lowfreq
    sc.eps[:] = rng.uniform(0.92, 0.95)
    asphalt = on_street.astype(np.float32)
    if rng.uniform() < 0.5:  # a setts street, asphalt only in repair patches
        val, val2, edge = _setts(u_m, n_m, rng.uniform(0.1, 0.16), rng.uniform(0.09, 0.13), salt)
        seam = _seam_cover(edge, rng.uniform(0.01, 0.025), gsd)
        tar = rng.uniform() < 0.5
        sc.put(on_street.astype(np.float32), sc.mat(0.8, -0.9) + lowfreq + 0.5 * (val - 0.5),
               0.90 + 0.04 * val2)
        sc.put(seam * on_street, sc.ts + (0.0 if tar else -0.3), 0.97 if tar else 0.93)
        asphalt[:] = 0
    else:
        sc.ts += on_street * (0.04 * rng.standard_normal((h, w)).astype(np.float32))
    for _ in range(int(rng.integers(0, 4))):  # repair patches, rectangles in street coords
        s0 = rng.uniform(-0.4, 0.4) * street.diag * gsd
        ln, wd = rng.uniform(2, 8), rng.uniform(1, 3)
        n_c = rng.uniform(-half + wd / 2, half - wd / 2)
        patch = ((np.abs(u_m - s0) < ln / 2) & (np.abs(n_m - n_c) < wd / 2)).astype(np.float32)
        sc.put(patch, sc.ts + rng.uniform(-0.3, 0.5), rng.uniform(0.94, 0.96))
        asphalt = np.maximum(asphalt, patch)
    pipe_off = rng.uniform(-0.5, 0.5) * half
    if rng.uniform() < 0.4:  # an old trench repair right over the pipe: warm, straight, legal
        s0 = rng.uniform(-0.3, 0.3) * street.diag * gsd
        ln, wd = rng.uniform(6, 30), rng.uniform(0.8, 1.6)
        trench = ((np.abs(u_m - s0) < ln / 2) & (np.abs(n_m - pipe_off) < wd / 2))
        border = trench & ~(cv2.erode(trench.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
        sc.put(trench.astype(np.float32), sc.ts + rng.uniform(0.1, 0.6), 0.96)
        sc.put(border.astype(np.float32), sc.ts, 0.97)
        asphalt = np.maximum(asphalt, trench)
        sc.count("trench_repair")
    # Crack sealing: tar (high emissivity: warm lines) or open moist cracks (cool lines).
    area_m2 = float(asphalt.sum()) * gsd * gsd
    n_cracks = min(int(area_m2 / 40 * rng.uniform(0.5, 1.5)), 25)
    if n_cracks:
        warm_c = np.zeros((h, w), np.uint8)
        cool_c = np.zeros((h, w), np.uint8)
        for _ in range(n_cracks):
            start = sc.random_point(asphalt > 0.5)
            if start is None:
                break
            steps = int(rng.integers(30, 120))
            heading = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, 0.35, steps))
            step = sc.m(rng.uniform(0.15, 0.35))
            path = np.array(start) + np.cumsum(
                np.stack([np.cos(heading), np.sin(heading)], 1) * step, axis=0)
            q = np.round(path * 8).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(warm_c if rng.uniform() < 0.65 else cool_c, [q], False, 255, 1,
                          cv2.LINE_AA, shift=3)
        wc = warm_c.astype(np.float32) / 255 * asphalt
        cc = cool_c.astype(np.float32) / 255 * asphalt
        sc.put(wc, sc.ts, 0.975)
        sc.put(cc, sc.ts - 0.4, 0.95)
        sc.counts["crack"] = n_cracks
    # Sidewalks (flagstones), curbs.
    on_walk = (np.abs(n_m) > half + curb) & (np.abs(n_m) <= half + curb + walk)
    sval, _, sedge = _setts(u_m, n_m, rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.5), salt + 5)
    sc.put(on_walk.astype(np.float32), sc.mat(0.9, -0.8) + lowfreq + 0.4 * (sval - 0.5), 0.93)
    sc.put(_seam_cover(sedge, 0.01, gsd) * on_walk, sc.ts - 0.2, 0.95)
    on_curb = (np.abs(n_m) > half) & (np.abs(n_m) <= half + curb)
    sc.put(on_curb.astype(np.float32), sc.mat(0.6, -1.0) + lowfreq, 0.90)

    # Houses: right behind one sidewalk; across the street more houses behind a small square,
    # or a square up to the frame edge. A facade shows only where it faces away from the
    # nadir (relief displacement), wider the farther away it stands.
    walk_end = half + curb + walk
    first = float(rng.choice([-1.0, 1.0]))
    second = rng.uniform() < 0.6
    square_w = rng.uniform(0, 12)
    for sigma in (1.0, -1.0):
        outward = sigma * n_m
        houses = sigma == first or second
        front = walk_end if sigma == first else (walk_end + square_w if second else math.inf)
        plaza = (outward > walk_end) & (outward <= front)
        if plaza.any():  # setts laid straight
            ang = rng.uniform(0, math.pi)
            pu = (sc.xx * math.cos(ang) + sc.yy * math.sin(ang)) * gsd
            pv = (-sc.xx * math.sin(ang) + sc.yy * math.cos(ang)) * gsd
            pval, _, pedge = _setts(pu, pv, rng.uniform(0.1, 0.14), rng.uniform(0.1, 0.14),
                                    salt + 9)
            sc.put(plaza.astype(np.float32), sc.mat(0.8, -0.9) + lowfreq + 0.5 * (pval - 0.5),
                   0.91)
            sc.put(_seam_cover(pedge, 0.015, gsd) * plaza, sc.ts - 0.2, 0.95)
        if not houses:
            continue
        # Walls shelter the ground from the sky: it stays warmer near them.
        near = np.exp(-np.clip(front - outward, 0, None) / rng.uniform(1.5, 3.0))
        sc.ts += (outward > 0) * (outward <= front) * near * rng.uniform(0.3, 1.0)
        wall_h = rng.uniform(7, 14)
        face_w = wall_h * max(front - sigma * n0, 0.0) / sc.altitude_m
        facade = (outward > front) & (outward <= front + face_w)
        roof = outward > front + face_w
        if facade.any():
            z = (outward - front) / max(face_w, 1e-6) * wall_h  # height on the wall (m)
            sc.put(facade.astype(np.float32), sc.t_air + rng.uniform(2.5, 6.0), 0.92)
            col_w = rng.uniform(2.8, 4.0)
            in_col = np.abs(((u_m + rng.uniform(0, col_w)) % col_w) - col_w / 2) < 0.6
            in_row = ((z % 3.0) > 1.0) & ((z % 3.0) < 2.4) & (z > 0.8)
            win = facade & in_col & in_row
            win_id = _hash01(np.floor(u_m / col_w), np.floor(z / 3.0), salt + 11)
            lit = win & (win_id < rng.uniform(0.1, 0.35))
            sc.put(win.astype(np.float32), sc.t_air + 2.0, 0.85)  # glass mirrors the sky
            sc.put(lit.astype(np.float32), sc.t_air + rng.uniform(6, 14), 0.85)
            sc.counts["window"] = sc.counts.get("window", 0) + len(np.unique(win_id[lit]))
        if roof.any():
            house_len = rng.uniform(6, 14)
            house = np.floor((u_m + rng.uniform(0, house_len)) / house_len)
            house_t = (_hash01(house, house * 0 + 3, salt + 13) - 0.5) * 1.4
            depth = outward - front - face_w
            tiles = 0.1 * np.sin(2 * np.pi * depth / 0.3)
            ridge_at = rng.uniform(4, 6)
            ridge = np.exp(-((depth - ridge_at) / 0.25) ** 2) * 0.5
            eave = (depth < rng.uniform(0.3, 0.6)) * rng.uniform(1.0, 3.0)
            sc.put(roof.astype(np.float32),
                   sc.mat(-0.8, -3.2) + house_t + tiles + ridge + eave, rng.uniform(0.9, 0.93))
            sc.count("building")
        sc.heat_ok[facade | roof] = 0
    roofs = sc.heat_ok < 0.5
    for _ in range(int(rng.integers(0, 4)) if with_objects else 0):  # skylights, chimneys
        p = sc.random_point(roofs)
        if p is None:
            break
        hot = rng.uniform() < 0.4
        size = sc.m(0.5 if hot else rng.uniform(0.6, 0.9))
        win = _window(h, w, p[1], p[0], size)
        if win is None:
            continue
        sl, yy, xx = win
        box, _, _ = _rounded_rect(yy, xx, p[1], p[0], rng.uniform(0, math.pi), size, size,
                                  0.5)
        box = box * roofs[sl]
        sc.put(box, sc.t_air + (rng.uniform(5, 25) if hot else rng.uniform(5, 12)),
               0.9 if hot else 0.85, sl)
        sc.count("chimney" if hot else "window")

    # Pipe under the street, following it; corridor; trace.
    main, main_t = street.polyline(off=pipe_off / gsd)
    pipes = _pipes(sc, main, main_t, p_branch=0.4)
    trace = _pipe_trace(sc, pipes)
    leaks = _place_leaks(sc, pipes, n_leaks, spec)
    if with_objects:
        _oldtown_objects(sc, street, half, curb, pipes)
    return pipes, trace, leaks


def _oldtown_objects(sc: _Scene, street: _Curve, half: float, curb: float, pipes: _Pipes):
    rng, h, w = sc.rng, sc.h, sc.w
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], float)
    cu = [float(street.coords(x, y)[0]) for x, y in corners]
    u_lo, u_hi = min(cu) - sc.m(3), max(cu) + sc.m(3)

    # Puddles in hollows: smooth water mirrors the cold sky and evaporates.
    if rng.uniform() < 0.7:
        field_ = _smooth(rng, h, w, sc.m(1.5)) + 0.5 * _smooth(rng, h, w, sc.m(0.5))
        ground = sc.heat_ok > 0.5
        sample = field_[ground][:: max(1, int(ground.sum()) // 4096)]
        if sample.size:
            q = float(np.quantile(sample, 1 - rng.uniform(0.01, 0.06)))
            wet = np.clip((field_ - q) / 0.15, 0, 1) * ground
            sc.put(wet, sc.ts - rng.uniform(0.2, 0.8), rng.uniform(0.86, 0.92))
            sc.count("puddle")

    # Manholes: some on the pipe (district-heating chambers, warm), some anywhere.
    pts = np.vstack(pipes.lines)
    for _ in range(int(rng.integers(1, 3))):
        p = pts[rng.integers(len(pts))]
        sc.manhole(p, rng.uniform(0.5, 5.0))
    for _ in range(int(rng.integers(1, 4))):
        p = sc.random_point(sc.heat_ok > 0.5)
        if p is not None:
            sc.manhole(np.array(p), rng.uniform(-0.3, 3.0))

    # Drain gratings at the curb: warm sewer air through the slots.
    for _ in range(int(rng.integers(2, 7))):
        s = rng.uniform(u_lo, u_hi)
        side = rng.choice([-1.0, 1.0])
        p = street.point(s, side * sc.m(half - 0.25))[0]
        ang = math.atan2(*street.tangent(s)[0][::-1])
        win = _window(h, w, p[1], p[0], sc.m(0.5))
        if win is None:
            continue
        sl, yy, xx = win
        box, a, _ = _rounded_rect(yy, xx, p[1], p[0], ang, sc.m(0.55), sc.m(0.35), 0.5)
        if not sc.free(sl, box) or box.max() <= 0:
            continue
        slots = 0.5 + 0.5 * np.sin(2 * np.pi * a / max(sc.m(0.1), 2.0))
        base = sc.ts[sl].copy()
        sc.put(box, base + slots * rng.uniform(1.0, 5.0), 0.7 + 0.25 * slots, sl)
        sc.count("drain")

    # Parked cars; departed cars leave a warm, sheltered patch.
    lanes = [s for s in (-1.0, 1.0) if rng.uniform() < 0.75]
    for side in lanes:
        s = u_lo
        while s < u_hi:
            length, width = rng.uniform(3.8, 4.9), rng.uniform(1.65, 1.9)
            s += sc.m(length / 2)
            p = street.point(s, side * sc.m(half - rng.uniform(0.9, 1.1)))[0]
            t = street.tangent(s)[0] * rng.choice([-1, 1])
            ang = math.atan2(t[1], t[0])
            roll = rng.uniform()
            if roll < 0.55:
                _car(sc, p, ang, length, width)
            elif roll < 0.65:
                win = _window(h, w, p[1], p[0], sc.m(length / 2 + 0.5))
                if win is not None:
                    sl, yy, xx = win
                    box, _, _ = _rounded_rect(yy, xx, p[1], p[0], ang, sc.m(length),
                                              sc.m(width), sc.m(0.3))
                    box = cv2.GaussianBlur(box, (0, 0), max(sc.m(0.15), 0.5))
                    if sc.free(sl, box):
                        sc.heat[sl] += box * rng.uniform(0.4, 1.5)
                        sc.count("car_shadow")
            s += sc.m(length / 2 + rng.uniform(0.6, 2.5))

    # Street lamps along both curbs.
    s = u_lo + sc.m(rng.uniform(0, 15))
    side = rng.choice([-1.0, 1.0])
    while s < u_hi:
        p = street.point(s, side * sc.m(half + curb + 0.3))[0]
        sc.lamp(p)
        s += sc.m(rng.uniform(15, 28))
        side = -side


def _car(sc: _Scene, p: np.ndarray, ang: float, length: float, width: float) -> None:
    rng = sc.rng
    win = _window(sc.h, sc.w, p[1], p[0], sc.m(length / 2 + 1.0))
    if win is None:
        return
    sl, yy, xx = win
    body, a, b = _rounded_rect(yy, xx, p[1], p[0], ang, sc.m(length), sc.m(width), sc.m(0.35))
    if body.max() <= 0 or not sc.free(sl, body):
        return
    an = a / sc.m(length / 2)  # -1 rear .. +1 front
    # Thin sheet metal and glass radiate to the sky: parked cars are colder than the road.
    t_body = sc.mat(-0.4, -2.6) + np.zeros_like(an)
    eps = np.full_like(an, 0.9)
    glass = ((an > 0.2) & (an <= 0.45)) | ((an < -0.5) & (an >= -0.72))
    eps[glass] = 0.84
    driven = rng.uniform() < 0.35
    if driven:
        bonnet = np.clip((an - 0.45) / 0.55, 0, 1)
        t_body = t_body + bonnet * rng.uniform(3, 14) * np.exp(-(b / sc.m(width / 2)) ** 2)
    sc.paint_over(sl, body, t_body, eps, "vehicle")
    if driven and rng.uniform() < 0.8:  # exhaust: warms the tailpipe and the road behind
        side = rng.choice([-1, 1]) * 0.3 * width
        ca, sa = math.cos(ang), math.sin(ang)
        ex = p + sc.m(length / 2 + 0.1) * np.array([-ca, -sa]) + sc.m(side) * np.array([-sa, ca])
        sig = sc.m(rng.uniform(0.15, 0.25))
        r2 = (xx - ex[0]) ** 2 + (yy - ex[1]) ** 2
        spot = np.exp(-r2 / (2 * sig**2)).astype(np.float32)
        if sc.free(sl, spot):
            sc.heat[sl] += spot * rng.uniform(4, 20)
            sc.count("exhaust")


# --------------------------------------------------------------------------- park


def _parkland(sc: _Scene, n_leaks: int, spec: FamilySpec, with_objects: bool):
    rng, gsd, h, w = sc.rng, sc.gsd, sc.h, sc.w
    # Grass: cold (low inertia, radiates to the sky), mowing stripes change the canopy.
    sc.ts[:] = (sc.mat(-0.6, -4.0) + 0.5 * _smooth(rng, h, w, sc.m(8.0))
                + 0.25 * _smooth(rng, h, w, sc.m(0.4))
                + 0.1 * rng.standard_normal((h, w)).astype(np.float32))
    sc.eps[:] = rng.uniform(0.97, 0.985)
    ang = rng.uniform(0, math.pi)
    across = (sc.xx * math.cos(ang) + sc.yy * math.sin(ang)) * gsd
    stripes = np.tanh(3 * np.sin(np.pi * across / rng.uniform(0.6, 1.0)))
    lawn = np.clip(_smooth(rng, h, w, sc.m(10.0)) + 0.8, 0, 1)
    sc.ts += stripes * lawn * rng.uniform(0.15, 0.4)
    # Bare soil patches; leaf litter (insulating, cold, speckled).
    soil = np.clip((_smooth(rng, h, w, sc.m(3.0)) - 1.2) / 0.3, 0, 1)
    sc.put(soil, sc.mat(0.6, -1.6) + 0.2 * _smooth(rng, h, w, sc.m(0.5)), 0.94)
    litter_field = _smooth(rng, h, w, sc.m(4.0))

    # Trees (positions first: leaf litter gathers under them).
    trees = []
    n_trees = min(int(rng.poisson(h * w * gsd * gsd / 350.0)) + 1, 8) if with_objects else 0
    for _ in range(n_trees):
        g = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        trees.append((g, rng.uniform(2.5, 7.0), rng.uniform(6, 14)))
    under = np.zeros((h, w), np.float32)
    for g, rad, _ in trees:
        r2 = ((sc.xx - g[0]) ** 2 + (sc.yy - g[1]) ** 2) / sc.m(rad) ** 2
        under = np.maximum(under, np.exp(-r2))
    litter = np.clip((litter_field - 1.0) / 0.4 + 1.6 * under - 0.6, 0, 1)
    sc.put(litter, sc.mat(-1.0, -2.8) + 0.35 * rng.standard_normal((h, w)).astype(np.float32),
           0.95)
    # The crown shelters the ground from the sky: warmer beneath.
    sc.ts += under * rng.uniform(0.4, 1.2)

    # Paths: the cycle path carries the pipe; gravel paths wander.
    main = _Curve(rng, h, w, amp=(0.03, 0.2), wave=(1.0, 2.5))
    mu, mn = main.coords(sc.xx, sc.yy)
    mn_m = mn * gsd
    half = rng.uniform(1.2, 1.8)
    paths = [(main, mn_m, half)]
    for _ in range(int(rng.integers(1, 3))):
        other = _Curve(rng, h, w, amp=(0.02, 0.25), wave=(0.8, 2.5))
        paths.append((other, other.coords(sc.xx, sc.yy)[1] * gsd, rng.uniform(0.7, 1.2)))
    for k, (_, n_m, hw) in enumerate(paths[::-1]):
        cover = np.clip((hw - np.abs(n_m)) / gsd + 0.5, 0, 1)
        asphalt = k == len(paths) - 1 and rng.uniform() < 0.6
        if asphalt:
            sc.put(cover, sc.mat(1.3, -0.7) + 0.03 * rng.standard_normal((h, w)).astype(
                np.float32), 0.94)
            dash = (np.floor(mu * gsd / 1.0) % 2 == 0) & (np.abs(n_m) < 0.05 + gsd / 2)
            sc.put(dash.astype(np.float32) * min(0.1 / gsd, 1.0), sc.ts, 0.90)
        else:
            sc.put(cover, sc.mat(0.9, -1.3) + 0.12 * rng.standard_normal((h, w)).astype(
                np.float32), 0.92)

    # Pond: open water or ice, the coldest thing in the park.
    pipe_off = float(np.clip(rng.normal(0, 0.4), -1.0, 1.0))
    mline, mline_t = main.polyline(off=pipe_off / gsd)
    pipes = _pipes(sc, mline, mline_t, p_branch=0.3)
    if with_objects and rng.uniform() < 0.6:
        pdist = pipes.dist_main if pipes.dist_branch is None else np.minimum(
            pipes.dist_main, pipes.dist_branch)
        rad = rng.uniform(3, 9)
        far = (pdist * gsd > rad + 5) & (np.abs(mn_m) > rad + 2)
        c = sc.random_point(far)
        if c is not None:
            r = np.hypot(sc.xx - c[0], sc.yy - c[1])
            edge = sc.m(rad) * (1 + 0.18 * _smooth(rng, h, w, sc.m(rad / 2)))
            water = np.clip(edge - r + 0.5, 0, 1)
            reeds = np.clip(edge + sc.m(rng.uniform(0.4, 1.0)) - r + 0.5, 0, 1) - water
            sc.put(reeds, sc.mat(-1.2, -3.8) + 0.3 * rng.standard_normal((h, w)).astype(
                np.float32), 0.97)
            sc.put(water, sc.mat(-1.5, -3.5), rng.uniform(0.90, 0.95))
            sc.heat_ok[water > 0.5] = 0
            sc.count("pond")

    trace = _pipe_trace(sc, pipes)
    leaks = _place_leaks(sc, pipes, n_leaks, spec)
    if with_objects:
        _park_objects(sc, paths, trees, pipes)
    return pipes, trace, leaks


def _park_objects(sc: _Scene, paths, trees, pipes: _Pipes):
    rng, h, w = sc.rng, sc.h, sc.w
    # District-heating chamber cover in the path, over the pipe.
    if rng.uniform() < 0.35:
        pts = np.vstack(pipes.lines)
        p = pts[rng.integers(len(pts))]
        win = _window(h, w, p[1], p[0], sc.m(0.7))
        if win is not None:
            sl, yy, xx = win
            box, _, _ = _rounded_rect(yy, xx, p[1], p[0], rng.uniform(0, math.pi), sc.m(0.9),
                                      sc.m(0.9), 0.5)
            if box.max() > 0 and sc.free(sl, box):
                sc.put(box, sc.ts[sl] + rng.uniform(1, 5), rng.uniform(0.6, 0.8), sl)
                sc.count("manhole")

    # Benches beside the paths: thin wood, colder than the ground.
    for _ in range(int(rng.integers(0, 4))):
        curve, _, hw = paths[int(rng.integers(len(paths)))]
        s = rng.uniform(-0.4, 0.4) * curve.diag
        side = rng.choice([-1.0, 1.0])
        p = curve.point(s, side * sc.m(hw + rng.uniform(0.4, 1.0)))[0]
        t = curve.tangent(s)[0]
        win = _window(h, w, p[1], p[0], sc.m(1.2))
        if win is None:
            continue
        sl, yy, xx = win
        box, _, b = _rounded_rect(yy, xx, p[1], p[0], math.atan2(t[1], t[0]), sc.m(1.8),
                                  sc.m(0.5), 0.5)
        if box.max() <= 0 or not sc.free(sl, box):
            continue
        slats = 0.75 + 0.25 * np.sin(2 * np.pi * b / max(sc.m(0.12), 2.0))
        t_b = sc.mat(-0.6, -2.2) + np.zeros_like(b)
        if rng.uniform() < 0.15:  # someone just left
            t_b = t_b + rng.uniform(2, 5) * (np.abs(xx - p[0]) + np.abs(yy - p[1]) < sc.m(0.4))
        sc.paint_over(sl, box * slats, t_b, 0.9, "bench")

    # Trees: trunk (warm, stored heat) drawn from its base to the displaced crown.
    for g, rad, height in trees:
        top = sc.relief(g, height)
        reach = sc.m(rad * 1.25) + np.hypot(*(top - g))
        win = _window(h, w, (g[1] + top[1]) / 2, (g[0] + top[0]) / 2, reach)
        if win is None:
            continue
        sl, yy, xx = win
        r = np.hypot(xx - top[0], yy - top[1])
        theta = np.arctan2(yy - top[1], xx - top[0])
        wobble = sum(rng.uniform(0, 0.1) * np.sin(k * theta + rng.uniform(0, 6.3))
                     for k in (2, 3, 5, 7, 11))
        edge = sc.m(rad) * (1 + wobble)
        lace = _smooth(rng, yy.shape[0], yy.shape[1], max(sc.m(0.6), 1.5))
        alpha = np.clip(0.85 + 0.35 * lace - 0.5 * (r / edge) ** 3, 0, 1)
        alpha *= np.clip(edge - r + 0.5, 0, 1)
        seg = top - g
        length2 = max(float(seg @ seg), 1e-6)
        tt = np.clip(((xx - g[0]) * seg[0] + (yy - g[1]) * seg[1]) / length2, 0, 1)
        d = np.hypot(xx - g[0] - tt * seg[0], yy - g[1] - tt * seg[1])
        trunk = np.clip(sc.m(rng.uniform(0.15, 0.3)) + 0.5 - d, 0, 1) * (tt < 0.55)
        trunk = np.maximum(trunk, np.clip(sc.m(0.25) + 0.5 - np.hypot(xx - g[0], yy - g[1]),
                                          0, 1))
        if not sc.free(sl, np.maximum(alpha, trunk)):
            continue
        sc.paint_over(sl, trunk, sc.t_air + rng.uniform(0.5, 2.5), 0.95)
        sc.paint_over(sl, alpha, sc.mat(-2.5, -4.5) + 0.4 * lace, 0.97, "tree")

    # People and dogs: warm blobs, often on the paths (so in the corridor too).
    for _ in range(min(int(rng.poisson(1.3)), 4)):
        if rng.uniform() < 0.6:
            curve, _, hw = paths[int(rng.integers(len(paths)))]
            s = rng.uniform(-0.4, 0.4) * curve.diag
            p = curve.point(s, sc.m(rng.uniform(-hw, hw)))[0]
        else:
            p = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        heading = rng.uniform(0, 2 * math.pi)
        walker = rng.uniform() < 0.8
        dog = rng.uniform() < 0.7
        bodies = []
        if walker:
            bodies.append((p, heading + math.pi / 2, 0.5, 0.28, sc.t_air + rng.uniform(6, 14),
                           0.2, rng.uniform(24, 31), "person"))
        if dog:
            dp = p + sc.m(rng.uniform(1, 3)) * np.array([math.cos(heading), math.sin(heading)])
            bodies.append((dp, heading, 0.7, 0.28, sc.t_air + rng.uniform(10, 18),
                           0.15, sc.t_air + rng.uniform(14, 22), "animal"))
        for c, a, ln, wd, t_body, head_d, t_head, name in bodies:
            win = _window(h, w, c[1], c[0], sc.m(ln))
            if win is None:
                continue
            sl, yy, xx = win
            body, along, _ = _rounded_rect(yy, xx, c[1], c[0], a, max(sc.m(ln), 1.5),
                                           max(sc.m(wd), 1.2), max(sc.m(wd), 1.2) / 2)
            hc = c + (sc.m(ln / 2) if name == "animal" else 0) * np.array(
                [math.cos(a), math.sin(a)])
            head = np.clip(max(sc.m(head_d / 2), 0.6) + 0.5
                           - np.hypot(xx - hc[0], yy - hc[1]), 0, 1)
            if body.max() <= 0 or not sc.free(sl, np.maximum(body, head)):
                continue
            sc.paint_over(sl, body, t_body, 0.95)
            sc.paint_over(sl, head, t_head, 0.97, name)

    # A few lamps along the cycle path.
    curve, _, hw = paths[0]
    for _ in range(int(rng.integers(0, 3))):
        s = rng.uniform(-0.4, 0.4) * curve.diag
        p = curve.point(s, rng.choice([-1.0, 1.0]) * sc.m(hw + 0.4))[0]
        sc.lamp(p, strength=0.7)


# --------------------------------------------------------------------------- camera


def _motion_kernel(rng: np.random.Generator) -> np.ndarray:
    length = rng.uniform(1.5, 4.0)
    ang = rng.uniform(0, math.pi)
    size = int(math.ceil(length)) + 3
    size += 1 - size % 2
    kern = np.zeros((size, size), np.float64)
    c = size // 2
    for t in np.linspace(-length / 2, length / 2, 33):
        x, y = c + t * math.cos(ang), c + t * math.sin(ang)
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        kern[y0, x0] += (1 - fx) * (1 - fy)
        kern[y0, x0 + 1] += fx * (1 - fy)
        kern[y0 + 1, x0] += (1 - fx) * fy
        kern[y0 + 1, x0 + 1] += fx * fy
    return (kern / kern.sum()).astype(np.float32)


def _camera(sc: _Scene, scene: np.ndarray, netd: float) -> np.ndarray:
    rng, h, w = sc.rng, sc.h, sc.w
    img = cv2.GaussianBlur(scene, (0, 0), rng.uniform(0.5, 1.1))
    halo = rng.uniform(0.02, 0.06)  # stray light: a weak wide skirt around the PSF
    img = (1 - halo) * img + halo * cv2.GaussianBlur(scene, (0, 0), rng.uniform(3, 6))
    if rng.uniform() < 0.25:
        img = cv2.filter2D(img, -1, _motion_kernel(rng), borderType=cv2.BORDER_REFLECT)
    rr = ((sc.xx - sc.p0[0]) ** 2 + (sc.yy - sc.p0[1]) ** 2) / ((h / 2) ** 2 + (w / 2) ** 2)
    img += rng.uniform(-0.9, 0.3) * rr + rng.uniform(-0.3, 0.1) * rr**2
    img += rng.normal(0, rng.uniform(0.01, 0.05), (h, 1)).astype(np.float32)
    img += rng.normal(0, rng.uniform(0.01, 0.06), (1, w)).astype(np.float32)
    img += rng.normal(0, netd, (h, w)).astype(np.float32)
    img += rng.uniform(-0.8, 0.8)  # absolute calibration error
    for _ in range(int(rng.integers(0, 7))):
        r, c = int(rng.integers(h)), int(rng.integers(w))
        img[r, c] += rng.choice([-1.0, 1.0]) * rng.uniform(3, 15)
    step = float(rng.choice([0.01, 0.02, 0.04]))
    return (np.round(img / step) * step).astype(np.float32)


# --------------------------------------------------------------------------- frames


def frame_seed(seed: int, family: str, index: int) -> int:
    """The seed of frame ``index`` of a set (independent of the other frames)."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(family.encode()), index])
    return int(ss.generate_state(1)[0])


def set_leak_counts(seed: int, family: str, n_frames: int) -> list[int]:
    """Leaks per frame of a written set: exactly ``round(35 %)`` leak-free frames (drawing
    each frame alone, 40 frames can hold 20 % or 55 % of them), the others 1-3 leaks."""
    spec = _check_family(family)
    rng = np.random.default_rng(np.random.SeedSequence(
        [int(seed) & 0xFFFFFFFF, zlib.crc32(family.encode()), 0x1EAC]))
    n_empty = int(round(spec.leak_counts[0] * n_frames))
    some = np.asarray(spec.leak_counts[1:], dtype=float)
    counts = [0] * n_empty + [1 + int(k) for k in rng.choice(
        len(some), size=n_frames - n_empty, p=some / some.sum())]
    return [int(c) for c in rng.permutation(counts)]


def _check_family(family: str) -> FamilySpec:
    if family not in SPECS:
        raise ValueError(f"unknown independent family {family!r}; choose one of "
                         f"{', '.join(FAMILIES)}")
    return SPECS[family]


def generate_frame(family: str, seed: int, height: int = 512, width: int = 640, *,
                   n_leaks: int | None = None, objects: bool = True) -> SceneFrame:
    """One seeded frame of ``family``.

    ``n_leaks`` forces the number of leaks (default: drawn, 35 % none); ``objects=False``
    leaves out cars, lamps, manholes, drains, puddles, trees, benches, the pond, people and
    animals (the ground, buildings and the pipe trace stay).
    """
    from thermal_anomaly_segmenter.io.frames import compose_frame

    spec = _check_family(family)
    if height < 16 or width < 16:
        raise ValueError("frames need at least 16 x 16 pixels")
    rng = np.random.default_rng(int(seed))
    gsd = round(float(rng.uniform(*spec.gsd_m)), 4)
    t_air = float(rng.uniform(*spec.t_air_degc))
    netd = float(rng.uniform(*spec.netd_k))
    drawn = _draw_leak_count(rng, spec)
    n_leaks = drawn if n_leaks is None else int(n_leaks)
    sc = _Scene(rng, height, width, gsd, t_air)
    paint = _oldtown if family == "indep_oldtown" else _parkland
    pipes, trace, drafts = paint(sc, n_leaks, spec, objects)

    ground = _apparent(sc.ts, sc.eps, sc.t_sky)
    gain = sc.eps * ((sc.ts + _K) / (ground + _K)) ** 3  # d(apparent)/d(surface temperature)
    shown = gain * sc.heat_ok * (1 - sc.cover)  # how surface heat reaches the camera
    heat = sc.heat + trace
    leaks: list[Leak] = []
    label = np.zeros((height, width), np.uint8)
    leak_excess = np.zeros((height, width), np.float32)
    for d in drafts:
        excess = (d.surface * shown[d.window]).astype(np.float32)
        heat[d.window] += d.surface
        leak_excess[d.window] += excess
        peak = float(excess.max())
        r, c = np.unravel_index(int(np.argmax(excess)), excess.shape)
        keep = (excess >= max(LABEL_PEAK_FRACTION * peak, LABEL_NETD_FACTOR * netd)) \
            & pipes.corridor[d.window]
        if keep[r, c]:
            _, comp = cv2.connectedComponents(keep.astype(np.uint8), connectivity=8)
            label[d.window] |= (comp == comp[r, c]).astype(np.uint8)
        leaks.append(Leak(int(r + d.window[0].start), int(c + d.window[1].start), peak,
                          d.core_m, d.n_sources, d.window, excess))
    scene = sc.over + (1 - sc.cover) * (ground + gain * sc.heat_ok * heat)
    t_u = _camera(sc, scene.astype(np.float32), netd)
    counts = dict(sorted(sc.counts.items()))
    return SceneFrame(compose_frame(t_u, pipes.corridor), label, pipes.corridor, gsd, netd,
                      t_air, leaks, leak_excess, (trace * shown).astype(np.float32), counts)


# --------------------------------------------------------------------------- writing


def write_set(root: str | os.PathLike[str], family: str, n_frames: int, seed: int,
              height: int = 512, width: int = 640) -> Path:
    """Write ``root/manual_set`` (every frame in the test split) and return ``root``.

    Frame ``i`` is ``generate_frame(family, frame_seed(seed, family, i), height, width,
    n_leaks=set_leak_counts(seed, family, n_frames)[i])`` (seed and leak count are also in
    ``dataset_info.json``).

    Refuses a non-empty ``root/manual_set``; the set is built in a hidden sibling folder and
    renamed into place, so a failure leaves nothing behind.
    """
    from thermal_anomaly_segmenter.io.dataset_writer import write_info
    from thermal_anomaly_segmenter.io.formats import write_frame, write_label

    _check_family(family)
    if int(n_frames) < 1:
        raise ValueError("n_frames must be at least 1")
    root = Path(root)
    target = root / "manual_set"
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} exists and is not empty; remove it or write elsewhere")
    made_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".manual_set.", suffix=".tmp", dir=root))
    subset = f"{SUBSET}_test"
    try:
        frames: dict[str, dict] = {}
        counts = set_leak_counts(seed, family, int(n_frames))
        for i in range(int(n_frames)):
            fseed = frame_seed(seed, family, i)
            frame = generate_frame(family, fseed, height, width, n_leaks=counts[i])
            fid = f"frame_{i:04d}"
            write_frame(tmp / "image" / subset / f"{fid}.npy.lz4", frame.data)
            write_label(tmp / "label" / subset / f"{fid}.png", frame.label)
            frames[fid] = {"seed": fseed, "family": family, "gsd_m": frame.gsd_m,
                           "n_leaks": len(frame.leaks), "t_air_degc": round(frame.t_air_degc, 2),
                           "netd_mk": round(frame.netd_k * 1000, 1),
                           "distractors": frame.distractors}
        provenance = {
            "name": GENERATOR_NAME, "version": VERSION, "families": [family],
            "seed": int(seed), "height": int(height), "width": int(width),
            "n_frames": int(n_frames), "splits": [0.0, 0.0, 1.0],
            "labels_from": "leak_excess", "evaluation_only": True,
            "split_ids": {"train": [], "val": [], "test": [f"{subset}/{f}" for f in frames]},
            "frames": frames,
        }
        write_info(tmp, SUBSET, ["test"], "generator", provenance)
        umask = os.umask(0o022)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private
        if target.is_dir():
            target.rmdir()  # empty, checked above
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if made_root:
            with contextlib.suppress(OSError):
                root.rmdir()
        raise
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m heldout.second_generator",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="dataset folder; manual_set is written inside it")
    parser.add_argument("--family", choices=FAMILIES, required=True)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 640), metavar=("H", "W"))
    args = parser.parse_args(argv)
    try:
        root = write_set(args.dir, args.family, args.frames, args.seed, *args.size)
    except (FileExistsError, ValueError) as exc:
        parser.error(str(exc))
    print(root / "manual_set")


if __name__ == "__main__":
    main()
