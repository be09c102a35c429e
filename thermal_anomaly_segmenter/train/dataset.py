"""The training dataset: one split's samples as tensors.

:class:`ThermalDataset` turns a :class:`~thermal_anomaly_segmenter.io.datasets.SplitIndex` into
``{"image", "mask", "corridor"}`` samples for torch (file I/O, normalisation and an optional
augmentation, nothing else).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from thermal_anomaly_segmenter.io.datasets import read_sample
from thermal_anomaly_segmenter.io.frames import FILL_OFFSET_DEGC
from thermal_anomaly_segmenter.models.normalization import Normalization, corridor_median

if TYPE_CHECKING:
    from thermal_anomaly_segmenter.io.datasets import Sample
    from thermal_anomaly_segmenter.train.frame_cache import FrameCache


Augment = Callable[[np.ndarray, np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray, float]]


class ThermalDataset:
    """Torch-style dataset of one split: ``{"image": 3xHxW, "mask": 1xHxW, "corridor": HxW}``.

    ``image`` is normalised float32, ``mask`` float32 0/1, ``corridor`` bool. The optional
    ``augment(data, corridor, label, seed)`` returns augmented ``(data, label, offset_degc)``
    and is seeded per sample from torch's RNG, which Lightning seeds in every worker.

    ``size`` (height, width): frames of another size are resized to it, or, with ``crop``,
    a random window of that size is cut (frames keep their pixel scale, as inference tiles
    them at native resolution); frames smaller than the window are resized. The relative
    reference (corridor median) is always taken over the whole frame, as in inference.

    ``cache`` (a :class:`~.frame_cache.FrameCache`) reads decoded frames from there after
    the first time. ``draw(seed)`` (:meth:`~.device_augment.DeviceAugment.draw`) returns raw
    samples for augmentation on the training device instead: ``data`` (3xHxW float16, degC
    minus ``median``), ``median``, ``fill`` (3, degC), ``mask`` (1xHxW uint8) and ``params``
    (the sample's draws).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        normalization: Normalization,
        size: tuple[int, int] | None = None,
        augment: Augment | None = None,
        crop: bool = False,
        cache: FrameCache | None = None,
        draw: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        self.cache = cache
        self.draw = draw
        self.samples = list(samples)
        self.normalization = normalization
        self.size = size
        self.augment = augment
        self.crop = crop and size is not None

    def __reduce__(self) -> tuple[Any, ...]:
        # Unpickled in spawned loader workers: importing _spawn_safe first repairs torchvision
        # before the pickle stream brings lightning (see _spawn_safe).
        from thermal_anomaly_segmenter._spawn_safe import rebuild

        return rebuild, (type(self), dict(self.__dict__))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        if self.cache is not None and self.draw is not None:
            raw = self._raw_cached(index)
            if raw is not None:
                return raw
        if self.cache is not None:
            data, corridor, label, median = self.cache.read(self.samples[index],
                                                            None if self.crop else self.size)
        else:
            data, corridor, label = read_sample(self.samples[index],
                                                None if self.crop else self.size)
            median = corridor_median(data[..., 2], corridor) if corridor.any() else float(
                np.median(data[..., 2])
            )
        seed = 0
        if self.augment is not None or self.crop or self.draw is not None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        if self.crop:
            # a frame read at the model's GSD keeps it: mirrored out to the window, not resized
            data, corridor, label = _window(data, corridor, label, self.size, seed,
                                            pad=self.samples[index].scale is not None)
        if self.draw is not None:
            return _raw(data, corridor, label, median, self.draw(seed))
        if self.augment is not None:
            data, label, offset = self.augment(data, corridor, label, seed)
            median += offset  # the offset shifts every channel, the reference too
            corridor = corridor_after(data)
        image = self.normalization.apply(data, median)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "mask": torch.from_numpy(label.astype(np.float32)[None]),
            "corridor": torch.from_numpy(np.ascontiguousarray(corridor)),
        }


    def _raw_cached(self, index: int) -> dict[str, Any] | None:
        """A device-augmentation sample straight from the cache's float16 planes (no float32
        round trip); ``None`` when a crop window must be resized (frame smaller than it)."""
        import torch

        rel, corridor, label, median = self.cache.read_relative(  # type: ignore[union-attr]
            self.samples[index], None if self.crop else self.size)
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        if self.crop:
            assert self.size is not None  # nosec B101
            origin = _window_origin(rel.shape[1:], self.size, seed)
            if origin is None:
                return None
            rows = slice(origin[0], origin[0] + int(self.size[0]))
            cols = slice(origin[1], origin[1] + int(self.size[1]))
            rel, corridor, label = rel[:, rows, cols], corridor[rows, cols], label[rows, cols]
        # As augmentation.fill_values, over the window: its own corridor median.
        outside = ~corridor
        fill_m = float(rel[0][outside].min()) if outside.any() else float(
            rel[1].min()) - FILL_OFFSET_DEGC
        fill_u = 0.0
        if self.crop:
            t_u = rel[1][corridor] if corridor.any() else rel[1]
            fill_u = float(np.median(t_u.astype(np.float32)))
        fill = np.array([fill_m, fill_m, fill_u], np.float32) + np.float32(median)
        return {
            "data": torch.from_numpy(np.ascontiguousarray(rel[[0, 0, 1]])),
            "median": torch.tensor(median, dtype=torch.float32),
            "fill": torch.from_numpy(fill),
            "mask": torch.from_numpy(np.ascontiguousarray(label)[None]),
            "params": torch.from_numpy(self.draw(seed)),  # type: ignore[misc]
        }


