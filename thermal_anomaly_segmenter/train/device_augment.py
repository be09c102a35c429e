"""Training augmentation in batches on the training device (the GPU fast path).

The CPU pipeline (:class:`~thermal_anomaly_segmenter.train.augmentation.ThermalAugment`,
albumentations
in loader workers) bound GPU training at 23-36 img/s on an H200. This module applies the same
augmentation, torch-native, to a whole batch where the batch already is:

* the same transforms, probabilities and ranges: horizontal and vertical flips (p 0.5 each),
  shift-scale-rotate (p 0.5; shift +-10 % as whole pixels, scale 0.7-1.3 per axis, rotation
  +-40 degrees, about the frame centre, as ``albumentations.Affine``), elastic deformation
  (p 0.15; alpha 30, sigma 6, Gaussian noise normalised by its largest magnitude, blurred with
  a 49-tap Gaussian, as ``albumentations.ElasticTransform``), global offset in the recipe's
  range; bilinear for temperatures, nearest for labels;
* the same consistent fill: every frame is shifted by its own fill values
  (:func:`~thermal_anomaly_segmenter.train.augmentation.fill_values`) before the warp, which brings
  in zeros, and back after it; the offset is added last; the corridor is recovered afterwards
  where ``T_m`` equals ``T_u``, and the corridor median moves with the offset;
* seeded per sample: the loader worker draws a sample's parameters (:meth:`DeviceAugment.draw`)
  from the per-sample seed the CPU path uses too; the elastic noise is drawn on the device
  from a seed among those parameters.

With ``zoom`` (``--zoom``), an isotropic zoom about the centre comes first (drawn as
:func:`~thermal_anomaly_segmenter.train.augmentation.draw_zoom`; part of the same resampling), and
an
enlarged frame gets its white camera noise back after the affine map.

Flips and the affine map are one resampling (a flip is an exact permutation of pixel
centres), the elastic field a second one, in the CPU pipeline's order.

Equivalence (``tests/train/test_device_augment.py``): given albumentations' own draws (flip
flags, affine matrix, elastic displacement maps), the output equals the CPU pipeline's to
the precision of OpenCV's fixed-point bilinear weights (1/32 pixel). The elastic noise itself
cannot match draw for draw (OpenCV and torch generators differ), so its displacement fields
are tested for the same distribution instead, as are the parameter draws.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from thermal_anomaly_segmenter.config import check_zoom
from thermal_anomaly_segmenter.inference.gpu_engine import normalize
from thermal_anomaly_segmenter.models.normalization import Normalization
from thermal_anomaly_segmenter.train.augmentation import (
    MAX_OFFSET_DEGC,
    ZOOM_P,
    draw_zoom,
)

#: Columns of a parameter row (:meth:`DeviceAugment.draw`).
PARAMS: tuple[str, ...] = ("hflip", "vflip", "affine", "shift_x", "shift_y", "scale_x",
                           "scale_y", "rotate_deg", "elastic", "noise_seed", "offset_degc",
                           "log_zoom", "zoom_noise_degc")
_COL = {name: i for i, name in enumerate(PARAMS)}

#: Corridor tolerance of ``|T_m - T_u|`` after augmentation (as :func:`.dataset.corridor_after`).
CORRIDOR_TOL_DEGC = 1e-3


class DeviceAugment:
    """Batch augmentation equivalent to :class:`~.augmentation.ThermalAugment`.

    Args:
        normalization: Input normalisation applied after the augmentation.
        offset_range: ``(low, high)`` of the global temperature offset, degC.
        elastic_p: Probability of the elastic deformation.
        affine_p: Probability of the shift-scale-rotate.
        alpha: Elastic displacement scale, pixels.
        sigma: Elastic smoothing, pixels.
        zoom: ``(low, high)`` of the isotropic zoom (as the CPU pipeline's), or ``None``.
        zoom_p: Probability of the zoom.
    """

    def __init__(self, normalization: Normalization,
                 offset_range: tuple[float, float] | None = None, elastic_p: float = 0.15,
                 affine_p: float = 0.5, alpha: float = 30.0, sigma: float = 6.0,
                 zoom: tuple[float, float] | None = None, zoom_p: float = ZOOM_P) -> None:
        self.normalization = normalization
        self.zoom = check_zoom(zoom)
        self.zoom_p = float(zoom_p)
        low, high = offset_range if offset_range is not None else (-MAX_OFFSET_DEGC,
                                                                   MAX_OFFSET_DEGC)
        self.offset_range = (float(low), float(high))
        self.elastic_p = float(elastic_p)
        self.affine_p = float(affine_p)
        self.alpha = float(alpha)
        self.sigma = float(sigma)

    # -- draws (host side, in loader workers) ------------------------------------------------

    def draw(self, seed: int) -> np.ndarray:
        """One sample's parameters (float64, columns :data:`PARAMS`) from its seed."""
        rng = np.random.default_rng(seed)
        u = rng.random(11)
        row = np.zeros(len(PARAMS), np.float64)
        row[_COL["hflip"]] = u[0] < 0.5
        row[_COL["vflip"]] = u[1] < 0.5
        row[_COL["affine"]] = u[2] < self.affine_p
        row[_COL["shift_x"]] = -0.1 + 0.2 * u[3]
        row[_COL["shift_y"]] = -0.1 + 0.2 * u[4]
        row[_COL["scale_x"]] = 0.7 + 0.6 * u[5]
        row[_COL["scale_y"]] = 0.7 + 0.6 * u[6]
        row[_COL["rotate_deg"]] = -40.0 + 80.0 * u[7]
        row[_COL["elastic"]] = u[8] < self.elastic_p
        row[_COL["noise_seed"]] = math.floor(u[9] * (2**31 - 1))
        low, high = self.offset_range
        row[_COL["offset_degc"]] = low + (high - low) * u[10]
        factor, noise = draw_zoom(rng, self.zoom, self.zoom_p) if self.zoom else (1.0, 0.0)
        row[_COL["log_zoom"]] = math.log(factor)
        row[_COL["zoom_noise_degc"]] = noise
        return row

    # -- the batch (device side) -------------------------------------------------------------

    def __call__(self, batch: dict[str, torch.Tensor], params: torch.Tensor | np.ndarray
                 ) -> dict[str, torch.Tensor]:
        """Augment and normalise a raw batch from :class:`.dataset.ThermalDataset` (``draw``
        mode) into the ``{"image", "mask", "corridor"}`` batch the task trains on.

        ``batch`` holds ``data`` (B x 3 x H x W, degC minus the frame's median, any float
        dtype), ``median`` (B), ``fill`` (B x 3, degC) and ``mask`` (B x 1 x H x W); ``params``
        (B x :data:`PARAMS`) stays on the host, so reading it never waits for the device.
        """
        median = batch["median"].float()
        data = batch["data"].float() + median[:, None, None, None]
        label = batch["mask"].float()
        data, label, offset = self.augment(data, label, batch["fill"].float(), params)
        corridor = (data[:, 0] - data[:, 2]).abs() <= CORRIDOR_TOL_DEGC
        image = normalize(data, self.normalization, median + offset)
        return {"image": image, "mask": label, "corridor": corridor}

    def augment(self, data: torch.Tensor, label: torch.Tensor, fill: torch.Tensor,
                params: torch.Tensor | np.ndarray, matrices: torch.Tensor | None = None,
                displacement: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The geometric and photometric augmentation of a batch in degC.

        Args:
            data: B x 3 x H x W temperatures, degC.
            label: B x 1 x H x W labels (0/1).
            fill: B x 3 fill values (:func:`~.augmentation.fill_values`).
            params: B x :data:`PARAMS` draws.
            matrices: B x 3 x 3 pixel maps (source -> output, flips included) to use instead
                of the ones the draws make (the equivalence test passes albumentations' own).
            displacement: B x 2 x H x W elastic displacements (dx, dy) in pixels to use
                instead of drawing them (the equivalence test passes albumentations' own).

        Returns:
            Augmented temperatures, labels and the offsets (B), degC.
        """
        params = torch.as_tensor(np.asarray(params, np.float64))
        b, _, h, w = data.shape
        device = data.device
        shift = fill[:, :, None, None]
        x = data - shift
        y = label
        if matrices is None:
            matrices = torch.stack([_forward_matrix(row, h, w) for row in params])
        matrices = torch.as_tensor(matrices, dtype=torch.float64)
        moved = [i for i in range(b) if not torch.equal(matrices[i], torch.eye(3, dtype=
                                                                              torch.float64))]
        if moved:
            idx = _to(torch.tensor(moved), device)
            grid = _affine_grid(matrices[moved], h, w, device)
            x = x.index_copy(0, idx, _sample(x[idx], grid, "bilinear"))
            y = y.index_copy(0, idx, _sample(y[idx], grid, "nearest"))
        noisy = [i for i in range(b) if params[i, _COL["zoom_noise_degc"]] > 0]
        if noisy:
            x = self._restore_noise(x, fill, params, noisy)
        elastic = [i for i in range(b) if params[i, _COL["elastic"]] > 0]
        if elastic:
            idx = _to(torch.tensor(elastic), device)
            if displacement is None:
                fields = torch.stack([self.displacement(int(params[i, _COL["noise_seed"]]),
                                                        h, w, device) for i in elastic])
            else:
                fields = displacement[elastic].to(device=device, dtype=torch.float32)
            grid = _elastic_grid(fields, h, w)
            x = x.index_copy(0, idx, _sample(x[idx], grid, "bilinear"))
            y = y.index_copy(0, idx, _sample(y[idx], grid, "nearest"))
        offset = _to(params[:, _COL["offset_degc"]].float(), device)
        return x + shift + offset[:, None, None, None], y, offset

    def _restore_noise(self, x: torch.Tensor, fill: torch.Tensor, params: torch.Tensor,
                       rows: list[int]) -> torch.Tensor:
        """White noise on the enlarged frames ``rows`` of a fill-shifted batch: ``T_u`` and
        ``T_m`` alike inside the corridor, nothing on the border the warp brought in."""
        _, _, h, w = x.shape
        x = x.clone()
        for i in rows:
            gen = torch.Generator(device=x.device)
            gen.manual_seed(int(params[i, _COL["noise_seed"]]) + 1)
            noise = torch.randn((h, w), generator=gen, device=x.device)
            noise *= float(params[i, _COL["zoom_noise_degc"]])
            gap = fill[i, 2] - fill[i, 0]
            inside = (x[i, 0] - x[i, 2] - gap).abs() <= CORRIDOR_TOL_DEGC
            noise = noise.masked_fill((x[i] == 0).all(0), 0.0)
            x[i, 2] += noise
            x[i, :2] += torch.where(inside, noise, torch.zeros_like(noise))
        return x

    def displacement(self, seed: int, h: int, w: int,
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """Elastic displacement fields (2 x H x W: dx, dy, pixels) of one sample.

        As albumentations: standard normal noise divided by its largest magnitude, blurred
        (Gaussian, sigma ``self.sigma``, OpenCV's automatic 49 taps, replicated border), times
        ``alpha``. albumentations blurs dx and dy stacked as one image, which mixes them over
        the seam; here each is blurred alone.
        """
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
        noise = torch.randn((2, 1, h, w), generator=gen, device=device)
        noise /= noise.abs().amax().clamp_min(1e-6)
        return self.alpha * _blur(noise, self.sigma)[:, 0]


def _forward_matrix(row: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """3 x 3 pixel map source -> output of the zoom, the flips, then the affine map
    (albumentations')."""
    m = torch.eye(3, dtype=torch.float64)
    zoom = math.exp(float(row[_COL["log_zoom"]]))
    if zoom != 1.0:
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        m = torch.tensor([[zoom, 0, cx * (1 - zoom)], [0, zoom, cy * (1 - zoom)], [0, 0, 1]],
                         dtype=torch.float64)
    if row[_COL["hflip"]] > 0:
        m = torch.tensor([[-1.0, 0, w - 1], [0, 1, 0], [0, 0, 1]], dtype=torch.float64) @ m
    if row[_COL["vflip"]] > 0:
        m = torch.tensor([[1.0, 0, 0], [0, -1, h - 1], [0, 0, 1]], dtype=torch.float64) @ m
    if row[_COL["affine"]] > 0:
        m = affine_matrix(float(row[_COL["shift_x"]]), float(row[_COL["shift_y"]]),
                          float(row[_COL["scale_x"]]), float(row[_COL["scale_y"]]),
                          float(row[_COL["rotate_deg"]]), h, w) @ m
    return m


def affine_matrix(shift_x: float, shift_y: float, scale_x: float, scale_y: float,
                  rotate_deg: float, h: int, w: int) -> torch.Tensor:
    """``albumentations.Affine``'s map: scale, rotate and shift (whole pixels) about the centre."""
    cx, cy = w / 2 - 0.5, h / 2 - 0.5
    rad = math.radians(rotate_deg % 360)
    c, s = math.cos(rad), math.sin(rad)
    tx, ty = int(shift_x * w), int(shift_y * h)
    to_centre = torch.tensor([[1.0, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=torch.float64)
    linear = torch.tensor([[c * scale_x, s * scale_y, 0], [-s * scale_x, c * scale_y, 0],
                           [0, 0, 1]], dtype=torch.float64)
    back = torch.tensor([[1.0, 0, cx + tx], [0, 1, cy + ty], [0, 0, 1]], dtype=torch.float64)
    return back @ linear @ to_centre


def _to(t: torch.Tensor, device: Any) -> torch.Tensor:
    """A small host tensor on ``device``; on a GPU from pinned memory, so the copy queues
    behind the running step instead of making the host wait for it."""
    if torch.device(device).type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _pixel_grid(h: int, w: int, dtype: torch.dtype, device: Any = "cpu") -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype, device=device),
                            torch.arange(w, dtype=dtype, device=device), indexing="ij")
    return torch.stack([xs, ys], -1)  # H x W x (x, y)


def _to_unit(coords: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel-centre coordinates (x, y) -> grid_sample's [-1, 1] with ``align_corners=True``."""
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=coords.dtype,
                         device=coords.device)
    return coords * scale - 1.0


def _affine_grid(forward: torch.Tensor, h: int, w: int, device: Any) -> torch.Tensor:
    """Sampling grid (B x H x W x 2) of forward pixel maps (B x 3 x 3, float64, host), built
    on the device (float32 holds pixel coordinates to 1e-4 px)."""
    inverse = _to(torch.linalg.inv(forward).float(), device)
    pix = _pixel_grid(h, w, torch.float32, device)
    src = pix @ inverse[:, None, :2, :2].transpose(-1, -2) + inverse[:, None, None, :2, 2]
    return _to_unit(src, h, w)


def _elastic_grid(fields: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Sampling grid of displacement fields (B x 2 x H x W): output (x, y) reads (x+dx, y+dy)."""
    src = _pixel_grid(h, w, torch.float32, fields.device) + fields.permute(0, 2, 3, 1)
    return _to_unit(src, h, w)


def _sample(x: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    return F.grid_sample(x, grid.to(x.dtype), mode=mode, padding_mode="zeros",
                         align_corners=True)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of N x 1 x H x W: OpenCV's float kernel size, replicated edges."""
    size = int(round(sigma * 8 + 1)) | 1
    half = size // 2
    t = torch.arange(size, dtype=torch.float32, device=x.device) - half
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()
    x = F.conv2d(F.pad(x, (half, half, 0, 0), mode="replicate"), k.view(1, 1, 1, size))
    return F.conv2d(F.pad(x, (0, 0, half, half), mode="replicate"), k.view(1, 1, size, 1))
