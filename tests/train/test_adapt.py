"""``taseg adapt``: partial labels from a review, the masked loss, the survey's own stage and its
rule, the review order, bad input (one line, exit 2, nothing written) and, end to end, a
review clicked in headless Chromium -> ``taseg adapt`` -> a model folder that predicts and
reports."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "unet_mobilenetv2_synthetic"


def _taseg(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "thermal_anomaly_segmenter", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _page_data(report_html: Path) -> dict:
    html = report_html.read_text()
    text = re.search(r'id="taseg-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(text.replace("<\\/", "</"))


def _review(data: dict, decide) -> dict:
    """review.json as the page's export writes it, with ``decide(anomaly)`` per anomaly."""
    decisions = []
    for a in data["anomalies"]:
        decision = decide(a)
        if decision:
            decisions.append({"frame": a["frame"], "id": a["id"], "decision": decision,
                              "cause": {"leak": "leak", "false_alarm": "lamp"}.get(decision),
                              "bbox": a["bbox"], "polygon": a["polygon"],
                              "severity": a["severity"]})
    return {"schema": data["review_schema"], "report_id": data["report_id"],
            "frames": data["frames"], "decisions": decisions}


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> dict:
    """Three small synthetic frames (composed .npy.lz4) reported with the shipped model."""
    from thermal_anomaly_segmenter.io.formats import write_frame
    from thermal_anomaly_segmenter.report.inspector import make_report
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    root = tmp_path_factory.mktemp("adapt")
    frames = root / "frames"
    frames.mkdir()
    for i, family in enumerate(("karlsruhe_winter", "campus_mixed", "karlsruhe_winter")):
        write_frame(frames / f"g{i}.npy.lz4", make_scene(20 + i, 192, 256, family=family).data)
    make_report([frames], root / "report", model_dir=MODEL)
    data = _page_data(root / "report" / "report.html")
    assert len(data["anomalies"]) >= 3
    return {"root": root, "frames": frames, "data": data}


# --------------------------------------------------------------------------- pieces


def test_partial_label_counts_every_click(survey, tmp_path):
    from thermal_anomaly_segmenter.false_alarms.review import Review, rasterize_footprint
    from thermal_anomaly_segmenter.io.datasets import UNDECIDED_PNG

    data = survey["data"]
    # one decision on a frame that lists more than one anomaly: the rest stays undecided
    frame = max(data["frames"], key=lambda f: data["frames"][f]["anomalies"])
    listed = [a for a in data["anomalies"] if a["frame"] == frame]
    assert len(listed) >= 2
    leak = listed[0]
    path = tmp_path / "review.json"
    path.write_text(json.dumps(_review(data, lambda a: "leak" if a is leak else None)))
    review = Review.read(path)
    shape = (data["frames"][frame]["height"], data["frames"][frame]["width"])
    label = review.partial_label(frame, shape)
    footprint = rasterize_footprint({**leak, "polygon": leak["polygon"]}, shape) > 0
    assert (label[footprint] == 1).all() and footprint.sum() == leak["area_px"]
    assert set(np.unique(label[~footprint])) == {UNDECIDED_PNG}
    assert review.partial_label(next(f for f in data["frames"] if f != frame), shape) is None
    # every anomaly of the frame decided: the rest of it is background
    path.write_text(json.dumps(_review(data, lambda a: "leak" if a is leak else (
        "false_alarm" if a["frame"] == frame else None))))
    label = Review.read(path).partial_label(frame, shape)
    assert (label == 1).sum() == leak["area_px"]
    # ... except a band around the leak: its footprint's edge is the start network's guess
    from scipy import ndimage

    band = label == UNDECIDED_PNG
    radius = np.sqrt(leak["area_px"] / np.pi)
    assert band.any() and not (band & footprint).any()
    assert (ndimage.distance_transform_edt(~footprint)[band] <= radius + 1.5).all()
    assert set(np.unique(label[~band & ~footprint])) == {0}
    # seen only: background inside the decided crops, the rest of the frame never looked at
    from thermal_anomaly_segmenter.false_alarms.review import crop_window

    seen = np.zeros(shape, bool)
    for a in listed:
        seen[crop_window(a["bbox"], shape)] = True
    assert not seen.all()
    label = Review.read(path).partial_label(frame, shape, seen_only=True)
    assert (label[~seen] == UNDECIDED_PNG).all() and (label == 1).sum() == leak["area_px"]
    assert set(np.unique(label[seen & ~band & ~footprint])) == {0}
    # an outlined leak's edge is the inspector's: no band
    outlined = _review(data, lambda a: "leak" if a is leak else (
        "false_alarm" if a["frame"] == frame else None))
    x0, y0, x1, y1 = leak["bbox"]
    drawn = [[[[x0 - 3, y0 - 3], [x1 + 3, y0 - 3], [x1 + 3, y1 + 3], [x0 - 3, y1 + 3],
               [x0 - 3, y0 - 3]]]]
    next(d for d in outlined["decisions"]
         if d["id"] == leak["id"] and d["frame"] == frame)["outline"] = drawn
    path.write_text(json.dumps(outlined))
    label = Review.read(path).partial_label(frame, shape)
    assert set(np.unique(label)) == {0, 1}
    inside = ((min(x1 + 3, shape[1]) - max(x0 - 3, 0)) * (min(y1 + 3, shape[0]) - max(y0 - 3, 0)))
    assert label.sum() == inside > leak["area_px"]