def _window_origin(shape: tuple[int, ...], size: tuple[int, int], seed: int
                   ) -> tuple[int, int] | None:
    """Top-left corner of the seeded window :func:`_window` cuts (``None``: it resizes)."""
    h, w = shape[:2]
    th, tw = int(size[0]), int(size[1])
    if h < th or w < tw:
        return None
    rng = np.random.default_rng(seed + 1)  # not the augmentation's stream
    return int(rng.integers(0, h - th + 1)), int(rng.integers(0, w - tw + 1))


def _raw(data: np.ndarray, corridor: np.ndarray, label: np.ndarray, median: float,
         params: np.ndarray) -> dict[str, Any]:
    """A sample for :class:`~.device_augment.DeviceAugment`: float16 relative temperatures
    (half the bytes to pin and copy) and what the augmentation needs on the device."""
    import torch

    from thermal_anomaly_segmenter.train.augmentation import fill_values

    rel = np.subtract(data, np.float32(median), dtype=np.float32).astype(np.float16)
    return {
        "data": torch.from_numpy(np.ascontiguousarray(rel.transpose(2, 0, 1))),
        "median": torch.tensor(median, dtype=torch.float32),
        "fill": torch.from_numpy(fill_values(data, corridor)),
        "mask": torch.from_numpy(np.ascontiguousarray(label, dtype=np.uint8)[None]),
        "params": torch.from_numpy(params),
    }


def _window(data: np.ndarray, corridor: np.ndarray, label: np.ndarray,
            size: tuple[int, int], seed: int, pad: bool = False):
    """A seeded random ``size`` window of a frame; a smaller frame is resized to it, or with
    ``pad`` mirrored out to it (its pixel scale kept)."""
    import cv2

    th, tw = int(size[0]), int(size[1])
    h, w = data.shape[:2]
    if pad and (h < th or w < tw):
        extra = ((0, max(0, th - h)), (0, max(0, tw - w)))
        data = np.pad(data, (*extra, (0, 0)), mode="symmetric")
        corridor = np.pad(corridor, extra, mode="symmetric")
        label = np.pad(label, extra, mode="symmetric")
    origin = _window_origin(data.shape, size, seed)
    if origin is None:
        dsize = (tw, th)
        return (
            cv2.resize(data, dsize, interpolation=cv2.INTER_LINEAR),
            cv2.resize(corridor.view(np.uint8), dsize, interpolation=cv2.INTER_NEAREST) > 0,
            cv2.resize(label, dsize, interpolation=cv2.INTER_NEAREST),
        )
    r, c = origin
    window = (slice(r, r + th), slice(c, c + tw))
    return (np.ascontiguousarray(data[window]), np.ascontiguousarray(corridor[window]),
            np.ascontiguousarray(label[window]))


def corridor_after(data: np.ndarray) -> np.ndarray:
    """Corridor of an (augmented) frame: where ``T_m`` equals ``T_u`` (to a tolerance)."""
    return np.abs(data[..., 0] - data[..., 2]) <= 1e-3
