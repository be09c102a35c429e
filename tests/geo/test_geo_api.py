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
