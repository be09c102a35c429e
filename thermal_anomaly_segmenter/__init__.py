"""Thermal Anomaly Segmenter (TASeg): leak detection in district heating systems.

Finds warm anomalies along district-heating pipe routes in drone thermal frames.
Importing the package is cheap: torch and the model libraries load when a model is needed.
"""

from __future__ import annotations

import os
from importlib import metadata

# Both are read when the libraries are first imported, so set them before anything else.
# A user who wants hub downloads sets HF_HUB_OFFLINE=0 explicitly.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

try:
    __version__ = metadata.version("thermal-anomaly-segmenter")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
