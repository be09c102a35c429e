"""Seeded training augmentation of thermal frames (the published recipe, with its defects fixed).

Geometric: horizontal and vertical flips, shift-scale-rotate (shift 0.1, scale 0.3, rotate 40)
and an elastic deformation (p 0.15), all through albumentations. Photometric: one global
temperature offset in [-2, 2] degC added to every channel.

Zoom (``--zoom``, off by default): an isotropic scale about the frame centre, drawn
log-uniformly from ``zoom`` with probability ``zoom_p``, before the rest. The published +-30 %
covers one ground sampling distance; surveys are flown at 3-15 cm/px, so a leak, a lamp or the
pipe's trace can be 3x larger or 2x smaller in pixels than anything in the training frames.
A zoomed-in frame's camera noise is smoothed by the interpolation, so fresh white noise
(0.01-0.05 degC, the NETD of the cameras in use) is added where it was enlarged.

Photometric (``--photometric``, off by default): what another camera, night or terrain does to
the same scene, drawn after the geometry: a contrast gain about the corridor median
(log-uniform 0.7-1.5: leaks, distractors and texture alike stand out more or less), a smooth
background gradient of up to 1.5 degC across the window (vignetting, ambient drift), a
slight Gaussian blur (optics, motion) and camera noise (white, 0-0.08 degC, plus row and
column stripes). Each with probability 0.5. Labels stay: every effect acts on the whole
window, so the pixels a leak makes clearly warmer than its surroundings stay those pixels.

Surface patches (``--surface-patches``, off by default): real surveys are full of man-made
surfaces warmer or colder than their surroundings (a cleared driveway in snow, an asphalt
path across grass, a trench repair, a roof): straight-edged, uniform, often crossing the
corridor. A network trained on one generator's scenes marks them as leaks where that
generator drew none (benchmarks/RESULTS.md D17). So with
probability 0.5 a window gets one to three patches (rotated rectangles, some spanning the
window like a path, or straight-edged polygons) whose temperature differs by 0.3-3 degC (three
in four warmer), after the geometry and before the photometric effects. Labels stay: a patch
adds the same step to every pixel it covers, so the pixels a leak makes clearly warmer than
its surroundings stay those pixels, and the patch itself is never a leak.

Consistent fill: pixels a geometric transform brings in from outside the frame are not
corridor, so ``T_m`` there takes the frame's own outside-corridor value (``min(T_u) - 10``)
and ``T_u`` the corridor median (a neutral temperature); labels are filled with 0. The frame
is shifted by those per-frame fill values before the transform and back after it, so one
albumentations pipeline with ``fill=0`` serves every frame. The offset is added last, so it
moves the fill too.

Every random draw comes from the per-sample seed (the published offset was unseeded).
"""

from __future__ import annotations

import os

import numpy as np

from thermal_anomaly_segmenter.config import check_zoom
from thermal_anomaly_segmenter.io.frames import FILL_OFFSET_DEGC

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no PyPI check (offline machines)

#: Largest global temperature offset, degC (published: uniform in [-2, 2]).
MAX_OFFSET_DEGC = 2.0
#: Probability of the zoom where training asks for one.
ZOOM_P = 0.5
#: Bounds of any zoom range (beyond them a training window is mostly border or one pixel).
#: Standard deviation of the white noise restored in an enlarged frame, degC (low, high).
ZOOM_NOISE_DEGC = (0.01, 0.05)
#: Probability of each photometric effect where training asks for them.
PHOTOMETRIC_P = 0.5
#: Contrast gain about the corridor median (low, high), drawn log-uniformly.
GAIN_RANGE = (0.7, 1.5)
#: Largest peak-to-peak amplitude of the smooth background gradient, degC.
GRADIENT_DEGC = 1.5
#: Gaussian blur sigma (low, high), pixels.
BLUR_SIGMA_PX = (0.4, 1.2)
#: Largest white-noise and stripe standard deviations, degC.
NOISE_DEGC = 0.08
STRIPE_DEGC = 0.03
#: Probability that a window gets surface patches where training asks for them.
SURFACE_P = 0.5
#: Temperature step of a surface patch against what it covers, degC (low, high).
SURFACE_STEP_DEGC = (0.3, 3.0)
#: Share of surface patches warmer than what they cover.
SURFACE_WARM_SHARE = 0.75


