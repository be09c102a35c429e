"""The report is inert: hostile values from a folder of earlier predict outputs (frame names,
pipe ids, causes) never run as script in Chromium, never break the page's own script, never
run as spreadsheet formulas in anomalies.csv; wrongly typed values and a PNG that declares a
huge canvas are refused before they are used."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from conftest import SHIPPED_ONLY
from headless_browser import in_page

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4"
STEM = "KA1_DJI_0_0095_R"
#: Would set window.pwned or the title if it ever ran; also ends/bends a <script> element.
HOSTILE_NAME = ("=HYPERLINK(\"http://x\")<svg onload=\"window.pwned=1\"></svg>"
                "</script><script>window.pwned=2;document.title='pwned'</script>")
HOSTILE_PIPE = "<!--<script>window.pwned=3</script>"
HOSTILE_CAUSE = "<img src=x onerror=\"window.pwned=4\">"


def taseg(*args: object, **extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1", **extra}
    return subprocess.run([sys.executable, "-m", "thermal_anomaly_segmenter", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def predicted(tmp_path_factory) -> Path:
    """The sample predicted with the false-alarm stage (anomalies and rejected ones)."""
    out = tmp_path_factory.mktemp("pred")
    # A private copy of the shipped models: the stage's classifier is trained on demand and
    # stored in the model folder.
    models = tmp_path_factory.mktemp("models") / "models"
    shutil.copytree(ROOT / "models", models, ignore=SHIPPED_ONLY)
    proc = taseg("predict", SAMPLE, "--out", out, "--false-alarms", "--outputs",
                 "mask,overlay,json", MODELS_PATH=str(models))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / f"{STEM}.json").read_text())
    assert doc["anomalies"] and doc["rejected"], doc
    return out


def _copy(predicted: Path, dest: Path, edit) -> Path:
    dest.mkdir()
    for path in predicted.iterdir():
        shutil.copy(path, dest / path.name)
    doc = json.loads((dest / f"{STEM}.json").read_text())
    edit(doc)
    (dest / f"{STEM}.json").write_text(json.dumps(doc))
    return dest


def _hostile(doc: dict) -> None:
    doc["frame"]["name"] = HOSTILE_NAME
    doc["anomalies"][0]["pipe_id"] = HOSTILE_PIPE
    doc["rejected"][0]["cause"] = HOSTILE_CAUSE
    doc["false_alarm_stage"]["verdicts"][0]["cause"] = HOSTILE_CAUSE




@pytest.mark.slow
def test_hostile_values_stay_text_in_chromium_and_csv(predicted, tmp_path, browser):
    folder = _copy(predicted, tmp_path / "earlier", _hostile)
    proc = taseg("report", folder, "--out", tmp_path / "rep")
    assert proc.returncode == 0, proc.stderr
    url = (tmp_path / "rep" / "report.html").as_uri()

    async def body(page):
        await page.call("Runtime.enable")
        await page.call("Page.enable")
        await page.call("Page.navigate", url=url)
        await page.wait_for("document.readyState === 'complete' && "
                            "!!document.getElementById('review-count').textContent")
        await asyncio.sleep(0.5)  # let any injected onload/onerror fire
        before = await page.js("[typeof window.pwned, document.title, "
                               "document.querySelectorAll('#anomalies tbody tr').length]")
        # The page's own script still works: a decision, the count, the export.
        await page.js("document.querySelector('#anomalies tr[data-key] "
                      "button[data-decision=leak]').click()")
        count = await page.js("document.getElementById('review-count').textContent")
        review = await page.js("JSON.stringify(window.tasegReview())")
        await page.js("document.getElementById('export').click()")
        cells = await page.js("Array.from(document.querySelectorAll('td[data-col=frame]'))"
                              ".map(td => td.textContent)")
        locations = await page.js("Array.from(document.querySelectorAll('#anomalies "
                                  "td.loc')).map(td => td.textContent).join(' ')")
        return before, count, json.loads(review), cells, locations, page.events

    before, count, review, cells, locations, events = asyncio.run(in_page(browser, body))
    assert before[0] == "undefined" and before[1] != "pwned", before
    assert before[2] == 3, before
    assert count.startswith("1 of 3"), count
    assert review["decisions"][0]["frame"] == HOSTILE_NAME  # the data survive, as text
    assert set(cells) == {HOSTILE_NAME}
    assert HOSTILE_PIPE in locations
    assert not [e for e in events if e["method"] == "Runtime.exceptionThrown"], events
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "<svg onload" not in html and "<!--<script>" not in html
    with open(tmp_path / "rep" / "anomalies.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["frame"] == "'" + HOSTILE_NAME for r in rows)
    assert all(not r[k].startswith(("=", "+", "@")) for r in rows for k in r)


@pytest.mark.parametrize("edit", [
    lambda d: d["rejected"][0].__setitem__("leak_score", "<svg onload=alert(1)>"),
    lambda d: d["rejected"][0].__setitem__("mean_dt_degc", "<b>2</b>"),
    lambda d: d["anomalies"][0].__setitem__("area_px", [1]),
    lambda d: d["anomalies"][0].__setitem__("centroid_crs", ["1", "2"]),
    lambda d: d["anomalies"][0].__setitem__("id", "1"),
    lambda d: d["frame"].__setitem__("height", 1e308),
    lambda d: d["frame"].__setitem__("name", {"a": 1}),
    lambda d: d["false_alarm_stage"]["verdicts"][0].__setitem__("leak_score", 1e308),
    lambda d: d.__setitem__("anomalies", {"0": {}}),
], ids=["score text", "dT html", "area list", "crs text", "id text", "height 1e308",
        "name object", "verdict 1e308", "anomalies object"])
def test_wrongly_typed_prediction_folder_is_refused_in_one_line(predicted, tmp_path, edit):
    folder = _copy(predicted, tmp_path / "earlier", edit)
    proc = taseg("report", folder, "--out", tmp_path / "rep")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert f"{STEM}.json" in lines[0] and "internal error" not in lines[0]
    assert not (tmp_path / "rep" / "report.html").exists()


def _png_header(height: int, width: int) -> bytes:
    """A valid PNG that declares height x width RGB pixels but holds one compressed row."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * (1 + 3 * width)))
            + chunk(b"IEND", b""))


def test_overlay_declaring_a_huge_canvas_is_not_decoded(predicted, tmp_path):
    folder = _copy(predicted, tmp_path / "earlier", lambda d: None)
    (folder / f"{STEM}_overlay.png").write_bytes(_png_header(20000, 20000))
    # VmHWM starts afresh at exec; ru_maxrss would keep the forking pytest worker's peak.
    code = ("import sys\n"
            "from thermal_anomaly_segmenter.cli.parser import main\n"
            f"rc = main(['report', {str(folder)!r}, '--out', {str(tmp_path / 'rep')!r}])\n"
            "with open('/proc/self/status') as fh:\n"
            "    print(next(int(l.split()[1]) for l in fh if l.startswith('VmHWM:')))\n"
            "sys.exit(rc)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    peak_kib = int(proc.stdout.strip().splitlines()[-1])
    assert peak_kib < 1_000_000, peak_kib  # 20000^2 RGB alone would be 1.1 GiB
    assert (tmp_path / "rep" / "report.html").is_file()
