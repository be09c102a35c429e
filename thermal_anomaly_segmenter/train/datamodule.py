"""The Lightning data module: splits, loaders and augmentation.
"""

from __future__ import annotations

import os
from typing import Any

from thermal_anomaly_segmenter._compat import ensure_torchvision

ensure_torchvision()

import lightning as L  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from thermal_anomaly_segmenter.errors import DatasetError  # noqa: E402
from thermal_anomaly_segmenter.io.datasets import (  # noqa: E402
    SplitIndex,
)
from thermal_anomaly_segmenter.models.normalization import Normalization  # noqa: E402
from thermal_anomaly_segmenter.processes import die_with_parent  # noqa: E402
from thermal_anomaly_segmenter.train.dataset import ThermalDataset  # noqa: E402

#: Where training frames are augmented (``TrainOptions.augment_on`` adds ``auto``).
AUGMENT_SITES: tuple[str, ...] = ("cpu", "device")


def augment_site(choice: str, accelerator: str, photometric: bool = False,
                 surface_patches: bool = False) -> str:
    """``TrainOptions.augment_on`` resolved: ``auto`` augments on the device on a GPU (CPU
    loader workers bound GPU training) and in the loader workers on a CPU (where the device
    is the same CPU, and the workers run beside the training step); the photometric and
    surface-patch augmentations exist in the loader workers only, so they keep ``auto``
    there."""
    if choice == "auto":
        loader_only = photometric or surface_patches
        return "device" if accelerator == "gpu" and not loader_only else "cpu"
    return choice


def default_worker_count() -> int:
    """Loader workers from cores and memory: ``min(4, cores - 1, GiB / 4)``, at least 0."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        ram_gib = 8.0
    return max(0, min(4, (cores or 1) - 1, int(ram_gib // 4)))


class ThermalDataModule(L.LightningDataModule):
    """Loaders of one phase: train (filtered, repeated, augmented), val and test.

    Args:
        train: Training split (already filtered and repeated).
        val: Validation split.
        test: Test split, or ``None``.
        normalization: Input normalisation.
        size: Frame size (height, width) every frame is resized to.
        batch_size: Frames per batch (per device).
        workers: Loader worker processes (0 = in the main process).
        augment: Apply :class:`~.augmentation.ThermalAugment` to training frames.
        pin_memory: Pin batches (GPU training).
        crop: Train on random ``size`` windows; validate and test on whole frames (one per
            batch, as their sizes may differ).
        augment_on: ``cpu`` (albumentations in the loader workers) or ``device`` (batches
            augmented where they are trained, :mod:`.device_augment`).
        frame_cache: Cache decoded frames as fp16 files (:mod:`.frame_cache`).
        zoom: Range of the zoom augmentation, or ``None`` (see :mod:`.augmentation`).
        photometric: Apply the photometric augmentation (loader workers only).
        surface_patches: Apply the surface-patch augmentation (loader workers only).
    """

    def __init__(
        self,
        train: SplitIndex,
        val: SplitIndex,
        test: SplitIndex | None,
        normalization: Normalization,
        size: tuple[int, int],
        batch_size: int = 16,
        workers: int = 0,
        augment: bool = True,
        pin_memory: bool = False,
        crop: bool = False,
        augmentation_range: tuple[float, float] | None = None,
        augment_on: str = "cpu",
        frame_cache: bool = False,
        zoom: tuple[float, float] | None = None,
        photometric: bool = False,
        surface_patches: bool = False,
    ) -> None:
        super().__init__()
        if augment_on not in AUGMENT_SITES:
            raise DatasetError(f"augment_on must be one of {', '.join(AUGMENT_SITES)}, "
                               f"got {augment_on!r}")
        for name, on in (("photometric", photometric), ("surface-patch", surface_patches)):
            if on and augment_on == "device":
                raise DatasetError(f"the {name} augmentation runs in the loader workers only "
                                   "(augment_on cpu)")
        self.photometric = photometric
        self.surface_patches = surface_patches
        self.augment_on = augment_on
        self.frame_cache = frame_cache
        self._cache = None
        self._device_augment = None
        self._params = None  # the draws of the batch in transfer, kept on the host
        self.augmentation_range = augmentation_range
        self.zoom = zoom
        self.crop = crop
        self.splits = {"train": train, "val": val, "test": test}
        self.normalization = normalization
        self.size = size
        self.batch_size = batch_size
        self.workers = workers
        self.augment = augment
        self.pin_memory = pin_memory

    def _loader(self, split: str) -> DataLoader:
        index = self.splits[split]
        if index is None or not len(index):
            raise DatasetError(f"split {split!r} is empty")
        augment = draw = None
        if split == "train" and self.augment and self.augment_on == "device":
            from thermal_anomaly_segmenter.train.device_augment import DeviceAugment

            self._device_augment = DeviceAugment(self.normalization, self.augmentation_range,
                                                zoom=self.zoom)
            draw = self._device_augment.draw
        elif split == "train" and self.augment:
            from thermal_anomaly_segmenter.train.augmentation import ThermalAugment

            augment = ThermalAugment(offset_range=self.augmentation_range, zoom=self.zoom,
                                     photometric=self.photometric,
                                     surfaces=self.surface_patches)
        if self.frame_cache and self._cache is None:
            from thermal_anomaly_segmenter.train.frame_cache import FrameCache

            self._cache = FrameCache()
        training = split == "train"
        whole = self.crop and not training
        dataset = ThermalDataset(index.samples, self.normalization,
                                 None if whole else self.size, augment, crop=self.crop,
                                 cache=self._cache, draw=draw)
        # GPU: keep a few pinned batches in flight per worker.
        prefetch = {"prefetch_factor": 4} if self.pin_memory and self.workers > 0 else {}
        return DataLoader(
            dataset,
            batch_size=1 if whole else self.batch_size,
            shuffle=training,
            num_workers=self.workers,
            persistent_workers=self.workers > 0,
            worker_init_fn=die_with_parent,  # a killed training leaves no orphan workers
            pin_memory=self.pin_memory,
            # A last batch of one frame breaks batch norm (PSPNet pools to 1 x 1).
            drop_last=training and len(dataset) % self.batch_size == 1 and len(dataset) > 1,
            **prefetch,
        )

    # Device-side augmentation: raw batches (``data`` key) become training batches after
    # Lightning moved them to the device; the draws stay on the host meanwhile.
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict) and "params" in batch:
            batch = dict(batch)
            self._params = batch.pop("params")
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict) and "data" in batch and self._device_augment is not None:
            params, self._params = self._params, None
            return self._device_augment(batch, params)
        return batch

    def to_device(self, batch: Any, device: Any) -> Any:
        """A loader batch as a training step gets it on ``device`` (what Lightning does, for
        loops without a Trainer: the benchmark)."""
        from lightning.fabric.utilities.apply_func import move_data_to_device

        batch = self.on_before_batch_transfer(batch, 0)
        return self.on_after_batch_transfer(move_data_to_device(batch, device), 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