def test_partial_label_is_read_with_undecided_pixels_ignored(tmp_path):
    """A 0/1/2 label PNG: 1s count as anomaly pixels, 2s read as IGNORE (also at the model's
    GSD), and evaluation scores nothing there."""
    import cv2

    from thermal_anomaly_segmenter.evaluation.evaluate import EvaluateOptions, evaluate
    from thermal_anomaly_segmenter.io.datasets import (
        IGNORE,
        UNDECIDED_PNG,
        load_split,
        read_sample,
    )
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset

    root = write_dataset(tmp_path / "ds", 1, seed=3, height=192, width=256,
                         splits=(0.0, 0.0, 1.0), sets=("manual_set",))
    [label_path] = (root / "manual_set" / "label").rglob("*.png")
    truth = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    full = evaluate(MODEL, root, "test", EvaluateOptions(device="cpu", threshold=0.05,
                                                                out_dir=tmp_path / "ev"))
    partial = np.where(truth > 0, 1, UNDECIDED_PNG).astype(np.uint8)  # only leaks decided
    cv2.imwrite(str(label_path), partial)
    [sample] = load_split(root / "manual_set", "test").samples
    assert sample.anomaly_px == int((truth > 0).sum())
    _, _, label = read_sample(sample)
    assert set(np.unique(label)) <= {1, IGNORE} and (label == 1).sum() == sample.anomaly_px
    from dataclasses import replace

    _, _, small = read_sample(replace(sample, scale=0.5))
    assert IGNORE in small and set(np.unique(small)) <= {0, 1, IGNORE}
    only_leaks = evaluate(MODEL, root, "test", EvaluateOptions(device="cpu", threshold=0.05,
                                                                out_dir=tmp_path / "ev"))
    # at a low threshold the model marks more than the leaks: false positives in the
    # undecided area are not counted, what it finds of the leaks is
    assert only_leaks["test_dataset_precision"] > full["test_dataset_precision"]
    assert only_leaks["test_dataset_recall"] == full["test_dataset_recall"]


def test_masked_loss_ignores_undecided_pixels():
    import torch

    from thermal_anomaly_segmenter.train.task import IGNORE, make_loss, masked_loss

    torch.manual_seed(0)
    target = (torch.rand(2, 1, 16, 16) > 0.7).float()
    target[:, :, :8] = IGNORE
    for name in ("Dice", "Tversky", "BCE"):
        logits = torch.randn(2, 1, 16, 16, requires_grad=True)
        loss = masked_loss(make_loss(name), logits, target)
        loss.backward()
        assert torch.isfinite(loss)
        assert float(logits.grad[:, :, :8].abs().max()) == 0.0  # nothing learnt there
        assert float(logits.grad[:, :, 8:].abs().max()) > 0.0
        other = logits.detach().clone()
        other[:, :, :8] = torch.randn(2, 1, 8, 16) * 10  # whatever it says there
        assert torch.allclose(masked_loss(make_loss(name), other, target), loss.detach())


