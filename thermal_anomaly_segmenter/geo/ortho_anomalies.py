"""Anomalies of a streamed orthomosaic (:mod:`.ortho`): traced per block with
``rasterio.features.shapes`` in raster pixel coordinates, merged across block borders, then
described in map coordinates with pipe id, chainage, offset and heat loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.config import PredictOptions
from thermal_anomaly_segmenter.geo.network import Corridor, reproject
from thermal_anomaly_segmenter.inference.postprocess import Anomaly
from thermal_anomaly_segmenter.io.frames import GeoInfo


@dataclass
class Fragment:
    """An anomaly, or the part of one that a block holds; parts add up."""

    geom: Any  # shapely polygon in raster pixel coordinates (col, row)
    n: int
    sum_t: float
    max_t: float
    sum_p: float
    #: Moments of (T_u - corridor median) of its pixels, for the heat loss (they add up).
    moments: np.ndarray


def trace_fragments(labels: np.ndarray, anomalies: list[Anomaly], row: int, col: int
                    ) -> list[Fragment]:
    """The ``anomalies`` of ``labels`` (whose top-left pixel is the raster's ``(row, col)``)
    traced as polygons in raster pixel coordinates."""
    import shapely
    from affine import Affine
    from rasterio.features import shapes

    parts: dict[int, list] = {}
    offset = Affine.translation(col, row)  # pixel coordinates: exact, shared by neighbours
    for geom, value in shapes(labels, mask=labels > 0, connectivity=8, transform=offset):
        parts.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    out = []
    for a in anomalies:
        geom = shapely.union_all(parts[a.id]) if len(parts[a.id]) > 1 else parts[a.id][0]
        n = a.area_px
        out.append(Fragment(geom, n, a.mean_t_degc * n, a.max_t_degc, a.mean_probability * n,
                            np.asarray(a.dt_moments, np.float64)))
    return out


def merge_fragments(fragments: list[Fragment]) -> list[Fragment]:
    """Join fragments that touch across block borders (8-connectivity: corners count)."""
    import shapely

    if len(fragments) < 2:
        return fragments
    geoms = np.array([f.geom for f in fragments], dtype=object)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    parent = list(range(len(fragments)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[Fragment]] = {}
    for i, frag in enumerate(fragments):
        groups.setdefault(find(i), []).append(frag)
    merged = []
    for group in groups.values():
        if len(group) == 1:
            merged.append(group[0])
            continue
        merged.append(Fragment(
            shapely.union_all([f.geom for f in group]),
            sum(f.n for f in group),
            sum(f.sum_t for f in group),
            max(f.max_t for f in group),
            sum(f.sum_p for f in group),
            np.sum([f.moments for f in group], axis=0),
        ))
    return merged


def describe(merged: list[Fragment], transform, corridor: Corridor, median: float,
              geo: GeoInfo) -> tuple[list, list[dict[str, Any]]]:
    """The merged anomalies' polygons in the raster's CRS and their records (areas,
    temperatures, probability, centroid, pipe id, chainage and offset)."""
    import shapely

    matrix = [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f]
    polygons = [shapely.affinity.affine_transform(f.geom, matrix) for f in merged]
    metric = reproject(np.asarray(polygons, dtype=object), corridor.crs, corridor.metric)
    located = corridor.locate(metric)
    decimals = 3 if geo.metric else 9
    records = []
    for i, (frag, poly, poly_m, (pipe, chainage, offset)) in enumerate(
        zip(merged, polygons, metric, located, strict=True), start=1
    ):
        mean_t = frag.sum_t / frag.n
        centroid = poly.centroid
        records.append({
            "id": i,
            "area_px": int(frag.n),
            "area_m2": round(float(poly_m.area), 4),
            "max_t_degc": round(float(frag.max_t), 3),
            "mean_t_degc": round(float(mean_t), 3),
            "mean_dt_degc": round(float(mean_t - median), 3),
            "mean_probability": round(float(frag.sum_p / frag.n), 4),
            "centroid_crs": [round(centroid.x, decimals), round(centroid.y, decimals)],
            "pipe_id": pipe,
            "chainage_m": round(chainage, 3),
            "offset_m": round(offset, 3),
        })
    return polygons, records


def add_heat_loss(records: list[dict[str, Any]], merged: list[Fragment], median: float,
                  options: PredictOptions) -> None:
    """Each record's heat loss over the corridor median, with the pixel area of its metric
    footprint (the raster's CRS may be angular)."""
    from thermal_anomaly_segmenter.heat_loss import estimate

    if not records:
        return
    moments = np.stack([f.moments for f in merged])
    areas = np.array([r["area_m2"] / r["area_px"] for r in records])
    loss = estimate(moments, median, areas, options.conditions)
    for i, record in enumerate(records):
        record.update(loss.record(i))
