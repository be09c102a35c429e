"""Seeded training augmentation of thermal frames (the published recipe, with its defects fixed).

Geometric: horizontal and vertical flips, shift-scale-rotate (shift 0.1, scale 0.3, rotate 40)
and an elastic deformation (p 0.15), all through albumentations. Photometric: one global
temperature offset in [-2, 2] degC added to every channel.

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

from .io.frames import FILL_OFFSET_DEGC

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no PyPI check (offline machines)

#: Largest global temperature offset, degC (published: uniform in [-2, 2]).
MAX_OFFSET_DEGC = 2.0


class ThermalAugment:
    """Callable ``(data, corridor, label, seed) -> (data, label, offset_degc)``.

    Args:
        offset_degc: Largest absolute global temperature offset.
        elastic_p: Probability of the elastic deformation.
        affine_p: Probability of the shift-scale-rotate.
        offset_range: ``(low, high)`` of the offset, degC (a published config's
            ``augmentation_range``); default ``(-offset_degc, offset_degc)``.
    """

    def __init__(
        self, offset_degc: float = MAX_OFFSET_DEGC, elastic_p: float = 0.15, affine_p: float = 0.5,
        offset_range: tuple[float, float] | None = None,
    ) -> None:
        import albumentations as A
        import cv2

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
        out = self.pipeline(image=shifted, mask=label)
        image = out["image"] + (fill + np.float32(offset))
        return image.astype(np.float32, copy=False), out["mask"].astype(np.uint8), offset


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