def test_stage_rule_needs_enough_decisions_and_keeps_leaks():
    from thermal_anomaly_segmenter.false_alarms.classifier import FEATURES
    from thermal_anomaly_segmenter.train.adapt_stage import stage_decision

    rng = np.random.default_rng(0)
    few = stage_decision(rng.normal(size=(4, len(FEATURES))), ["leak", "leak", "lamp", "lamp"])
    assert not few.on and "too few" in few.reason
    # leaks and lamps far apart in feature space: the stage keeps every held-out leak
    x = np.concatenate([rng.normal(0, 0.3, (12, len(FEATURES))),
                        rng.normal(5, 0.3, (12, len(FEATURES)))])
    good = stage_decision(x, ["leak"] * 12 + ["lamp"] * 12)
    assert good.on, good.reason
    assert good.cv["leak_recall"] >= 0.95 and good.cv["false_alarms_rejected"] > 0.5
    # indistinguishable: it cannot promise to keep the leaks
    noise = stage_decision(rng.normal(size=(24, len(FEATURES))), ["leak", "lamp"] * 12)
    assert not noise.on


def test_review_order_puts_uncertain_first_and_spreads_frames():
    from thermal_anomaly_segmenter.report.review_order import review_order, uncertainty

    assert uncertainty(0.5, 0.5) == 1.0 and uncertainty(1.0, 0.5) == 0.0
    assert uncertainty(0.99, 0.5, leak_score=0.5) == 1.0
    entries = [{"frame": "a", "id": i, "probability": 0.51 + 0.01 * i, "threshold": 0.5}
               for i in range(1, 4)]
    entries += [{"frame": "b", "id": 1, "probability": 0.6, "threshold": 0.5},
                {"frame": "c", "id": 1, "probability": 0.98, "threshold": 0.5}]
    order = review_order(entries)
    assert order[0] == "a/1"
    assert order[1] == "b/1"  # a second pick of frame a waits for another frame
    assert order[-1] == "c/1"  # the surest last
    assert sorted(order) == sorted(f"{e['frame']}/{e['id']}" for e in entries)


# --------------------------------------------------------------------------- bad input


