"""The training wing: TASeg's recipes on Lightning.

* :mod:`.recipe`: the phases of a run (from the published per-model configuration files,
  :mod:`thermal_anomaly_segmenter.models.recipe_files`);
* :mod:`.augmentation` (in loader workers) and :mod:`.device_augment` (on the device);
* :mod:`.dataset`: a split's samples as normalised, augmented tensors (file I/O only);
* :mod:`.datamodule`: splits, loaders and augmentation;
* :mod:`.task`: the LightningModule (model, loss, optimiser, metrics; one shared step);
* :mod:`.runs`: run folders, per-epoch CSV, checkpoint I/O;
* :mod:`.hardware`: accelerator, precision, DDP strategy;
* :mod:`.opening`: opening a run, new or resumed (options, data, GSD, size, normalisation);
* :mod:`.tracking`: MLflow, with a local store that always works; :mod:`.plots`: curves;
* :mod:`.loop`: :func:`train`, which chains the phases and writes the model folder.

Importing the package is cheap; ``train`` and the Lightning pieces load on first use.
"""

from __future__ import annotations

from thermal_anomaly_segmenter._lazy import lazy_getattr

_LAZY = {
    "train": "loop",
    "TrainResult": "runs",
    "SegmentationTask": "task",
    "ThermalDataModule": "datamodule",
    "ThermalDataset": "dataset",
    "PhaseRecipe": "recipe",
    "phase_recipes": "recipe",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
