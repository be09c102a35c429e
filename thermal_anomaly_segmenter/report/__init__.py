"""The reporting wing: what a prediction becomes on disk.

* :mod:`.outputs`: writing one prediction's files (mask and probability PNGs, overlay, JSON,
  GeoJSON) atomically;
* :mod:`.overlay`: the overlay image; :mod:`.document`: the anomalies JSON report;
* :mod:`.geo`: GeoJSON polygons; :mod:`.plots`: training curves and the precision-recall curve.

Importing the package is cheap; OpenCV and matplotlib load with the module that draws.
"""

from __future__ import annotations

from thermal_anomaly_segmenter._lazy import lazy_getattr

_LAZY = {
    "OUTPUT_NAMES": "outputs",
    "write_outputs": "outputs",
    "render_overlay": "overlay",
    "anomalies_document": "document",
    "anomalies_geojson": "geo",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