@pytest.mark.slow
def test_bad_input_is_one_line_exit_2_and_writes_nothing(survey, tmp_path):
    data, frames = survey["data"], survey["frames"]
    good = _review(data, lambda a: "leak")
    cases = {}
    cases["no decision"] = ({**good, "decisions": []}, [frames], "no leak or false-alarm")
    unsure = _review(data, lambda a: "unsure")
    cases["only unsure"] = (unsure, [frames], "no leak or false-alarm")
    other = json.loads(json.dumps(good))
    for d in other["decisions"]:
        d["frame"] = "x" + d["frame"]
    other["frames"] = {"x" + k: v for k, v in other["frames"].items()}
    cases["other frames"] = (other, [frames], "other frames")
    moved = json.loads(json.dumps(good))
    for info in moved["frames"].values():
        info["corridor_median_degc"] = (info["corridor_median_degc"] or 0) + 3.0
    cases["other report"] = (moved, [frames], "corridor median")
    decided = sorted({d["frame"] for d in good["decisions"]})
    cases["missing frame"] = (good, [frames / f"{decided[0]}.npy.lz4"], "missing")
    for i, (name, (review, inputs, problem)) in enumerate(cases.items()):
        path = tmp_path / f"review{i}.json"
        path.write_text(json.dumps(review))
        out = tmp_path / f"new{i}"
        proc = _taseg("adapt", str(path), *map(str, inputs), "--out", str(out), "--no-gpu",
                      "--model-dir", str(MODEL), cwd=tmp_path)
        assert proc.returncode == 2, (name, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and problem in lines[0], (name, lines)
        assert not out.exists() and not list(tmp_path.glob(f".new{i}*")), name
    path = tmp_path / "good.json"
    path.write_text(json.dumps(good))
    proc = _taseg("adapt", str(path), str(frames), "--out", str(tmp_path / "n"), "--max-time",
                  "0.01", cwd=tmp_path)
    assert proc.returncode == 2 and "too small to train" in proc.stderr
    assert not (tmp_path / "n").exists()
    (tmp_path / "taken").mkdir()
    proc = _taseg("adapt", str(path), str(frames), "--out", str(tmp_path / "taken"),
                  cwd=tmp_path)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert not any((tmp_path / "taken").iterdir())


# --------------------------------------------------------------------------- end to end



async def _click_and_export(ws_url: str, url: str, decisions: dict[str, str],
                            downloads: Path) -> dict:
    import aiohttp
    from headless_browser import Page

    async with aiohttp.ClientSession() as session, session.ws_connect(
            ws_url, max_msg_size=0) as ws:
        page = Page(ws)
        await page.call("Page.enable")
        await page.call("Page.setDownloadBehavior", behavior="allow",
                        downloadPath=str(downloads))
        await page.call("Page.navigate", url=url)
        await page.wait_for("document.readyState === 'complete' && "
                            "document.querySelectorAll('#review-next li').length > 0")
        queue = await page.js("Array.from(document.querySelectorAll('#review-next li button'))"
                              ".map(b => b.dataset.key)")
        for key, decision in decisions.items():
            row = f"document.querySelector('tr[data-key=\"{key}\"]')"
            if decision == "false_alarm":
                await page.js(f"{row}.querySelector('select.cause').value = 'lamp'")
            await page.js(f"{row}.querySelector('button[data-decision={decision}]').click()")
        shown = await page.js("document.getElementById('review-count').textContent")
        after = await page.js("Array.from(document.querySelectorAll('#review-next li button'))"
                              ".map(b => b.dataset.key)")
        await page.js("document.getElementById('export').click()")
        deadline = time.monotonic() + 20
        while not (downloads / "review.json").is_file() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return {"queue": queue, "after": after, "shown": shown}


@pytest.mark.slow
def test_review_clicked_in_chromium_adapts_a_model_that_reports(survey, browser, tmp_path):
    data = survey["data"]
    keys = data["review_order"]
    # the inspector follows the queue: every anomaly decided, alternating leak / false alarm
    decisions = {k: ("leak" if i % 2 == 0 else "false_alarm") for i, k in enumerate(keys)}
    decisions[keys[-1]] = "unsure"  # its frame is not fully decided: a partial label
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    page = asyncio.run(_click_and_export(
        browser, (survey["root"] / "report" / "report.html").as_uri(), decisions, downloads))
    assert page["queue"] == keys[:10]
    assert page["after"] == []  # everything decided: the queue is empty
    n_leak = sum(v == "leak" for v in decisions.values())
    assert page["shown"].startswith(f"{len(keys)} of {len(keys)} decided ({n_leak} leak, "
                                    f"{len(keys) - n_leak - 1} false alarm, 1 unsure)")
    review = downloads / "review.json"
    exported = json.loads(review.read_text())
    assert {f"{d['frame']}/{d['id']}": d["decision"] for d in exported["decisions"]} == decisions

    new = tmp_path / "new_model"
    # --min-leaks 1: fine-tune on this small review (by default 10 confirmed leaks are needed)
    proc = _taseg("adapt", str(review), str(survey["frames"]), "--out", str(new),
                  "--max-time", "1", "--no-gpu", "--model-dir", str(MODEL), "--min-leaks", "1",
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "adapted model" in proc.stdout and "more decisions would likely help" in proc.stdout
    for name in ("model.safetensors", "train_config.json", "model.onnx", "adapt.json"):
        assert (new / name).is_file(), name
    record = json.loads((new / "adapt.json").read_text())
    import hashlib

    assert record["review_sha256"] == hashlib.sha256(review.read_bytes()).hexdigest()
    assert record["report_id"] == data["report_id"]
    assert all(len(f["data_sha256"]) == 64 for f in record["frames"])
    assert record["decisions"]["leak"] == n_leak
    assert record["complete_frames"] == len({k.split("/")[0] for k in keys}) - 1
    config = json.loads((new / "train_config.json").read_text())
    assert config["calibration"]["fitted_on"]["split"] == "val"
    assert config["train_args"]["start_weights"]["source"] == str(MODEL)
    assert config["train_args"]["false_alarm_stage"] in ("on", "off")
    assert config["train_args"]["adapt"] == "adapt.json"
    assert config["train_args"]["review_sha256"] == record["review_sha256"]
    assert record["network"]["leaks"] == n_leak
    assert config["train_args"]["network"] == record["network"]["network"]

    # the new folder predicts, and taseg report uses it
    proc = _taseg("report", str(survey["frames"]), "--out", str(tmp_path / "report2"),
                  "--model-dir", str(new), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    docs = [json.loads(p.read_text()) for p in (tmp_path / "report2" / "predictions").glob(
        "*.json")]
    assert len(docs) == 3 and all(d["model"]["dir"] == str(new) for d in docs)
    assert all(d["threshold"] == config["threshold"] for d in docs)


def test_a_folder_whose_stage_adapt_switched_on_screens_by_itself(tmp_path):
    """``train_args.false_alarm_stage == "on"`` (written by adapt after cross-validation)
    turns the folder's own stage on for predict and report without --false-alarms."""
    import shutil

    from thermal_anomaly_segmenter.false_alarms.classifier import FEATURES
    from thermal_anomaly_segmenter.io.formats import write_frame
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene
    from thermal_anomaly_segmenter.train.adapt_stage import train_survey_stage

    folder = tmp_path / "model"
    shutil.copytree(MODEL, folder)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.3, (8, len(FEATURES))),
                        rng.normal(5, 0.3, (8, len(FEATURES)))])
    train_survey_stage(x, ["leak"] * 8 + ["lamp"] * 8).save(folder / "false_alarms.json")
    frame = write_frame(tmp_path / "f.npy.lz4", make_scene(5, 192, 256).data)
    off = _taseg("predict", str(frame), "--model-dir", str(folder), "--out",
                 str(tmp_path / "off"), cwd=tmp_path)
    assert off.returncode == 0, off.stderr
    assert "false_alarm_stage" not in json.loads((tmp_path / "off" / "f.json").read_text())
    config = json.loads((folder / "train_config.json").read_text())
    config["train_args"]["false_alarm_stage"] = "on"
    (folder / "train_config.json").write_text(json.dumps(config))
    on = _taseg("predict", str(frame), "--model-dir", str(folder), "--out",
                str(tmp_path / "on"), cwd=tmp_path)
    assert on.returncode == 0, on.stderr
    doc = json.loads((tmp_path / "on" / "f.json").read_text())
    assert doc["false_alarm_stage"]["classifier"].endswith("false_alarms.json")


