"""Platt scaling of the network's logits: the stored calibration applied at inference, and its
numpy fit (a leaf; fitting it on a model's validation split is evaluation.calibration)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError

log = logging.getLogger(__name__)


#: Probabilities are clipped to [EPS, 1 - EPS] before taking logits (fp32 saturates at 1.0).
EPS = 1e-7


@dataclass(frozen=True)
class Calibration:
    """``sigmoid(scale * z + bias)`` in place of ``sigmoid(z)``; identity by default."""

    scale: float = 1.0
    bias: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and math.isfinite(self.bias)) or self.scale <= 0:
            raise InvalidInputError(
                f"calibration needs a finite scale > 0 and a finite bias, got scale "
                f"{self.scale!r}, bias {self.bias!r}"
            )

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.bias == 0.0

    def apply_logits(self, logits):
        """Calibrated logits (NumPy arrays and torch tensors alike)."""
        return logits if self.identity else logits * self.scale + self.bias

    def apply_probabilities(self, prob: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from uncalibrated ones (used for the fit's report)."""
        z = self.apply_logits(logits_of(prob))
        return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)

    @classmethod
    def from_config(cls, data: dict[str, Any] | None) -> Calibration:
        """From ``train_config.json``'s ``calibration`` (``{}`` or missing: identity)."""
        if not data:
            return cls()
        if not isinstance(data, dict) or data.get("method") != "platt":
            raise InvalidInputError(
                f"calibration must be {{'method': 'platt', 'scale': ..., 'bias': ...}}, "
                f"got {data!r:.200}"
            )
        try:
            return cls(float(data["scale"]), float(data["bias"]))
        except (KeyError, TypeError, ValueError):
            raise InvalidInputError(
                f"calibration needs numbers 'scale' and 'bias', got {data!r:.200}"
            ) from None

    def to_config(self) -> dict[str, Any]:
        return {"method": "platt", "scale": self.scale, "bias": self.bias}


def logits_of(prob: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(prob, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def fit_platt(prob: np.ndarray, truth: np.ndarray) -> Calibration:
    """Fit ``scale`` and ``bias`` by logistic regression of the labels on the logits.

    Args:
        prob: Uncalibrated probabilities (any shape).
        truth: Labels of the same pixels (bool or 0/1).

    Raises:
        InvalidInputError: When the pixels hold only one class (nothing to fit).
    """
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(truth, dtype=bool).ravel()
    if y.all() or not y.any():
        raise InvalidInputError("calibration needs anomalous and normal pixels to fit")
    z = logits_of(prob).reshape(-1, 1)
    # No regularisation worth the name: two parameters, up to a million pixels.
    model = LogisticRegression(C=1e6, max_iter=1000).fit(z, y)
    scale, bias = float(model.coef_[0, 0]), float(model.intercept_[0])
    if scale <= 0:  # the logits rank pixels the wrong way round: keep the network's own
        log.warning("Platt fit gave scale %.3g <= 0; keeping uncalibrated probabilities", scale)
        return Calibration()
    return Calibration(scale, bias)
