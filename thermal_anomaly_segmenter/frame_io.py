"""Compatibility: frame I/O lives in :mod:`thermal_anomaly_segmenter.io`.
"""

from .io.formats import (
    write_frame,
    write_label,
)
from .io.frames import (
    CORRIDOR_ATOL,
    CORRIDOR_RTOL,
    FILL_OFFSET_DEGC,
    FRAME_SUFFIXES,
    KELVIN_HINT_DEGC,
    MAX_ASPECT,
    MIN_SIDE_PX,
    T_MAX_DEGC,
    T_MIN_DEGC,
    Frame,
    GeoInfo,
    compose_frame,
    corridor_from_frame,
    frame_stem,
)
from .io.masks import (
    read_corridor,
    read_label,
)
from .io.read import (
    read_frame,
)
from .io.validate import (
    MetaCheck,
    validate_frame,
)

__all__ = [
    "CORRIDOR_ATOL",
    "CORRIDOR_RTOL",
    "FILL_OFFSET_DEGC",
    "FRAME_SUFFIXES",
    "Frame",
    "GeoInfo",
    "KELVIN_HINT_DEGC",
    "MAX_ASPECT",
    "MIN_SIDE_PX",
    "MetaCheck",
    "T_MAX_DEGC",
    "T_MIN_DEGC",
    "compose_frame",
    "corridor_from_frame",
    "frame_stem",
    "read_corridor",
    "read_frame",
    "read_label",
    "validate_frame",
    "write_frame",
    "write_label",
]
