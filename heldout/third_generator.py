"""A third, independent scene generator, for EVALUATION ONLY: never train, calibrate or pick
a threshold on its frames.

TASeg's models are trained on scenes of ``thermal_anomaly_segmenter.scenes`` and may also see
the second generator, :mod:`heldout.second_generator`. This module shares no code and no
modelling choices with either, so a model trained on both can still be judged on scenes whose
every habit (how a leak's heat spreads, what a distractor looks like, what the camera adds) it
has never seen. It writes TASeg frames ``(T_m, T_m, T_u)`` in degC and 0/1 labels.

Families
--------
``indep2_snowmelt``
    Residential street under snow on a hard night (air -20..-2 degC), 3-8 cm/px: a snow-packed
    carriageway with car tracks, ploughed snow banks, cleared footpaths and driveways (asphalt,
    warmer than snow), gardens under deep snow with hedges and sheds, houses at the frame
    edges (snowy roofs, warm facades, plinths and basement windows), parked cars (snowed-in and
    cold, or just driven: warm bonnet, wheels and exhaust), lights, manhole chambers with melt
    rings, compost heaps, a person or a dog. The pipe's own heat shows as a faint, broken melt
    strip. Leaks under snow melt a hole whose edge is sharp where the snow ends (wet ground,
    lower emissivity) or only thin the snow; leaks under asphalt are smooth.
``indep2_railyard``
    Rail yard / depot (air -8..+8 degC), 9-16 cm/px: ballast, tracks with sleepers (rails of
    polished steel reflect the sky: thin cold or faintly warm lines, one siding parallel to
    the pipe), concrete aprons of slabs with joints, an asphalt road, containers (reefers with
    hot condensers), warehouse roofs with ribs, skylights and hot vent stacks, tanks, trucks
    with hot engines and exhaust stacks, floodlights, workers, puddles and an above-ground
    insulated pipe bridge crossing the corridor (its warm joints are pipe heat). The corridor
    crosses the frame diagonally with bends. Leaks: elongated along the pipe, tear-drops,
    leaks under concrete cut off at slab joints, and leaks of a few pixels.

Physics
-------
The scene is painted on a ground raster (metres, finer than the camera's pixels) as surface
temperature, emissivity and material. The apparent temperature is radiometric:
``T_app^4 = eps T_s^4 + (1 - eps) T_sky^4`` (Kelvin; clear or overcast sky). Buried heat is a
steady-state conduction solve in Fourier space on a coarse grid, then upsampled: a source at
depth ``D`` under a half-space with a convective (Robin) surface gives a surface response
``exp(-|q| D) / (|q| + beta)``; a leak's water first spreads in the pipe bedding, an
anisotropic advection-diffusion-loss solve (longer along the pipe, drifting down the slope,
source fingers), so plumes are tear-drops, fingers and streaks. Each material couples that
heat to its surface differently: snow melts through (sharp hole) or insulates, concrete slabs
average it within each slab (steps at joints), ballast passes a patchy part, roofs, cars and
metal none. The camera is oblique (GSD changes by up to +-25 % across the frame through a
homography; objects scale with it; the frame-centre GSD is recorded), with PSF and sometimes
motion blur, a lens ghost and flare around very hot objects, narcissus (cold centre), a
low-frequency non-uniformity drift, calibration gain (+-10 %) and offset (+-3 degC) errors,
bad columns, NETD 35-100 mK noise and quantisation.

Label convention
----------------
A leak's label covers the pixels where its OWN excess apparent temperature (its contribution
alone, before optics and noise) is at least 30 % of its peak and at least 2 x NETD, inside the
corridor, one 8-connected piece per leak (the one holding its peak). The pipe's heat trace,
lamps, manholes, vehicles, buildings, rails, the pipe bridge, people and animals are never
labelled; leak-free frames (35 % of a written set) have an all-zero label.

Usage: ``python -m heldout.third_generator DIR --family NAME --frames 40 --seed 4242``
writes ``DIR/manual_set`` (test split only).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from thermal_anomaly_segmenter.io.dataset_writer import write_info
from thermal_anomaly_segmenter.io.formats import write_frame, write_label
from thermal_anomaly_segmenter.io.frames import compose_frame

FAMILIES: tuple[str, ...] = ("indep2_snowmelt", "indep2_railyard")
SUBSET = "synthetic"
GENERATOR_NAME = "taseg.heldout.third_generator"
VERSION = 1

#: Share of leak-free frames in a written set.
LEAK_FREE_SHARE = 0.35
#: Label rule: own excess >= this share of the leak's peak ...
LABEL_PEAK_SHARE = 0.30
#: ... and >= this many NETD.
LABEL_NETD_FACTOR = 2.0
MIN_SIDE = 16
_KELVIN = 273.15

# Materials of the ground raster.
SNOW, ROADSNOW, ASPHALT, SOIL, CONCRETE, BALLAST, VEG, WATER, WET, ROOF, WALL, METAL = range(12)
#: How much of the buried heat reaches each material's surface (snow: see melting).
_COUPLING = np.array([0.15, 0.5, 1.0, 0.9, 0.9, 0.55, 0.3, 0.8, 1.0, 0.0, 0.0, 0.0],
                     dtype=np.float32)


@dataclass(frozen=True)
class _Spec:
    gsd: tuple[float, float]
    air: tuple[float, float]
    netd_k: tuple[float, float]
    corridor_half_m: tuple[float, float]


_SPECS: dict[str, _Spec] = {
    "indep2_snowmelt": _Spec((0.03, 0.08), (-20.0, -2.0), (0.035, 0.070), (1.4, 2.4)),
    "indep2_railyard": _Spec((0.09, 0.16), (-8.0, 8.0), (0.045, 0.100), (1.6, 3.0)),
}


@dataclass
class Leak:
    """One leak: where its own excess peaks and that excess (camera pixels, a window)."""

    kind: str
    material: str
    row: int
    col: int
    peak_excess: float  # degC, own apparent excess at its peak (before optics and noise)
    depth_m: float
    window: tuple[int, int]  # (row, col) of excess[0, 0] in the frame
    excess: np.ndarray  # float32 own apparent excess, degC
    label_px: int = 0

    def excess_map(self, shape: tuple[int, int]) -> np.ndarray:
        """The own excess as a full ``shape`` image (zero outside the window)."""
        out = np.zeros(shape, np.float32)
        r0, c0 = self.window
        h, w = self.excess.shape
        out[r0:r0 + h, c0:c0 + w] = self.excess
        return out


@dataclass
class SceneFrame:
    """A generated frame, its label and what is in it."""

    family: str
    seed: int
    data: np.ndarray  # H x W x 3 float32 (T_m, T_m, T_u)
    label: np.ndarray  # H x W uint8 0/1
    corridor: np.ndarray  # H x W bool
    gsd_m: float  # frame centre
    netd_k: float
    t_air_degc: float
    leaks: list[Leak] = field(default_factory=list)
    distractors: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers


def _check(family: str, height: int, width: int) -> _Spec:
    if family not in _SPECS:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    if int(height) < MIN_SIDE or int(width) < MIN_SIDE:
        raise ValueError(f"frame of {height} x {width} px is too small; both sides must be "
                         f"at least {MIN_SIDE} px")
    return _SPECS[family]


def _family_code(family: str) -> int:
    return zlib.crc32(family.encode("utf-8"))


def frame_seed(seed: int, family: str, index: int) -> int:
    """Seed of frame ``index`` of a set of ``family`` written with ``seed``."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, _family_code(family), int(index), 2])
    return int(ss.generate_state(1, np.uint32)[0])


def set_leak_counts(seed: int, family: str, n_frames: int) -> list[int]:
    """Leaks per frame of a set: exactly ``round(0.35 n)`` leak-free frames, others 1-3."""
    n = int(n_frames)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, _family_code(family), 7])
    zeros = min(n, round(LEAK_FREE_SHARE * n))
    counts = [0] * zeros + [int(k) for k in rng.choice([1, 2, 3], size=n - zeros,
                                                       p=[0.45, 0.35, 0.20])]
    order = rng.permutation(n)
    return [counts[i] for i in order]


def _apparent(ts: np.ndarray, eps: np.ndarray, t_sky: float) -> np.ndarray:
    """Apparent (black-body equivalent) temperature of a grey surface under the sky, degC."""
    tk = ts + np.float32(_KELVIN)
    sky4 = np.float32((t_sky + _KELVIN) ** 4)
    rad = eps * (tk * tk) ** 2 + (1.0 - eps) * sky4
    return (np.sqrt(np.sqrt(rad)) - np.float32(_KELVIN)).astype(np.float32)


