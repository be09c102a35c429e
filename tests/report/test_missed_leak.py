"""An inspector adds a leak the report did not list: in headless Chromium the clicks on a whole
frame's view come out of the page's export as an ``added`` decision whose outline, in frame
pixel corners, maps back through the page's ``frame_views`` onto the clicked image pixels;
``Review.read`` accepts it and the labels ``taseg adapt`` learns from hold it as a leak."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import pytest
from headless_browser import in_page, open_report

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "unet_mobilenetv2_synthetic"
HEIGHT, WIDTH = 192, 256


@pytest.fixture(scope="module")
def report(one_frame_report) -> dict:
    assert one_frame_report["data"]["anomalies"]
    return one_frame_report


def test_frame_view_is_the_overlay_at_the_frames_own_size(report):
    """The Frames section shows the frame's overlay (no title) at most at the frame's own
    size, as JPEG, and its mapping is image pixel -> frame pixel."""
    import cv2

    from thermal_anomaly_segmenter.outputs.overlay import overlay_geometry

    [frame] = report["survey"].frames
    view = cv2.imdecode(np.frombuffer(frame.view_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert frame.view_jpeg[:2] == b"\xff\xd8" and len(frame.view_jpeg) < 40_000
    assert view.shape[0] <= HEIGHT and view.shape[1] <= WIDTH
    x0, y0, kx, ky = report["data"]["frame_views"]["g0"]
    assert (x0, y0) == (0, 0)
    assert view.shape[1] * kx == pytest.approx(WIDTH)
    assert view.shape[0] * ky == pytest.approx(HEIGHT)
    # the view is the overlay's frame part: downscaled, its pixels are the view's
    sx, sy, top, _ = overlay_geometry(HEIGHT, WIDTH)
    overlay = cv2.imread(str(report["root"] / "report" / "predictions" / "g0_overlay.png"))
    part = overlay[top:top + round(HEIGHT * sy), :round(WIDTH * sx)]
    small = cv2.resize(part, view.shape[1::-1], interpolation=cv2.INTER_AREA)
    error = np.abs(small.astype(int) - view.astype(int)).mean()
    shifted = np.abs(np.roll(small, 3, axis=(0, 1)).astype(int) - view.astype(int)).mean()
    assert error < 10 and error < 0.5 * shifted  # JPEG's loss only, in place
    assert 'data-frame="g0"' in report["html"] and "add missed leak" in report["html"]




async def _add(page, frame: str, points: list[tuple[int, int]], done: bool = True) -> int:
    """Press *add missed leak* on ``frame``, click ``points`` (view image pixels) with real
    mouse events, press *done*; the draft's vertex count."""
    div = f"document.querySelector('#frames .frame[data-frame=\"{frame}\"]')"
    await page.js(f"{div}.querySelector('button[data-add=start]').click()")
    await page.js(f"{div}.scrollIntoView({{block: 'center', inline: 'center'}})")
    left, top, width, height, natural_w, natural_h = await page.js(
        f"(() => {{const i = {div}.querySelector('.frame-box img');"
        "const r = i.getBoundingClientRect(); return [r.left, r.top, r.width, r.height, "
        "i.naturalWidth, i.naturalHeight];})()")
    for u, v in points:
        for kind in ("mousePressed", "mouseReleased"):
            await page.call("Input.dispatchMouseEvent", type=kind, button="left",
                            clickCount=1, x=left + (u + 0.5) * width / natural_w,
                            y=top + (v + 0.5) * height / natural_h)
    drawn = await page.js(f"{div}.querySelectorAll('.frame-box svg circle').length")
    if done:
        await page.js(f"{div}.querySelector('button[data-add=done]').click()")
    return drawn


