"""Compatibility: datasets live in :mod:`thermal_anomaly_segmenter.io.datasets`.
"""

from .io.datasets import (
    DEFAULT_WORK_DIR,
    INFO_MAX_BYTES,
    INFO_NAME,
    SET_NAMES,
    SPLITS,
    Sample,
    SplitIndex,
    check_label,
    dataset_statistics,
    frame_size,
    has_set,
    list_dataset_folders,
    load_split,
    open_set,
    read_info,
    read_label_mask,
    read_sample,
    resolve_dataset_path,
)
from .train.dataset import (
    Augment,
    ThermalDataset,
    corridor_after,
)

__all__ = [
    "Augment",
    "DEFAULT_WORK_DIR",
    "INFO_MAX_BYTES",
    "INFO_NAME",
    "SET_NAMES",
    "SPLITS",
    "Sample",
    "SplitIndex",
    "ThermalDataset",
    "check_label",
    "corridor_after",
    "dataset_statistics",
    "frame_size",
    "has_set",
    "list_dataset_folders",
    "load_split",
    "open_set",
    "read_info",
    "read_label_mask",
    "read_sample",
    "resolve_dataset_path",
]
