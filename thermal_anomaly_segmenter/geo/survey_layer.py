"""One survey's anomalies, read from ``taseg predict --pipes`` or ``taseg report`` outputs.

A survey is a GeoPackage with layer ``anomalies`` (``ORTHO.gpkg`` of predict: polygons;
``anomalies.gpkg`` of report: points) or a folder holding such files. Several GeoPackages in
one folder (several orthomosaics) are one survey, in the first one's CRS.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.geo.vectors import LAYER

#: Most GeoPackages read from one survey folder (a survey is a few orthomosaics).
MAX_LAYERS = 1000


@dataclass
class SurveyLayer:
    """Anomalies of one survey, column by column, in ``crs``."""

    geoms: np.ndarray  # shapely geometries (polygons, or points from a report)
    ids: list[str]
    area_m2: np.ndarray
    mean_dt: np.ndarray
    peak_dt: np.ndarray
    pipe_id: list[str | None]
    chainage: np.ndarray
    crs: Any  # pyproj.CRS
    source: str
    #: Report folder the crops come from (``taseg report`` output), or None.
    folder: Path | None = None

    def __len__(self) -> int:
        return len(self.ids)


def _column(meta: dict, columns: list, name: str, n: int) -> np.ndarray:
    fields = list(meta["fields"])
    if name not in fields:
        return np.full(n, np.nan)
    values = columns[fields.index(name)]
    return np.asarray([np.nan if v is None else float(v) for v in values], np.float64)


def _texts(meta: dict, columns: list, name: str, n: int) -> list[str | None]:
    fields = list(meta["fields"])
    if name not in fields:
        return [None] * n
    out = []
    for v in columns[fields.index(name)]:
        text = None if v is None else str(v)
        out.append(None if text in (None, "", "None", "nan") else text)
    return out


def read_layer(path: Path, label: str) -> SurveyLayer:
    """The ``anomalies`` layer of one GeoPackage; InvalidInputError names what is wrong.

    The file passes the GIS gate first (:mod:`thermal_anomaly_segmenter.io.gis_guard`): a
    GeoPackage by content, bounded features and vertices, finite coordinates in the area of
    its CRS, so no upload can make GDAL follow a reference or GEOS/PROJ crash."""
    import pyogrio
    import shapely

    from thermal_anomaly_segmenter.io.gis_guard import (
        MAX_SURVEY_FEATURES,
        check_geopackage,
        check_survey_geometries,
        horizontal_crs,
        library_errors,
        vector_config,
    )

    source = f"{label} {path.name}"
    check_geopackage(path, source)
    vector_config()
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
        features = (int(pyogrio.read_info(path, layer=LAYER).get("features") or 0)
                    if LAYER in layers else 0)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        reason = " ".join(str(exc).split())[:200]
        raise InvalidInputError(f"{label} {path.name} is not a GeoPackage GDAL can read: "
                                f"{reason}") from None
    if LAYER not in layers:
        raise InvalidInputError(f"{label} {path.name} has no layer '{LAYER}' (layers: "
                                f"{', '.join(layers) or 'none'}); give a GeoPackage written "
                                "by taseg predict --pipes or taseg report")
    if features > MAX_SURVEY_FEATURES:
        raise InvalidInputError(f"{source}: {features:,} anomalies, above the limit of "
                                f"{MAX_SURVEY_FEATURES:,}")
    meta, _, wkb, columns = pyogrio.raw.read(path, layer=LAYER,
                                             max_features=MAX_SURVEY_FEATURES + 1)
    if not meta.get("crs"):
        raise InvalidInputError(f"{label} {path.name}: layer '{LAYER}' has no CRS (frames "
                                "without georeference cannot be compared)")
    crs = horizontal_crs(meta["crs"], source)
    with library_errors(source):
        geoms = shapely.from_wkb(wkb) if len(wkb) else np.empty(0, object)
        check_survey_geometries(np.asarray(geoms, dtype=object), crs, source)
    n = len(wkb)
    raw_ids = _texts(meta, columns, "id", n)
    frames = _texts(meta, columns, "frame", n)
    stem = path.stem
    ids = [f"{frames[i] or stem}:{raw_ids[i] if raw_ids[i] is not None else i + 1}"
           for i in range(n)]
    mean_dt = _column(meta, columns, "mean_dt_degc", n)
    # peak dT = hottest pixel minus the corridor median (= mean T - mean dT)
    peak_dt = (_column(meta, columns, "max_t_degc", n) - _column(meta, columns, "mean_t_degc", n)
               + mean_dt)
    return SurveyLayer(
        geoms=np.asarray(geoms, dtype=object), ids=ids,
        area_m2=_column(meta, columns, "area_m2", n), mean_dt=mean_dt, peak_dt=peak_dt,
        pipe_id=_texts(meta, columns, "pipe_id", n),
        chainage=_column(meta, columns, "chainage_m", n),
        crs=crs, source=path.name,
    )


def _has_layer(path: Path) -> bool:
    import pyogrio

    from thermal_anomaly_segmenter.io.gis_guard import check_geopackage, vector_config

    try:
        check_geopackage(path, path.name)  # OGR opens GeoPackages only, never a VRT
        vector_config()
        return LAYER in {str(row[0]) for row in pyogrio.list_layers(path)}
    except Exception:  # noqa: BLE001 - not a GeoPackage GDAL reads: not one of the survey's
        return False


def _folder_files(folder: Path, label: str) -> tuple[list[Path], Path | None]:
    report = folder / "anomalies.gpkg"
    if report.is_file():
        return [report], folder
    files = [p for p in sorted(folder.glob("*.gpkg"))[:MAX_LAYERS]
             if not p.name.startswith(".") and _has_layer(p)]  # not changes.gpkg & co
    if files:
        return files, folder
    for doc_path in sorted(folder.glob("*.json"))[:MAX_LAYERS]:
        try:
            doc = json.loads(doc_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("frame"), dict) \
                and not doc["frame"].get("crs"):
            raise InvalidInputError(f"{label} {folder}: {doc_path.name} is a frame without "
                                    "georeference; only georeferenced surveys can be compared")
    raise InvalidInputError(f"{label} {folder} holds no GeoPackage with layer '{LAYER}' "
                            "(an output folder of taseg predict --pipes or taseg report)")


def read_survey(source: str | Path, label: str = "survey") -> SurveyLayer:
    """A survey's anomalies from a GeoPackage or an output folder (see the module doc)."""
    from thermal_anomaly_segmenter.geo.network import reproject

    path = Path(source).expanduser()
    if path.is_dir():
        files, folder = _folder_files(path, label)
    elif path.is_file():
        files, folder = [path], None
    else:
        raise InvalidInputError(f"{label} {path} does not exist")
    layers = [read_layer(p, label) for p in files]
    first = layers[0]
    if len(layers) == 1:
        first.folder = folder
        return first
    parts = [reproject(lay.geoms, lay.crs, first.crs) if len(lay) else lay.geoms
             for lay in layers]
    return SurveyLayer(
        geoms=np.concatenate(parts) if parts else np.empty(0, object),
        ids=[i for lay in layers for i in lay.ids],
        area_m2=np.concatenate([lay.area_m2 for lay in layers]),
        mean_dt=np.concatenate([lay.mean_dt for lay in layers]),
        peak_dt=np.concatenate([lay.peak_dt for lay in layers]),
        pipe_id=[p for lay in layers for p in lay.pipe_id],
        chainage=np.concatenate([lay.chainage for lay in layers]),
        crs=first.crs, source=str(path.name), folder=folder,
    )


def finite(value: float) -> float | None:
    """``value`` as a plain float, None for NaN."""
    return float(value) if value is not None and math.isfinite(value) else None
