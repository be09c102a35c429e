"""The inspector's list on the synthetic families: what the false-alarm stage removes, what
recall it keeps, and how well the report's order (severity, then mean dT) ranks leaks.

Protocol (held-out family, as ``benchmarks/heldout_families.py``): for each scene family
``F``, ``--frames`` seeded scenes of ``F`` are segmented by the model (its stored threshold,
specks under 4 px dropped: predict's candidates). The false-alarm stage is trained on the
*other* families only (``heldout_families.false_alarm_stage``: classical candidates, exact
leaks, distractors and the model's own components), so ``F`` stays unseen. A component is a
leak when it touches a leak label; a leak object is found when a listed component touches
it. Per family: candidates, share removed by the stage, object recall before and after,
and the ranking of the listed components across the family's frames in the report's order:
leaks and false alarms among the top k, and average precision (AP) of that order, beside
AP of the candidates ranked the same way without the stage.

    python -m benchmarks.report_ranking --work /tmp/ranking [--frames 20] [--fa-frames 8]
        [--model models/unet_mobilenetv2_synthetic]

Prints a Markdown table (and writes ``<work>/report_ranking.json``) for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402

TOP_K = (5, 10)
_ORDER = {"A": 0, "B": 1, "C": 2}


def _components(scene, segmenter, options, classifier):
    """``(candidates, listed)``: per component ``(severity, mean dT, is_leak)``, and the ids
    of the leak objects each list finds."""
    import cv2

    from thermal_anomaly_segmenter.false_alarms.apply import screen
    from thermal_anomaly_segmenter.io.frames import Frame
    from thermal_anomaly_segmenter.models.normalization import corridor_median
    from thermal_anomaly_segmenter.report.severity import DEFAULTS

    frame = Frame(data=scene.data, corridor=scene.corridor, name="s")
    median = corridor_median(frame.t_u, frame.corridor)
    prob = segmenter.probabilities([frame], options, [median])[0]
    pred = segmenter.finish(frame, prob, median, options)
    n_obj, objects = cv2.connectedComponents(scene.leak_mask.astype(np.uint8), connectivity=8)

    def describe(p, anomalies):
        rows, found = [], set()
        for a in anomalies:
            touched = set(np.unique(objects[p.labels == a.id])) - {0}
            found |= touched
            rec = {**a.to_dict(), "area_m2": a.area_px * scene.gsd_m ** 2}
            rows.append((DEFAULTS.classify(rec, p.corridor_median_degc), a.mean_dt_degc,
                         bool(touched)))
        return rows, found

    before = describe(pred, pred.anomalies)
    screened = screen(pred, classifier)
    after = describe(screened, screened.anomalies)
    return before, after, n_obj - 1


def _ranked(rows):
    return [leak for _, _, leak in sorted(rows, key=lambda r: (_ORDER[r[0]], -r[1]))]


def _average_precision(flags: list[bool], n_positive: int) -> float:
    hits, total = 0, 0.0
    for k, flag in enumerate(flags, start=1):
        if flag:
            hits += 1
            total += hits / k
    return total / n_positive if n_positive else float("nan")


def run_family(family: str, families: list[str], model: Path, work: Path, frames: int,
               fa_frames: int, seed: int, size: tuple[int, int]) -> dict:
    from benchmarks.heldout_families import false_alarm_stage
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.false_alarms.classifier import FalseAlarmClassifier
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    segmenter = Segmenter.from_folder(model, device="cpu")
    options = PredictOptions(device="cpu")
    classifier = FalseAlarmClassifier.load(
        false_alarm_stage(work, model, family, families, fa_frames, seed))
    before, after, objects, found_before, found_after = [], [], 0, 0, 0
    for i in range(frames):
        scene = make_scene(seed * 1_000 + i, *size, family=family)
        (b_rows, b_found), (a_rows, a_found), n_obj = _components(
            scene, segmenter, options, classifier)
        before += b_rows
        after += a_rows
        objects += n_obj
        found_before += len(b_found)
        found_after += len(a_found)
    listed = _ranked(after)
    candidates = _ranked(before)
    row = {
        "family": family, "frames": frames, "leak_objects": objects,
        "candidates": len(before), "listed": len(after),
        "removed_share": 1 - len(after) / len(before) if before else 0.0,
        "recall_before": found_before / objects if objects else float("nan"),
        "recall_after": found_after / objects if objects else float("nan"),
        "ap_candidates": _average_precision(candidates, sum(candidates)),
        "ap_listed": _average_precision(listed, sum(candidates)),
        "severity_counts": {s: sum(r[0] == s for r in after) for s in "ABC"},
        "leaks_in_A": sum(r[2] for r in after if r[0] == "A"),
    }
    for k in TOP_K:
        row[f"top{k}_leaks"] = sum(listed[:k])
        row[f"top{k}_false_alarms"] = len(listed[:k]) - sum(listed[:k])
        row[f"top{k}_leaks_candidates"] = sum(candidates[:k])
    return row


def table(rows: list[dict]) -> str:
    lines = ["| held-out family | leak objects | candidates | removed | object recall before "
             "-> after | top-5 leaks / FA (without stage) | top-10 leaks / FA (without stage)"
             " | AP without -> with stage | A / B / C (leaks in A) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sev = r["severity_counts"]
        lines.append(
            f"| {r['family']} | {r['leak_objects']} | {r['candidates']} | "
            f"{r['removed_share']:.0%} | {r['recall_before']:.3f} -> {r['recall_after']:.3f} | "
            f"{r['top5_leaks']} / {r['top5_false_alarms']} ({r['top5_leaks_candidates']} / "
            f"{min(5, r['candidates']) - r['top5_leaks_candidates']}) | "
            f"{r['top10_leaks']} / {r['top10_false_alarms']} ({r['top10_leaks_candidates']} / "
            f"{min(10, r['candidates']) - r['top10_leaks_candidates']}) | "
            f"{r['ap_candidates']:.3f} -> {r['ap_listed']:.3f} | "
            f"{sev['A']} / {sev['B']} / {sev['C']} ({r['leaks_in_A']}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from thermal_anomaly_segmenter.scenes import FAMILIES

    parser = argparse.ArgumentParser(prog="python -m benchmarks.report_ranking",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="working folder (classifiers cached)")
    parser.add_argument("--model", default="models/unet_mobilenetv2_synthetic")
    parser.add_argument("--frames", type=int, default=20, help="test scenes per family")
    parser.add_argument("--fa-frames", type=int, default=8,
                        help="scenes per training family of the false-alarm stage")
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 640), metavar=("H", "W"))
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = [run_family(f, list(FAMILIES), Path(args.model), work, args.frames, args.fa_frames,
                       args.seed, tuple(args.size)) for f in families]
    (work / "report_ranking.json").write_text(json.dumps(rows, indent=2))
    print(table(rows))
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
