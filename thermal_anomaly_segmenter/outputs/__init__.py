"""The outputs wing: what one prediction becomes on disk.

* :mod:`.write`: one prediction's files (mask and probability PNGs, overlay, JSON, GeoJSON),
  written atomically;
* :mod:`.overlay`: the overlay picture; :mod:`.document`: the anomalies JSON;
  :mod:`.geojson`: a frame's GeoJSON polygons;
* :mod:`.preview`: dataset previews; :mod:`.plots`: training curves, precision-recall and
  reliability plots;
* :mod:`.names`: the file names of an orthomosaic's outputs;
* :mod:`.retention`: the API server's bound on old outputs; :mod:`.deferred`: the files a
  server's JSON answer does not need, written right after it.

Importing the package is cheap; OpenCV and matplotlib load with the module that draws.
"""

from __future__ import annotations

from thermal_anomaly_segmenter._lazy import lazy_getattr

_LAZY = {
    "OUTPUT_NAMES": "write",
    "write_outputs": "write",
    "render_overlay": "overlay",
    "anomalies_document": "document",
    "anomalies_geojson": "geojson",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