class ThermalAugment:
    """Callable ``(data, corridor, label, seed) -> (data, label, offset_degc)``.

    Args:
        offset_degc: Largest absolute global temperature offset.
        elastic_p: Probability of the elastic deformation.
        affine_p: Probability of the shift-scale-rotate.
        offset_range: ``(low, high)`` of the offset, degC (a published config's
            ``augmentation_range``); default ``(-offset_degc, offset_degc)``.
        zoom: ``(low, high)`` of the isotropic zoom, or ``None`` (the published recipe: none).
        zoom_p: Probability of the zoom.
        photometric: Apply :func:`photometric` (the published recipe: no).
        surfaces: Apply :func:`surface_patches` (the published recipe: no).
    """

    def __init__(
        self, offset_degc: float = MAX_OFFSET_DEGC, elastic_p: float = 0.15, affine_p: float = 0.5,
        offset_range: tuple[float, float] | None = None,
        zoom: tuple[float, float] | None = None, zoom_p: float = ZOOM_P,
        photometric: bool = False, surfaces: bool = False,
    ) -> None:
        import albumentations as A
        import cv2

        self.zoom = check_zoom(zoom)
        self.zoom_p = float(zoom_p)
        self.photometric = bool(photometric)
        self.surfaces = bool(surfaces)
        self.offset_degc = float(offset_degc)
        low, high = offset_range if offset_range is not None else (-offset_degc, offset_degc)
        self.offset_range = (float(low), float(high))
        self.pipeline = A.Compose(
            [
                A.HorizontalFlip(p=0.5),
                A.VerticalFlip(p=0.5),
                A.Affine(
                    translate_percent=(-0.1, 0.1),
                    scale=(0.7, 1.3),
                    rotate=(-40, 40),
                    interpolation=cv2.INTER_LINEAR,
                    border_mode=cv2.BORDER_CONSTANT,
                    fill=0.0,
                    fill_mask=0,
                    p=affine_p,
                ),
                A.ElasticTransform(
                    alpha=30.0,
                    sigma=6.0,
                    border_mode=cv2.BORDER_CONSTANT,
                    fill=0.0,
                    fill_mask=0,
                    p=elastic_p,
                ),
            ],
            seed=0,
        )

    def fill_values(self, data: np.ndarray, corridor: np.ndarray) -> np.ndarray:
        """Per-channel values of pixels outside the frame (see :func:`fill_values`)."""
        return fill_values(data, corridor)

    def __call__(
        self, data: np.ndarray, corridor: np.ndarray, label: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray, float]:
        rng = np.random.default_rng(seed)
        offset = float(rng.uniform(*self.offset_range))
        self.pipeline.set_random_seed(int(rng.integers(0, 2**31 - 1)))
        fill = self.fill_values(data, corridor)
        shifted = np.subtract(data, fill, dtype=np.float32)
        if self.zoom is not None:
            factor, noise_degc = draw_zoom(rng, self.zoom, self.zoom_p)
            if factor != 1.0:
                shifted, label = zoom_frame(shifted, label, factor, noise_degc, rng,
                                            float(fill[2] - fill[0]))
        out = self.pipeline(image=shifted, mask=label)
        image = out["image"] + (fill + np.float32(offset))
        if self.surfaces:
            image = surface_patches(image, rng)
        if self.photometric:
            image = photometric(image, rng)
        return image.astype(np.float32, copy=False), out["mask"].astype(np.uint8), offset


def draw_zoom(rng: np.random.Generator, zoom: tuple[float, float], p: float
              ) -> tuple[float, float]:
    """``(factor, noise_degc)`` of one sample: log-uniform factor (1 when not drawn) and the
    white noise restored where the frame is enlarged (0 otherwise)."""
    u = rng.random(3)
    if u[0] >= p:
        return 1.0, 0.0
    low, high = np.log(zoom[0]), np.log(zoom[1])
    factor = float(np.exp(low + (high - low) * u[1]))
    noise = ZOOM_NOISE_DEGC[0] + (ZOOM_NOISE_DEGC[1] - ZOOM_NOISE_DEGC[0]) * float(u[2])
    return factor, noise if factor > 1.0 else 0.0


