"""File names of an orthomosaic's outputs, shared by the streamed predict
(:mod:`thermal_anomaly_segmenter.geo.ortho`) and the API server's retention
(:mod:`.retention`), which removes only files named like TASeg outputs."""

from __future__ import annotations

#: Output kinds of an orthomosaic and their file-name suffixes.
ORTHO_NAMES: dict[str, str] = {
    "probability": "_prob.tif",
    "mask": "_mask.tif",
    "overlay": "_overlay.png",
    "gpkg": ".gpkg",
    "geojson": ".geojson",
    "json": ".json",
}
