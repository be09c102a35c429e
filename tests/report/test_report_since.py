"""``taseg report NEW --previous OLD``: status since the last survey, old crops, totals per
status, the status filter in headless Chromium, and the ranking rule.

Two generated nights of one scene (``benchmarks/compare_pairs.py``) go through the real
default model (``taseg predict --pipes``); the report reads the second night's folder.
"""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest

pytest.importorskip("rasterio")

from benchmarks.compare_pairs import make_pair  # noqa: E402
from thermal_anomaly_segmenter.cli.parser import main  # noqa: E402
from thermal_anomaly_segmenter.report.severity import SINCE_ORDER, SINCE_RULE  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "unet_mobilenetv2_synthetic"


def _predict(pair, ortho: Path, out: Path, *extra: str) -> Path:
    code = main(["predict", str(ortho), "--pipes", str(pair.pipes), "--out", str(out), "-q",
                 "--model-dir", str(MODEL), *extra])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("since")
    pair = make_pair(folder / "pair", "karlsruhe_winter", 1, shift_m=1.5)
    return {"pair": pair, "old": _predict(pair, pair.old, folder / "old"),
            "new": _predict(pair, pair.new, folder / "new"),
            "old_bare": _predict(pair, pair.old, folder / "old_bare", "--outputs", "gpkg,json"),
            "folder": folder}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_report_ranks_and_lists_statuses_since_the_last_survey(nights, capsys) -> None:
    out = nights["folder"] / "rep"
    code = main(["report", str(nights["new"]), "--previous", str(nights["old"]), "--out",
                 str(out)])
    text = capsys.readouterr()
    assert code == 0, text.err
    assert "since the last survey: 1 grown, 1 stable, 0 shrunk, 1 new, 1 gone" in text.out
    rows = _rows(out / "anomalies.csv")
    assert sorted(r["since_last_survey"] for r in rows) == ["grown", "new", "stable"]
    assert all(r["old_id"].startswith("night1:") for r in rows if r["since_last_survey"] != "new")
    # within a class a persisting or grown anomaly ranks above a new one, dT comes after
    keys = [("ABC".index(r["severity"]), SINCE_ORDER[r["since_last_survey"]]) for r in rows]
    assert keys == sorted(keys)
    new = next(r for r in rows if r["since_last_survey"] == "new")
    assert any(float(r["mean_dt_degc"]) < float(new["mean_dt_degc"])
               and int(r["rank"]) < int(new["rank"]) for r in rows)  # the rule made a difference
    html = (out / "report.html").read_text()
    assert SINCE_RULE in html and 'id="totals-since"' in html and 'id="since-filter"' in html
    assert html.count('class="crop old-crop"><img') == 2  # grown and stable: old crop beside

    # the previous survey without overlays: said so, no old crop
    out2 = nights["folder"] / "rep_bare"
    assert main(["report", str(nights["new"]), "--previous", str(nights["old_bare"]),
                 "--out", str(out2)]) == 0
    html = (out2 / "report.html").read_text()
    assert "none (the previous survey has no overlay)" in html and "old-crop\"><img" not in html
    # the GeoPackage of the previous survey works as well as its folder
    out3 = nights["folder"] / "rep_gpkg"
    assert main(["report", str(nights["new"]), "--previous",
                 str(nights["old"] / "night1.gpkg"), "--out", str(out3)]) == 0
    assert [r["since_last_survey"] for r in _rows(out3 / "anomalies.csv")] == \
        [r["since_last_survey"] for r in rows]


def test_bad_previous_is_refused_before_predicting(nights, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.gpkg"
    bad.write_text("no")
    code = main(["report", str(nights["pair"].new), "--pipes", str(nights["pair"].pipes),
                 "--previous", str(bad), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "not a GeoPackage" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "predictions").exists()
    code = main(["report", str(nights["new"]), "--tolerance", "3", "--out", str(tmp_path / "s")])
    assert code == 2 and "--tolerance needs --previous" in capsys.readouterr().err



@pytest.mark.slow
def test_status_filter_and_totals_in_chromium(nights, browser) -> None:
    import aiohttp
    from headless_browser import Page

    out = nights["folder"] / "rep_browser"
    assert main(["report", str(nights["new"]), "--previous", str(nights["old"]), "--out",
                 str(out)]) == 0
    url = (out / "report.html").as_uri()

    async def body(page):
        await page.call("Runtime.enable")
        await page.call("Page.enable")
        await page.call("Page.navigate", url=url)
        await page.wait_for("document.readyState === 'complete' && "
                            "!!document.getElementById('since-filter')")
        visible = ("Array.from(document.querySelectorAll('#anomalies tbody tr'))"
                   ".filter(tr => !tr.hidden).map(tr => tr.dataset.since)")
        shown = {"": await page.js(visible)}
        for status in ("new", "grown", "stable"):
            await page.js(f"(() => {{const s = document.getElementById('since-filter'); "
                          f"s.value = '{status}'; s.dispatchEvent(new Event('change'));}})()")
            shown[status] = await page.js(visible)
        totals = await page.js("Object.fromEntries(Array.from(document.querySelectorAll("
                               "'#totals-since td[data-status]')).map(td => "
                               "[td.dataset.status, td.textContent]))")
        old_crops = await page.js("Array.from(document.querySelectorAll('td.old-crop img'))"
                                  ".filter(i => i.complete && i.naturalWidth > 0).length")
        return shown, totals, old_crops, page.events

    async def session():
        async with aiohttp.ClientSession() as s, s.ws_connect(browser, max_msg_size=0) as ws:
            return await body(Page(ws))

    shown, totals, old_crops, events = asyncio.run(session())
    assert sorted(shown[""]) == ["grown", "new", "stable"]
    for status in ("new", "grown", "stable"):
        assert shown[status] == [status]
    assert totals == {"grown": "1", "stable": "1", "shrunk": "0", "new": "1", "gone": "1"}
    assert old_crops == 2
    assert not [e for e in events if e["method"] == "Runtime.exceptionThrown"]
