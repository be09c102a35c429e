"""Label efficiency of ``taseg adapt``: decisions made against quality on a held-out family.

Protocol, per held-out family (training generator, ``heldout.second_generator`` and
``heldout.third_generator``; see :mod:`benchmarks.heldout_families`):

1. a *pool* of frames the inspector reviews (seeded, disjoint from the test seeds) and the
   family's test set (:func:`benchmarks.heldout_families.test_set`);
2. ``taseg report`` of the pool with the start model (the shipped default): its page data
   gives the anomalies, their footprints and the review order;
3. a simulated inspector follows the report's "review next" order and decides each anomaly
   from the ground truth: ``leak`` where its footprint touches a labelled leak, else
   ``false_alarm``. Its cause is ``other``: the written sets keep no distractor instance
   maps, so the cause classes of the scenes are not recoverable from them (the stage is
   trained on leak against not-leak either way);
4. for each budget of decisions (25/50/100/200 by default) the first N decisions become a
   review.json and ``taseg adapt`` runs on it (``--max-time`` per round), then the adapted
   folder is scored on the test set (with its own false-alarm stage where adapt switched it
   on); the survey's stage (trained on the same decisions) is also scored alone (start
   network + stage) and with the fine-tuned network, whatever adapt's cross-validation said;
5. side by side, *painting full masks on the same frames*: the frames the N decisions
   touched, with their full ground-truth labels, fine-tune the same start model with the
   same budget (``taseg train --train-phases fine_tune``), scored the same way.

    python -m benchmarks.label_efficiency --work /tmp/le --families rural_coarse
        [--decisions 25,50] [--pool 40] [--test 20] [--minutes 15] [--size 512x640]
        [--outline] [--add-missed] [--extent-band R] [--seen-only] [--variant _x] [--no-paint]

``--outline``: the inspector also outlines each confirmed leak on its crop (the labelled
leaks its footprint touches, cut to the crop); ``--add-missed``: on each frame whose listed
anomalies it decided, it outlines the labelled leaks none of them touches (the report's
*add missed leak*). Each round records how the leak labels it taught meet the labelled
leaks (``footprints``: precision and recall).

Prints a Markdown table and writes ``<work>/label_efficiency.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

ROOT = Path(__file__).resolve().parent.parent
START = ROOT / "models" / "unet_mobilenetv2_synthetic"
COLUMNS = ("test_object_recall", "test_object_precision", "test_dataset_iou")
POOL_SEED_OFFSET = 7919  # pool seeds never meet the test set's


@dataclass
class Rounds:
    """How every round of a family runs."""

    minutes: float = 15.0
    #: Suffix of the rounds' folders (``n<N><variant>``) and of the JSON written.
    variant: str = ""
    #: Paint full masks on the same frames, side by side.
    paint: bool = True
    #: ``taseg adapt --extent-band`` / ``--seen-only``.
    extent_band: float = 1.0
    seen_only: bool = False
    #: The inspector outlines each confirmed leak on its crop.
    outline: bool = False
    #: The inspector outlines, on each frame whose listed anomalies are all decided, the
    #: labelled leaks none of them touches (the leaks the start network missed).
    add_missed: bool = False
    #: Train on a GPU where there is one (the rounds are CPU-only by default).
    gpu: bool = False


def pool_frames(work: Path, family: str, n: int, seed: int, size: tuple[int, int]) -> Path:
    """The frames the inspector reviews: a test-split set of the family, other seeds."""
    from benchmarks.heldout_families import test_set

    return test_set(work / "pool", family, n, seed + POOL_SEED_OFFSET, size)


@functools.lru_cache(maxsize=512)
def _truth(label: Path) -> np.ndarray:
    """A pool frame's labelled leaks (bool), read once: many decisions share a frame."""
    from thermal_anomaly_segmenter.io.datasets import read_label_mask

    mask = read_label_mask(label) > 0
    mask.flags.writeable = False
    return mask


def _set_files(root: Path) -> dict[str, tuple[Path, Path]]:
    images = sorted((root / "manual_set" / "image").rglob("*.npy.lz4"))
    return {p.name[:-8]: (p, root / "manual_set" / "label" / p.parent.name /
                          f"{p.name[:-8]}.png") for p in images}