def _noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Smooth Gaussian noise of unit std whose features are about ``cell`` pixels wide."""
    cell = max(float(cell), 1.0)
    gh, gw = int(shape[0] / cell) + 3, int(shape[1] / cell) + 3
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    big = cv2.resize(grid, (int(math.ceil(gw * cell)), int(math.ceil(gh * cell))),
                     interpolation=cv2.INTER_CUBIC)[: shape[0], : shape[1]]
    std = float(big.std())
    return big / std if std > 0 else big


def _rect(cx: float, cy: float, length: float, width: float, angle: float) -> np.ndarray:
    """Corners (metres) of a rectangle ``length`` along ``angle`` and ``width`` across."""
    ca, sa = math.cos(angle), math.sin(angle)
    ux, uy = ca * length / 2, sa * length / 2
    vx, vy = -sa * width / 2, ca * width / 2
    return np.array([[cx - ux - vx, cy - uy - vy], [cx + ux - vx, cy + uy - vy],
                     [cx + ux + vx, cy + uy + vy], [cx - ux + vx, cy - uy + vy]])


def _ellipse(cx: float, cy: float, a: float, b: float, angle: float = 0.0,
             n: int = 20, wobble: np.ndarray | None = None) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = 1.0 if wobble is None else wobble
    x, y = a * np.cos(t) * r, b * np.sin(t) * r
    ca, sa = math.cos(angle), math.sin(angle)
    return np.stack([cx + ca * x - sa * y, cy + sa * x + ca * y], axis=1)


# ----------------------------------------------------------------------------- camera


@dataclass(frozen=True)
class _Camera:
    """Oblique pinhole over flat ground: a homography with a tilt along the image rows."""

    height: int
    width: int
    gsd: float  # m/px at the frame centre
    tilt: float  # local GSD ~ gsd / w**1.5, w = 1 - tilt * (row - cy) / height
    heading: float  # rotation of the scene axes against the image

    def to_scene(self, r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cy, cx = (self.height - 1) / 2, (self.width - 1) / 2
        w = 1.0 - self.tilt * (r - cy) / self.height
        gx, gy = self.gsd * (c - cx) / w, self.gsd * (r - cy) / w
        ch, sh = math.cos(self.heading), math.sin(self.heading)
        return ch * gx - sh * gy, sh * gx + ch * gy

    def to_image(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ch, sh = math.cos(self.heading), math.sin(self.heading)
        gx, gy = ch * xs + sh * ys, -sh * xs + ch * ys
        cy, cx = (self.height - 1) / 2, (self.width - 1) / 2
        dr = (gy / self.gsd) / (1.0 + self.tilt * gy / (self.gsd * self.height))
        w = 1.0 - self.tilt * dr / self.height
        return cy + dr, cx + gx * w / self.gsd


# ----------------------------------------------------------------------------- ground raster


class _Canvas:
    """The ground raster: surface temperature, emissivity, material, slab ids, occlusion."""

    def __init__(self, cam: _Camera, rng: np.random.Generator, margin_m: float = 3.0):
        self.cam = cam
        self.g = 0.8 * cam.gsd  # finer than the finest pixel of the oblique view
        h, w = cam.height, cam.width
        xs, ys = cam.to_scene(np.array([-0.5, -0.5, h - 0.5, h - 0.5]),
                              np.array([-0.5, w - 0.5, -0.5, w - 0.5]))
        self.x0, self.y0 = float(xs.min()) - margin_m, float(ys.min()) - margin_m
        self.x1, self.y1 = float(xs.max()) + margin_m, float(ys.max()) + margin_m
        self.shape = (int(math.ceil((self.y1 - self.y0) / self.g)),
                      int(math.ceil((self.x1 - self.x0) / self.g)))
        self.ts = np.zeros(self.shape, np.float32)
        self.eps = np.full(self.shape, 0.95, np.float32)
        self.mat = np.zeros(self.shape, np.uint8)
        self.slab = np.zeros(self.shape, np.int32)
        self.occ = np.zeros(self.shape, np.float32)
        self.objects_phase = False
        self.tex = (0.6 * _noise(rng, self.shape, 2.5 / 0.8) + 0.8 * _noise(rng, self.shape, 14)
                    ).astype(np.float32)
        self.keep_out: list[tuple[float, float, float]] = []
        self.counts: dict[str, int] = {}
        # the footprint (scene metres) as a polygon, to test what is in view
        self.footprint = np.stack([xs[[0, 1, 3, 2]], ys[[0, 1, 3, 2]]], axis=1)

    # -- geometry
    def px(self, pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, dtype=np.float64)
        return (pts - (self.x0, self.y0)) / self.g - 0.5

    def in_view(self, x: float, y: float, margin_px: float = 0.0) -> bool:
        r, c = self.cam.to_image(np.float64(x), np.float64(y))
        return bool(margin_px - 0.5 <= r <= self.cam.height - 0.5 - margin_px
                    and margin_px - 0.5 <= c <= self.cam.width - 0.5 - margin_px)

    def random_point(self, rng: np.random.Generator) -> tuple[float, float]:
        r = rng.uniform(-0.5, self.cam.height - 0.5)
        c = rng.uniform(-0.5, self.cam.width - 0.5)
        x, y = self.cam.to_scene(np.float64(r), np.float64(c))
        return float(x), float(y)

    def free(self, x: float, y: float, r: float) -> bool:
        return all(math.hypot(x - kx, y - ky) > r + kr for kx, ky, kr in self.keep_out)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def _window(self, p: np.ndarray, pad: int = 2):
        r0 = max(int(math.floor(p[:, 1].min())) - pad, 0)
        c0 = max(int(math.floor(p[:, 0].min())) - pad, 0)
        r1 = min(int(math.ceil(p[:, 1].max())) + pad + 1, self.shape[0])
        c1 = min(int(math.ceil(p[:, 0].max())) + pad + 1, self.shape[1])
        if r1 <= r0 or c1 <= c0:
            return None
        return r0, r1, c0, c1

    def coverage(self, poly: np.ndarray, stroke_m: float | None = None):
        """Anti-aliased coverage (0..1) of a polygon, or of a polyline ``stroke_m`` wide."""
        p = self.px(poly)
        pad = 2 if stroke_m is None else int(stroke_m / self.g) + 3
        win = self._window(p, pad)
        if win is None:
            return None
        r0, r1, c0, c1 = win
        local = np.zeros((r1 - r0, c1 - c0), np.uint8)
        pts = np.round((p - (c0, r0)) * 16).astype(np.int32).reshape(-1, 1, 2)
        if stroke_m is None:
            cv2.fillPoly(local, [pts], 255, cv2.LINE_AA, 4)
            alpha = local.astype(np.float32) / 255.0
        else:
            width_px = stroke_m / self.g
            thick = max(1, int(round(width_px)))
            cv2.polylines(local, [pts], False, 255, thick, cv2.LINE_AA, 4)
            alpha = local.astype(np.float32) / 255.0
            if width_px < 1.0:
                alpha *= width_px
        if not alpha.any():
            return None
        return (slice(r0, r1), slice(c0, c1)), alpha

    def paint(self, poly: np.ndarray, ts: float | None = None, eps: float | None = None,
              mat: int | None = None, tex: float = 0.0, add: float | None = None,
              stroke_m: float | None = None, slab: int | None = None):
        cov = self.coverage(poly, stroke_m)
        if cov is None:
            return None
        win, a = cov
        if ts is not None:
            target = ts + tex * self.tex[win] if tex else np.float32(ts)
            self.ts[win] += a * (target - self.ts[win])
        if add is not None:
            self.ts[win] += a * (add + tex * self.tex[win] if tex else np.float32(add))
        if eps is not None:
            self.eps[win] += a * (np.float32(eps) - self.eps[win])
        inside = a >= 0.5
        if mat is not None:
            self.mat[win][inside] = mat
        if slab is not None:
            self.slab[win][inside] = slab
        if self.objects_phase:
            np.maximum(self.occ[win], a, out=self.occ[win])
        return win, a


# ----------------------------------------------------------------------------- heat solves


def _fft_solve(src: np.ndarray, cell: float, depth: float, beta: float, l_par: float = 0.0,
               l_perp: float = 0.0, drift: float = 0.0, axis: float = 0.0,
               slope: float = 0.0) -> np.ndarray:
    """Steady surface temperature rise of sources ``src`` buried ``depth`` metres deep.

    In the pipe bedding the water's heat spreads by anisotropic diffusion (lengths ``l_par``
    along ``axis``, ``l_perp`` across), drifts ``drift`` metres down the ``slope`` direction
    and is lost at unit rate; then it conducts up through the soil to a convective surface
    (half-space Green's function ``exp(-q D) / (q + beta)``). Periodic grid, ``cell`` m.
    """
    ny, nx = src.shape
    ky = (2 * np.pi * np.fft.fftfreq(ny, cell))[:, None]
    kx = (2 * np.pi * np.fft.rfftfreq(nx, cell))[None, :]
    q = np.sqrt(kx * kx + ky * ky)
    kernel = np.exp(-q * depth) / (q + beta)
    if l_par or l_perp or drift:
        ca, sa = math.cos(axis), math.sin(axis)
        qpar, qperp = kx * ca + ky * sa, -kx * sa + ky * ca
        flow = kx * math.cos(slope) + ky * math.sin(slope)
        kernel = kernel / (1.0 + (l_par * qpar) ** 2 + (l_perp * qperp) ** 2 + 1j * drift * flow)
    out = np.fft.irfft2(np.fft.rfft2(src) * kernel, s=src.shape)
    return out.astype(np.float32)


def _pipe_heat(canvas: _Canvas, rng: np.random.Generator, lines: list[np.ndarray],
               depth: float, beta: float) -> np.ndarray:
    """Normalised surface rise (peak 1) of the pipe(s) along ``lines``, on the ground raster."""
    cell = max(0.2, canvas.g)
    pad_m = 6.0 * depth + 4.0
    ny = int(math.ceil((canvas.y1 - canvas.y0 + 2 * pad_m) / cell))
    nx = int(math.ceil((canvas.x1 - canvas.x0 + 2 * pad_m) / cell))
    src = np.zeros((ny, nx), np.float32)
    for line in lines:
        p = (np.asarray(line) - (canvas.x0 - pad_m, canvas.y0 - pad_m)) / cell - 0.5
        pts = np.round(p * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(src, [pts], False, 1.0, 1, cv2.LINE_AA, 4)
    # insulation quality varies along the pipe; some stretches are nearly cold
    strength = np.clip(1.0 + 0.45 * _noise(rng, src.shape, 6.0 / cell), 0.15, 2.0)
    gaps = _noise(rng, src.shape, 10.0 / cell) > rng.uniform(0.6, 1.4)
    strength[gaps] *= 0.2
    heat = _fft_solve(src * strength, cell, depth, beta)
    heat = np.maximum(heat, 0) / max(float(heat.max()), 1e-9)
    # upsample onto the raster (exact alignment via an affine map)
    k = canvas.g / cell
    off = (pad_m + 0.5 * canvas.g) / cell - 0.5
    m = np.array([[k, 0, off], [0, k, off]], np.float32)
    return cv2.warpAffine(heat, m, (canvas.shape[1], canvas.shape[0]),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT)


@dataclass
class _LeakPlan:
    kind: str
    depth: float
    beta: float
    l_par: float
    l_perp: float
    drift: float
    slope: float
    fingers: list[np.ndarray]  # (n, 3): x, y offsets (m) and weight
    target: float  # wanted apparent peak excess, degC
    melt_level: float = 0.0  # > 0: snow melts through where the heat reaches this share
    extent: float = 0.0


def _leak_field(plan: _LeakPlan, axis: float) -> tuple[np.ndarray, float]:
    """The leak's normalised surface rise on its own coarse grid, and the grid's cell (m)."""
    spread = max(plan.l_par, plan.l_perp)
    reach = max((np.abs(f[:, :2]).max() if len(f) else 0.0) for f in plan.fingers) \
        if plan.fingers else 0.0
    extent = 2.0 * (3.0 * spread + 2.5 * plan.drift + 3.0 * plan.depth + reach) + 1.0
    n = 64 if extent / 64 <= plan.depth / 2.5 else 96
    cell = extent / n
    src = np.zeros((n, n), np.float32)
    pts = [np.array([[0.0, 0.0, 1.0]])] + plan.fingers
    for f in pts:
        for x, y, wgt in f:
            gx, gy = x / cell + n / 2 - 0.5, y / cell + n / 2 - 0.5
            ix, iy = int(math.floor(gx)), int(math.floor(gy))
            fx, fy = gx - ix, gy - iy
            for dy, dx, ww in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)),
                               (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
                if 0 <= iy + dy < n and 0 <= ix + dx < n:
                    src[iy + dy, ix + dx] += wgt * ww
    heat = _fft_solve(src, cell, plan.depth, plan.beta, plan.l_par, plan.l_perp, plan.drift,
                      axis, plan.slope)
    heat = np.maximum(heat, 0) / max(float(heat.max()), 1e-9)
    heat[heat < 0.004] = 0
    plan.extent = extent
    return heat, cell


def _place_leak_heat(canvas: _Canvas, heat: np.ndarray, cell: float, x: float, y: float):
    """Resample a leak grid centred on (x, y) onto the raster: (window slices, field)."""
    n = heat.shape[0]
    half = n * cell / 2
    p = canvas.px(np.array([[x - half, y - half], [x + half, y + half]]))
    win = canvas._window(p, 1)
    if win is None:
        return None
    r0, r1, c0, c1 = win
    k = canvas.g / cell
    # raster (c, r) -> grid: ((x0 + (c + .5) g) - (x - half)) / cell - .5
    ox = (canvas.x0 + (c0 + 0.5) * canvas.g - (x - half)) / cell - 0.5
    oy = (canvas.y0 + (r0 + 0.5) * canvas.g - (y - half)) / cell - 0.5
    m = np.array([[k, 0, ox], [0, k, oy]], np.float32)
    field_ = cv2.warpAffine(heat, m, (c1 - c0, r1 - r0),
                            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_CONSTANT)
    return (slice(r0, r1), slice(c0, c1)), np.clip(field_, 0, None)


def _respond(canvas: _Canvas, win, h: np.ndarray, plan: _LeakPlan, t_sky: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """New surface temperature and emissivity of the window once the leak heats it."""
    ts, eps, mat = canvas.ts[win], canvas.eps[win], canvas.mat[win]
    coupling = _COUPLING[mat]
    heff = h
    conc = mat == CONCRETE
    if conc.any():  # a slab spreads the heat it gets over itself: steps at its joints
        ids = canvas.slab[win]
        sums = np.bincount(ids.ravel(), weights=h.ravel())
        cnt = np.maximum(np.bincount(ids.ravel()), 1)
        mixed = 0.3 * h + 0.7 * (sums / cnt)[ids].astype(np.float32)
        heff = np.where(conc & (ids > 0), mixed, h).astype(np.float32)
    if (mat == BALLAST).any():  # voids in the ballast: patchy
        heff = heff * np.where(mat == BALLAST, 0.75 + 0.25 * np.tanh(canvas.tex[win]), 1.0)
    heff = heff / max(float(heff.max()), 1e-9)
    app0 = _apparent(ts, eps, t_sky)
    new_ts = ts + (heff * coupling).astype(np.float32)  # unit amplitude first
    unit = _apparent(new_ts, eps, t_sky) - app0
    peak = float(unit.max())
    amp = plan.target / peak if peak > 1e-6 else 0.0
    new_ts = ts + (amp * heff * coupling).astype(np.float32)
    new_eps = eps
    if plan.melt_level > 0:
        # snow depth varies: the melt front is ragged, but the edge stays sharp
        ragged = plan.melt_level * (1.0 + 0.3 * np.tanh(canvas.tex[win]))
        hole = ((mat == SNOW) | (mat == ROADSNOW)) & (h >= ragged)
        if hole.any():  # snow gone: wet ground just above melting, lower emissivity
            wet_eps = np.float32(rng.uniform(0.94, 0.96))
            hole_ts = ts + plan.target * (0.6 + 0.4 * h) + (0.985 - wet_eps) * (ts - t_sky)
            new_ts = np.where(hole, hole_ts, new_ts).astype(np.float32)
            new_eps = np.where(hole, wet_eps, eps).astype(np.float32)
    return new_ts, new_eps


# ----------------------------------------------------------------------------- families


@dataclass
class _Env:
    t_air: float
    t_sky: float
    t_deep: float
    clear: bool


def _env(rng: np.random.Generator, spec: _Spec) -> _Env:
    t_air = float(rng.uniform(*spec.air))
    clear = bool(rng.random() < 0.65)
    t_sky = t_air - (rng.uniform(18, 30) if clear else rng.uniform(2, 7))
    return _Env(t_air, float(t_sky), float(rng.uniform(1.0, 6.0)), clear)


def _snow_ground(cv: _Canvas, rng: np.random.Generator, env: _Env, route: dict) -> dict:
    """Street, banks, footpaths, gardens, hedges, driveways, sheds and houses.

    ``route`` says where the pipe runs (footpath, garden or road, which side, how far from
    the view's centre); the street is laid out around it so the corridor is always in view.
    """
    ta = env.t_air
    t_snow = ta - (rng.uniform(0.8, 2.5) if env.clear else rng.uniform(0.1, 0.6))
    t_exposed = ta + rng.uniform(0.25, 0.45) * (env.t_deep - ta)
    cv.ts[:] = t_snow + 0.25 * cv.tex
    cv.eps[:] = 0.985
    cv.mat[:] = SNOW
    x0, x1 = cv.x0 - 5, cv.x1 + 5
    half_road = rng.uniform(2.6, 3.6)
    widths = {side: (rng.uniform(0.7, 1.4), rng.uniform(1.4, 2.2), rng.uniform(4.0, 8.0))
              for side in (-1, 1)}
    side = route["side"]
    bank, path, _ = widths[side]
    if route["where"] == "footpath":
        offset = side * (half_road + bank + path / 2) + route["jitter"]
    elif route["where"] == "garden":
        offset = side * (half_road + bank + path + route["garden_m"])
    else:
        offset = route["road_m"]
    cy = route["y"] - offset
    y_pipe = route["y"]

    def band(ya: float, yb: float, **kw):
        return cv.paint(np.array([[x0, ya], [x1, ya], [x1, yb], [x0, yb]]), **kw)

    band(cy - half_road, cy + half_road, ts=t_snow + rng.uniform(0.4, 1.4), eps=0.975,
         mat=ROADSNOW, tex=0.3)
    for lane in (-1, 1):  # wheel tracks: polished ice and bare asphalt
        for off in (-0.8, 0.8):
            yc = cy + lane * half_road / 2 + off + rng.uniform(-0.1, 0.1)
            band(yc - 0.17, yc + 0.17, ts=t_snow + rng.uniform(1.0, 2.8), eps=0.96,
                 mat=ROADSNOW, tex=0.5)
    sides = {}
    for side in (-1, 1):
        e = cy + side * half_road
        bank, path, garden = widths[side]
        band(min(e, e + side * bank), max(e, e + side * bank), ts=t_snow - rng.uniform(0.3, 1.3),
             eps=0.99, mat=SNOW, tex=0.7)
        pa, pb = e + side * bank, e + side * (bank + path)
        band(min(pa, pb), max(pa, pb), ts=t_exposed, eps=0.95, mat=ASPHALT, tex=0.35)
        ga, gb = pb, pb + side * garden
        sides[side] = (pa, pb, gb)
        cv.count("cleared_path")
        # hedge at the path edge with gaps for driveways
        xs = x0
        while xs < x1:
            run = rng.uniform(3, 10)
            hw = rng.uniform(0.5, 0.9)
            yy = ga + side * hw / 2
            cv.paint(_rect(xs + run / 2, yy, run, hw, 0.0), ts=ta + rng.uniform(-0.5, 1.2),
                     eps=0.97, mat=VEG, tex=1.2)
            cv.count("hedge")
            drive = rng.uniform(2.8, 3.6)
            # driveway through the gap, cleared down to the asphalt
            dx = xs + run + drive / 2
            cv.paint(np.array([[dx - drive / 2, ga], [dx + drive / 2, ga],
                               [dx + drive / 2, gb], [dx - drive / 2, gb]]),
                     ts=t_exposed + rng.uniform(-0.8, 0.4), eps=0.95, mat=ASPHALT, tex=0.3)
            cv.count("driveway")
            xs = dx + drive / 2
        # sheds in the gardens
        for _ in range(int(rng.integers(0, 3))):
            sx = rng.uniform(cv.x0, cv.x1)
            sy = ga + side * rng.uniform(1.5, max(garden - 1.5, 1.6))
            roof_ts = t_snow - rng.uniform(0, 1) if rng.random() < 0.6 else ta - 2.0
            cv.paint(_rect(sx, sy, rng.uniform(2, 3.5), rng.uniform(1.8, 2.6),
                           rng.uniform(-0.2, 0.2)), ts=roof_ts, eps=0.97, mat=ROOF, tex=0.2)
            cv.count("shed")
        # houses behind the gardens, facade facing the street
        xs = x0 + rng.uniform(0, 6)
        while xs < x1:
            wid = rng.uniform(8, 13)
            deep = rng.uniform(8, 11)
            fy = gb
            hx = xs + wid / 2
            cv.paint(_rect(hx, fy + side * deep / 2, wid, deep, 0.0),
                     ts=t_snow - rng.uniform(0, 1.2), eps=0.985, mat=ROOF, tex=0.4)
            for _ in range(int(rng.integers(0, 3))):  # heat loss melts patches on the roof
                cv.paint(_ellipse(hx + rng.uniform(-wid / 3, wid / 3),
                                  fy + side * rng.uniform(2, deep - 2), rng.uniform(0.5, 1.5),
                                  rng.uniform(0.3, 0.8)), add=rng.uniform(1.0, 4.0), tex=0.3)
            facade = rng.uniform(0.8, 1.6)  # the wall the oblique view sees
            cv.paint(np.array([[hx - wid / 2, fy], [hx + wid / 2, fy],
                               [hx + wid / 2, fy + side * facade],
                               [hx - wid / 2, fy + side * facade]]),
                     ts=ta + rng.uniform(2.0, 5.0), eps=0.93, mat=WALL, tex=0.3)
            plinth = rng.uniform(0.25, 0.45)
            t_plinth = ta + rng.uniform(4.0, 9.0)
            cv.paint(np.array([[hx - wid / 2, fy], [hx + wid / 2, fy],
                               [hx + wid / 2, fy + side * plinth],
                               [hx - wid / 2, fy + side * plinth]]),
                     ts=t_plinth, eps=0.93, mat=WALL, tex=0.2)
            for _ in range(int(rng.integers(1, 4))):
                cv.paint(_rect(hx + rng.uniform(-wid / 2.5, wid / 2.5),
                               fy + side * plinth / 2, rng.uniform(0.6, 1.0), plinth * 0.7, 0),
                         ts=ta + rng.uniform(7, 15), eps=0.88, mat=WALL)
                cv.count("basement_window")
            cv.count("house")
            xs += wid + rng.uniform(3, 7)
    return {"cy": cy, "half_road": half_road, "sides": sides, "t_snow": t_snow,
            "t_exposed": t_exposed, "y_pipe": y_pipe, "side": route["side"]}


def _snow_route(cv: _Canvas, rng: np.random.Generator) -> dict:
    """Where the pipe runs: under the footpath, in the front gardens or under the road."""
    reach = 0.22 * min(cv.cam.height, cv.cam.width) * cv.cam.gsd
    return {"side": int(rng.choice([-1, 1])),
            "where": str(rng.choice(["footpath", "garden", "road"], p=[0.3, 0.4, 0.3])),
            "y": float(rng.uniform(-reach, reach)), "jitter": float(rng.uniform(-0.3, 0.3)),
            "garden_m": float(rng.uniform(0.8, 2.0)), "road_m": float(rng.uniform(-1.5, 1.5))}


def _snow_pipe(cv: _Canvas, rng: np.random.Generator, lay: dict) -> list[np.ndarray]:
    side = lay["side"]
    _, _, gb = lay["sides"][side]
    y = lay["y_pipe"]
    x0, x1 = cv.x0 - 5, cv.x1 + 5
    ang = rng.uniform(-0.05, 0.05)
    xm = (x0 + x1) / 2
    main = np.array([[x0, y + (x0 - xm) * ang], [x1, y + (x1 - xm) * ang]])
    lines = [main]
    if rng.random() < 0.55:  # service pipe to a house
        bx = rng.uniform(cv.x0 + 3, cv.x1 - 3)
        by = y + (bx - xm) * ang
        lines.append(np.array([[bx, by], [bx + rng.uniform(-1, 1), gb + side * 0.3]]))
    return lines


def _snow_leak_plan(rng: np.random.Generator, material: int, netd: float, axis: float
                    ) -> _LeakPlan:
    faint = rng.random() < 0.2
    target = rng.uniform(3.0, 5.0) * netd if faint else float(np.exp(rng.uniform(
        math.log(0.3), math.log(4.0))))
    fingers = []
    slope = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(0, 5))):
        steps = int(rng.integers(3, 9))
        dirn = slope + rng.normal(0, 0.7)
        step = rng.uniform(0.12, 0.35)
        pts, x, y, w = [], 0.0, 0.0, 0.8
        for _ in range(steps):
            dirn += rng.normal(0, 0.4)
            x, y = x + step * math.cos(dirn), y + step * math.sin(dirn)
            w *= rng.uniform(0.6, 0.9)
            pts.append((x, y, w))
        fingers.append(np.array(pts))
    plan = _LeakPlan("smooth", rng.uniform(0.5, 1.3), rng.uniform(2.0, 5.0),
                     rng.uniform(0.2, 1.1), rng.uniform(0.15, 0.7), rng.uniform(0.0, 1.0),
                     slope, fingers, float(target))
    if material == SNOW:
        if rng.random() < 0.7:
            plan.kind = "melt_hole"
            plan.melt_level = rng.uniform(0.3, 0.6)
            if not faint:
                plan.target = float(np.exp(rng.uniform(math.log(0.8), math.log(5.0))))
        else:
            plan.kind = "thinned_snow"
    elif material == ROADSNOW:  # the packed snow of the road melts off the asphalt
        plan.kind = "under_packed_snow"
        if rng.random() < 0.5:
            plan.kind = "melt_hole_road"
            plan.melt_level = rng.uniform(0.35, 0.65)
    else:
        plan.kind = "under_asphalt"
    if faint:
        plan.kind += "_faint"
    return plan


def _snow_objects(cv: _Canvas, rng: np.random.Generator, env: _Env, lay: dict) -> None:
    ta, t_snow = env.t_air, lay["t_snow"]
    cy, hr = lay["cy"], lay["half_road"]

    def spot(r: float, tries: int = 12, near_road: bool = False):
        for _ in range(tries):
            if near_road:
                x, _ = cv.random_point(rng)
                y = cy + rng.choice([-1, 1]) * rng.uniform(hr - 1.3, hr - 0.9)
            else:
                x, y = cv.random_point(rng)
            if cv.free(x, y, r):
                return x, y
        return None

    for _ in range(int(rng.integers(1, 6))):  # parked cars
        at = spot(2.5, near_road=rng.random() < 0.7)
        if at is None:
            continue
        x, y = at
        ang = rng.normal(0, 0.05) + (0 if rng.random() < 0.8 else math.pi / 2)
        if rng.random() < 0.5:
            ang += math.pi
        ln, wd = rng.uniform(3.9, 4.8), rng.uniform(1.7, 1.9)
        driven = rng.random() < 0.45
        ca, sa = math.cos(ang), math.sin(ang)
        if driven:
            for sx in (-0.33, 0.33):  # warm wheels
                for sy in (-0.5, 0.5):
                    cv.paint(_rect(x + ca * sx * ln - sa * sy * wd, y + sa * sx * ln + ca * sy * wd,
                                   0.65, 0.3, ang), ts=ta + rng.uniform(5, 15), eps=0.93)
            cv.paint(_rect(x, y, ln, wd, ang), ts=ta - 0.5, eps=rng.uniform(0.3, 0.6), tex=0.2)
            bx, by = x + ca * ln * 0.36, y + sa * ln * 0.36
            cv.paint(_rect(bx, by, ln * 0.26, wd * 0.9, ang), ts=ta + rng.uniform(8, 25),
                     eps=rng.uniform(0.7, 0.9), tex=0.3)
            ex, ey = x - ca * ln * 0.52 + sa * 0.5, y - sa * ln * 0.52 - ca * 0.5
            cv.paint(_ellipse(ex, ey, 0.12, 0.08), ts=ta + rng.uniform(20, 60), eps=0.9)
        else:
            cv.paint(_rect(x, y, ln, wd, ang), ts=t_snow - rng.uniform(0, 1.0), eps=0.985,
                     tex=0.3)
        cv.count("car")
    for _ in range(int(rng.integers(1, 5))):  # lights: small warm dots
        at = spot(0.4)
        if at is None:
            continue
        cv.paint(_ellipse(*at, 0.15, 0.15), ts=ta + rng.uniform(15, 45), eps=0.9)
        cv.paint(_ellipse(*at, 0.45, 0.45), add=rng.uniform(0.5, 2.0))
        cv.count("lamp")
    for _ in range(int(rng.integers(0, 3))):  # manhole chambers with melt rings
        at = spot(0.8)
        if at is None:
            continue
        r = rng.uniform(0.3, 0.4)
        cv.paint(_ellipse(*at, r + rng.uniform(0.15, 0.5), r + rng.uniform(0.15, 0.5)),
                 ts=t_snow + rng.uniform(1.5, 4.0), eps=0.955, tex=0.3)
        cv.paint(_ellipse(*at, r, r), ts=t_snow + rng.uniform(3.0, 10.0), eps=0.9)
        cv.count("manhole")
    for _ in range(int(rng.integers(0, 2))):  # compost heap in a garden
        at = spot(1.2)
        if at is None:
            continue
        wob = 1 + 0.25 * np.sin(np.arange(20) * rng.uniform(0.5, 1.5) + rng.uniform(0, 6))
        cv.paint(_ellipse(*at, rng.uniform(0.5, 1.0), rng.uniform(0.4, 0.8),
                          rng.uniform(0, 3), wobble=wob),
                 ts=t_snow + rng.uniform(2.0, 8.0), eps=0.95, tex=0.8)
        cv.count("compost")
    n_walk = int(rng.integers(0, 3))
    for _ in range(n_walk):  # person or dog
        at = spot(0.6)
        if at is None:
            continue
        x, y = at
        if rng.random() < 0.5:
            cv.paint(_ellipse(x, y, 0.28, 0.2, rng.uniform(0, 3)), ts=ta + rng.uniform(12, 20),
                     eps=0.95)
            cv.paint(_ellipse(x, y, 0.11, 0.11), ts=ta + rng.uniform(22, 30), eps=0.97)
            cv.count("person")
        else:
            ang = rng.uniform(0, 2 * np.pi)
            cv.paint(_ellipse(x, y, 0.35, 0.12, ang), ts=ta + rng.uniform(10, 20), eps=0.96)
            cv.paint(_ellipse(x + 0.4 * math.cos(ang), y + 0.4 * math.sin(ang), 0.09, 0.07),
                     ts=ta + rng.uniform(15, 25), eps=0.97)
            cv.count("dog")


def _rail_ground(cv: _Canvas, rng: np.random.Generator, env: _Env) -> dict:
    """Zones along the scene x axis: ballast with tracks, concrete aprons, an asphalt road."""
    ta = env.t_air
    cool = 1.0 if env.clear else 0.3
    t_bal = ta + rng.uniform(-0.5, 1.5) - cool * rng.uniform(0.3, 1.0)
    t_con = ta + rng.uniform(0.2, 0.4) * (env.t_deep - ta) - cool * 0.5
    t_asp = ta + rng.uniform(0.15, 0.35) * (env.t_deep - ta) - cool * 0.4
    cv.ts[:] = t_bal + 0.5 * cv.tex
    cv.eps[:] = 0.93
    cv.mat[:] = BALLAST
    stones = cv2.GaussianBlur(rng.standard_normal(cv.shape).astype(np.float32), (0, 0), 0.7)
    cv.ts += 0.35 * stones / max(float(stones.std()), 1e-6)
    x0, x1 = cv.x0 - 5, cv.x1 + 5
    y = cv.y0 - rng.uniform(0, 10)
    slab_id = 1
    tracks = []
    kinds = []
    while y < cv.y1:
        kind = rng.choice(["tracks", "concrete", "road", "tracks", "concrete"])
        if kinds and kind == kinds[-1]:
            kind = "concrete" if kind == "tracks" else "tracks"
        kinds.append(kind)
        if kind == "tracks":
            n = int(rng.integers(1, 4))
            width = n * 4.5 + 1
            for k in range(n):
                tracks.append((y + 3.0 + 4.5 * k, 0.0))
        elif kind == "concrete":
            width = rng.uniform(10, 28)
            sl, sw = rng.uniform(3.0, 6.0), rng.uniform(3.0, 5.0)
            xs = x0 - rng.uniform(0, sl)
            while xs < x1:
                ys = y
                while ys < y + width:
                    hgt = min(sw, y + width - ys)
                    cv.paint(np.array([[xs, ys], [xs + sl, ys], [xs + sl, ys + hgt],
                                       [xs, ys + hgt]]),
                             ts=t_con + rng.normal(0, 0.25), eps=rng.uniform(0.92, 0.95),
                             mat=CONCRETE, tex=0.25, slab=slab_id)
                    slab_id += 1
                    ys += sw
                xs += sl
            for xj in np.arange(xs - sl, x0 - sl, -sl):  # joints: sealant lines
                cv.paint(np.array([[xj, y], [xj, y + width]]), stroke_m=0.03, add=-0.4,
                         eps=0.9)
            for yj in np.arange(y, y + width, sw):
                cv.paint(np.array([[x0, yj], [x1, yj]]), stroke_m=0.03, add=-0.4, eps=0.9)
            cv.count("concrete_apron")
        else:
            width = rng.uniform(6, 9)
            cv.paint(np.array([[x0, y], [x1, y], [x1, y + width], [x0, y + width]]),
                     ts=t_asp, eps=0.95, mat=ASPHALT, tex=0.35)
            cv.count("road")
        y += width
    # warehouse at an edge of the view: ribbed metal roof with skylights and stacks
    return {"tracks": tracks, "t_bal": t_bal, "t_con": t_con}


def _draw_track(cv: _Canvas, rng: np.random.Generator, env: _Env, a: np.ndarray,
                b: np.ndarray, t_bal: float) -> None:
    d = b - a
    length = float(np.hypot(*d))
    if length < 1e-6:
        return
    u = d / length
    nrm = np.array([-u[1], u[0]])
    bed = 3.4
    cv.paint(np.array([a - nrm * bed / 2, b - nrm * bed / 2, b + nrm * bed / 2,
                       a + nrm * bed / 2]), ts=t_bal - rng.uniform(0.2, 0.8), eps=0.93,
             mat=BALLAST, tex=0.5)
    t_sl = t_bal + rng.uniform(-0.4, 0.6)
    ang = math.atan2(u[1], u[0])
    for s in np.arange(0.3, length, 0.6):
        c = a + u * s
        cv.paint(_rect(c[0], c[1], 0.25, 2.6, ang), ts=t_sl, eps=0.92, mat=CONCRETE)
    t_rail = env.t_air + rng.uniform(-1.0, 1.5)
    eps_rail = rng.uniform(0.12, 0.35)
    for off in (-0.75, 0.75):
        cv.paint(np.array([a + nrm * off, b + nrm * off]), stroke_m=0.07, ts=t_rail,
                 eps=eps_rail, mat=METAL)
    cv.count("track")


def _rail_static(cv: _Canvas, rng: np.random.Generator, env: _Env, lay: dict,
                 pipe: list[np.ndarray]) -> None:
    """Tracks (one siding parallel to the pipe), warehouse, tanks, puddles, the pipe bridge."""
    ta = env.t_air
    x0, x1 = cv.x0 - 5, cv.x1 + 5
    for ty, _ in lay["tracks"]:
        _draw_track(cv, rng, env, np.array([x0, ty]), np.array([x1, ty]), lay["t_bal"])
    if rng.random() < 0.7:  # siding along a pipe segment, a few metres off
        seg = pipe[0]
        k = int(rng.integers(0, len(seg) - 1))
        a, b = seg[k], seg[k + 1]
        u = (b - a) / max(float(np.hypot(*(b - a))), 1e-6)
        off = np.array([-u[1], u[0]]) * rng.choice([-1, 1]) * rng.uniform(2.5, 4.5)
        _draw_track(cv, rng, env, a + off - u * 20, b + off + u * 20, lay["t_bal"])
    if rng.random() < 0.6:  # warehouse roof at a frame edge
        side = int(rng.integers(0, 4))
        fx = [cv.footprint[:, 0].min(), cv.footprint[:, 0].max()]
        fy = [cv.footprint[:, 1].min(), cv.footprint[:, 1].max()]
        depth = rng.uniform(6, 14)
        if side == 0:
            box = (fx[0] - 30, fx[0] + depth, fy[0] - 30, fy[1] + 30)
        elif side == 1:
            box = (fx[1] - depth, fx[1] + 30, fy[0] - 30, fy[1] + 30)
        elif side == 2:
            box = (fx[0] - 30, fx[1] + 30, fy[0] - 30, fy[0] + depth)
        else:
            box = (fx[0] - 30, fx[1] + 30, fy[1] - depth, fy[1] + 30)
        bx0, bx1, by0, by1 = box
        t_roof = ta - rng.uniform(0.5, 3.0) * (1.0 if env.clear else 0.3)
        cv.paint(np.array([[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]]), ts=t_roof,
                 eps=0.55, mat=ROOF, tex=0.2)
        for rx in np.arange(bx0, bx1, rng.uniform(0.8, 1.2)):  # ribs
            cv.paint(np.array([[rx, by0], [rx, by1]]), stroke_m=0.3, eps=0.8, ts=t_roof + 0.3)
        for _ in range(int(rng.integers(2, 7))):
            sx, sy = rng.uniform(bx0, bx1), rng.uniform(by0, by1)
            cv.paint(_rect(sx, sy, rng.uniform(2, 4), rng.uniform(1.2, 1.8), 0),
                     ts=ta + rng.uniform(4, 12), eps=0.86, mat=ROOF)
            cv.count("skylight")
        for _ in range(int(rng.integers(0, 3))):
            sx, sy = rng.uniform(bx0, bx1), rng.uniform(by0, by1)
            cv.paint(_ellipse(sx, sy, 0.3, 0.3), ts=ta + rng.uniform(30, 120), eps=0.9, mat=ROOF)
            cv.count("vent_stack")
        cv.count("warehouse")
    for _ in range(int(rng.integers(0, 3))):  # tanks
        x, y = cv.random_point(rng)
        if not cv.free(x, y, 4):
            continue
        r = rng.uniform(1.8, 4.5)
        heated = rng.random() < 0.4
        cv.paint(_ellipse(x, y, r, r, n=36), ts=ta + (rng.uniform(8, 20) if heated else
                                                      rng.uniform(-1.5, 1.5)),
                 eps=0.9 if heated else 0.4, mat=ROOF, tex=0.2)
        cv.paint(_ellipse(x, y, r, r, n=36), stroke_m=0.2, ts=ta + rng.uniform(1, 6), eps=0.9)
        cv.count("tank")
    for _ in range(int(rng.integers(1, 6))):  # puddles: sky mirrors or warm water
        x, y = cv.random_point(rng)
        wob = 1 + 0.3 * np.sin(np.arange(24) * rng.uniform(0.6, 1.8) + rng.uniform(0, 6))
        a, b = rng.uniform(0.4, 2.5), rng.uniform(0.3, 1.5)
        cv.paint(_ellipse(x, y, a, b, rng.uniform(0, 3), n=24, wobble=wob),
                 add=rng.uniform(-0.5, 1.5), eps=0.96, mat=WATER)
        cv.count("puddle")
    # insulated pipe bridge crossing the corridor
    seg = pipe[0]
    k = int(rng.integers(0, len(seg) - 1))
    c = seg[k] + (seg[k + 1] - seg[k]) * rng.uniform(0.2, 0.8)
    d = seg[k + 1] - seg[k]
    ang = math.atan2(d[1], d[0]) + rng.choice([-1, 1]) * rng.uniform(0.5, math.pi / 2)
    u = np.array([math.cos(ang), math.sin(ang)])
    nrm = np.array([-u[1], u[0]])
    span = 150.0
    clad = ta + rng.uniform(0.0, 2.0)
    for off in (-0.4, 0.4):
        cv.paint(np.array([c - u * span + nrm * (off - 0.28), c + u * span + nrm * (off - 0.28),
                           c + u * span + nrm * (off + 0.28), c - u * span + nrm * (off + 0.28)]),
                 ts=clad, eps=rng.uniform(0.2, 0.35), mat=METAL, tex=0.1)
    step = rng.uniform(6, 12)
    for s in np.arange(-span, span, step):
        p = c + u * (s + rng.uniform(-0.5, 0.5))
        cv.paint(_rect(p[0], p[1], 0.3, 1.4, ang), ts=ta + rng.uniform(3, 15), eps=0.9,
                 mat=METAL)
        q = c + u * (s + step / 2)
        cv.paint(_rect(q[0], q[1], 0.4, 1.6, ang), ts=ta + rng.uniform(-0.5, 1.0), eps=0.92,
                 mat=ROOF)
    cv.count("pipe_bridge")


def _rail_pipe(cv: _Canvas, rng: np.random.Generator) -> list[np.ndarray]:
    """A diagonal corridor with one or two bends, chosen in image space."""
    h, w = cv.cam.height, cv.cam.width
    if rng.random() < 0.5:
        start, end = (rng.uniform(-0.1, 0.3) * h, -0.1 * w), (rng.uniform(0.7, 1.1) * h, 1.1 * w)
    else:
        start, end = (-0.1 * h, rng.uniform(-0.1, 0.3) * w), (1.1 * h, rng.uniform(0.7, 1.1) * w)
    n_bend = int(rng.integers(1, 3))
    pts = [start]
    for k in range(1, n_bend + 1):
        t = k / (n_bend + 1) + rng.uniform(-0.08, 0.08)
        r = start[0] + t * (end[0] - start[0]) + rng.uniform(-0.18, 0.18) * h
        c = start[1] + t * (end[1] - start[1]) + rng.uniform(-0.18, 0.18) * w
        pts.append((r, c))
    pts.append(end)
    p = np.array(pts, dtype=np.float64)
    xs, ys = cv.cam.to_scene(p[:, 0], p[:, 1])
    line = np.stack([xs, ys], axis=1)
    # extend the ends beyond the view
    for i, j in ((0, 1), (-1, -2)):
        d = line[i] - line[j]
        line[i] = line[i] + d / max(float(np.hypot(*d)), 1e-6) * 6.0
    return [line]


def _rail_leak_plan(rng: np.random.Generator, material: int, netd: float, gsd: float
                    ) -> _LeakPlan:
    faint = rng.random() < 0.2
    target = rng.uniform(3.0, 5.0) * netd if faint else float(np.exp(rng.uniform(
        math.log(0.3), math.log(4.0))))
    slope = rng.uniform(0, 2 * np.pi)
    u = rng.random()
    p_small = 0.3 if gsd >= 0.12 else 0.15
    fingers = []
    if u < p_small:
        plan = _LeakPlan("small", rng.uniform(0.15, 0.35), rng.uniform(3, 6),
                         rng.uniform(0.03, 0.15), rng.uniform(0.03, 0.12),
                         rng.uniform(0.0, 0.2), slope, [], target)
        if not faint:
            plan.target = rng.uniform(0.5, 3.0)
    elif u < p_small + 0.4:
        plan = _LeakPlan("elongated", rng.uniform(0.6, 1.5), rng.uniform(2, 5),
                         rng.uniform(1.5, 4.0), rng.uniform(0.15, 0.5),
                         rng.uniform(0.0, 1.5), slope, [], target)
    else:
        for _ in range(int(rng.integers(0, 4))):
            dirn = slope + rng.normal(0, 0.5)
            pts = []
            x = y = 0.0
            w = 0.9
            for _ in range(int(rng.integers(3, 8))):
                dirn += rng.normal(0, 0.3)
                x, y = x + 0.35 * math.cos(dirn), y + 0.35 * math.sin(dirn)
                w *= rng.uniform(0.65, 0.9)
                pts.append((x, y, w))
            fingers.append(np.array(pts))
        plan = _LeakPlan("teardrop", rng.uniform(0.6, 1.4), rng.uniform(2, 5),
                         rng.uniform(0.3, 1.0), rng.uniform(0.3, 0.9),
                         rng.uniform(0.5, 2.0), slope, fingers, target)
    if material == CONCRETE:
        plan.kind = "under_slab_" + plan.kind
    if faint:
        plan.kind += "_faint"
    return plan


def _rail_objects(cv: _Canvas, rng: np.random.Generator, env: _Env) -> None:
    ta = env.t_air

    def spot(r: float, tries: int = 12):
        for _ in range(tries):
            x, y = cv.random_point(rng)
            if cv.free(x, y, r):
                return x, y
        return None

    for _ in range(int(rng.integers(1, 6))):  # containers
        at = spot(4)
        if at is None:
            continue
        ln = 6.06 if rng.random() < 0.5 else 12.19
        ang = rng.normal(0, 0.03) + (0 if rng.random() < 0.7 else math.pi / 2)
        cv.paint(_rect(*at, ln, 2.44, ang), ts=ta - rng.uniform(0.5, 3.0) * (
            1 if env.clear else 0.3), eps=rng.uniform(0.8, 0.93), tex=0.15)
        if rng.random() < 0.35:
            e = np.array(at) + np.array([math.cos(ang), math.sin(ang)]) * (ln / 2 - 0.3)
            cv.paint(_rect(e[0], e[1], 0.5, 2.2, ang), ts=ta + rng.uniform(8, 25), eps=0.9)
            cv.count("reefer")
        cv.count("container")
    for _ in range(int(rng.integers(0, 3))):  # trucks
        at = spot(5)
        if at is None:
            continue
        ang = rng.uniform(0, 2 * np.pi)
        u = np.array([math.cos(ang), math.sin(ang)])
        c = np.array(at)
        trail = rng.uniform(10, 13.6)
        cv.paint(_rect(*(c - u * 2.0), trail, 2.5, ang), ts=ta - rng.uniform(0.5, 2.0),
                 eps=rng.uniform(0.6, 0.9), tex=0.15)
        cab = c + u * (trail / 2 - 0.5)
        cv.paint(_rect(*cab, 2.3, 2.5, ang), ts=ta + rng.uniform(2, 8), eps=0.85)
        eng = cab + u * 1.0
        cv.paint(_rect(*eng, 1.0, 2.0, ang), ts=ta + rng.uniform(15, 40), eps=0.85)
        st = cab - u * 1.2 + np.array([-u[1], u[0]]) * 1.1
        cv.paint(_ellipse(*st, 0.12, 0.12), ts=ta + rng.uniform(40, 120), eps=0.9)
        if rng.random() < 0.4:
            cv.paint(_rect(*(c - u * 2.0 + u * (trail / 2 - 0.6)), 0.6, 2.2, ang),
                     ts=ta + rng.uniform(8, 20), eps=0.9)
            cv.count("reefer")
        cv.count("truck")
    for _ in range(int(rng.integers(0, 4))):  # floodlight heads, small vents
        at = spot(0.5)
        if at is None:
            continue
        cv.paint(_ellipse(*at, 0.25, 0.2), ts=ta + rng.uniform(20, 60), eps=0.9)
        cv.count("lamp")
    for _ in range(int(rng.integers(0, 3))):  # workers
        at = spot(0.6)
        if at is None:
            continue
        cv.paint(_ellipse(*at, 0.3, 0.22, rng.uniform(0, 3)), ts=ta + rng.uniform(12, 22),
                 eps=0.95)
        cv.count("person")
    for _ in range(int(rng.integers(0, 3))):  # warm inspection pits, drains
        at = spot(0.8)
        if at is None:
            continue
        cv.paint(_rect(*at, rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.9), rng.uniform(0, 3)),
                 ts=ta + rng.uniform(2, 8), eps=0.9)
        cv.count("manhole")


# ----------------------------------------------------------------------------- the frame


def _label_of(excess: np.ndarray, corridor: np.ndarray, netd: float, peak_rc: tuple[int, int]
              ) -> np.ndarray | None:
    """The leak's label in its window: the 8-connected piece holding its peak, or None."""
    peak = float(excess[peak_rc])
    mask = (excess >= LABEL_PEAK_SHARE * peak) & (excess >= LABEL_NETD_FACTOR * netd) & corridor
    if not mask[peak_rc]:
        return None
    _, comp = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    return comp == comp[peak_rc]


def _camera(t: np.ndarray, rng: np.random.Generator, env: _Env, netd: float) -> np.ndarray:
    h, w = t.shape
    t = cv2.GaussianBlur(t, (0, 0), rng.uniform(0.45, 0.85))
    if rng.random() < 0.3:  # motion blur
        length = rng.uniform(1.5, 4.0)
        ang = rng.uniform(0, np.pi)
        k = int(math.ceil(length)) | 1
        ker = np.zeros((k + 2, k + 2), np.float32)
        c = (k + 1) / 2
        d = (math.cos(ang) * length / 2, math.sin(ang) * length / 2)
        cv2.line(ker, (int(round((c - d[0]) * 16)), int(round((c - d[1]) * 16))),
                 (int(round((c + d[0]) * 16)), int(round((c + d[1]) * 16))), 1.0, 1,
                 cv2.LINE_AA, 4)
        t = cv2.filter2D(t, -1, ker / ker.sum(), borderType=cv2.BORDER_REFLECT)
    med = float(np.median(t[:: max(1, h // 64), :: max(1, w // 64)]))
    hot = np.maximum(t - (med + 20.0), 0)
    if hot.any():  # lens ghost (point-mirrored through the centre) and flare
        ghost = cv2.GaussianBlur(hot[::-1, ::-1], (0, 0), rng.uniform(2.0, 4.0))
        shift = np.float32([[1, 0, rng.uniform(-0.03, 0.03) * w],
                            [0, 1, rng.uniform(-0.03, 0.03) * h]])
        ghost = cv2.warpAffine(ghost, shift, (w, h))
        flare = cv2.GaussianBlur(hot, (0, 0), rng.uniform(4.0, 8.0))
        t = t + rng.uniform(0.02, 0.05) * ghost + rng.uniform(0.08, 0.2) * flare
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy = (yy - (h - 1) / 2) / max(h, w)
    xx = (xx - (w - 1) / 2) / max(h, w)
    r2 = xx * xx + yy * yy
    t = t - rng.uniform(0.1, 0.45) * np.exp(-r2 / (2 * rng.uniform(0.15, 0.3) ** 2))  # narcissus
    drift = rng.uniform(-1, 1) * xx + rng.uniform(-1, 1) * yy  # non-uniformity drift
    for _ in range(3):
        fx, fy = rng.uniform(0.3, 1.5), rng.uniform(0.3, 1.5)
        drift = drift + rng.uniform(0.3, 1.0) * np.cos(2 * np.pi * (fx * xx + fy * yy)
                                                        + rng.uniform(0, 2 * np.pi))
        drift = drift + rng.uniform(0.3, 1.0) * np.cos(2 * np.pi * (fx * xx - fy * yy)
                                                        + rng.uniform(0, 2 * np.pi))
    drift = drift / max(float(np.abs(drift).max()), 1e-6)
    t = t + rng.uniform(0.05, 0.4) * drift
    t_ref = env.t_air + rng.uniform(5, 15)  # gain error about the housing temperature
    t = t_ref + (1 + rng.uniform(-0.1, 0.1)) * (t - t_ref) + rng.uniform(-3, 3)
    t = t + netd * rng.standard_normal((h, w)).astype(np.float32)
    t = t + 0.3 * netd * rng.standard_normal((h, 1)).astype(np.float32)  # row noise
    n_bad = int(rng.choice([0, 1, 2, 3], p=[0.45, 0.3, 0.15, 0.1]))
    for _ in range(n_bad):
        col = int(rng.integers(0, w))
        kind = rng.random()
        if kind < 0.6:
            t[:, col] += rng.choice([-1, 1]) * rng.uniform(0.2, 1.2)
        elif kind < 0.8:
            t[:, col] = float(t[:, col].mean()) + rng.uniform(-2, 2)  # stuck
        else:
            t[:, col] += 3 * netd * rng.standard_normal(h).astype(np.float32)
    step = float(rng.choice([0.01, 0.02, 0.04]))
    return (np.round(t / step) * step).astype(np.float32)


def generate_frame(family: str, seed: int, height: int = 512, width: int = 640, *,
                   n_leaks: int | None = None, objects: bool = True) -> SceneFrame:
    """One seeded frame of ``family`` (``n_leaks`` None: drawn, 35 % leak-free)."""
    spec = _check(family, height, width)
    height, width = int(height), int(width)
    if n_leaks is not None and not 0 <= int(n_leaks) <= 8:
        raise ValueError(f"n_leaks must be 0..8, got {n_leaks}")
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, _family_code(family), 11])
    r_scene, r_pipe, r_leak, r_obj, r_cam = (np.random.default_rng(s) for s in ss.spawn(5))
    if n_leaks is None:
        n_leaks = 0 if r_leak.random() < LEAK_FREE_SHARE else int(r_leak.integers(1, 4))
    n_leaks = int(n_leaks)
    gsd = float(r_scene.uniform(*spec.gsd))
    cam = _Camera(height, width, gsd, float(r_scene.uniform(-0.27, 0.27)),
                  float(r_scene.uniform(0, 2 * np.pi)))
    env = _env(r_scene, spec)
    netd = float(r_cam.uniform(*spec.netd_k))
    cv = _Canvas(cam, r_scene)
    snow = family == "indep2_snowmelt"
    if snow:
        lay = _snow_ground(cv, r_scene, env, _snow_route(cv, r_pipe))
        pipe = _snow_pipe(cv, r_pipe, lay)
        p_depth, p_amp = r_pipe.uniform(0.7, 1.2), r_pipe.uniform(0.2, 0.7)
    else:
        pipe = _rail_pipe(cv, r_pipe)
        lay = _rail_ground(cv, r_scene, env)
        _rail_static(cv, r_scene, env, lay, pipe)
        p_depth, p_amp = r_pipe.uniform(0.8, 1.5), r_pipe.uniform(0.25, 1.0)
    # the corridor over the pipe(s)
    half = float(r_pipe.uniform(*spec.corridor_half_m))
    corr = np.zeros(cv.shape, np.uint8)
    for line in pipe:
        p = np.round(cv.px(line) * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(corr, [p], False, 1, max(1, int(round(2 * half / cv.g))), cv2.LINE_8, 4)
    # the pipe's own heat: a faint, partly broken trace (a broken melt strip under snow)
    ph = _pipe_heat(cv, r_pipe, pipe, p_depth, float(r_pipe.uniform(2, 5)))
    coupling = _COUPLING[cv.mat]
    cv.ts += p_amp * ph * coupling
    if snow:
        strip = (ph > r_pipe.uniform(0.6, 0.8)) & (cv.mat == SNOW) & (
            _noise(r_pipe, cv.shape, 1.5 / cv.g) > r_pipe.uniform(-0.2, 0.6))
        cv.ts[strip] += np.float32(r_pipe.uniform(0.3, 1.2))
        cv.eps[strip] = np.float32(0.975)
    distractors = {"pipe_trace": 1}
    # leaks: placed over the pipe, rendered as their own apparent excess on the raster
    leak_specs = []
    pieces = [line for line in pipe]
    lengths = np.array([float(np.hypot(*np.diff(seg, axis=0).T).sum()) for seg in pieces])
    for _ in range(n_leaks):
        for _attempt in range(25):
            k = int(r_leak.choice(len(pieces), p=lengths / lengths.sum()))
            seg = pieces[k]
            d = np.hypot(*np.diff(seg, axis=0).T)
            s = r_leak.uniform(0, d.sum())
            i = int(np.searchsorted(np.cumsum(d), s))
            i = min(i, len(d) - 1)
            t0 = (s - (np.cumsum(d)[i] - d[i])) / max(d[i], 1e-9)
            pt = seg[i] + t0 * (seg[i + 1] - seg[i])
            axis = math.atan2(*(seg[i + 1] - seg[i])[::-1])
            pt = pt + r_leak.normal(0, 0.15, 2)
            x, y = float(pt[0]), float(pt[1])
            if not cv.in_view(x, y, margin_px=0.06 * min(height, width)):
                continue
            rc = cv.px(np.array([[x, y]]))[0]
            ri, ci = int(round(rc[1])), int(round(rc[0]))
            if not (0 <= ri < cv.shape[0] and 0 <= ci < cv.shape[1]):
                continue
            material = int(cv.mat[ri, ci])
            if _COUPLING[material] == 0:
                continue
            plan = (_snow_leak_plan(r_leak, material, netd, axis) if snow
                    else _rail_leak_plan(r_leak, material, netd, gsd))
            heat, cell = _leak_field(plan, axis)
            reach = 0.5 * (3.0 * max(plan.l_par, plan.l_perp) + 2.0 * plan.drift + plan.depth)
            if not cv.free(x, y, reach):
                continue
            placed = _place_leak_heat(cv, heat, cell, x, y)
            if placed is None:
                continue
            win, h = placed
            new_ts, new_eps = _respond(cv, win, h, plan, env.t_sky, r_leak)
            exc = _apparent(new_ts, new_eps, env.t_sky) - _apparent(cv.ts[win], cv.eps[win],
                                                                     env.t_sky)
            leak_specs.append((plan, win, exc.astype(np.float32), x, y, material))
            cv.keep_out.append((x, y, reach))
            break
    if objects:
        cv.objects_phase = True
        if snow:
            _snow_objects(cv, r_obj, env, lay)
        else:
            _rail_objects(cv, r_obj, env)
        cv.objects_phase = False
    for name, n in cv.counts.items():
        distractors[name] = distractors.get(name, 0) + n
    # apparent temperature of the scene, leaks added where nothing covers them
    app = _apparent(cv.ts, cv.eps, env.t_sky)
    visible = 1.0 - cv.occ
    for _plan, win, exc, *_ in leak_specs:
        app[win] += exc * visible[win]
    # into the camera
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    xs, ys = cam.to_scene(rows, cols)
    map_x = ((xs - cv.x0) / cv.g - 0.5).astype(np.float32)
    map_y = ((ys - cv.y0) / cv.g - 0.5).astype(np.float32)
    del rows, cols, xs, ys
    app = cv2.GaussianBlur(app, (0, 0), 0.5)
    scene_t = cv2.remap(app, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    corridor = cv2.remap(corr, map_x, map_y, cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_CONSTANT) > 0
    label = np.zeros((height, width), np.uint8)
    leaks: list[Leak] = []
    for plan, win, exc, _x, _y, material in leak_specs:
        rs, cs = win
        own = (exc * visible[win]).astype(np.float32)
        # camera pixels whose ground point falls in this window
        wx = cv.x0 + np.array([cs.start, cs.stop, cs.start, cs.stop]) * cv.g
        wy = cv.y0 + np.array([rs.start, rs.start, rs.stop, rs.stop]) * cv.g
        rr, cc = cam.to_image(wx, wy)
        r0 = max(int(math.floor(rr.min())) - 2, 0)
        r1 = min(int(math.ceil(rr.max())) + 3, height)
        c0 = max(int(math.floor(cc.min())) - 2, 0)
        c1 = min(int(math.ceil(cc.max())) + 3, width)
        if r1 <= r0 or c1 <= c0:
            continue
        sub = cv2.remap(own, map_x[r0:r1, c0:c1] - cs.start, map_y[r0:r1, c0:c1] - rs.start,
                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if float(sub.max()) <= 0:
            continue
        pr, pc = np.unravel_index(int(np.argmax(sub)), sub.shape)
        piece = _label_of(sub, corridor[r0:r1, c0:c1], netd, (int(pr), int(pc)))
        if piece is None:
            continue
        label[r0:r1, c0:c1][piece] = 1
        leaks.append(Leak(plan.kind, _MATERIAL_NAMES[material], r0 + int(pr), c0 + int(pc),
                          float(sub[pr, pc]), float(plan.depth), (r0, c0), sub,
                          int(piece.sum())))
    t_u = _camera(scene_t, r_cam, env, netd)
    data = compose_frame(t_u, corridor)
    return SceneFrame(family, int(seed), data, label, corridor, gsd, netd, env.t_air, leaks,
                      distractors)


_MATERIAL_NAMES = ("snow", "packed_snow", "asphalt", "soil", "concrete", "ballast", "hedge",
                   "water", "wet_ground", "roof", "wall", "metal")


# ----------------------------------------------------------------------------- writing a set


def write_set(root: str | os.PathLike[str], family: str, n_frames: int, seed: int,
              height: int = 512, width: int = 640) -> Path:
    """Write ``root/manual_set`` (test split only) of ``n_frames`` frames of ``family``.

    Refuses a non-empty ``root/manual_set``; builds in a hidden temp folder beside it and
    renames it into place, so a failure leaves nothing behind.
    """
    _check(family, height, width)
    n_frames = int(n_frames)
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    root = Path(root)
    target = root / "manual_set"
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} exists and is not empty; choose another folder")
    created = []
    for p in reversed([root, *root.parents]):
        if not p.exists():
            created.append(p)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".manual_set.", dir=root))
    try:
        sub = f"{SUBSET}_test"
        (tmp / "image" / sub).mkdir(parents=True)
        (tmp / "label" / sub).mkdir(parents=True)
        counts = set_leak_counts(seed, family, n_frames)
        frames: dict[str, dict] = {}
        ids = []
        for i, n in enumerate(counts):
            fs = frame_seed(seed, family, i)
            fr = generate_frame(family, fs, height, width, n_leaks=n)
            stem = f"frame_{i:04d}"
            write_frame(tmp / "image" / sub / f"{stem}.npy.lz4", fr.data)
            write_label(tmp / "label" / sub / f"{stem}.png", fr.label)
            ids.append(f"{sub}/{stem}")
            frames[stem] = {"seed": fs, "family": family, "gsd_m": round(fr.gsd_m, 6),
                            "n_leaks": len(fr.leaks), "t_air_degc": round(fr.t_air_degc, 3),
                            "netd_mk": round(fr.netd_k * 1000, 2),
                            "distractors": dict(sorted(fr.distractors.items()))}
        provenance = {
            "name": GENERATOR_NAME, "version": VERSION, "families": [family],
            "seed": int(seed), "height": int(height), "width": int(width),
            "n_frames": n_frames, "splits": [0, 0, 1], "evaluation_only": True,
            "split_ids": {"train": [], "val": [], "test": ids}, "frames": frames,
        }
        write_info(tmp, SUBSET, ["test"], "generator", provenance)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if target.is_dir():
            target.rmdir()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in reversed(created):
            shutil.rmtree(p, ignore_errors=True)
        raise
    return target


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < MIN_SIDE:
        raise argparse.ArgumentTypeError(f"a side must be at least {MIN_SIDE} px, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m heldout.third_generator",
        description="Write an evaluation-only test set of an independent scene family.")
    parser.add_argument("dir", help="folder to write manual_set into")
    parser.add_argument("--family", required=True, choices=FAMILIES)
    parser.add_argument("--frames", type=_positive, default=40)
    parser.add_argument("--seed", type=_seed, default=4242)
    parser.add_argument("--size", type=_size, nargs=2, default=(512, 640), metavar=("H", "W"))
    args = parser.parse_args(argv)
    try:
        out = write_set(args.dir, args.family, args.frames, args.seed, *args.size)
    except (FileExistsError, OSError) as exc:
        parser.error(" ".join(str(exc).split()))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
