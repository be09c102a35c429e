"""GeoJSON of a prediction's anomalies, in pixel coordinates or the frame's CRS.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.inference.postprocess import Prediction
from thermal_anomaly_segmenter.outputs.document import _anomaly_dict, _crs_decimals
from thermal_anomaly_segmenter.outputs.overlay import _clip_bbox

# GeoJSON

_EPSG = re.compile(r"^\s*EPSG\s*:\s*(\d+)\s*$", re.IGNORECASE)


def _crs_urn(crs: str) -> str:
    match = _EPSG.match(crs)
    return f"urn:ogc:def:crs:EPSG::{match.group(1)}" if match else crs


def _signed_area(ring: np.ndarray) -> float:
    """Shoelace area; positive for counter-clockwise rings in x-right, y-up terms."""
    ring = ring - ring[0]  # relative to a vertex: CRS coordinates are large, areas small
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _component_polygons(component: np.ndarray) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """The exact pixel footprint of a bool crop as ``[(exterior, [holes]), ...]``.

    Coordinates are pixel corners of the crop (``x = col``, ``y = row``), rings open (the
    closing vertex is added later). ``rasterio.features.shapes`` (GDAL's polygonize) traces
    pixel edges, so areas equal pixel counts and single pixels are their square; with
    8-connectivity pixels that meet only at a corner are one polygon, touching itself there.
    """
    from affine import Affine
    from rasterio.features import shapes

    # Pixel coordinates are meant, but rasterio warns (NotGeoreferencedWarning) about an
    # identity transform: trace with a one-pixel shift and take it back, exactly.
    shift = Affine.translation(1, 1)
    polygons = []
    for geom, _ in shapes(component.view(np.uint8), mask=component, connectivity=8,
                          transform=shift):
        rings = [np.asarray(ring, np.float64).astype(np.int64)[:-1] - 1
                 for ring in geom["coordinates"]]
        polygons.append((rings[0], rings[1:]))
    return polygons


def _ring_coordinates(
    ring: np.ndarray, origin: tuple[int, int], pred: Prediction, exterior: bool, decimals: int
) -> list:
    """Map a crop ring to output coordinates, orient it per RFC 7946 and close it."""
    cols = ring[:, 0] + origin[0]
    rows = ring[:, 1] + origin[1]
    geo = pred.frame.geo
    if geo is None:
        xy = np.stack([cols, rows], axis=1)
    else:
        x, y = geo.pixel_to_crs(cols.astype(np.float64), rows.astype(np.float64))
        xy = np.stack([np.asarray(x, np.float64), np.asarray(y, np.float64)], axis=1)
    # Orientation is judged after the mapping: a north-up transform flips it.
    if (_signed_area(xy) > 0) != exterior:
        xy = xy[::-1]
    xy = np.concatenate([xy, xy[:1]])
    if geo is None:
        return xy.astype(np.int64).tolist()
    return np.round(xy, decimals).tolist()


def anomalies_geojson(pred: Prediction) -> dict:
    """Build a GeoJSON FeatureCollection with one polygon feature per anomaly.

    Each anomaly's pixels (``pred.labels == id`` inside its bbox) are vectorised with
    ``rasterio.features.shapes`` into their exact pixel footprint, holes included; a
    component in several parts becomes a MultiPolygon. Without a georeference the
    coordinates are pixel-corner coordinates, ``x = col``, ``y = row`` (a pixel's centre is at
    ``+0.5``), and ``coordinate_space`` is ``"pixel"``. With ``frame.geo`` they are mapped
    through :meth:`GeoInfo.pixel_to_crs` (``coordinate_space`` ``"crs"``) and the collection
    carries the legacy ``crs`` member (GeoJSON 2008; RFC 7946 dropped it and assumes WGS 84,
    but GIS tools still honour it for projected data such as EPSG:25832). Rings are closed,
    exteriors counter-clockwise and holes clockwise (RFC 7946 right-hand rule).

    Returns:
        A dict of plain Python values; a feature whose pixels are missing from ``labels`` has a
        null geometry.
    """
    labels = np.asarray(pred.labels)
    height, width = labels.shape
    geo = pred.frame.geo
    space = "pixel" if geo is None else "crs"
    decimals = _crs_decimals(pred)
    features = []
    for a in pred.anomalies:
        x0, y0, x1, y1 = _clip_bbox(a, height, width)
        polygons = []
        if x1 > x0 and y1 > y0:
            for exterior, holes in _component_polygons(labels[y0:y1, x0:x1] == a.id):
                rings = [_ring_coordinates(exterior, (x0, y0), pred, True, decimals)]
                rings += [_ring_coordinates(h, (x0, y0), pred, False, decimals) for h in holes]
                polygons.append(rings)
        if not polygons:
            geometry = None
        elif len(polygons) == 1:
            geometry = {"type": "Polygon", "coordinates": polygons[0]}
        else:
            geometry = {"type": "MultiPolygon", "coordinates": polygons}
        properties = _anomaly_dict(a, decimals)
        properties["coordinate_space"] = space
        features.append(
            {"type": "Feature", "id": int(a.id), "geometry": geometry, "properties": properties}
        )
    collection: dict[str, Any] = {"type": "FeatureCollection"}
    if geo is not None and geo.crs:
        collection["crs"] = {"type": "name", "properties": {"name": _crs_urn(geo.crs)}}
    if pred.conditions is not None:  # a foreign member: the conditions the estimates used
        from thermal_anomaly_segmenter.heat_loss import heat_loss_summary

        known = pred.gsd_m is not None or (geo is not None and geo.metric)
        collection["heat_loss"] = heat_loss_summary(
            [f["properties"] for f in features], pred.conditions, known)
    collection["features"] = features
    return collection