def truth_outline(anomaly: dict, truth: np.ndarray) -> list | None:
    """What an inspector outlining a confirmed leak on its crop draws: the labelled leaks the
    footprint touches, cut to the crop's window (its side as in the report: twice the
    footprint's box and 24 px), as pixel-corner polygons; None where nothing is left."""
    from scipy import ndimage

    from thermal_anomaly_segmenter.false_alarms.review import crop_window, rasterize_footprint

    footprint = rasterize_footprint(anomaly, truth.shape).astype(bool)
    parts, _ = ndimage.label(truth)
    ids = np.unique(parts[footprint])
    drawn = np.isin(parts, ids[ids > 0])
    window = np.zeros_like(drawn)
    window[crop_window(anomaly["bbox"], truth.shape)] = True
    drawn &= window
    return _polygons(drawn) if drawn.any() else None


def simulated_review(report_html: Path, pool: Path, outline: bool = False
                     ) -> tuple[dict, list[dict]]:
    """The report's page data and every anomaly decided from the ground truth, in the
    report's review order; with ``outline`` the inspector also outlines each confirmed
    leak (:func:`truth_outline`)."""
    from thermal_anomaly_segmenter.false_alarms.review import rasterize_footprint

    html = report_html.read_text()
    start = html.index('id="taseg-data">') + len('id="taseg-data">')
    data = json.loads(html[start:html.index("</script>", start)].replace("<\\/", "</"))
    files = _set_files(pool)
    by_key = {f"{a['frame']}/{a['id']}": a for a in data["anomalies"]}
    decisions = []
    for key in data["review_order"]:
        a = by_key[key]
        truth = _truth(files[a["frame"]][1])
        hit = bool((rasterize_footprint(a, truth.shape).astype(bool) & truth).any())
        decision = {"frame": a["frame"], "id": a["id"],
                    "decision": "leak" if hit else "false_alarm",
                    "cause": "leak" if hit else "other", "bbox": a["bbox"],
                    "polygon": a["polygon"], "severity": a["severity"]}
        drawn = truth_outline(a, truth) if outline and hit else None
        if drawn:
            decision["outline"] = drawn
        decisions.append(decision)
    return data, decisions


def _polygons(mask: np.ndarray) -> list:
    from affine import Affine
    from rasterio.features import shapes

    return [[[list(map(float, xy)) for xy in ring] for ring in geom["coordinates"]]
            for geom, value in shapes(mask.astype(np.uint8), mask=mask,
                                      transform=Affine.identity()) if value]


def missed_leaks(chosen: list[dict], data: dict, pool: Path) -> list[dict]:
    """The leaks an inspector adds on the frames whose every listed anomaly is decided: each
    labelled leak none of the frame's listed footprints touches, outlined whole."""
    from scipy import ndimage

    from thermal_anomaly_segmenter.false_alarms.review import rasterize_footprint

    files = _set_files(pool)
    decided: dict[str, int] = {}
    for d in chosen:
        decided[d["frame"]] = decided.get(d["frame"], 0) + 1
    added = []
    for frame, n in sorted(decided.items()):
        if n != data["frames"][frame]["anomalies"]:
            continue
        truth = _truth(files[frame][1])
        listed = np.zeros_like(truth)
        for a in data["anomalies"]:
            if a["frame"] == frame:
                listed |= rasterize_footprint(a, truth.shape) > 0
        parts, count = ndimage.label(truth)
        for k in range(1, count + 1):
            leak = parts == k
            if not (leak & listed).any():
                added.append({"frame": frame, "id": f"added-{len(added) + 1}",
                              "decision": "leak", "cause": "leak", "added": True,
                              "outline": _polygons(leak)})
    return added


def footprint_coverage(decisions: list[dict], pool: Path) -> dict[str, float]:
    """How the confirmed leaks' footprints (or outlines) meet the labelled leaks they touch:
    ``precision`` (footprint pixels on a leak) and ``recall`` (leak pixels covered)."""
    from scipy import ndimage

    from thermal_anomaly_segmenter.false_alarms.review import leak_extent

    files = _set_files(pool)
    hit = drawn = labelled = 0
    for d in decisions:
        if d["decision"] != "leak":
            continue
        truth = _truth(files[d["frame"]][1])
        mask = leak_extent(d, truth.shape)
        parts, _ = ndimage.label(truth)
        ids = np.unique(parts[mask])
        touched = np.isin(parts, ids[ids > 0])
        hit += int((mask & touched).sum())
        drawn += int(mask.sum())
        labelled += int(touched.sum())
    return {"precision": round(hit / max(drawn, 1), 3), "recall": round(hit / max(labelled, 1), 3)}


