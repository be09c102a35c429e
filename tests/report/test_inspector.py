"""The inspector's report: severity rules, report.html in headless Chromium (table against the
prediction JSON, no network, review buttons -> review.json -> dataset labels), and the CLI."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from headless_browser import in_page

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.report.severity import DEFAULTS, load_rules

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "unet_mobilenetv2_synthetic"
SEVERITY_ORDER = {"A": 0, "B": 1, "C": 2}


# --------------------------------------------------------------------------- severity


RECORD = {"area_px": 300, "area_m2": None, "max_t_degc": 14.0, "mean_dt_degc": 2.5,
          "mean_probability": 0.9}


def test_default_rules_grade_by_dt_area_peak_and_confidence():
    assert DEFAULTS.classify(RECORD, corridor_median=10.0) == "A"
    assert DEFAULTS.classify({**RECORD, "mean_probability": 0.6}, 10.0) == "B"
    assert DEFAULTS.classify({**RECORD, "area_px": 20}, 10.0) == "C"
    # A known GSD judges the area in m2, not pixels.
    assert DEFAULTS.classify({**RECORD, "area_m2": 0.5}, 10.0) == "B"


def test_severity_thresholds_from_a_config_file_change_the_classes(tmp_path):
    toml = tmp_path / "strict.toml"
    toml.write_text("[A]\nmin_mean_dt_degc = 4.0\n[B]\nmin_area_px = 500\n")
    strict = load_rules(toml)
    assert strict.classify(RECORD, 10.0) == "C"
    assert strict.A.min_area_px == DEFAULTS.A.min_area_px  # unset keys keep their default
    lenient = tmp_path / "lenient.json"
    lenient.write_text(json.dumps({"A": {"min_probability": 0.5}}))
    assert load_rules(lenient).classify({**RECORD, "mean_probability": 0.6}, 10.0) == "A"
    assert any("4" in line for line in strict.describe())


@pytest.mark.parametrize("text, problem", [
    ("[A]\nmin_dt = 1\n", "may set only"), ("[D]\n", "tables A and/or B"),
    ("[A]\nmin_area_px = 'big'\n", "must be a number"), ("[A\n", "not valid TOML")])
def test_bad_severity_config_is_named(tmp_path, text, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=problem):
        load_rules(path)


# --------------------------------------------------------------------------- a survey


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    from thermal_anomaly_segmenter.false_alarms.apply import train_on_demand

    path = tmp_path_factory.mktemp("stage") / "false_alarms.json"
    return train_on_demand().save(path)


@pytest.fixture(scope="module")
def survey(tmp_path_factory, classifier) -> dict:
    """Two synthetic TIFF frames with corridor masks, reported with the false-alarm stage."""
    from thermal_anomaly_segmenter.report.inspector import make_report
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    root = tmp_path_factory.mktemp("survey")
    tiffs, corridors = root / "tiff", root / "corridor"
    tiffs.mkdir()
    corridors.mkdir()
    for i, family in enumerate(("karlsruhe_winter", "campus_mixed")):
        scene = make_scene(7 + i, 192, 256, family=family)
        tifffile.imwrite(tiffs / f"f{i}.tif", scene.t_u.astype(np.float32))
        cv2.imwrite(str(corridors / f"f{i}.png"), scene.corridor.astype(np.uint8) * 255)
    outs = []
    for i in range(2):  # one predict per frame (each has its own corridor), one report after
        make_report([tiffs / f"f{i}.tif"], root / f"single{i}", model_dir=MODEL,
                          corridor=corridors / f"f{i}.png", false_alarms=classifier)
        outs.append(root / f"single{i}" / "predictions")
    result = make_report(outs, root / "report")  # earlier outputs: nothing predicted again
    docs = [json.loads(p.read_text()) for o in outs for p in sorted(o.glob("*.json"))]
    return {"root": root, "result": result, "docs": docs, "out": root / "report",
            "tiffs": tiffs, "corridors": corridors}


def _expected_rows(docs: list[dict]) -> list[dict]:
    """The anomalies of the JSON reports, ranked by the documented rule."""
    rows = []
    for doc in docs:
        median = doc["frame"]["corridor_median_degc"]
        for a in doc["anomalies"]:
            rows.append({**a, "frame": doc["frame"]["name"],
                         "severity": DEFAULTS.classify(a, median)})
    rows.sort(key=lambda r: (SEVERITY_ORDER[r["severity"]], -r["mean_dt_degc"], r["frame"],
                             r["id"]))
    return rows


def test_report_files_and_csv_match_the_prediction_reports(survey):
    out = survey["out"]
    assert (out / "report.html").is_file() and not (out / "predictions").exists()
    assert not (out / "anomalies.gpkg").exists()  # nothing georeferenced
    with (out / "anomalies.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    expected = _expected_rows(survey["docs"])
    assert len(rows) == len(expected) >= 3
    for row, want in zip(rows, expected, strict=True):
        assert (row["frame"], int(row["id"]), row["severity"]) == (
            want["frame"], want["id"], want["severity"])
        assert float(row["mean_dt_degc"]) == want["mean_dt_degc"]
        assert float(row["probability"]) == want["mean_probability"]
        assert row["cause"]  # the stage was on: every anomaly has a cause
    rejected = [r for d in survey["docs"] for r in d.get("rejected", [])]
    assert len(survey["result"].survey.rejected) == len(rejected)
    for doc in survey["docs"]:  # with the stage on, the anomalies keep their format
        stage = doc["false_alarm_stage"]
        assert [v["id"] for v in stage["verdicts"]] == [a["id"] for a in doc["anomalies"]]
        assert all(v["leak_score"] >= stage["keep_threshold"] for v in stage["verdicts"])
        assert all(r["leak_score"] < stage["keep_threshold"] for r in doc["rejected"])
        fields = {"id", "area_px", "area_m2", "bbox", "centroid", "max_t_degc", "mean_t_degc",
                  "mean_dt_degc", "mean_probability", "centroid_crs", "heat_loss_w",
                  "heat_loss_w_low", "heat_loss_w_high", "heat_loss_mwh_per_year",
                  "cost_per_year", "co2_t_per_year"}
        # no pixel size: the heat loss fields are null and the report says why
        assert all(a["heat_loss_w"] is None for a in doc["anomalies"])
        assert "pixel size" in doc["heat_loss"]["unavailable"]
        assert all(set(a) == fields for a in doc["anomalies"])
        assert [r["id"] for r in doc["rejected"]] == list(
            range(len(doc["anomalies"]) + 1, len(doc["anomalies"]) + len(doc["rejected"]) + 1))


def test_report_never_overwrites(survey):
    from thermal_anomaly_segmenter.report.inspector import make_report

    before = (survey["out"] / "report.html").read_bytes()
    with pytest.raises(InvalidInputError, match="already exists"):
        make_report([survey["root"] / "single0" / "predictions"], survey["out"])
    assert (survey["out"] / "report.html").read_bytes() == before


# --------------------------------------------------------------------------- in Chromium




def _table_js() -> str:
    return ("Array.from(document.querySelectorAll('#anomalies tbody tr')).map(tr => "
            "Object.fromEntries(Array.from(tr.querySelectorAll('td[data-col]')).map(td => "
            "[td.dataset.col, td.textContent])))")


@pytest.mark.slow
def test_table_in_chromium_matches_the_json_offline(survey, browser):
    url = (survey["out"] / "report.html").as_uri()

    async def body(page):
        await page.call("Network.enable")
        await page.call("Runtime.enable")
        await page.call("Network.emulateNetworkConditions", offline=True, latency=0,
                        downloadThroughput=-1, uploadThroughput=-1)
        await page.call("Page.enable")
        await page.call("Page.navigate", url=url)
        await page.wait_for("document.readyState === 'complete' && "
                            "!!document.getElementById('review-count').textContent")
        table = await page.js(_table_js())
        totals = await page.js("Array.from(document.querySelectorAll("
                               "'#totals-severity td[data-severity]')).map(td => "
                               "[td.dataset.severity, td.textContent])")
        broken = await page.js("Array.from(document.images).filter(i => !i.complete || "
                               "!i.naturalWidth).length")
        await page.js("document.getElementById('sort-loss').click()")
        by_loss = await page.js(_table_js())
        return table, dict(totals), broken, page.events, by_loss

    table, totals, broken, events, by_loss = asyncio.run(in_page(browser, body))
    # no pixel size, no estimate: sorting by loss keeps the rank order, columns stay empty
    assert [c["rank"] for c in by_loss] == [c["rank"] for c in table]
    assert all(c["heat_loss_w"] == "" for c in by_loss)
    expected = _expected_rows(survey["docs"])
    assert len(table) == len(expected)
    for rank, (cells, want) in enumerate(zip(table, expected, strict=True), start=1):
        assert cells["rank"] == str(rank)
        assert cells["frame"] == want["frame"] and cells["id"] == str(want["id"])
        assert cells["severity"] == want["severity"]
        for col, key in (("mean_dt_degc", "mean_dt_degc"), ("max_t_degc", "max_t_degc"),
                         ("area_px", "area_px"), ("probability", "mean_probability")):
            assert cells[col] == json.dumps(want[key]), (col, cells, want)
    for sev in "ABC":
        assert totals[sev] == str(sum(r["severity"] == sev for r in expected))
    assert broken == 0
    assert not [e for e in events if e["method"] == "Runtime.exceptionThrown"]
    requests = [e["params"]["request"]["url"] for e in events
                if e["method"] == "Network.requestWillBeSent"]
    assert requests and all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests
    html = (survey["out"] / "report.html").read_text()
    assert "http://" not in html and "https://" not in html


@pytest.mark.slow
def test_review_in_chromium_becomes_dataset_labels(survey, browser, tmp_path):
    from thermal_anomaly_segmenter.datasets.builder import BuildOptions, build_dataset
    from thermal_anomaly_segmenter.false_alarms.review import read_examples
    from thermal_anomaly_segmenter.io.datasets import read_label_mask

    url = (survey["out"] / "report.html").as_uri()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    f0 = [r for r in _expected_rows(survey["docs"]) if r["frame"] == "f0"]
    assert len(f0) >= 2
    decisions = {f"f0/{r['id']}": "leak" for r in f0}
    decisions[f"f0/{f0[-1]['id']}"] = "false_alarm"

    async def body(page):
        await page.call("Page.enable")
        await page.call("Page.setDownloadBehavior", behavior="allow",
                        downloadPath=str(downloads))
        await page.call("Page.navigate", url=url)
        # Page.navigate returns before the report's document replaces about:blank (which is
        # already 'complete'): wait for the report itself.
        await page.wait_for("document.readyState === 'complete' && "
                            "document.getElementById('export') !== null")
        for key, decision in decisions.items():
            row = f"document.querySelector('tr[data-key=\"{key}\"]')"
            if decision == "false_alarm":
                await page.js(f"{row}.querySelector('select.cause').value = 'lamp'")
            await page.js(f"{row}.querySelector('button[data-decision={decision}]').click()")
        # The decisions survive a reload (localStorage), then the export button downloads.
        stored = await page.js("Object.keys(localStorage).length")
        assert stored == 1, "the decisions were not saved to localStorage"
        await page.js("window.__beforeReload = true")  # tells the old document from the new
        for attempt in range(3):  # a reload issued on a busy machine is sometimes dropped
            await page.call("Page.reload")
            try:
                await page.wait_for("!window.__beforeReload && document.readyState === "
                                    "'complete' && document.getElementById('export') !== null",
                                    timeout=20)
                break
            except AssertionError:
                if attempt == 2:
                    raise
        text = await page.js("document.querySelector('tr[data-key=\"f0/1\"] .decision')"
                             ".textContent")
        assert text, "the decisions did not survive the reload"
        shown = await page.js("document.getElementById('review-count').textContent")
        await page.js("document.getElementById('export').click()")
        deadline = time.monotonic() + 20
        while not (downloads / "review.json").is_file() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return shown

    shown = asyncio.run(in_page(browser, body))
    assert shown.startswith(f"{len(decisions)} of")
    review = json.loads((downloads / "review.json").read_text())
    assert {f"{d['frame']}/{d['id']}": d["decision"] for d in review["decisions"]} == decisions

    report = build_dataset(survey["tiffs"], survey["corridors"], tmp_path / "ds", BuildOptions(
        review=downloads / "review.json", splits=(1.0, 0.0, 0.0), previews=False))
    assert report.reviewed_frames == ["f0"]
    label = read_label_mask(tmp_path / "ds" / "manual_set" / "label" / "survey_train" / "f0.png")
    leaks = [r for r in f0 if decisions[f"f0/{r['id']}"] == "leak"]
    assert int(label.sum()) == sum(r["area_px"] for r in leaks)
    from thermal_anomaly_segmenter.false_alarms.review import rasterize_footprint

    [false_alarm] = [d for d in review["decisions"] if d["decision"] == "false_alarm"]
    footprint = rasterize_footprint(false_alarm, label.shape)
    assert footprint.sum() == f0[-1]["area_px"] and not (label & footprint).any()
    x, causes = read_examples(tmp_path / "ds")
    assert sorted(causes) == sorted(["leak"] * len(leaks) + ["lamp"])
    assert np.isfinite(x).all()

    # train --review: the stage learns from the synthetic families plus these components.
    from thermal_anomaly_segmenter.false_alarms.apply import train_for_model
    from thermal_anomaly_segmenter.false_alarms.classifier import FalseAlarmClassifier

    model = tmp_path / "model"
    model.mkdir()
    stored = FalseAlarmClassifier.load(train_for_model(model, tmp_path / "ds"))
    assert stored.info["reviewed_components"] == len(causes)
    with pytest.raises(InvalidInputError, match="already exists"):
        train_for_model(model, tmp_path / "ds")


# --------------------------------------------------------------------------- CLI


def _taseg(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "thermal_anomaly_segmenter", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, survey):
    bad = tmp_path / "bad.toml"
    bad.write_text("[A]\nmin_dt = 3\n")
    earlier = str(survey["root"] / "single0" / "predictions")
    for args in (["report", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "r1"),
                  "--model-dir", str(MODEL)],
                 ["report", earlier, "--out", str(tmp_path / "r2"), "--severity-config",
                  str(bad)],
                 ["report", earlier, "--out", str(survey["out"])]):
        proc = _taseg(*args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("taseg: error:"), proc.stderr
    assert not (tmp_path / "r2" / "report.html").exists()
    proc = _taseg("report", earlier, "--out", str(tmp_path / "ok"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "anomalies" in proc.stdout and (tmp_path / "ok" / "anomalies.csv").is_file()


@pytest.mark.slow
def test_heat_loss_column_total_and_sort_in_chromium(tmp_path, browser):
    """The sample frame at 10 cm: the page's heat loss cells, total and sort button."""
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.heat_loss import Conditions
    from thermal_anomaly_segmenter.report.inspector import make_report

    sample = ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4"
    options = PredictOptions(gsd_m=0.1, conditions=Conditions().updated(
        {"wind_speed_m_s": 2.0, "price_per_mwh": 80.0}, "test"))
    result = make_report([sample], tmp_path / "report", model_dir=MODEL, options=options)
    items = result.survey.items
    assert len(items) >= 3 and all(it.record["heat_loss_w"] > 0 for it in items)

    async def body(page):
        await page.call("Page.enable")
        await page.call("Page.navigate", url=result.outputs["html"].as_uri())
        await page.wait_for("document.readyState === 'complete' && "
                            "!!document.getElementById('review-count').textContent")
        ranked = await page.js(_table_js())
        await page.js("document.getElementById('sort-loss').click()")
        by_loss = await page.js(_table_js())
        await page.js("document.getElementById('sort-rank').click()")
        back = await page.js(_table_js())
        total = await page.js("document.querySelector('[data-total=heat_loss_w]').textContent")
        return ranked, by_loss, back, total

    ranked, by_loss, back, total = asyncio.run(in_page(browser, body))
    assert [c["heat_loss_w"] for c in ranked] == [json.dumps(it.record["heat_loss_w"])
                                                  for it in items]
    losses = [float(c["heat_loss_w"]) for c in by_loss]
    assert losses == sorted(losses, reverse=True) and losses != [float(c["heat_loss_w"])
                                                                 for c in ranked]
    assert back == ranked
    assert float(total) == pytest.approx(sum(losses), abs=0.01)
    assert all(c["cost_per_year"] and " .. " in c["heat_loss_range_w"] for c in ranked)


