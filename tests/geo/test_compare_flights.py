"""``taseg compare`` end to end on two generated flights of one scene.

The second night is colder, windier, its cars have moved and its georeference is off by up to
1.5 m and rotated (``benchmarks/compare_pairs.py``); both orthomosaics go through the real
default model (``taseg predict --pipes``), then ``taseg compare``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rasterio")
import pyogrio  # noqa: E402
import shapely  # noqa: E402

from benchmarks.compare_pairs import make_pair, predict_night, statuses_of  # noqa: E402
from thermal_anomaly_segmenter.cli.parser import main  # noqa: E402
from thermal_anomaly_segmenter.geo.network import reproject  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "unet_mobilenetv2_synthetic"


@pytest.mark.parametrize(("family", "seed", "crs"), [
    ("karlsruhe_winter", 1, "EPSG:25832"),
    ("city_wet", 2, "EPSG:4326"),  # NEW in degrees, OLD in UTM
])
def test_planted_leaks_get_their_status(tmp_path, capsys, family, seed, crs) -> None:
    pair = make_pair(tmp_path, family, seed, shift_m=1.5, new_crs=crs)
    old = predict_night(pair.old, pair.pipes, tmp_path / "old", MODEL)
    new = predict_night(pair.new, pair.pipes, tmp_path / "new", MODEL)
    assert pyogrio.read_info(new / "night2.gpkg", layer="anomalies")["crs"] == crs
    code = main(["compare", str(old), str(new), "--out", str(tmp_path / "cmp")])
    assert code == 0, capsys.readouterr().err
    got = statuses_of(pair, tmp_path / "cmp" / "changes.gpkg")
    assert got == {"stable": "stable", "grown": "grown", "gone": "gone", "new": "new"}

    meta, _, wkb, cols = pyogrio.raw.read(tmp_path / "cmp" / "changes.gpkg", layer="changes")
    assert meta["crs"] == crs  # NEW's CRS
    rows = [dict(zip(meta["fields"], v, strict=True)) for v in zip(*cols, strict=True)]
    grown = next(r for r in rows if r["status"] == "grown")
    assert grown["area_m2_new"] > 1.5 * grown["area_m2_old"]
    stable = next(r for r in rows if r["status"] == "stable")
    # the second night is 3-6 degC colder: dT, not temperature, is what stays
    assert abs(stable["mean_dt_new"] - stable["mean_dt_old"]) < 1.0
    assert all(r["pipe_id"] == "DH-1" for r in rows)
    # lamps did not change: nothing found on a lamp well inside the corridor of both flights
    # (whose georeference differs by 1.5 m) other than a planted leak beside it is new,
    # gone, grown or shrunk
    geoms = reproject(shapely.from_wkb(wkb), crs, "EPSG:25832")
    planted = {int(np.argmin(shapely.distance(geoms, shapely.Point(pair.where(s)))))
               for s in pair.truth}
    [pipe] = shapely.from_wkb(pyogrio.raw.read(pair.pipes)[2])
    inside = [lamp for lamp in pair.lamps
              if pipe.distance(shapely.Point(pair.true @ lamp)) < 4.0 - 2.0]
    assert inside  # the scene has lamps by the pipe
    for lamp in inside:
        for transform, kinds in ((pair.wrong, ("new", "grown", "shrunk")),
                                 (pair.true, ("gone",))):
            near = set(np.flatnonzero(
                shapely.distance(geoms, shapely.Point(transform @ lamp)) < 0.3)) - planted
            assert not any(rows[k]["status"] in kinds for k in near)
