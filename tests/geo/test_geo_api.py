"""The API with a pipe network: ``pipes_file`` upload + ``corridor_width`` over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deepaas_server import (
    MODEL,
    eventually,
    leftover_uploads,
    make_folders,
    requests,
    running_server,
)
from test_geo import write_ortho, write_pipes
from test_geo_guard import http_server  # noqa: F401 - the fixture

pytestmark = [pytest.mark.http, pytest.mark.slow]


def test_predict_with_pipes_file_over_http(tmp_path) -> None:
    folders = make_folders(tmp_path / "srv", synth=False)
    ortho = write_ortho(tmp_path / "ortho.tif", 25832)
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832)
    with running_server(folders) as server:
        url = f"{server.url}/v2/models/{MODEL}/predict/"
        files = {"input_file": ("ortho.tif", ortho.read_bytes()),
                 "pipes_file": ("network.gpkg", pipes.read_bytes())}
        r = requests.post(url, params={"corridor_width": 6}, files=files, timeout=180,
                          headers={"Accept": "application/json"})
        assert r.status_code == 200, r.text
        doc = r.json()["predictions"]
        assert doc["frame"]["corridor_width_m"] == 6.0 and doc["frame"]["crs"] == "EPSG:25832"
        leak = doc["anomalies"][0]
        assert leak["pipe_id"] == "P-17" and leak["offset_m"] == 0.0
        assert {k for k in doc["outputs"]} >= {"gpkg", "geojson", "probability", "mask"}
        r = requests.post(url, files=files, timeout=180,
                          headers={"Accept": "application/geo+json"})
        assert r.status_code == 200 and json.loads(r.content)["features"]
        files["pipes_file"] = ("points.json", b'{"type": "FeatureCollection", "features": '
                               b'[{"type": "Feature", "properties": {}, "geometry": '
                               b'{"type": "Point", "coordinates": [8.4, 49.0]}}]}')
        r = requests.post(url, files=files, timeout=180)
        assert r.status_code == 400 and "LineString" in r.text, r.text
        assert leftover_uploads(folders) == []


def test_hostile_gis_uploads_over_http(tmp_path, http_server) -> None:  # noqa: F811
    """Issue 27 over HTTP: a zipped Shapefile (no .zip suffix on the temp upload) works; VRT
    rasters and layers pointing at an HTTP server and at a server file are refused with a
    one-line 400 naming no server path, and nothing is fetched; a layer of 1e308 (a GEOS
    crash) and tile_size=100000 are 400s; the server answers every route after."""
    import zipfile

    from test_geo_guard import geojson, hostile_vrts

    url, seen = http_server
    folders = make_folders(tmp_path / "srv", synth=False)
    ortho = write_ortho(tmp_path / "ortho.tif", 25832)
    shp = tmp_path / "shp"
    shp.mkdir()
    write_pipes(shp / "pipes.shp", 25832, driver="ESRI Shapefile")
    archive = tmp_path / "pipes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in shp.iterdir():
            zf.write(part, part.name)
    vrts = hostile_vrts(tmp_path, url)
    huge = geojson(tmp_path / "huge.geojson", [[1e308, 1e308], [-1e308, 1e308]])
    with running_server(folders) as server:
        predict_url = f"{server.url}/v2/models/{MODEL}/predict/"

        def post(raster, layer, **params):
            files = {"input_file": ("ortho.tif", raster.read_bytes()),
                     "pipes_file": (layer.name, layer.read_bytes())}
            return requests.post(predict_url, params=params, files=files, timeout=180,
                                 headers={"Accept": "application/json"})

        r = post(ortho, archive)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"]["anomalies"][0]["pipe_id"] == "P-17"
        for name, path in vrts.items():
            r = (post(path, archive) if name.startswith("raster") else post(ortho, path))
            reason = r.json().get("message", r.text)
            assert r.status_code == 400 and "\n" not in reason.strip(), (name, r.text)
            assert "/tmp" not in reason and str(tmp_path) not in reason, reason
        r = post(ortho, huge)
        assert r.status_code == 400 and "beyond" in r.text, r.text
        r = post(ortho, archive, tile_size=100000)
        assert r.status_code == 422 and "4096" in r.text, r.text  # DEEPaaS validates ranges
        from deepaas_server import SAMPLE

        r = requests.post(predict_url, params={"gsd": 1e308}, timeout=180,
                          files={"input_file": (SAMPLE.name, SAMPLE.read_bytes())},
                          headers={"Accept": "text/html"})  # overflowed the report: a 500
        assert r.status_code == 400 and "at most 100 m" in r.text, r.text
        assert requests.get(f"{server.url}/v2/models/", timeout=10).status_code == 200
        assert server.alive
    assert seen == []  # the HTTP server received no request
    assert leftover_uploads(folders) == []


def test_retention_covers_orthomosaic_outputs(tmp_path) -> None:
    """TASEG_KEEP_PREDICTIONS=2: after four orthomosaic predicts only the newest two
    orthomosaics' files remain, every kind (GeoTIFFs, GeoPackage, GeoJSON, JSON, overlay)."""
    folders = make_folders(tmp_path / "srv", synth=False)
    ortho = write_ortho(tmp_path / "ortho.tif", 25832)
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832)
    with running_server(folders, TASEG_KEEP_PREDICTIONS="2") as server:
        url = f"{server.url}/v2/models/{MODEL}/predict/"
        files = {"input_file": ("ortho.tif", ortho.read_bytes()),
                 "pipes_file": ("network.gpkg", pipes.read_bytes())}
        answers = []
        for _ in range(4):
            r = requests.post(url, files=files, timeout=180,
                              headers={"Accept": "application/json"})
            assert r.status_code == 200, r.text
            answers.append(r.json()["predictions"]["outputs"])
        out_dir = Path(next(iter(answers[0].values()))).parent
        newest = {Path(p).name for a in answers[2:] for p in a.values()}
        assert {"gpkg", "probability", "mask", "geojson", "json", "overlay"} <= set(answers[-1])
        assert eventually(lambda: {p.name for p in out_dir.iterdir()} == newest, 30), \
            (sorted(p.name for p in out_dir.iterdir()), sorted(newest))