@pytest.mark.slow
def test_missed_leak_added_on_a_frame_is_exported_and_learned(report, browser, tmp_path):
    from thermal_anomaly_segmenter.false_alarms.review import Review, leak_extent
    from thermal_anomaly_segmenter.io.datasets import UNDECIDED_PNG

    data = report["data"]
    x0, y0, kx, ky = data["frame_views"]["g0"]
    clicks = [(20, 150), (60, 140), (70, 175), (40, 185), (15, 170)]  # view image pixels
    listed = [f"{a['frame']}/{a['id']}" for a in data["anomalies"] if a["frame"] == "g0"]

    async def body(page):
        await open_report(page, report["url"])
        out = {"drawn": await _add(page, "g0", clicks)}
        out["short"] = await _add(page, "g0", clicks[:2])  # two points: no leak
        await _add(page, "g0", clicks[1:4])  # a second one, then removed
        out["two"] = await page.js("window.tasegReview().decisions.length")
        await page.js("document.querySelector('#frames button[data-remove=\"g0/added-2\"]')"
                      ".click()")
        out["shown"] = await page.js("document.querySelectorAll('#frames .frame-box svg "
                                     "polygon').length")
        for key in listed:  # every listed anomaly decided: the frame is complete
            await page.js(f"document.querySelector('tr[data-key=\"{key}\"] "
                          "button[data-decision=false_alarm]').click()")
        out["count"] = await page.js("document.getElementById('review-count').textContent")
        out["review"] = await page.js("window.tasegReview()")
        out["stored"] = await page.js("Object.keys(localStorage).map(k => "
                                      "JSON.parse(localStorage.getItem(k)))")
        out["errors"] = [e for e in page.events if e["method"] == "Runtime.exceptionThrown"]
        return out

    out = asyncio.run(in_page(browser, body))
    assert not out["errors"], out["errors"]
    assert out["drawn"] == len(clicks) and out["short"] == 2
    assert out["two"] == 2 and out["shown"] == 1
    assert out["count"].endswith(", 1 missed leak added"), out["count"]
    added = [d for d in out["review"]["decisions"] if d.get("added")]
    [d] = added
    assert {k: d[k] for k in ("frame", "id", "decision", "cause", "added")} == {
        "frame": "g0", "id": "added-1", "decision": "leak", "cause": "leak", "added": True}
    assert "polygon" not in d and "bbox" not in d
    ring = d["outline"][0][0]
    assert len(d["outline"]) == 1 and len(ring) == len(clicks) + 1 and ring[0] == ring[-1]
    for (x, y), (u, v) in zip(ring, clicks, strict=False):
        # back through the page's mapping onto the clicked image pixels (a mouse event's
        # integer position may round off one CSS pixel: half an image pixel at 2x)
        assert abs((x - x0) / kx - (u + 0.5)) <= 1.01 and abs((y - y0) / ky - (v + 0.5)) <= 1.01
    [stored] = out["stored"]  # kept with the decisions
    assert stored["g0/added-1"]["outline"] == ring[:-1]

    path = tmp_path / "review.json"
    path.write_text(json.dumps(out["review"]))
    review = Review.read(path)
    assert review.complete("g0")  # the added leak is no listed anomaly
    inside = leak_extent(d, (HEIGHT, WIDTH))
    assert 600 < inside.sum() < 2000  # the clicked pentagon, ~1100 frame pixels
    partial = review.partial_label("g0", (HEIGHT, WIDTH))
    label = review.label("g0", (HEIGHT, WIDTH))
    assert (partial[inside] == 1).all() and (label[inside] == 1).all()
    assert not (partial == UNDECIDED_PNG).any()  # no band round an outlined leak
    seen = review.partial_label("g0", (HEIGHT, WIDTH), seen_only=True)
    assert (seen[inside] == 1).all()


def test_added_leak_is_no_component_and_no_listed_anomaly(tmp_path):
    """An added leak teaches the labels but not the false-alarm stage, and does not stand in
    for a listed anomaly's decision."""
    from thermal_anomaly_segmenter.false_alarms.review import Review, component_examples

    square = [[[[10, 10], [20, 10], [20, 20], [10, 20], [10, 10]]]]
    other = [[[[40, 40], [50, 40], [50, 50], [40, 50], [40, 40]]]]
    doc = {"schema": "taseg.review/1",
           "frames": {"f0": {"anomalies": 1, "height": 64, "width": 80}},
           "decisions": [{"frame": "f0", "id": "added-1", "decision": "leak", "cause": "leak",
                          "added": True, "outline": other}]}
    path = tmp_path / "review.json"
    path.write_text(json.dumps(doc))
    review = Review.read(path)
    assert not review.complete("f0")
    assert review.label("f0", (64, 80)) is None
    t_u = np.zeros((64, 80), np.float32)
    assert component_examples(review, "f0", t_u, np.ones_like(t_u, bool)) == []
    doc["decisions"].append({"frame": "f0", "id": 1, "decision": "false_alarm",
                             "cause": "lamp", "polygon": square})
    path.write_text(json.dumps(doc))
    review = Review.read(path)
    assert review.complete("f0")
    assert [e["id"] for e in component_examples(review, "f0", t_u,
                                                np.ones_like(t_u, bool))] == [1]
    label = review.label("f0", (64, 80))
    assert label[40:50, 40:50].all() and not label[10:20, 10:20].any()


