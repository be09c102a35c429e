"""Compatibility: reporting lives in :mod:`thermal_anomaly_segmenter.report`.
"""

from .report.document import (
    SCHEMA,
    anomalies_document,
)
from .report.geo import (
    anomalies_geojson,
)
from .report.outputs import (
    OUTPUT_NAMES,
    encode_png,
    mask_png,
    probability_png,
    write_outputs,
)
from .report.overlay import (
    ANOMALY_RGB,
    COLOUR_RANGE_PERCENTILES,
    CORRIDOR_RGB,
    render_overlay,
)

__all__ = [
    "ANOMALY_RGB",
    "COLOUR_RANGE_PERCENTILES",
    "CORRIDOR_RGB",
    "OUTPUT_NAMES",
    "SCHEMA",
    "anomalies_document",
    "anomalies_geojson",
    "encode_png",
    "mask_png",
    "probability_png",
    "render_overlay",
    "write_outputs",
]
