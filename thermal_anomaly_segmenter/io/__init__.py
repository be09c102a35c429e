"""The I/O wing: frames, their formats and validation, masks, datasets, atomic writes.

* :mod:`.frames`: the :class:`Frame` and :class:`GeoInfo` types, composition, limits, names;
* :mod:`.formats`: recognising a file by content, the decoders and encoders;
* :mod:`.validate`: what makes an array a frame; :mod:`.masks`: corridor masks and labels;
* :mod:`.read`: :func:`read_frame`, a file to a validated frame;
* :mod:`.georef`: a raster's georeference (rasterio); :mod:`.gsd`: a frame at another GSD;
* :mod:`.datasets`: the TASeg dataset layout; :mod:`.dataset_writer`: writing a set's
  ``dataset_info.json``; :mod:`.atomic`: :func:`atomic_write`.

Only numpy is imported here; decoders load their libraries when a file needs them.
"""

from thermal_anomaly_segmenter.io.atomic import atomic_write
from thermal_anomaly_segmenter.io.formats import write_frame, write_label
from thermal_anomaly_segmenter.io.frames import (
    Frame,
    GeoInfo,
    compose_frame,
    corridor_from_frame,
    frame_stem,
)
from thermal_anomaly_segmenter.io.masks import read_corridor, read_label
from thermal_anomaly_segmenter.io.read import read_frame
from thermal_anomaly_segmenter.io.validate import validate_frame

__all__ = [
    "Frame",
    "GeoInfo",
    "atomic_write",
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
