"""Georeference of rasters through rasterio (GDAL) and the metric CRS used for distances."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from thermal_anomaly_segmenter.io.frames import GeoInfo
from thermal_anomaly_segmenter.io.gis_guard import GEO_MAX

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pyproj import CRS
    from rasterio.crs import CRS as RioCRS


def crs_name(crs: RioCRS | CRS | None) -> str | None:
    """``EPSG:n`` when the CRS has an EPSG code, else its WKT; None without a CRS."""
    if crs is None:
        return None
    from pyproj import CRS as ProjCRS

    proj = ProjCRS.from_user_input(crs)
    code = proj.to_epsg()
    return f"EPSG:{code}" if code else proj.to_wkt()


def is_metric(crs: RioCRS | CRS | str | None) -> bool:
    """True for a projected CRS whose axes are in metres."""
    if crs is None:
        return False
    from pyproj import CRS as ProjCRS

    proj = ProjCRS.from_user_input(crs)
    if not proj.is_projected:
        return False
    return all(
        (axis.unit_name or "").lower() in ("metre", "meter") for axis in proj.axis_info[:2]
    )


def georef(dataset) -> GeoInfo | None:
    """The :class:`GeoInfo` of an open rasterio dataset; None when it has no georeference.

    GDAL applies the GeoTIFF rules (PixelIsPoint, model transformation matrix, any CRS it
    knows); a TIFF without georeference gets GDAL's identity transform and no CRS.
    """
    transform = dataset.transform
    if dataset.crs is None and transform.is_identity:
        return None
    det = transform.a * transform.e - transform.b * transform.d
    # Beyond GEO_MAX no CRS has coordinates; such a transform would give infinite areas.
    if (det == 0 or not all(map(_finite, transform[:6]))
            or max(abs(v) for v in transform[:6]) > GEO_MAX):
        log.warning("georeference %s is degenerate or out of range; ignoring it",
                    tuple(transform[:6]))
        return None
    return GeoInfo(tuple(float(v) for v in transform[:6]), crs_name(dataset.crs),
                   metric=is_metric(dataset.crs) if dataset.crs else False)


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def read_georef(path: str | Path) -> GeoInfo | None:
    """Open ``path`` with rasterio and return its georeference (None when it has none)."""
    from rasterio.errors import NotGeoreferencedWarning

    from thermal_anomaly_segmenter.errors import InvalidInputError
    from thermal_anomaly_segmenter.io.gis_guard import (
        check_coordinates,
        horizontal_crs,
        open_raster,
        raster_env,
    )

    source = Path(path).name
    with warnings.catch_warnings(), raster_env():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with open_raster(Path(path), source) as dataset:
            geo = georef(dataset)
            if geo is None or dataset.crs is None:
                return geo
            # A frame keeps its pixels whatever its georeference; one that PROJ cannot place
            # (vertical-only CRS, outside the CRS's area) is dropped like a degenerate one.
            t, h, w = dataset.transform, dataset.height, dataset.width
            corners = [t @ (x, y) for x, y in ((0, 0), (w, 0), (0, h), (w, h))]
            try:
                check_coordinates(np.asarray(corners, float),
                                  horizontal_crs(dataset.crs, source), source, "the raster")
            except InvalidInputError as exc:
                log.warning("%s; ignoring its georeference", exc)
                return None
            return geo


def metric_crs(crs: RioCRS | CRS | str, lon: float, lat: float) -> CRS:
    """A CRS in metres for distances and areas: ``crs`` itself when it is metric, else the
    UTM zone (WGS 84) around ``lon``/``lat``."""
    from pyproj import CRS as ProjCRS
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    proj = ProjCRS.from_user_input(crs)
    if is_metric(proj):
        return proj
    zones = query_utm_crs_info(
        datum_name="WGS 84",
        area_of_interest=AreaOfInterest(lon, lat, lon, lat),
    )
    if not zones:  # pragma: no cover - every point on Earth has a UTM zone
        return ProjCRS.from_epsg(3857)
    return ProjCRS.from_epsg(int(zones[0].code))


def pixel_bounds(
    transform, row: int, col: int, h: int, w: int
) -> tuple[float, float, float, float]:
    """``(minx, miny, maxx, maxy)`` in CRS units of a pixel window, for any affine transform
    (rotated ones too: all four corners are mapped)."""
    xs, ys = [], []
    for dr, dc in ((0, 0), (0, w), (h, 0), (h, w)):
        x, y = transform @ (col + dc, row + dr)
        xs.append(x)
        ys.append(y)
    return min(xs), min(ys), max(xs), max(ys)