def full_mask_set(work: Path, pool: Path, frames: list[str]) -> Path:
    """The same frames with their full ground-truth labels, as a manual_set (all splits)."""
    from thermal_anomaly_segmenter.io.dataset_writer import write_info

    root = work / "full_masks"
    files = _set_files(pool)
    for split in ("train", "val", "test"):
        for name in frames:
            image, label = files[name]
            for src, kind, suffix in ((image, "image", ".npy.lz4"), (label, "label", ".png")):
                dest = root / "manual_set" / kind / f"painted_{split}" / f"{name}{suffix}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
    write_info(root / "manual_set", "painted", ["train", "val", "test"], "benchmark",
               {"frames": frames})
    return root


def _score(model: Path, test: Path, out: Path, stage: Path | None = None) -> dict:
    from thermal_anomaly_segmenter.evaluation.evaluate import EvaluateOptions, evaluate

    result = evaluate(model, test, "test",
                      EvaluateOptions(out_dir=out, device="cpu", false_alarms=stage))
    return {k: round(float(result[k]), 4) for k in COLUMNS}


def train_stage(rnd: Path, pool: Path) -> Path | None:
    """The survey's own false-alarm stage from the round's review (None: one class only)."""
    from thermal_anomaly_segmenter.false_alarms.review import Review
    from thermal_anomaly_segmenter.train.adapt import (
        AdaptOptions,
        _stage_examples,
        resolve_frames,
    )
    from thermal_anomaly_segmenter.train.adapt_stage import train_survey_stage

    review = Review.read(rnd / "review.json")
    frames = resolve_frames(review, AdaptOptions(str(rnd / "review.json"), [str(pool)],
                                                 str(rnd / "unused")))
    x, causes = _stage_examples(review, frames)
    if len(set(causes)) < 2:
        return None
    path = rnd / "survey_stage.json"
    train_survey_stage(x, causes).save(path)
    return path


def _cpu(how: Rounds) -> list[str]:
    return [] if how.gpu else ["--no-gpu"]


def one_round(work: Path, pool: Path, test: Path, data: dict, decisions: list[dict],
              n: int, how: Rounds) -> dict:
    """Adapt on the first ``n`` decisions (and the missed leaks added, with
    ``how.add_missed``); paint the same frames; score both."""
    import subprocess  # nosec B404 - this project's own CLI

    from thermal_anomaly_segmenter.false_alarms.classifier import FILE_NAME

    rnd = work / f"n{n}{how.variant}"
    shutil.rmtree(rnd, ignore_errors=True)
    rnd.mkdir(parents=True)
    chosen = decisions[:n]
    added = missed_leaks(chosen, data, pool) if how.add_missed else []
    review = {"schema": data["review_schema"], "report_id": data["report_id"],
              "frames": data["frames"], "decisions": chosen + added}
    (rnd / "review.json").write_text(json.dumps(review))
    frames = sorted({d["frame"] for d in chosen})
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "thermal_anomaly_segmenter", "adapt",  # nosec B603
                    str(rnd / "review.json"), str(pool), "--out", str(rnd / "adapted"),
                    "--max-time", str(how.minutes), *_cpu(how), "--model-dir", str(START),
                    "--extent-band", str(how.extent_band)]
                   + (["--seen-only"] if how.seen_only else []),
                   check=True, cwd=ROOT)
    adapt_s = time.monotonic() - t0
    adapted = rnd / "adapted"
    record = json.loads((adapted / "adapt.json").read_text())
    stage = adapted / FILE_NAME if (adapted / FILE_NAME).is_file() else None
    row = {"decisions": len(chosen), "frames": len(frames),
           "footprints": footprint_coverage(chosen + added, pool),
           "leaks": record["decisions"]["leak"],
           "outlined": sum("outline" in d for d in chosen), "added": len(added),
           "stage_on": stage is not None,
           "adapt_s": round(adapt_s, 1),
           "adapted": _score(adapted, test, rnd / "eval_adapted", stage)}
    survey_stage = train_stage(rnd, pool)
    if survey_stage is not None:  # the survey's stage alone, and with fine-tuning, whether
        # or not adapt's cross-validation switched it on
        row["stage_alone"] = _score(START, test, rnd / "eval_stage", survey_stage)
        row["adapted_with_stage"] = _score(adapted, test, rnd / "eval_both", survey_stage)
    if not how.paint:
        return row
    painted = full_mask_set(rnd, pool, frames)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "thermal_anomaly_segmenter", "train",  # nosec B603
                    "--dataset-path", str(painted), *_cpu(how), "--no-mlflow", "--max-time",
                    str(how.minutes), "--train-phases", "fine_tune", "--weights", str(START),
                    "--output-dir", str(rnd / "painted_model"), "--min-label-px", "-1"],
                   check=True, cwd=ROOT, env={**os.environ, "MODELS_PATH": str(rnd)})
    row["painted_s"] = round(time.monotonic() - t0, 1)
    row["painted"] = _score(rnd / "painted_model", test, rnd / "eval_painted")
    return row