def test_tiff_frames_with_a_corridor_folder_are_the_reviewed_frames(survey, tmp_path):
    import cv2
    import tifffile

    from thermal_anomaly_segmenter.false_alarms.review import Review
    from thermal_anomaly_segmenter.io.read import read_frame
    from thermal_anomaly_segmenter.train.adapt import AdaptOptions, resolve_frames

    tiffs, corridors = tmp_path / "tiff", tmp_path / "corridor"
    tiffs.mkdir()
    corridors.mkdir()
    for path in survey["frames"].glob("*.npy.lz4"):
        frame = read_frame(path)
        tifffile.imwrite(tiffs / f"{frame.name}.tif", frame.t_u)
        cv2.imwrite(str(corridors / f"{frame.name}.png"), frame.corridor.astype(np.uint8) * 255)
    path = tmp_path / "review.json"
    path.write_text(json.dumps(_review(survey["data"], lambda a: "leak")))
    review = Review.read(path)
    frames = resolve_frames(review, AdaptOptions(str(path), [str(tiffs)], str(tmp_path / "o"),
                                                 corridor=str(corridors)))
    assert set(frames) == {n for n in review.frames if review.firm(n)}
    for name, frame in frames.items():
        same = read_frame(survey["frames"] / f"{name}.npy.lz4")
        assert np.array_equal(frame.corridor, same.corridor)
        assert np.array_equal(frame.t_u, same.t_u)