@pytest.fixture(scope="module")
def tiff_survey(tmp_path_factory) -> dict:
    """One synthetic TIFF frame with its corridor, reported with the shipped model, and a
    review as the page exports it: the first listed anomaly a leak, the others false alarms,
    and one leak added where the report listed none."""
    import cv2
    import tifffile

    from thermal_anomaly_segmenter.report.inspector import make_report
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    root = tmp_path_factory.mktemp("added")
    for name in ("tiffs", "corridors"):
        (root / name).mkdir()
    scene = make_scene(7, HEIGHT, WIDTH, family="karlsruhe_winter")
    tifffile.imwrite(root / "tiffs" / "f0.tif", scene.t_u.astype(np.float32))
    cv2.imwrite(str(root / "corridors" / "f0.png"), scene.corridor.astype(np.uint8) * 255)
    make_report([root / "tiffs" / "f0.tif"], root / "report", model_dir=MODEL,
                corridor=root / "corridors" / "f0.png")
    html = (root / "report" / "report.html").read_text()
    data = json.loads(re.search(r'id="taseg-data">(.*?)</script>', html, re.S).group(1))
    assert len(data["anomalies"]) >= 2
    decisions = [{"frame": a["frame"], "id": a["id"], "bbox": a["bbox"],
                  "polygon": a["polygon"], "severity": a["severity"],
                  **({"decision": "leak", "cause": "leak"} if k == 0 else
                     {"decision": "false_alarm", "cause": "lamp"})}
                 for k, a in enumerate(data["anomalies"])]
    ring = [[4, 4], [30, 4], [30, 24], [4, 24], [4, 4]]  # a corner no listed anomaly is in
    assert all(a["bbox"][0] > 30 or a["bbox"][1] > 24 for a in data["anomalies"])
    decisions.append({"frame": "f0", "id": "added-1", "decision": "leak", "cause": "leak",
                      "added": True, "outline": [[ring]]})
    review = root / "review.json"
    review.write_text(json.dumps({"schema": data["review_schema"],
                                  "report_id": data["report_id"], "frames": data["frames"],
                                  "decisions": decisions}))
    return {"root": root, "data": data, "review": review}


@pytest.mark.slow
def test_build_dataset_and_adapt_take_a_review_with_an_added_leak(tiff_survey, tmp_path):
    """``taseg build-dataset --review`` labels the added leak and keeps no stage example of
    it; ``taseg adapt`` runs on it and scores only the listed anomalies for its threshold."""
    import subprocess
    import sys

    from thermal_anomaly_segmenter.datasets.builder import BuildOptions, build_dataset
    from thermal_anomaly_segmenter.false_alarms.review import Review, read_examples
    from thermal_anomaly_segmenter.io.datasets import read_label_mask
    from thermal_anomaly_segmenter.io.read import read_frame
    from thermal_anomaly_segmenter.train.adapt_check import decision_scores

    root, data = tiff_survey["root"], tiff_survey["data"]
    report = build_dataset(root / "tiffs", root / "corridors", tmp_path / "ds", BuildOptions(
        review=tiff_survey["review"], splits=(1.0, 0.0, 0.0), previews=False))
    assert report.reviewed_frames == ["f0"]
    label = read_label_mask(tmp_path / "ds" / "manual_set" / "label" / "survey_train" / "f0.png")
    assert label[4:24, 4:30].all()  # the added leak, pixel corners (4, 4)-(30, 24)
    assert int(label.sum()) == 26 * 20 + data["anomalies"][0]["area_px"]
    _, causes = read_examples(tmp_path / "ds")
    assert sorted(causes) == sorted(["leak"] + ["lamp"] * (len(data["anomalies"]) - 1))

    review = Review.read(tiff_survey["review"])
    frame = read_frame(root / "tiffs" / "f0.tif", root / "corridors" / "f0.png", name="f0")
    scores = decision_scores(MODEL, review, {"f0": frame})
    assert (scores.leaks.size, scores.false_alarms.size) == (1, len(data["anomalies"]) - 1)

    new = tmp_path / "new"
    proc = subprocess.run(
        [sys.executable, "-m", "thermal_anomaly_segmenter", "adapt", str(tiff_survey["review"]),
         str(root / "tiffs"), "--corridor", str(root / "corridors"), "--out", str(new),
         "--no-gpu", "--model-dir", str(MODEL)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((new / "adapt.json").read_text())
    assert record["decisions"]["leak"] == 2  # the listed leak and the added one
    assert record["network"]["network"] == "start"  # 2 leaks: under --min-leaks
