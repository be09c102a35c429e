"""Opening a model folder: the one place that decides whether a folder is ours or was written by
the published TASeg, and reads or loads it accordingly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from thermal_anomaly_segmenter.errors import InvalidInputError, ModelNotFoundError
from thermal_anomaly_segmenter.models.schema import validate_model_config

if TYPE_CHECKING:
    import torch
from thermal_anomaly_segmenter.models.folder import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    ModelConfig,
    fit_weights,
    read_config_data,
)


def read_model_config(model_dir: str | os.PathLike[str]) -> ModelConfig:
    """Read and validate ``train_config.json`` of a model folder."""
    folder = Path(model_dir)
    path = folder / CONFIG_NAME
    data = read_config_data(folder)
    from thermal_anomaly_segmenter.models.published import (
        is_published_config,
        published_model_config,
    )

    if is_published_config(data):  # written by the published TASeg
        return published_model_config(folder)
    # The whole file is checked before anything is built from it.
    validate_model_config(data, FORMAT_VERSION)
    try:
        return ModelConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"invalid {path}: {exc}") from None


def load_model_folder(
    model_dir: str | os.PathLike[str], device: str = "cpu"
) -> tuple[torch.nn.Module | None, ModelConfig]:
    """Build the network of a model folder and load its weights (``None`` for classical)."""
    folder = Path(model_dir)
    from thermal_anomaly_segmenter.models.published import is_published_folder, load_published

    if is_published_folder(folder):  # written by the published TASeg
        return load_published(folder, device)
    config = read_model_config(folder)
    if config.family == "classical":
        return None, config
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelNotFoundError(f"model folder {folder} has no {WEIGHTS_NAME}")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from thermal_anomaly_segmenter.models.registry import build_model

    model = build_model(config.model_type, config.architecture)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise InvalidInputError(f"cannot read weights {weights}: {exc}") from None
    fit_weights(model, state, str(weights), config.model_type)
    return model.to(device).eval(), config
