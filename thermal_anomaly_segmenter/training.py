"""Compatibility: training lives in :mod:`thermal_anomaly_segmenter.train`.
"""

from .report.plots import (
    plot_curves,
)
from .train.datamodule import (
    ThermalDataModule,
    default_worker_count,
)
from .train.loop import (
    train,
)
from .train.recipe import (
    PhaseRecipe,
    phase_recipes,
)
from .train.runs import (
    RUN_STATE,
    AtomicCheckpointIO,
    TrainResult,
    append_csv_row,
    epoch_rows,
    read_csv_rows,
    write_csv_rows,
)
from .train.task import (
    MONITOR,
    SegmentationTask,
    make_loss,
)

__all__ = [
    "AtomicCheckpointIO",
    "MONITOR",
    "PhaseRecipe",
    "RUN_STATE",
    "SegmentationTask",
    "ThermalDataModule",
    "TrainResult",
    "append_csv_row",
    "default_worker_count",
    "epoch_rows",
    "make_loss",
    "phase_recipes",
    "plot_curves",
    "read_csv_rows",
    "train",
    "write_csv_rows",
]
