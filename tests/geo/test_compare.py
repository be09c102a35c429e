"""Survey comparison on constructed GeoPackages: matching, statuses, outputs, bad input.

The layers are written by the same writer ``taseg predict --pipes`` uses
(:func:`.geo.vectors.write_anomaly_layers`); the end-to-end test on generated flights is in
``test_compare_flights.py``.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

pyogrio = pytest.importorskip("pyogrio")
import shapely  # noqa: E402
from pyproj import Transformer  # noqa: E402

from thermal_anomaly_segmenter.cli.parser import main  # noqa: E402
from thermal_anomaly_segmenter.errors import InvalidInputError  # noqa: E402
from thermal_anomaly_segmenter.geo.compare import (  # noqa: E402
    CompareOptions,  # noqa: E402
    compare_surveys,
    pair_status,
)
from thermal_anomaly_segmenter.geo.survey_layer import read_survey  # noqa: E402
from thermal_anomaly_segmenter.geo.vectors import write_anomaly_layers  # noqa: E402

ORIGIN = (456000.0, 5430000.0)


def leak(x: float, y: float, r: float, dt: float, pipe="P-1", chainage=None, id_=1):
    poly = shapely.Point(ORIGIN[0] + x, ORIGIN[1] + y).buffer(r, quad_segs=8)
    return poly, {"id": id_, "area_px": int(poly.area / 0.01), "area_m2": poly.area,
                  "max_t_degc": -5.0 + 2 * dt, "mean_t_degc": -5.0 + dt, "mean_dt_degc": dt,
                  "mean_probability": 0.9, "pipe_id": pipe,
                  "chainage_m": x if chainage is None else chainage, "offset_m": 0.0}


def survey(path: Path, leaks, crs="EPSG:25832", shift=(0.0, 0.0)) -> Path:
    polys = [shapely.affinity.translate(p, *shift) for p, _ in leaks]
    records = [dict(r, id=i + 1) for i, (_, r) in enumerate(leaks)]
    if crs != "EPSG:25832":
        from thermal_anomaly_segmenter.geo.network import reproject

        polys = list(reproject(np.array(polys, dtype=object), "EPSG:25832", crs))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_anomaly_layers(polys, records, crs, path, None)
    return path


OLD = [leak(10, 0, 1.0, 3.0), leak(40, 0, 1.0, 3.0), leak(70, 0, 1.0, 3.0),
       leak(100, 0, 0.5, 2.0)]
#   10: grows (area x4), 40: stays (colder night: same dT), 70: repaired, 100: lamp-like
NEW = [leak(10, 0, 2.0, 3.5), leak(40, 0, 1.05, 3.2), leak(100, 0, 0.5, 2.1),
       leak(130, 0, 1.0, 2.5)]


def statuses(comparison) -> dict:
    return {(comparison.record(c)["old_id"], comparison.record(c)["new_id"]): c.status
            for c in comparison.changes}


@pytest.mark.parametrize("shift", [(0.0, 0.0), (1.5, 0.0), (-1.0, 1.1)])
def test_statuses_with_a_shifted_georeference(tmp_path, shift) -> None:
    old = read_survey(survey(tmp_path / "old.gpkg", OLD), "OLD")
    new = read_survey(survey(tmp_path / "new.gpkg", NEW, shift=shift), "NEW")
    got = statuses(compare_surveys(old, new))
    assert got == {("old:1", "new:1"): "grown", ("old:2", "new:2"): "stable",
                   ("old:4", "new:3"): "stable", (None, "new:4"): "new",
                   ("old:3", None): "gone"}


def test_two_crss_and_a_geographic_new(tmp_path) -> None:
    old = read_survey(survey(tmp_path / "old.gpkg", OLD, crs="EPSG:3857"), "OLD")
    new = read_survey(survey(tmp_path / "new.gpkg", NEW, crs="EPSG:4326", shift=(1.2, -0.8)),
                      "NEW")
    comparison = compare_surveys(old, new)
    assert comparison.metric.to_epsg() == 32632  # NEW in degrees: matched in its UTM zone
    assert statuses(comparison)[("old:1", "new:1")] == "grown"
    assert comparison.counts == {"grown": 1, "stable": 2, "shrunk": 0, "new": 1, "gone": 1}
    gone = next(c for c in comparison.changes if c.status == "gone")
    lon, lat = comparison.geometry(gone).centroid.coords[0]  # OLD reprojected into NEW's CRS
    x, y = Transformer.from_crs(4326, 25832, always_xy=True).transform(lon, lat)
    assert abs(x - (ORIGIN[0] + 70)) < 0.05 and abs(y - ORIGIN[1]) < 0.05


def test_matching_is_one_to_one_and_deterministic(tmp_path) -> None:
    # two old leaks 1.5 m apart, one new between them: one pair, the closer one
    old = [leak(10, 0, 0.5, 3.0), leak(11.5, 0, 0.5, 3.0)]
    new = [leak(11.3, 0, 0.5, 3.0)]
    a = read_survey(survey(tmp_path / "a.gpkg", old), "OLD")
    b = read_survey(survey(tmp_path / "b.gpkg", new), "NEW")
    runs = [statuses(compare_surveys(a, b)) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2] == {("a:2", "b:1"): "stable", ("a:1", None): "gone"}
    # another pipe is never the same anomaly, however close
    c = read_survey(survey(tmp_path / "c.gpkg", [leak(10, 0, 0.5, 3.0, pipe="P-2")] + old[1:]),
                    "NEW")
    assert statuses(compare_surveys(a, c))[(None, "c:1")] == "new"


def merged(parts, dt: float):
    """One component of several leak-like parts (a manhole and a leak beside it, bridged)."""
    polys = [leak(x, y, r, dt)[0] for x, y, r in parts]
    bridge = shapely.box(ORIGIN[0] + parts[0][0], ORIGIN[1] - 0.3, ORIGIN[0] + parts[-1][0],
                         ORIGIN[1] + 0.3)
    poly = shapely.union_all(polys + [bridge])
    return poly, dict(leak(parts[0][0], 0, 1.0, dt)[1], area_m2=poly.area,
                      area_px=int(poly.area / 0.01))


@pytest.mark.parametrize("beside", ["apart", "merged"])
def test_a_new_leak_beside_a_vanished_manhole_is_new(tmp_path, beside) -> None:
    # city_wet pairs 8 and 20 of benchmarks/compare_pairs.py: a manhole (or a car's engine)
    # flagged on night 1 is not flagged on night 2, and a new leak within the tolerance of
    # it (or merged with it into one component) read as that manhole grown
    shift = (1.2, 0.5)  # the whole second flight, as its georeference places it
    old = [leak(10, 0, 1.0, 3.0), leak(40, 0, 1.0, 3.0), leak(70, 0, 0.5, 2.0)]
    # the new leak 3 m from the manhole, against the shift: its footprint 0.3 m from the
    # manhole's as NEW places it, its centroid 3 m from where the manhole would be
    new_leak = leak(67, 0, 1.1, 3.0) if beside == "apart" else \
        merged([(70, 0, 0.5), (67.2, 0, 1.2)], 2.6)
    new = [leak(10, 0, 1.0, 3.1), leak(40, 0, 1.6, 3.5), new_leak]
    a = read_survey(survey(tmp_path / "old.gpkg", old), "OLD")
    b = read_survey(survey(tmp_path / "new.gpkg", new, shift=shift), "NEW")
    want = {("old:1", "new:1"): "stable", ("old:2", "new:2"): "grown",
            (None, "new:3"): "new", ("old:3", None): "gone"}
    assert statuses(compare_surveys(a, b)) == want
    # the footprints alone (no co-registration) make it one anomaly that grew
    gap_only = compare_surveys(a, b, CompareOptions(coregister_min_ties=0))
    assert statuses(gap_only)[("old:3", "new:3")] == "grown"
    # the same leak grown unevenly (its centre moved 0.8 m beyond the shift) stays one
    uneven = new[:2] + [leak(70.8, 0, 1.2, 3.0)]
    c = read_survey(survey(tmp_path / "uneven.gpkg", uneven, shift=shift), "NEW")
    assert statuses(compare_surveys(a, c))[("old:3", "uneven:3")] == "grown"


def test_cli_residual_and_checked_options(tmp_path, capsys) -> None:
    old = [leak(10, 0, 1.0, 3.0), leak(40, 0, 1.0, 3.0), leak(70, 0, 0.5, 2.0)]
    new = [leak(10, 0, 1.0, 3.1), leak(40, 0, 1.6, 3.5), leak(67, 0, 1.1, 3.0)]
    a = survey(tmp_path / "old.gpkg", old)
    b = survey(tmp_path / "new.gpkg", new, shift=(1.2, 0.5))
    for extra, summary in (([], "1 grown, 1 stable, 0 shrunk, 1 new, 1 gone"),
                           (["--residual", "5"], "2 grown, 1 stable, 0 shrunk, 0 new, 0 gone")):
        code = main(["compare", str(a), str(b), "--out", str(tmp_path / f"out{len(extra)}"),
                     *extra])
        out = capsys.readouterr().out
        assert code == 0 and summary in out, out
    with pytest.raises(InvalidInputError, match="least co-registration ties"):
        CompareOptions(coregister_min_ties=10)


@pytest.mark.parametrize(
    ("old", "new", "status"),
    [((1.0, 3.0), (1.6, 3.0), "grown"), ((1.0, 3.0), (1.0, 4.2), "grown"),
     ((1.0, 3.0), (0.6, 3.0), "shrunk"), ((1.0, 3.0), (1.0, 1.9), "shrunk"),
     ((1.0, 3.0), (1.3, 3.5), "stable"), ((1.0, 3.0), (2.0, 1.0), "shrunk"),
     ((1.0, 3.0), (3.0, 1.5), "grown"), ((1.0, np.nan), (1.2, 2.0), "stable")],
)
def test_pair_status_thresholds(old, new, status) -> None:
    assert pair_status(old[0], new[0], old[1], new[1], CompareOptions()) == status


def test_cli_writes_styled_gpkg_csv_and_geojson(tmp_path, capsys) -> None:
    survey(tmp_path / "old" / "ortho.gpkg", OLD)
    new_leaks = NEW + [leak(160, 0, 1.0, 2.5, pipe="=HYPERLINK(\"x\")")]
    survey(tmp_path / "new" / "ortho.gpkg", new_leaks, shift=(0.7, 0.7))
    out = tmp_path / "cmp"
    code = main(["compare", str(tmp_path / "old"), str(tmp_path / "new"), "--out", str(out)])
    text = capsys.readouterr()
    assert code == 0, text.err
    assert "1 grown, 2 stable, 0 shrunk, 2 new, 1 gone" in text.out

    info = pyogrio.read_info(out / "changes.gpkg", layer="changes")
    assert info["crs"] == "EPSG:25832" and info["features"] == 6
    assert {"status", "old_id", "new_id", "area_m2_old", "area_m2_new", "mean_dt_old",
            "mean_dt_new", "peak_dt_old", "peak_dt_new", "pipe_id", "chainage"} <= set(
        info["fields"])
    meta, _, wkb, cols = pyogrio.raw.read(out / "changes.gpkg", layer="changes")
    rows = [dict(zip(meta["fields"], v, strict=True)) for v in zip(*cols, strict=True)]
    grown = next(r for r in rows if r["status"] == "grown")
    assert grown["area_m2_new"] == pytest.approx(4 * grown["area_m2_old"], rel=0.01)
    assert grown["peak_dt_old"] == pytest.approx(6.0) and grown["mean_dt_new"] == 3.5
    gone = rows.index(next(r for r in rows if r["status"] == "gone"))
    centre = shapely.from_wkb(wkb[gone]).centroid  # the OLD footprint for gone
    assert centre.distance(shapely.Point(ORIGIN[0] + 70, ORIGIN[1])) < 1e-6

    with sqlite3.connect(out / "changes.gpkg") as db:
        styles = db.execute("SELECT f_table_name, f_geometry_column, styleName, styleQML, "
                            "styleSLD, useAsDefault, update_time FROM layer_styles").fetchall()
        registered = db.execute("SELECT data_type FROM gpkg_contents WHERE table_name = "
                                "'layer_styles'").fetchone()
        columns = [r[1] for r in db.execute("PRAGMA table_info(layer_styles)")]
    assert registered == ("attributes",)
    assert {"f_table_catalog", "f_table_schema", "f_table_name", "f_geometry_column",
            "styleName", "styleQML", "styleSLD", "useAsDefault", "description", "owner",
            "ui", "update_time"} <= set(columns)
    [(table, geom, name, qml, sld, default, updated)] = styles
    assert (table, geom, default) == ("changes", "geom", 1) and updated.startswith("20")
    import xml.dom.minidom  # nosec B408 - parses our own output

    dom = xml.dom.minidom.parseString(qml.split("\n", 1)[1])  # nosec B318
    renderer = dom.getElementsByTagName("renderer-v2")[0]
    assert renderer.getAttribute("type") == "categorizedSymbol"
    assert renderer.getAttribute("attr") == "status"
    assert sorted(c.getAttribute("value") for c in dom.getElementsByTagName("category")) == \
        ["gone", "grown", "new", "shrunk", "stable"]
    assert xml.dom.minidom.parseString(sld).documentElement.tagName == "StyledLayerDescriptor"  # nosec B318

    with open(out / "changes.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0])[:9] == ["status", "x", "y", "old_id", "new_id", "area_m2_old",
                                  "area_m2_new", "mean_dt_old", "mean_dt_new"]
    gone_row = next(r for r in table if r["status"] == "gone")
    assert float(gone_row["x"]) == pytest.approx(ORIGIN[0] + 70, abs=1e-3)
    assert gone_row["new_id"] == "" and gone_row["old_id"] == "ortho:3"
    assert any(r["pipe_id"] == "'=HYPERLINK(\"x\")" for r in table)  # neutralised formula

    doc = json.loads((out / "changes.geojson").read_text())
    lon, lat = doc["features"][0]["geometry"]["coordinates"][0][0]
    assert 8.0 < lon < 9.0 and 48.5 < lat < 49.5 and "crs" not in doc
    ring = shapely.LinearRing(doc["features"][0]["geometry"]["coordinates"][0])
    assert ring.is_ccw  # RFC 7946: exterior rings counter-clockwise
    info = pyogrio.read_info(out / "changes.geojson")  # GDAL reads it
    assert info["features"] == 6 and info["crs"] == "EPSG:4326"
    assert [f["properties"]["status"] for f in doc["features"]] == [r["status"] for r in rows]

    # nothing is overwritten without --overwrite
    before = (out / "changes.csv").read_bytes()
    code = main(["compare", str(tmp_path / "new"), str(tmp_path / "old"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--overwrite" in err and (out / "changes.csv").read_bytes() == before
    code = main(["compare", str(tmp_path / "new"), str(tmp_path / "old"), "--out", str(out),
                 "--overwrite"])
    assert code == 0 and (out / "changes.csv").read_bytes() != before


def test_report_gpkg_points_are_compared(tmp_path) -> None:
    """``taseg report``'s anomalies.gpkg holds points with a frame column."""
    from thermal_anomaly_segmenter.geo.network import reproject  # noqa: F401

    def points(path, leaks):
        geoms = np.array([p.centroid for p, _ in leaks], dtype=object)
        fields = ["frame", "id", "area_m2", "max_t_degc", "mean_dt_degc", "pipe_id",
                  "chainage_m"]
        data = [np.array(["ortho"] * len(leaks), dtype=object),
                np.arange(1, len(leaks) + 1),
                np.array([r["area_m2"] for _, r in leaks]),
                np.array([r["max_t_degc"] for _, r in leaks]),
                np.array([r["mean_dt_degc"] for _, r in leaks]),
                np.array([r["pipe_id"] for _, r in leaks], dtype=object),
                np.array([r["chainage_m"] for _, r in leaks])]
        path.mkdir()
        pyogrio.raw.write(path / "anomalies.gpkg", shapely.to_wkb(geoms), field_data=data,
                          fields=fields, crs="EPSG:25832", geometry_type="Point",
                          driver="GPKG", layer="anomalies")
        return path

    old = read_survey(points(tmp_path / "old", OLD), "OLD")
    new = read_survey(points(tmp_path / "new", NEW), "NEW")
    got = statuses(compare_surveys(old, new))
    assert got[("ortho:1", "ortho:1")] == "grown" and got[("ortho:3", None)] == "gone"
    assert np.isnan(old.peak_dt).all()  # no mean T in a report: peak dT unknown