def test_augmentation_keeps_undecided_pixels_undecided():
    """Both augmentation sites move a partial label's IGNORE pixels with the frame (nearest
    sampling) instead of blending them into leak or background."""
    import torch

    from thermal_anomaly_segmenter.models.normalization import Normalization
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene
    from thermal_anomaly_segmenter.train.augmentation import ThermalAugment
    from thermal_anomaly_segmenter.train.device_augment import DeviceAugment
    from thermal_anomaly_segmenter.train.task import IGNORE

    scene = make_scene(4, 128, 160)
    label = np.where(scene.leak_mask > 0, 1, IGNORE).astype(np.uint8)
    label[:, :40] = 0
    cpu = ThermalAugment(elastic_p=1.0, affine_p=1.0, zoom=(0.7, 1.3), zoom_p=1.0)
    for seed in range(4):
        _, out, _ = cpu(scene.data, scene.corridor, label, seed)
        assert set(np.unique(out)) <= {0, 1, IGNORE} and IGNORE in out
    dev = DeviceAugment(Normalization())
    params = np.stack([dev.draw(seed) for seed in range(4)])
    data = torch.from_numpy(np.ascontiguousarray(scene.data.transpose(2, 0, 1)))[None]
    _, out, _ = dev.augment(data.repeat(4, 1, 1, 1),
                            torch.from_numpy(label[None, None].astype(np.float32)).repeat(
                                4, 1, 1, 1),
                            torch.zeros(4, 3), params)
    assert set(torch.unique(out).tolist()) <= {0.0, 1.0, float(IGNORE)}
    assert float(IGNORE) in torch.unique(out).tolist()


def test_a_fine_tuned_network_that_lost_the_leaks_gives_way_to_the_start(survey, tmp_path):
    """The check after fine-tuning, on real networks and the survey's frames: a "fine-tuned"
    folder whose network learned to predict nothing (its last layer's bias at -20) keeps
    none of the confirmed leaks at any threshold >= MIN_THRESHOLD: collapsed, so the start
    network's weights, calibration and threshold come back. A network that keeps the leaks
    is kept, at a threshold that keeps them and is no higher than its validation's."""
    import shutil

    from safetensors.torch import load_file, save_file

    from thermal_anomaly_segmenter.false_alarms.review import Review
    from thermal_anomaly_segmenter.train.adapt import AdaptOptions, resolve_frames
    from thermal_anomaly_segmenter.train.adapt_check import (
        MIN_THRESHOLD,
        apply_verdict,
        decision_scores,
        judge,
    )

    data = survey["data"]
    first = data["anomalies"][0]
    path = tmp_path / "review.json"
    path.write_text(json.dumps(_review(data, lambda a: "leak" if a is first
                                       else "false_alarm")))
    review = Review.read(path)
    frames = resolve_frames(review, AdaptOptions(str(path), [str(survey["frames"])],
                                                 str(tmp_path / "unused")))
    dead = tmp_path / "dead"
    shutil.copytree(MODEL, dead, ignore=shutil.ignore_patterns("model.onnx*"))
    state = load_file(str(dead / "model.safetensors"))
    state["net.segmentation_head.0.weight"].zero_()
    state["net.segmentation_head.0.bias"].fill_(-20.0)
    save_file(state, str(dead / "model.safetensors"), metadata={"format": "pt"})
    start_config = json.loads((MODEL / "train_config.json").read_text())
    fine_tuned = {**start_config, "gsd_m": None, "threshold": 0.5}  # reviewed without GSDs
    (dead / "train_config.json").write_text(json.dumps(fine_tuned))

    start = decision_scores(MODEL, review, frames)
    assert start.leaks.size == 1 and start.false_alarms.size == len(data["anomalies"]) - 1
    # the start network reported every one of them: all above its threshold
    assert start.tally(start_config["threshold"]) == (1, 0)
    verdict = judge(decision_scores(dead, review, frames), 0.5, start_config["threshold"])
    assert not verdict.fine_tuned_kept and "collapsed" in verdict.reason
    assert verdict.adapted == (0, start.false_alarms.size)
    apply_verdict(dead, MODEL, verdict)
    config = json.loads((dead / "train_config.json").read_text())
    assert config["train_args"]["network"] == "start"
    for key in ("threshold", "calibration", "gsd_m", "normalization", "input_size"):
        assert config[key] == start_config[key], key
    np.testing.assert_array_equal(decision_scores(dead, review, frames).leaks, start.leaks)

    kept = judge(start, 0.9, start_config["threshold"])
    assert kept.fine_tuned_kept and kept.adapted[0] == 1
    assert MIN_THRESHOLD <= kept.threshold <= min(0.9, float(start.leaks[0]))


