"""Anomaly polygons -> a GeoPackage layer in the raster's CRS and RFC 7946 GeoJSON."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.errors import OutputError

#: Name of the GeoPackage layer holding one polygon per anomaly.
LAYER = "anomalies"
#: Attributes of every anomaly feature, in layer order.
FIELDS: tuple[str, ...] = (
    "id",
    "area_px",
    "area_m2",
    "max_t_degc",
    "mean_t_degc",
    "mean_dt_degc",
    "mean_probability",
    "pipe_id",
    "chainage_m",
    "offset_m",
    "heat_loss_w",
    "heat_loss_w_low",
    "heat_loss_w_high",
    "heat_loss_mwh_per_year",
    "cost_per_year",
    "co2_t_per_year",
)
#: Layer metadata key holding the heat loss method and conditions (JSON).
HEAT_LOSS_METADATA = "taseg_heat_loss"


def _columns(records: Sequence[dict[str, Any]]) -> list[np.ndarray]:
    columns = []
    for name in FIELDS:
        values = [r.get(name) for r in records]
        if name in ("id", "area_px"):
            columns.append(np.asarray(values, dtype=np.int64))
        elif name == "pipe_id":
            if values and all(isinstance(v, (int, np.integer)) for v in values):
                columns.append(np.asarray(values, dtype=np.int64))
            else:
                columns.append(np.asarray([str(v) for v in values], dtype=object))
        else:
            columns.append(np.asarray(values, dtype=np.float64))
    return columns


def _write(path: Path, geoms: np.ndarray, records, crs: str, driver: str,
           metadata: dict[str, str] | None = None, **options) -> None:
    import pyogrio.raw
    import shapely

    multi = any(shapely.get_type_id(g) == 6 for g in geoms)
    if multi:
        geoms = np.array([g if g.geom_type == "MultiPolygon" else shapely.multipolygons([g])
                          for g in geoms], dtype=object)
    from thermal_anomaly_segmenter.io.atomic import atomic_path

    try:
        with atomic_path(path, swept=True) as tmp:
            pyogrio.raw.write(
                tmp,
                shapely.to_wkb(geoms) if len(geoms) else np.empty(0, object),
                field_data=_columns(records),
                fields=list(FIELDS),
                crs=crs,
                geometry_type="MultiPolygon" if multi else "Polygon",
                driver=driver,
                layer=LAYER,
                layer_metadata=metadata,
                **options,
            )
    except Exception as exc:
        raise OutputError(f"cannot write {path.name}: {' '.join(str(exc).split())}") from exc


def write_anomaly_layers(
    polygons: Sequence[Any],
    records: Sequence[dict[str, Any]],
    crs: str,
    gpkg: Path | None,
    geojson: Path | None,
    conditions: Any = None,
) -> None:
    """Write ``gpkg`` (layer ``anomalies`` in ``crs``) and ``geojson`` (EPSG:4326, RFC 7946);
    None skips a file.

    ``polygons`` are shapely geometries in ``crs``; ``records`` hold :data:`FIELDS` (the heat
    loss ones may be missing: null). With the heat loss ``conditions``
    (:class:`~thermal_anomaly_segmenter.heat_loss.Conditions`) the GeoPackage layer's metadata
    item :data:`HEAT_LOSS_METADATA` states the method and the conditions.
    """
    from thermal_anomaly_segmenter.geo.network import reproject

    geoms = np.asarray(list(polygons), dtype=object)
    metadata = None
    if conditions is not None:
        import json

        from thermal_anomaly_segmenter.heat_loss import METHOD

        metadata = {HEAT_LOSS_METADATA: json.dumps(
            {"method": METHOD, "conditions": conditions.to_dict()})}
    if gpkg is not None:
        _write(gpkg, geoms, records, crs, "GPKG", metadata)
    if geojson is not None:
        wgs84 = reproject(geoms, crs, "EPSG:4326") if len(geoms) else geoms
        options = {"RFC7946": "YES"}
        if metadata:  # GeoJSON has no layer metadata: a top-level "description" member
            options["DESCRIPTION"] = metadata[HEAT_LOSS_METADATA]
        _write(geojson, wgs84, records, "EPSG:4326", "GeoJSON", layer_options=options)
