"""Files of a survey comparison: ``changes.gpkg`` (with a QGIS default style), ``changes.csv``
and ``changes.geojson`` (EPSG:4326).

The style lives in the GeoPackage's ``layer_styles`` table, the convention QGIS reads when it
opens a layer (its default style: ``useAsDefault`` true): a categorized renderer on
``status``. It is written through GDAL as a table without geometry, so GDAL registers it in
``gpkg_contents`` as QGIS does.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from html import escape
from pathlib import Path

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError, OutputError
from thermal_anomaly_segmenter.geo.compare import Comparison
from thermal_anomaly_segmenter.io.atomic import atomic_path, atomic_write
from thermal_anomaly_segmenter.io.csv_safe import neutralise

LAYER = "changes"
NAMES: dict[str, str] = {"gpkg": "changes.gpkg", "csv": "changes.csv",
                         "geojson": "changes.geojson"}
#: Attributes of the ``changes`` layer, in order.
FIELDS: tuple[str, ...] = (
    "status", "old_id", "new_id", "area_m2_old", "area_m2_new", "mean_dt_old", "mean_dt_new",
    "peak_dt_old", "peak_dt_new", "pipe_id", "chainage", "gap_m",
)
_TEXT = {"status", "old_id", "new_id", "pipe_id"}
CSV_COLUMNS: tuple[str, ...] = ("status", "x", "y", *FIELDS[1:])
#: Fill colours (R,G,B) of the QGIS style: warm for what needs a visit.
COLOURS: dict[str, tuple[int, int, int]] = {
    "grown": (215, 25, 28), "new": (253, 174, 97), "stable": (255, 255, 191),
    "shrunk": (171, 217, 233), "gone": (44, 123, 182),
}


def _columns(records: list[dict]) -> list[np.ndarray]:
    out = []
    for name in FIELDS:
        values = [r[name] for r in records]
        if name in _TEXT:
            out.append(np.asarray(values, dtype=object))
        else:
            out.append(np.asarray([np.nan if v is None else v for v in values], np.float64))
    return out


def _geometry_type(geoms: np.ndarray) -> tuple[np.ndarray, str]:
    import shapely

    kinds = {g.geom_type for g in geoms}
    if kinds <= {"Point"}:
        return geoms, "Point"
    if kinds <= {"Polygon"}:
        return geoms, "Polygon"
    if kinds <= {"Polygon", "MultiPolygon"}:
        return np.array([g if g.geom_type == "MultiPolygon" else shapely.multipolygons([g])
                         for g in geoms], dtype=object), "MultiPolygon"
    return geoms, "Unknown"


def style_qml(geometry_type: str) -> str:
    """QGIS QML of a categorized renderer on ``status`` (fill or marker symbols)."""
    marker = geometry_type == "Point"
    symbols, categories = [], []
    for k, (status, rgb) in enumerate(COLOURS.items()):
        colour = ",".join(map(str, rgb)) + ",255"
        categories.append(f'<category symbol="{k}" value="{status}" label="{status}" '
                          'render="true"/>')
        layer = ("SimpleMarker" if marker else "SimpleFill")
        options = [("color", colour), ("outline_color", "35,35,35,255"),
                   ("outline_width", "0.4"), ("style", "solid")]
        if marker:
            options += [("name", "circle"), ("size", "3")]
        opts = "".join(f'<Option name="{n}" type="QString" value="{v}"/>' for n, v in options)
        symbols.append(
            f'<symbol type="{"marker" if marker else "fill"}" name="{k}" alpha="1" '
            f'clip_to_extent="1" force_rhr="0"><layer class="{layer}" enabled="1" pass="0" '
            f'locked="0"><Option type="Map">{opts}</Option></layer></symbol>')
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.28.0" styleCategories="Symbology">'
            '<renderer-v2 type="categorizedSymbol" attr="status" symbollevels="0" '
            'enableorderby="0" forceraster="0"><categories>' + "".join(categories)
            + "</categories><symbols>" + "".join(symbols) + "</symbols></renderer-v2></qgis>\n")


def style_sld(geometry_type: str) -> str:
    """The same colours as an OGC SLD 1.1 (for tools other than QGIS)."""
    rules = []
    for status, rgb in COLOURS.items():
        hexa = "#" + "".join(f"{v:02x}" for v in rgb)
        fill = f'<se:Fill><se:SvgParameter name="fill">{hexa}</se:SvgParameter></se:Fill>'
        symbolizer = (f"<se:PointSymbolizer><se:Graphic><se:Mark><se:WellKnownName>circle"
                      f"</se:WellKnownName>{fill}</se:Mark><se:Size>11</se:Size></se:Graphic>"
                      "</se:PointSymbolizer>" if geometry_type == "Point" else
                      f"<se:PolygonSymbolizer>{fill}</se:PolygonSymbolizer>")
        rules.append(f"<se:Rule><se:Name>{escape(status)}</se:Name><ogc:Filter>"
                     "<ogc:PropertyIsEqualTo><ogc:PropertyName>status</ogc:PropertyName>"
                     f"<ogc:Literal>{escape(status)}</ogc:Literal></ogc:PropertyIsEqualTo>"
                     f"</ogc:Filter>{symbolizer}</se:Rule>")
    return ('<?xml version="1.0" encoding="UTF-8"?><StyledLayerDescriptor version="1.1.0" '
            'xmlns="http://www.opengis.net/sld" xmlns:se="http://www.opengis.net/se" '
            'xmlns:ogc="http://www.opengis.net/ogc"><NamedLayer><se:Name>changes</se:Name>'
            "<UserStyle><se:FeatureTypeStyle>" + "".join(rules)
            + "</se:FeatureTypeStyle></UserStyle></NamedLayer></StyledLayerDescriptor>\n")


def _write_style(path: Path, geometry_type: str) -> None:
    import pyogrio.raw

    now = np.array([np.datetime64(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
                                  "ms")])
    text = lambda v: np.array([v], dtype=object)  # noqa: E731
    columns = {
        "f_table_catalog": text(""), "f_table_schema": text(""), "f_table_name": text(LAYER),
        "f_geometry_column": text("geom"), "styleName": text("taseg status"),
        "styleQML": text(style_qml(geometry_type)), "styleSLD": text(style_sld(geometry_type)),
        "useAsDefault": np.array([True]),
        "description": text("Anomalies coloured by status since the last survey (taseg)"),
        "owner": text(""), "ui": text(""), "update_time": now,
    }
    pyogrio.raw.write(path, None, field_data=list(columns.values()), fields=list(columns),
                      geometry_type=None, driver="GPKG", layer="layer_styles", append=True)


def _cell(value) -> object:
    return "" if value is None else neutralise(value)  # no cell runs as a formula


def changes_csv(comparison: Comparison, records: list[dict] | None = None) -> str:
    """The CSV text: one row per change, x/y the footprint's centroid in NEW's CRS
    (``records``: :meth:`.Comparison.record` of each change, when already made)."""
    import shapely

    records = records or [comparison.record(c) for c in comparison.changes]
    geoms = np.array([comparison.geometry(c) for c in comparison.changes], dtype=object)
    centres = shapely.get_coordinates(shapely.centroid(geoms)) if len(geoms) else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row, (x, y) in zip(records, centres, strict=True):
        row = {**row, "x": round(float(x), 6), "y": round(float(y), 6)}
        writer.writerow([_cell(row[k]) for k in CSV_COLUMNS])
    return buffer.getvalue()


def _claim(out: Path, overwrite: bool, prefix: str = "") -> dict[str, Path]:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    paths = {k: out / f"{prefix}{name}" for k, name in NAMES.items()}
    if not overwrite:
        present = [p.name for p in paths.values() if p.exists()]
        if present:
            raise InvalidInputError(f"{out} already holds {', '.join(present)}; choose another "
                                    "--out or pass --overwrite (nothing was overwritten)")
    return paths


def write_changes(comparison: Comparison, out_dir: str | os.PathLike[str],
                  overwrite: bool = False, prefix: str = "") -> dict[str, Path]:
    """Write the three files into ``out_dir`` (names after ``prefix``); existing ones only
    with ``overwrite``."""
    import pyogrio.raw
    import shapely

    from thermal_anomaly_segmenter.geo.network import reproject

    paths = _claim(Path(out_dir).expanduser(), overwrite, prefix)
    records = [comparison.record(c) for c in comparison.changes]
    geoms = np.array([comparison.geometry(c) for c in comparison.changes], dtype=object)
    geoms, kind = _geometry_type(geoms) if len(geoms) else (geoms, "Polygon")
    crs = comparison.new.crs.to_wkt()
    wkb = shapely.to_wkb(geoms) if len(geoms) else np.empty(0, object)
    try:
        with atomic_path(paths["gpkg"]) as tmp:
            tmp.unlink()  # GDAL creates the GeoPackage itself
            pyogrio.raw.write(tmp, wkb, field_data=_columns(records), fields=list(FIELDS),
                              crs=crs, geometry_type=kind, driver="GPKG", layer=LAYER)
            _write_style(tmp, kind)
    except OSError as exc:
        raise OutputError(f"cannot write to {paths['gpkg'].parent}: {exc}") from None
    except Exception as exc:  # GDAL's own errors: disk full, read-only folder
        raise OutputError(f"cannot write the comparison: {' '.join(str(exc).split())}") \
            from None
    wgs84 = reproject(geoms, comparison.new.crs, "EPSG:4326") if len(geoms) else geoms
    with atomic_path(paths["geojson"]) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(geojson_chunks(wgs84, records))
    atomic_write(paths["csv"], changes_csv(comparison, records))
    return paths


def geojson_chunks(wgs84: np.ndarray, records: list[dict], chunk: int = 10_000):
    """An RFC 7946 FeatureCollection (WGS 84 longitude/latitude, 7 decimals, exterior rings
    counter-clockwise) as text pieces of ``chunk`` features. Built with
    ``shapely.to_geojson``: GDAL's GeoJSON writer took about 10 s for 100,000 features,
    this about 3."""
    import json

    import shapely

    yield '{"type":"FeatureCollection","name":"' + LAYER + '","features":[\n'
    for start in range(0, len(records), chunk):
        part = shapely.orient_polygons(wgs84[start:start + chunk])
        texts = shapely.to_geojson(shapely.transform(part, lambda xy: np.round(xy, 7)))
        features = ",\n".join(
            '{"type":"Feature","properties":'
            + json.dumps({k: r[k] for k in FIELDS}, allow_nan=False) + ',"geometry":' + g
            + "}" for r, g in zip(records[start:start + chunk], texts, strict=True))
        yield ("" if start == 0 else ",\n") + features
    yield "\n]}\n"


def compare_prediction(result, previous: str | os.PathLike[str], label: str = "previous_file",
                       options=None) -> Comparison:
    """Compare one ``predict --pipes`` result (a :class:`.predict.FrameResult` with its
    GeoPackage written) with an earlier survey: write ``STEM_changes.*`` beside its files,
    add them to ``result.outputs`` and give each anomaly of ``result.report`` its
    ``status``; the report's ``since_previous`` holds the totals and what is gone."""
    import json

    from thermal_anomaly_segmenter.geo.compare import compare_surveys
    from thermal_anomaly_segmenter.geo.survey_layer import read_survey

    gpkg = result.outputs.get("gpkg")
    if gpkg is None or not Path(gpkg).is_file():
        raise InvalidInputError(f"{label} needs a georeferenced input predicted with its pipe "
                                "network (pipes_file): only map coordinates can be compared")
    new = read_survey(gpkg, "NEW")
    comparison = compare_surveys(read_survey(previous, label), new, options)
    paths = write_changes(comparison, Path(gpkg).parent, prefix=f"{Path(gpkg).stem}_")
    result.outputs.update({f"changes_{k}": p for k, p in paths.items()})
    if result.report is None and "json" in result.outputs:
        result.report = json.loads(Path(result.outputs["json"]).read_text(encoding="utf-8"))
    if result.report is not None:
        status = {i.rsplit(":", 1)[1]: s for i, s in zip(new.ids, comparison.status_of_new(),
                                                          strict=True)}
        for rec in result.report.get("anomalies", []):
            rec["status"] = status.get(str(rec.get("id")), "new")
        result.report["since_previous"] = {
            "tolerance_m": comparison.options.tolerance_m, "counts": comparison.counts,
            "gone": [comparison.record(c) for c in comparison.changes if c.status == "gone"],
        }
    return comparison