def test_too_few_confirmed_leaks_keep_the_start_network_without_training(survey, tmp_path):
    """Under --min-leaks confirmed leaks the network is not fine-tuned (a few positives teach
    it to predict nothing): the folder holds the start network's weights and threshold, its
    record says why, and the run takes no training time."""
    from safetensors.torch import load_file

    data = survey["data"]
    first = data["anomalies"][0]
    review = tmp_path / "review.json"
    review.write_text(json.dumps(_review(data, lambda a: "leak" if a is first
                                         else "false_alarm")))
    new = tmp_path / "new"
    proc = _taseg("adapt", str(review), str(survey["frames"]), "--out", str(new),
                  "--no-gpu", "--model-dir", str(MODEL), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((new / "adapt.json").read_text())
    assert record["network"]["network"] == "start" and "1 confirmed leak" in \
        record["network"]["reason"]
    assert any("keeps the start network" in h for h in record["hints"])
    assert "network: start" in proc.stdout
    assert record["seconds"] < 120  # no fine-tuning within the 15-minute default budget
    ours, theirs = load_file(str(new / "model.safetensors")), load_file(
        str(MODEL / "model.safetensors"))
    assert ours.keys() == theirs.keys() and all(ours[k].equal(theirs[k]) for k in ours)
    config = json.loads((new / "train_config.json").read_text())
    start = json.loads((MODEL / "train_config.json").read_text())
    assert config["threshold"] == start["threshold"] and (new / "model.onnx").is_file()
    bad = _taseg("adapt", str(review), str(survey["frames"]), "--out", str(tmp_path / "x"),
                 "--min-leaks", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--min-leaks" in bad.stderr and not (tmp_path / "x").exists()
    bad = _taseg("adapt", str(review), str(survey["frames"]), "--out", str(tmp_path / "x"),
                 "--extent-band", "-1", cwd=tmp_path)
    assert bad.returncode == 2 and "--extent-band" in bad.stderr and len(
        bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_crop_window_outside_the_frame_is_empty():
    """A box left of or above the frame (an added leak's outline may lie there) shows no
    frame pixel: a negative slice end would otherwise count from the far edge."""
    from thermal_anomaly_segmenter.false_alarms.review import crop_window

    frame = np.zeros((64, 80), bool)
    for box, inside in (([-40, -40, -30, -30], 0), ([-500, -500, -490, -490], 0),
                        ([1000, 10, 1010, 20], 0), ([10, 10, 20, 20], 37 * 37),
                        ([-5, -5, 3, 3], 19 * 19)):
        frame[:] = False
        frame[crop_window(box, frame.shape)] = True
        assert frame.sum() == inside, box