# --------------------------------------------------------------------------- georeferenced


@pytest.mark.slow
def test_report_of_an_orthomosaic_has_pipes_map_and_geopackage(tmp_path):
    import pyogrio
    import rasterio
    import shapely
    from rasterio.transform import from_origin

    from thermal_anomaly_segmenter.report.inspector import make_report

    # A 300 x 400 GeoTIFF at 10 cm, a warm blob on a pipe along row 150.
    transform = from_origin(455000.0, 5430000.0, 0.1, 0.1)
    t_u = np.random.default_rng(0).normal(-3.0, 0.25, (300, 400)).astype(np.float32)
    yy, xx = np.mgrid[0:300, 0:400]
    t_u += 6.0 * np.exp(-((yy - 150) ** 2 + (xx - 220) ** 2) / 50.0).astype(np.float32)
    ortho = tmp_path / "ortho.tif"
    with rasterio.open(ortho, "w", driver="GTiff", width=400, height=300, count=1,
                       dtype="float32", crs="EPSG:25832", transform=transform) as ds:
        ds.write(t_u, 1)
    pipes = tmp_path / "pipes.gpkg"
    line = shapely.LineString([transform @ (0, 150), transform @ (400, 150)])
    pyogrio.raw.write(pipes, shapely.to_wkb(np.array([line], dtype=object)),
                      field_data=[np.array(["P-17"], dtype=object)], fields=["pipe_id"],
                      crs="EPSG:25832", geometry_type="LineString", driver="GPKG")
    result = make_report([ortho], tmp_path / "report", model_dir=MODEL, pipes=pipes)
    out = tmp_path / "report"
    assert set(result.outputs) == {"html", "csv", "gpkg"}
    with (out / "anomalies.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    doc = json.loads(next((out / "predictions").glob("*.json")).read_text())
    assert len(rows) == len(doc["anomalies"]) >= 1
    assert rows[0]["pipe_id"] == doc["anomalies"][0]["pipe_id"] == "P-17"
    assert float(rows[0]["chainage_m"]) == doc["anomalies"][0]["chainage_m"]
    info = pyogrio.read_info(out / "anomalies.gpkg", layer="anomalies")
    assert info["features"] == len(rows) and "25832" in info["crs"]
    html = (out / "report.html").read_text()
    assert '<div class="map">' in html and "chainage" in html
    # too big to show whole: the Frames section says so and offers no frame to outline on
    assert "1 orthomosaic(s) not shown here" in html and 'class="frame"' not in html
    item = result.survey.items[0]
    assert item.crop_png is not None  # cropped from the downsampled overlay
    # the crop -> frame mapping (for outlines) is in the orthomosaic's own pixels: the blob's
    # centre lies inside the crop, near its middle unless the crop meets the border
    x0, y0, kx, ky = item.crop_frame
    h, w = cv2.imdecode(np.frombuffer(item.crop_png, np.uint8), cv2.IMREAD_COLOR).shape[:2]
    assert 0.25 < (220.5 - x0) / kx / w < 0.75 and 0.25 < (150.5 - y0) / ky / h < 0.75


def test_report_of_geotiff_frames_has_a_frame_index_and_geopackage(tmp_path):
    import pyogrio

    from thermal_anomaly_segmenter.report.inspector import make_report
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    scene = make_scene(7, 192, 256)
    corridor = tmp_path / "corridor.png"
    cv2.imwrite(str(corridor), scene.corridor.astype(np.uint8) * 255)
    frames = []
    for i, x0 in enumerate((455000.0, 455030.0)):  # two 10 cm GeoTIFFs side by side
        tags = [(33550, 12, 3, (0.1, 0.1, 0.0), True),
                (33922, 12, 6, (0.0, 0.0, 0.0, x0, 5430000.0, 0.0), True),
                (34735, 3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 25832),
                 True)]
        frames.append(tmp_path / f"g{i}.tif")
        tifffile.imwrite(frames[-1], scene.t_u.astype(np.float32), extratags=tags)
    result = make_report(frames, tmp_path / "report", model_dir=MODEL, corridor=corridor)
    assert set(result.outputs) == {"html", "csv", "gpkg"}
    items = result.survey.items
    assert len(items) >= 2 and {it.frame for it in items} == {"g0", "g1"}
    assert all(it.record["area_m2"] == pytest.approx(it.record["area_px"] * 0.01, rel=1e-3)
               for it in items)
    info = pyogrio.read_info(tmp_path / "report" / "anomalies.gpkg", layer="anomalies")
    assert info["features"] == len(items) and "25832" in info["crs"]
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Frame index" in html and html.count("<circle") == len(items)
    assert all(" m" in (it.scale_bar or "") for it in items)  # scale bars in metres
    # metric georeference: every anomaly has its heat loss, in the CSV, the GeoPackage and the
    # page's total, and the conditions (defaults) are stated
    _, _, _, columns = pyogrio.raw.read(tmp_path / "report" / "anomalies.gpkg",
                                        layer="anomalies")
    fields = list(info["fields"])
    losses = columns[fields.index("heat_loss_w")]
    assert [float(v) for v in losses] == [it.record["heat_loss_w"] for it in items]
    assert all(it.record["heat_loss_w_low"] <= it.record["heat_loss_w"]
               <= it.record["heat_loss_w_high"] for it in items)
    with (tmp_path / "report" / "anomalies.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["heat_loss_w"]) for r in rows] == [it.record["heat_loss_w"] for it in items]
    total = result.survey.heat_loss()["total_heat_loss_w"]
    assert total == pytest.approx(sum(it.record["heat_loss_w"] for it in items), abs=0.01)
    assert f'data-total="heat_loss_w">{json.dumps(total)}<' in html
    assert "defaults used: air_temp_degc" in html and "McAdams" in html
    meta = json.loads(pyogrio.read_info(tmp_path / "report" / "anomalies.gpkg",
                                        layer="anomalies")["layer_metadata"]["taseg_heat_loss"])
    assert meta["conditions"][0]["wind_speed_m_s"] == 1.0
    # --rank-by loss over the same predictions: largest loss first
    ranked = make_report([tmp_path / "report" / "predictions"], tmp_path / "by-loss",
                         rank_by="loss")
    losses = [it.record["heat_loss_w"] for it in ranked.survey.items]
    assert losses == sorted(losses, reverse=True) and len(losses) == len(items)
    assert "ranked by estimated heat loss" in (tmp_path / "by-loss" / "report.html").read_text()


def test_severity_rule_can_use_the_heat_loss(tmp_path):
    toml = tmp_path / "loss.toml"
    toml.write_text("[A]\nmin_heat_loss_w = 100.0\n")
    rules = load_rules(toml)
    assert rules.classify({**RECORD, "heat_loss_w": 150.0}, 10.0) == "A"
    assert rules.classify({**RECORD, "heat_loss_w": 50.0}, 10.0) == "B"
    # without an estimate (no pixel size) the loss minimum is not applied
    assert rules.classify({**RECORD, "heat_loss_w": None}, 10.0) == "A"
    assert "heat loss >= 100 W" in rules.describe()[0]
    assert DEFAULTS.A.min_heat_loss_w is None  # off by default: classes unchanged


def test_the_stage_is_stored_in_the_model_folder_once_never_replaced(tmp_path, monkeypatch):
    from thermal_anomaly_segmenter.false_alarms import apply as screening
    from thermal_anomaly_segmenter.false_alarms.classifier import FalseAlarmClassifier

    trained = []
    clf = FalseAlarmClassifier.load(_stage_file_for_store_test(tmp_path))
    monkeypatch.setattr(screening, "train_on_demand", lambda **_: trained.append(1) or clf)
    folder = tmp_path / "model"
    folder.mkdir()
    got = screening.classifier_for(True, folder)
    stored = folder / screening.FILE_NAME
    assert got is clf and stored.is_file() and len(trained) == 1
    assert FalseAlarmClassifier.load(stored).to_dict() == clf.to_dict()
    assert [p.name for p in folder.iterdir()] == [screening.FILE_NAME]  # no temp file left
    before = stored.read_bytes()
    screening._store(clf, stored)  # never replaces
    assert stored.read_bytes() == before and len(list(folder.iterdir())) == 1


def _stage_file_for_store_test(tmp_path):
    from thermal_anomaly_segmenter.false_alarms.classifier import (
        synthetic_training_set,
        train_classifier,
    )

    x, y = synthetic_training_set(["karlsruhe_winter", "city_wet"], 2, seed=0, height=128,
                                  width=160)
    path = tmp_path / "seed_stage.json"
    path.write_text(__import__("json").dumps(train_classifier(x, y, n_estimators=5).to_dict()))
    return path
