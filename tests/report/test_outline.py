"""An inspector outlines a leak on its crop in report.html: the crop's mapping to frame pixels
points at the overlay's own pixels, and in headless Chromium the clicks on a crop come out of
the page's export as the decision's polygon in frame pixel corners, around the anomaly, which
``Review.read`` accepts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from headless_browser import in_page, open_report

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "unet_mobilenetv2_synthetic"
HEIGHT, WIDTH = 192, 256


@pytest.fixture(scope="module")
def report(one_frame_report) -> dict:
    data = one_frame_report["data"]
    assert len(data["anomalies"]) >= 2 and all(a["crop_frame"] for a in data["anomalies"])
    return one_frame_report


def test_crop_pixels_map_onto_the_overlay_pixels_they_show(report):
    """Through ``crop_frame`` a crop pixel lands on the frame pixel whose overlay pixel
    (``overlay_geometry``: frame x at overlay ``x * sx``) it shows: the anomalies' green
    outlines of the crop fall on green outlines of the whole overlay."""
    from thermal_anomaly_segmenter.outputs.overlay import ANOMALY_RGB, overlay_geometry

    overlay = cv2.imread(str(report["root"] / "report" / "predictions" / "g0_overlay.png"))
    overlay = cv2.cvtColor(overlay, cv2.COLOR_BGR2RGB)
    sx, sy, top, canvas = overlay_geometry(HEIGHT, WIDTH)
    assert overlay.shape[:2] == tuple(canvas)
    green_overlay = (overlay == ANOMALY_RGB).all(-1)
    by_key = {f"{a['frame']}/{a['id']}": a for a in report["data"]["anomalies"]}
    for item in report["survey"].items:
        x0, y0, kx, ky = by_key[f"{item.frame}/{item.id}"]["crop_frame"]
        assert [x0, y0, kx, ky] == item.crop_frame
        crop = cv2.cvtColor(cv2.imdecode(np.frombuffer(item.crop_png, np.uint8),
                                         cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        v, u = np.nonzero((crop == ANOMALY_RGB).all(-1))
        assert len(u) > 20
        fx, fy = x0 + (u + 0.5) * kx, y0 + (v + 0.5) * ky  # crop pixel centres, in the frame
        ox = np.clip((fx * sx).astype(int), 0, canvas[1] - 1)
        oy = np.clip((top + fy * sy).astype(int), 0, canvas[0] - 1)
        # nearest-neighbour rounding may land one overlay pixel beside a thin line
        near = cv2.dilate(green_overlay.view(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert near[oy, ox].mean() > 0.97, item.id
        # and the anomaly lies inside its crop
        h, w = crop.shape[:2]
        assert 0 < (item.x + 0.5 - x0) / kx < w and 0 < (item.y + 0.5 - y0) / ky < h




async def _click_at(page, x: float, y: float) -> None:
    for kind in ("mousePressed", "mouseReleased"):
        await page.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                        clickCount=1)


async def _outline(page, key: str, crop_points: list[tuple[int, int]], done: bool = True):
    """Press outline on ``key``'s row, click ``crop_points`` (crop pixels) with real mouse
    events, press done; the crop's size on the page and the draft's vertex count."""
    row = f"document.querySelector('tr[data-key=\"{key}\"]')"
    await page.js(f"{row}.querySelector('button[data-outline=start]').click()")
    await page.js(f"{row}.scrollIntoView({{block: 'center', inline: 'center'}})")
    rect = await page.js(f"(() => {{const i = {row}.querySelector('.crop-box img');"
                         "const r = i.getBoundingClientRect(); return [r.left, r.top, r.width,"
                         " r.height, i.naturalWidth, i.naturalHeight];})()")
    left, top, width, height, natural_w, natural_h = rect
    for u, v in crop_points:
        await _click_at(page, left + (u + 0.5) * width / natural_w,
                        top + (v + 0.5) * height / natural_h)
    drawn = await page.js(f"{row}.querySelectorAll('.crop-box svg circle').length")
    if done:
        await page.js(f"{row}.querySelector('button[data-outline=done]').click()")
    return drawn


@pytest.mark.slow
def test_outline_clicked_on_a_crop_is_exported_in_frame_pixels(report, browser, tmp_path):
    from thermal_anomaly_segmenter.false_alarms.review import (
        Review,
        leak_extent,
        rasterize_footprint,
    )

    data = report["data"]
    first, second = data["anomalies"][:2]
    key, other = f"{first['frame']}/{first['id']}", f"{second['frame']}/{second['id']}"
    x0, y0, kx, ky = first["crop_frame"]
    # around the anomaly's box, 3 frame pixels out: six vertices, in crop pixels
    bx0, by0, bx1, by1 = first["bbox"]
    frame_pts = [(bx0 - 3, by0 - 3), ((bx0 + bx1) / 2, by0 - 4), (bx1 + 3, by0 - 3),
                 (bx1 + 3, by1 + 3), ((bx0 + bx1) / 2, by1 + 4), (bx0 - 3, by1 + 3)]
    clicks = [(round((x - x0) / kx), round((y - y0) / ky)) for x, y in frame_pts]

    async def body(page):
        await open_report(page, report["url"], width=2400)  # every crop must fit
        out = {"drawn": await _outline(page, key, clicks)}
        out["count"] = await page.js("document.getElementById('review-count').textContent")
        out["review"] = await page.js("window.tasegReview()")
        out["stored"] = await page.js("Object.keys(localStorage).map(k => "
                                      "JSON.parse(localStorage.getItem(k)))")
        out["shown"] = await page.js(f"document.querySelectorAll('tr[data-key=\"{key}\"] "
                                     ".crop-box svg polygon').length")
        # two clicks are no outline: done ignores them (the row is still confirmed a leak)
        await _outline(page, other, clicks[:2])
        out["short"] = await page.js("window.tasegReview()")
        await page.js(f"document.querySelector('tr[data-key=\"{other}\"] "
                      "button[data-decision=unsure]').click()")
        # clear outline, and a false alarm, each drop an outline
        await _outline(page, other, clicks[:4])
        out["other"] = await page.js("window.tasegReview()")
        await page.js(f"document.querySelector('tr[data-key=\"{other}\"] "
                      "button[data-outline=clear]').click()")
        out["cleared"] = await page.js("window.tasegReview()")
        await page.js(f"document.querySelector('tr[data-key=\"{key}\"] "
                      "button[data-decision=false_alarm]').click()")
        out["false_alarm"] = await page.js("window.tasegReview()")
        out["errors"] = [e for e in page.events if e["method"] == "Runtime.exceptionThrown"]
        return out

    out = asyncio.run(in_page(browser, body))
    assert not out["errors"], out["errors"]
    assert out["drawn"] == len(clicks)
    assert out["shown"] == 1  # the closed outline is drawn over the crop
    assert out["count"].endswith("(1 leak, 0 false alarm, 0 unsure), 1 leak outlined, "
                                "0 missed leaks added")
    [d] = out["review"]["decisions"]
    assert (d["frame"], d["id"], d["decision"], d["cause"]) == (first["frame"], first["id"],
                                                                 "leak", "leak")
    assert d["polygon"] == first["polygon"]  # the network's footprint stays beside it
    assert len(d["outline"]) == 1 and len(d["outline"][0]) == 1
    ring = d["outline"][0][0]
    assert len(ring) == len(clicks) + 1 and ring[0] == ring[-1]
    for (x, y), (u, v) in zip(ring, clicks, strict=False):
        assert x == round(x, 2) and y == round(y, 2)
        # frame pixel corners, back through the page's mapping onto the clicked crop pixels
        # (within the one CSS pixel a mouse event's integer position may round off)
        assert abs((x - x0) / kx - (u + 0.5)) <= 1.01 and abs((y - y0) / ky - (v + 0.5)) <= 1.01
    outline = rasterize_footprint({**d, "polygon": d["outline"]}, (HEIGHT, WIDTH))
    network = rasterize_footprint(d, (HEIGHT, WIDTH))
    assert (outline & network).sum() >= 0.95 * network.sum()  # it lies around the anomaly
    box = (bx1 - bx0 + 6) * (by1 - by0 + 6)
    assert network.sum() < outline.sum() <= 1.3 * box
    ys, xs = np.nonzero(outline)
    assert abs(xs.mean() + 0.5 - first["x"]) < 0.25 * (bx1 - bx0) + 2
    assert abs(ys.mean() + 0.5 - first["y"]) < 0.25 * (by1 - by0) + 2

    [stored] = out["stored"]  # kept with the decisions, as the export closes it
    assert stored[key]["outline"] == ring[:-1]

    path = tmp_path / "review.json"
    path.write_text(json.dumps(out["review"]))
    review = Review.read(path)
    assert review.decisions[first["frame"]][0]["outline"] == d["outline"]
    assert (leak_extent(review.decisions[first["frame"]][0], (HEIGHT, WIDTH))
            == outline.astype(bool)).all()

    short = {x["id"]: x for x in out["short"]["decisions"]}
    assert short[second["id"]]["decision"] == "leak" and "outline" not in short[second["id"]]
    assert short[second["id"]]["polygon"] == second["polygon"]  # as exported without outline
    other = {x["id"]: x for x in out["other"]["decisions"]}
    assert other[second["id"]]["decision"] == "leak"  # outline on an unsure row: a leak
    assert other[second["id"]]["outline"]
    cleared = {x["id"]: x for x in out["cleared"]["decisions"]}
    assert "outline" not in cleared[second["id"]]
    assert cleared[second["id"]]["polygon"] == second["polygon"]
    dropped = {x["id"]: x for x in out["false_alarm"]["decisions"]}
    assert dropped[first["id"]]["decision"] == "false_alarm"
    assert "outline" not in dropped[first["id"]]
    assert dropped[first["id"]]["polygon"] == first["polygon"]


def test_review_with_an_outline_is_read(report, tmp_path):
    """An ``outline`` on a leak beside its polygon is accepted as the exporter writes it."""
    from thermal_anomaly_segmenter.false_alarms.review import Review

    data = report["data"]
    a = data["anomalies"][0]
    ring = [[a["bbox"][0] - 2, a["bbox"][1] - 2], [a["bbox"][2] + 2, a["bbox"][1] - 2],
            [a["bbox"][2] + 2, a["bbox"][3] + 2], [a["bbox"][0] - 2, a["bbox"][1] - 2]]
    path = tmp_path / "review.json"
    path.write_text(json.dumps({
        "schema": data["review_schema"], "report_id": data["report_id"],
        "frames": data["frames"], "decisions": [
            {"frame": a["frame"], "id": a["id"], "decision": "leak", "cause": "leak",
             "bbox": a["bbox"], "polygon": a["polygon"], "outline": [[ring]]}]}))
    assert Review.read(path).decisions[a["frame"]][0]["outline"] == [[ring]]
