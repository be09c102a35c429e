"""The API with ``previous_file``: each anomaly's status since an earlier survey over real
HTTP (JSON, zip and HTML answers), and a bad earlier survey answered 400."""

from __future__ import annotations

import io
import sqlite3
import zipfile

import pytest
from deepaas_server import MODEL, leftover_uploads, make_folders, requests, running_server

from benchmarks.compare_pairs import make_pair, predict_night

pytestmark = [pytest.mark.http, pytest.mark.slow]


def test_predict_with_previous_file_over_http(tmp_path) -> None:
    from deepaas_server import ROOT

    pair = make_pair(tmp_path / "pair", "karlsruhe_winter", 1, shift_m=1.5)
    old = predict_night(pair.old, pair.pipes, tmp_path / "old",
                        ROOT / "models" / "unet_mobilenetv2_synthetic")
    folders = make_folders(tmp_path / "srv", synth=False)
    with running_server(folders) as server:
        url = f"{server.url}/v2/models/{MODEL}/predict/"
        files = {"input_file": ("night2.tif", pair.new.read_bytes()),
                 "pipes_file": ("network.gpkg", pair.pipes.read_bytes()),
                 "previous_file": ("winter-2025.gpkg", (old / "night1.gpkg").read_bytes())}
        r = requests.post(url, files=files, timeout=180, headers={"Accept": "application/json"})
        assert r.status_code == 200, r.text
        doc = r.json()["predictions"]
        assert sorted(a["status"] for a in doc["anomalies"]) == ["grown", "new", "stable"]
        since = doc["since_previous"]
        assert since["counts"] == {"grown": 1, "stable": 1, "shrunk": 0, "new": 1, "gone": 1}
        assert [g["status"] for g in since["gone"]] == ["gone"]
        assert {"changes_gpkg", "changes_csv", "changes_geojson"} <= set(doc["outputs"])

        r = requests.post(url, files=files, timeout=180, headers={"Accept": "application/zip"})
        assert r.status_code == 200, r.text
        archive = zipfile.ZipFile(io.BytesIO(r.content))
        changes = sorted(n for n in archive.namelist() if "_changes." in n)
        assert [n.rsplit(".", 1)[1] for n in changes] == ["csv", "geojson", "gpkg"]
        gpkg = tmp_path / "got.gpkg"
        gpkg.write_bytes(archive.read(changes[2]))
        with sqlite3.connect(gpkg) as db:
            assert db.execute("SELECT f_table_name, useAsDefault FROM layer_styles"
                              ).fetchall() == [("changes", 1)]

        r = requests.post(url, files=files, timeout=180, headers={"Accept": "text/html"})
        assert r.status_code == 200, r.text
        assert 'id="totals-since"' in r.text and 'data-since="grown"' in r.text

        bad = dict(files, previous_file=("old.gpkg", (old / "night1.json").read_bytes()))
        r = requests.post(url, files=bad, timeout=180)
        assert r.status_code == 400 and "previous_file" in r.text, r.text
        no_pipes = {k: v for k, v in files.items() if k != "pipes_file"}
        r = requests.post(url, files=no_pipes, timeout=180)
        assert r.status_code == 400 and "pipes_file" in r.text, r.text
        assert leftover_uploads(folders) == []
