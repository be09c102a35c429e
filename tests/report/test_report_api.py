"""The inspector's report over HTTP: ``Accept: text/html`` and a zip of frames."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from deepaas_server import MODEL, SAMPLE, leftover_uploads, make_folders, requests, running_server

pytestmark = [pytest.mark.http, pytest.mark.slow]


def _zip_of_frames() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("survey/a.npy.lz4", SAMPLE.read_bytes())
        archive.writestr("survey/b.npy.lz4", SAMPLE.read_bytes())
        archive.writestr("survey/notes.txt", b"not a frame")
    return buffer.getvalue()


def test_report_over_http(tmp_path) -> None:
    folders = make_folders(tmp_path / "srv", synth=False)
    with running_server(folders) as server:
        url = f"{server.url}/v2/models/{MODEL}/predict/"
        zipped = {"input_file": ("survey.zip", _zip_of_frames())}
        r = requests.post(url, files=zipped, headers={"Accept": "text/html"}, timeout=180)
        assert r.status_code == 200, r.text[:500]
        assert r.headers["Content-Type"].startswith("text/html")
        page = r.text
        assert page.startswith("<!DOCTYPE html>") and "https://" not in page
        rows = page.count('<tr class="sev-')
        assert rows >= 2 and rows % 2 == 0  # the same frame twice: the same anomalies twice

        r = requests.post(url, files=zipped, headers={"Accept": "application/zip"},
                          params={"gsd": 0.1, "wind_speed": 3}, timeout=180)
        assert r.status_code == 200, r.text[:500]
        with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
            assert sorted(archive.namelist()) == ["anomalies.csv", "report.html"]
            table = list(csv.DictReader(io.StringIO(archive.read("anomalies.csv").decode())))
            html = archive.read("report.html").decode()
        assert len(table) == rows and {row["frame"] for row in table} == {"a", "b"}
        # the API's conditions reach the report: every row has its heat loss, stated wind 3
        assert all(float(row["heat_loss_w"]) > 0 for row in table)
        assert "wind 3.0 m/s" in html and "source api" in html
        r = requests.post(url, files=zipped, headers={"Accept": "text/html"},
                          params={"wind_speed": -2}, timeout=60)
        assert r.status_code == 400 and "wind speed" in r.json()["message"]

        r = requests.post(url, files={"input_file": (SAMPLE.name, SAMPLE.read_bytes())},
                          params={"false_alarms": "true"}, headers={"Accept": "text/html"},
                          timeout=180)
        assert r.status_code == 200, r.text[:500]
        assert "Rejected false alarms" in r.text and SAMPLE.name.split(".")[0] in r.text

        r = requests.post(url, files=zipped, headers={"Accept": "image/png"}, timeout=60)
        assert r.status_code == 406 and "text/html" in r.json()["message"]
        assert leftover_uploads(folders) == []