@pytest.mark.parametrize(
    ("case", "message"),
    [("layer", "has no layer 'anomalies'"), ("far", "do not overlap"),
     ("pipes", "mismatched networks"), ("frames", "without georeference"),
     ("empty", "holds no GeoPackage"), ("missing", "does not exist"),
     ("not_gpkg", "not a GeoPackage"), ("vrt", "not a GeoPackage"),
     ("huge", "coordinates beyond")],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, case, message) -> None:
    old = survey(tmp_path / "old.gpkg", OLD)
    new = tmp_path / "new.gpkg"
    if case == "layer":
        pyogrio.raw.write(new, shapely.to_wkb(np.array([shapely.Point(ORIGIN)])),
                          field_data=[], fields=[], crs="EPSG:25832", geometry_type="Point",
                          driver="GPKG", layer="pipes")
    elif case == "far":
        survey(new, NEW, shift=(5000.0, 0.0))
    elif case == "pipes":
        survey(new, [leak(10, 0, 1.0, 3.0, pipe="Q-9")])
    elif case == "frames":
        new = tmp_path / "frames"
        new.mkdir()
        (new / "f.json").write_text(json.dumps({"frame": {"name": "f", "crs": None},
                                                "anomalies": []}))
    elif case == "empty":
        new = tmp_path / "nothing"
        new.mkdir()
    elif case == "missing":
        new = tmp_path / "nowhere"
    elif case == "vrt":  # an OGR VRT under a .gpkg name: GDAL would follow its reference
        new.write_text('<OGRVRTDataSource><OGRVRTLayer name="anomalies"><SrcDataSource>'
                       f'{old}</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>')
    elif case == "huge":  # GEOS and PROJ must never see these coordinates
        v = 1e308
        ring = shapely.Polygon([(v, v), (v, -v), (-v, -v)])
        survey(new, [(ring, leak(10, 0, 1.0, 3.0)[1])])
    else:
        new.write_text("hello")
    code = main(["compare", str(old), str(new), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_empty_surveys_and_a_folder_holding_earlier_changes(tmp_path, capsys) -> None:
    survey(tmp_path / "old" / "a.gpkg", OLD)
    survey(tmp_path / "new" / "b.gpkg", [])
    assert main(["compare", str(tmp_path / "old"), str(tmp_path / "new"), "--out",
                 str(tmp_path / "o1")]) == 0
    assert "0 new, 4 gone" in capsys.readouterr().out  # nothing found this winter
    assert pyogrio.read_info(tmp_path / "o1" / "changes.gpkg", layer="changes")["features"] == 4
    # a comparison's own GeoPackage beside a survey's is not read as a survey
    (tmp_path / "old" / "a_changes.gpkg").write_bytes((tmp_path / "o1" / "changes.gpkg")
                                                      .read_bytes())
    assert len(read_survey(tmp_path / "old", "OLD")) == len(OLD)
    survey(tmp_path / "none" / "c.gpkg", [])
    assert main(["compare", str(tmp_path / "none"), str(tmp_path / "new"), "--out",
                 str(tmp_path / "o2")]) == 0
    text = (tmp_path / "o2" / "changes.csv").read_text()
    assert text.startswith("status,x,y,old_id,new_id") and text.count("\n") == 1
