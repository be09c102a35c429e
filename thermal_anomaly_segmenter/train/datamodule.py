"""The Lightning data module: splits, loaders and augmentation.
"""

from __future__ import annotations

import os

from .._compat import ensure_torchvision

ensure_torchvision()

import lightning as L  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from ..errors import DatasetError  # noqa: E402
from ..io.datasets import (  # noqa: E402
    SplitIndex,
)
from ..normalization import Normalization  # noqa: E402
from ..processes import die_with_parent  # noqa: E402
from .dataset import ThermalDataset  # noqa: E402


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
    ) -> None:
        super().__init__()
        self.augmentation_range = augmentation_range
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
        augment = None
        if split == "train" and self.augment:
            from ..augmentation import ThermalAugment

            augment = ThermalAugment(offset_range=self.augmentation_range)
        training = split == "train"
        whole = self.crop and not training
        dataset = ThermalDataset(index.samples, self.normalization,
                                 None if whole else self.size, augment, crop=self.crop)
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
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
