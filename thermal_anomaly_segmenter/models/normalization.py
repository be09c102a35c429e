"""Input normalisation: how temperatures in degC become network inputs.

* ``relative`` (default): ``(x - median of T_u in the corridor) / scale``. Invariant to a global
  temperature offset, so a model trained on one winter night works on a warmer one.
* ``dataset`` (the published recipe): per-channel ``(x - mean) / std`` with statistics of the
  training set. Absolute: breaks when the season changes.
* ``none``: raw degC (the classical model reads temperatures directly).

The choice and its statistics are stored in the model folder's ``train_config.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError

if TYPE_CHECKING:
    pass
from thermal_anomaly_segmenter.io.datasets import SplitIndex, read_sample

Mode = Literal["relative", "dataset", "none"]
MODES: tuple[str, ...] = ("relative", "dataset", "none")


@dataclass(frozen=True)
class Normalization:
    """A normalisation and its statistics."""

    mode: Mode = "relative"
    #: Divisor of the relative mode, degC; a typical leak (+2..5 degC) maps to about 1.
    scale_degc: float = 5.0
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInputError(f"normalisation mode {self.mode!r}: choose one of {MODES}")
        if self.mode == "dataset":
            if self.mean is None or self.std is None or len(self.mean) != 3 or len(self.std) != 3:
                raise InvalidInputError("dataset normalisation needs 3 means and 3 stds")
            if min(self.std) <= 0:
                raise InvalidInputError(f"dataset normalisation std must be > 0, got {self.std}")
        if self.scale_degc <= 0:
            raise InvalidInputError(f"scale_degc must be > 0, got {self.scale_degc}")

    def apply(self, data: np.ndarray, corridor_median: float) -> np.ndarray:
        """Normalise an ``... x 3`` array of degC (a frame or a tile) into a new float32 array."""
        if self.mode == "relative":
            out = np.subtract(data, np.float32(corridor_median), dtype=np.float32)
            out *= np.float32(1.0 / self.scale_degc)
            return out
        if self.mode == "dataset":
            mean = np.asarray(self.mean, dtype=np.float32)
            inv_std = 1.0 / np.asarray(self.std, dtype=np.float32)
            out = np.subtract(data, mean, dtype=np.float32)
            out *= inv_std
            return out
        return np.array(data, dtype=np.float32, copy=True)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Normalization:
        known = {"mode", "scale_degc", "mean", "std"}
        unknown = set(values) - known
        if unknown:
            raise InvalidInputError(f"unknown normalisation keys: {sorted(unknown)}")
        kwargs = dict(values)
        for key in ("mean", "std"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(float(v) for v in kwargs[key])
        return cls(**kwargs)


def corridor_median(t_u: np.ndarray, corridor: np.ndarray) -> float:
    """Median temperature of the corridor: the reference for relative inputs and for dT."""
    values = t_u[corridor]
    if values.size == 0:
        raise InvalidInputError("frame has an empty pipeline corridor")
    return float(np.median(values))


def dataset_statistics(split: SplitIndex, max_frames: int = 500) -> Normalization:
    """Per-channel mean/std of every pixel of a split (the published ``dataset`` mode)."""
    total = np.zeros(3)
    squares = np.zeros(3)
    count = 0
    step = max(1, len(split) // max_frames)
    for sample in split.samples[::step]:
        data, _, _ = read_sample(sample)
        pixels = data.reshape(-1, 3).astype(np.float64)
        total += pixels.sum(axis=0)
        squares += np.square(pixels).sum(axis=0)
        count += pixels.shape[0]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 1e-12))
    return Normalization(
        mode="dataset",
        mean=tuple(float(v) for v in mean),  # type: ignore[arg-type]
        std=tuple(float(max(v, 1e-3)) for v in std),  # type: ignore[arg-type]
    )
