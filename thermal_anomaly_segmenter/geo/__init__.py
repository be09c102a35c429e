"""GIS wing: pipe networks, streamed orthomosaics, vector outputs (the georeference of a
raster is :mod:`thermal_anomaly_segmenter.io.georef`).

Built on rasterio (GDAL), pyogrio + shapely and pyproj. Nothing here is imported by the CLI
or the API at import time: these modules load GDAL and PROJ, so callers import them lazily.

- :mod:`.guard`: what GDAL, OGR, PROJ and GEOS may be given (drivers, headers, coordinates).
- :mod:`.network`: a pipe network layer -> the corridor of a raster grid; pipe chainage.
- :mod:`.ortho`: streamed inference of an orthomosaic of any size, window by window
  (:mod:`.ortho_tiling`, :mod:`.ortho_source`, :mod:`.ortho_anomalies`,
  :mod:`.ortho_rasters`, :mod:`.ortho_overlay`: its parts).
- :mod:`.leftovers`: what a killed predict left beside its outputs, swept by the next.
- :mod:`.vectors`: anomaly polygons -> GeoPackage (raster CRS) and GeoJSON (EPSG:4326).
- :mod:`.survey_layer`, :mod:`.compare`, :mod:`.compare_outputs`: two surveys of one network
  compared leak by leak (``taseg compare``).
"""

import logging

# GDAL and pyogrio log every written layer at INFO; TASeg's own messages say what matters.
for _name in ("pyogrio._io", "rasterio._env", "rasterio._err"):
    logging.getLogger(_name).setLevel(logging.WARNING)