def run(work: Path, families: list[str], budgets: list[int], pool_n: int, test_n: int,
        size: tuple[int, int], how: Rounds, seed: int = 0) -> list[dict]:
    from benchmarks.heldout_families import test_set
    from thermal_anomaly_segmenter.report.inspector import make_report

    rows = []
    for family in families:
        fam = work / family
        pool = pool_frames(fam, family, pool_n, seed, size)
        test = test_set(fam, family, test_n, seed, size)
        report = fam / "report"
        if not (report / "report.html").is_file():
            make_report(sorted((pool / "manual_set" / "image").iterdir()), report,
                        model_dir=START)
        data, decisions = simulated_review(report / "report.html", pool, how.outline)
        base = {"family": family, "decisions": 0,
                "adapted": _score(START, test, fam / "eval_start")}
        rows.append(base)
        for n in budgets:
            if n > len(decisions):
                print(f"{family}: the report lists {len(decisions)} anomalies, fewer than "
                      f"{n}: round skipped", file=sys.stderr)
                continue
            rows.append({"family": family, **one_round(fam, pool, test, data, decisions, n,
                                                       how)})
    (work / f"label_efficiency{how.variant}.json").write_text(json.dumps(rows, indent=2))
    return rows


def table(rows: list[dict]) -> str:
    def cells(scores: dict | None) -> str:
        if not scores:
            return "| - | - | - "
        return "".join(f"| {scores[k]:.3f} " for k in COLUMNS)

    lines = ["| family | decisions | outlined | added | frames | stage | adapted: recall | "
             "precision | IoU | stage alone: recall | precision | IoU | adapted + stage: "
             "recall | precision | IoU | full masks: recall | precision | IoU |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['decisions']} | {r.get('outlined', '-')} | "
                     f"{r.get('added', '-')} | "
                     f"{r.get('frames', '-')} | "
                     f"{'on' if r.get('stage_on') else 'off'} {cells(r['adapted'])}"
                     f"{cells(r.get('stage_alone'))}{cells(r.get('adapted_with_stage'))}"
                     f"{cells(r.get('painted'))}|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--families", required=True, help="comma-separated held-out families")
    p.add_argument("--decisions", default="25,50,100,200")
    p.add_argument("--pool", type=int, default=40, help="frames the inspector reviews")
    p.add_argument("--test", type=int, default=20, help="test frames per family")
    p.add_argument("--minutes", type=float, default=15.0, help="budget of each round")
    p.add_argument("--size", default="512x640", help="frame size HxW")
    p.add_argument("--outline", action="store_true",
                   help="the inspector also outlines every confirmed leak on its crop")
    p.add_argument("--variant", default="", help="suffix of the rounds' folders and json")
    p.add_argument("--no-paint", dest="paint", action="store_false",
                   help="skip painting full masks (e.g. measured already for these frames)")
    p.add_argument("--extent-band", type=float, default=1.0,
                   help="taseg adapt --extent-band of every round")
    p.add_argument("--seen-only", action="store_true",
                   help="taseg adapt --seen-only in every round")
    p.add_argument("--add-missed", action="store_true",
                   help="the inspector also outlines the leaks the report did not list on "
                   "the frames it fully decided")
    p.add_argument("--gpu", action="store_true", help="train on a GPU where there is one")
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    how = Rounds(args.minutes, args.variant, args.paint, args.extent_band, args.seen_only,
                 args.outline, args.add_missed, args.gpu)
    rows = run(args.work, args.families.split(","), [int(v) for v in args.decisions.split(",")],
               args.pool, args.test, size, how)  # type: ignore[arg-type]
    print(table(rows))


if __name__ == "__main__":
    main()