def zoom_frame(shifted: np.ndarray, label: np.ndarray, factor: float, noise_degc: float,
               rng: np.random.Generator, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale a fill-shifted frame (fill = 0) and its label about the centre by ``factor``.

    ``gap``: ``T_m - T_u`` of a corridor pixel in the shifted frame (median minus T_m fill).
    """
    import cv2

    h, w = label.shape
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), 0.0, factor)
    image = cv2.warpAffine(shifted, matrix, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    label = cv2.warpAffine(label, matrix, (w, h), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if noise_degc > 0:
        # T_m equals T_u inside the corridor and must stay so; outside it T_m is fill.
        noise = rng.normal(0.0, noise_degc, (h, w)).astype(np.float32)
        inside = np.abs(image[..., 0] - image[..., 2] - gap) <= 1e-3
        brought_in = np.all(image == 0.0, axis=-1)  # the border: neither corridor nor scene
        noise[brought_in] = 0.0
        image[..., 2] += noise
        image[..., 0] += np.where(inside, noise, 0.0)
        image[..., 1] += np.where(inside, noise, 0.0)
    return image, label


def photometric(image: np.ndarray, rng: np.random.Generator, p: float = PHOTOMETRIC_P
                ) -> np.ndarray:
    """Another camera, night or terrain on one ``(T_m, T_m, T_u)`` window (see the module
    docstring); ``T_m`` follows ``T_u`` inside the corridor and keeps its fill outside."""
    import cv2

    t_u = image[..., 2].astype(np.float32, copy=True)
    inside = np.abs(image[..., 0] - t_u) <= 1e-3
    h, w = t_u.shape
    u = rng.random(8)
    if u[0] < p:
        ref = float(np.median(t_u[inside])) if inside.any() else float(np.median(t_u))
        gain = np.exp(np.log(GAIN_RANGE[0]) + np.log(GAIN_RANGE[1] / GAIN_RANGE[0]) * u[1])
        t_u = ref + (t_u - ref) * np.float32(gain)
    if u[2] < p:
        # A random plane plus a radial term about a random centre, scaled to its amplitude.
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        y, x = y / max(h - 1, 1) - 0.5, x / max(w - 1, 1) - 0.5
        a, b, c, cy, cx = rng.uniform(-1.0, 1.0, 5)
        field = a * x + b * y + c * ((y - 0.25 * cy) ** 2 + (x - 0.25 * cx) ** 2)
        span = float(field.max() - field.min())
        if span > 0:
            t_u += (field - field.mean()) * np.float32(GRADIENT_DEGC * u[3] / span)
    if u[4] < p:
        sigma = BLUR_SIGMA_PX[0] + (BLUR_SIGMA_PX[1] - BLUR_SIGMA_PX[0]) * float(u[5])
        t_u = cv2.GaussianBlur(t_u, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    if u[6] < p:
        white, stripes = NOISE_DEGC * u[7], STRIPE_DEGC * float(rng.random())
        t_u += rng.normal(0.0, white, (h, w)).astype(np.float32)
        t_u += rng.normal(0.0, stripes, (h, 1)).astype(np.float32)
        t_u += rng.normal(0.0, stripes, (1, w)).astype(np.float32)
    return _with_t_u(image, t_u)


def surface_patches(image: np.ndarray, rng: np.random.Generator, p: float = SURFACE_P
                    ) -> np.ndarray:
    """Man-made warm and cold surfaces on one ``(T_m, T_m, T_u)`` window (see the module
    docstring); ``T_m`` follows ``T_u`` inside the corridor and keeps its fill outside."""
    import cv2

    if rng.random() >= p:
        return image
    t_u = image[..., 2].astype(np.float32, copy=True)
    h, w = t_u.shape
    side = float(min(h, w))
    for _ in range(int(rng.integers(1, 4))):
        # At least 6 % of the window across and 20 % along: straight edges no leak has.
        length, width = rng.uniform(0.2, 1.5) * side, rng.uniform(0.06, 0.35) * side
        centre = (float(rng.uniform(0, w)), float(rng.uniform(0, h)))
        box = cv2.boxPoints((centre, (length, width), float(rng.uniform(0, 180))))
        if rng.random() < 0.3:  # a straight-edged polygon within the box (a yard, a roof)
            weights = rng.dirichlet(np.ones(4), size=int(rng.integers(5, 8)))
            box = cv2.convexHull((weights @ box).astype(np.float32))[:, 0]
        mask = np.zeros((h, w), np.float32)
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1.0, lineType=cv2.LINE_AA)
        step = float(rng.uniform(*SURFACE_STEP_DEGC))
        t_u += mask * np.float32(step if rng.random() < SURFACE_WARM_SHARE else -step)
    return _with_t_u(image, t_u)


def _with_t_u(image: np.ndarray, t_u: np.ndarray) -> np.ndarray:
    """A copy of ``image`` with ``t_u`` as T_u; T_m follows it inside the corridor (where
    T_m equals T_u) and keeps its fill outside."""
    inside = np.abs(image[..., 0] - image[..., 2]) <= 1e-3
    out = np.array(image, dtype=np.float32, copy=True)
    out[..., 2] = t_u
    out[..., 0] = np.where(inside, t_u, image[..., 0])
    out[..., 1] = np.where(inside, t_u, image[..., 1])
    return out


def fill_values(data: np.ndarray, corridor: np.ndarray) -> np.ndarray:
    """Per-channel values of pixels outside the frame: ``(T_m fill, T_m fill, median T_u)``.

    Shared by the CPU pipeline and the batch augmentation on the training device
    (:mod:`.train.device_augment`), so both fill alike.
    """
    t_u = data[..., 2]
    outside = ~corridor
    if outside.any():
        fill_m = float(data[..., 0][outside].min())
    else:
        fill_m = float(t_u.min()) - FILL_OFFSET_DEGC
    median = float(np.median(t_u[corridor])) if corridor.any() else float(np.median(t_u))
    return np.array([fill_m, fill_m, median], dtype=np.float32)
