"""Held-out-family quality: how a model does on a scene family it was never trained on.

Protocol. Every scene family (``thermal_anomaly_segmenter.scenes.FAMILIES``) gets its own test
set (``manual_set``, hand-exact labels, ``--frames`` frames of 512 x 640, seeded). Each model
folder given is scored on every family with ``taseg evaluate`` (its stored threshold):
pixel IoU, object recall and precision, false alarms per frame and per leak-free frame.
A row is a held-out figure only where the model never trained on that family: ``--seen
NAME=FAM,FAM`` (or ``NAME=all``, repeatable) names the families a model folder ``NAME`` was
trained on, and its rows on them are labelled "seen family (new seeds)"; without it, a model
is assumed to have seen ``karlsruhe_winter`` only (the models shipped before issue 14).
With ``--train F`` (repeatable), a model is also trained, by ``taseg train`` with the CPU
recipe, ``--train-phases fine_tune`` and ``--max-time``, on every family except ``F``
(leave-one-family-out) and scored on ``F``; it starts from random weights, or from
``--start-weights`` (which must not have seen ``F`` either), with ``--train-zoom`` as its
``--zoom``; its calibration and threshold come from the validation split of the training
families. With ``--false-alarms``, each network model is also scored with a false-alarm stage
(``thermal_anomaly_segmenter.false_alarms.classifier``) trained on components of the *other*
families
only (classical candidates, exact leaks, distractors and the model's own predicted
components), so the family scored stays unseen by the stage. With ``--independent``, the
families of the independent generators are scored too, like every other family:
:mod:`heldout.second_generator` (``indep_oldtown``, ``indep_parkland``) and
:mod:`heldout.third_generator` (``indep2_snowmelt``, ``indep2_railyard``), each written
without the code of the training generator or of the other. ``--train`` refuses them (the
leave-one-family-out runs use the training generator's families); their rows are held out
unless ``--seen`` names them for a model.

    python -m benchmarks.heldout_families --work /tmp/heldout [--frames 40]
        [--models models/unet_mobilenetv2_synthetic,models/classical]
        [--train rural_coarse --train-frames 120 --train-minutes 6] [--false-alarms]
        [--seen unet_mobilenetv2_synthetic=all] [--independent] [--reuse]

Prints a Markdown table (and writes ``<work>/heldout.json``) for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess  # nosec B404 - runs this project's own CLI
import sys
import time
from pathlib import Path
from types import ModuleType

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODELS = ("models/unet_mobilenetv2_synthetic", "models/classical")
COLUMNS = ("test_dataset_iou", "test_object_recall", "test_object_precision",
           "test_false_alarms_per_frame", "test_false_alarms_per_empty_frame",
           "test_expected_calibration_error")


INDEPENDENT_GENERATORS = ("heldout.second_generator", "heldout.third_generator")


def independent_families() -> dict[str, ModuleType]:
    """Each independent evaluation family and the generator module that writes it."""
    out: dict[str, ModuleType] = {}
    for name in INDEPENDENT_GENERATORS:
        module = importlib.import_module(name)
        out.update(dict.fromkeys(module.FAMILIES, module))
    return out


def test_set(work: Path, family: str, frames: int, seed: int, size: tuple[int, int]) -> Path:
    """The family's held-out test set (written once, reused)."""
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset

    root = work / "test_sets" / family
    independent = independent_families()
    if not (root / "manual_set" / "dataset_info.json").is_file():
        if family in independent:
            independent[family].write_set(root, family, frames, seed, height=size[0],
                                          width=size[1])
        else:
            write_dataset(root, frames, seed=seed, height=size[0], width=size[1],
                          splits=(0.0, 0.0, 1.0), sets=("manual_set",), families=(family,))
    return root


def score(model: Path, dataset: Path, out: Path, false_alarms: Path | None = None,
          reuse: bool = False, match_gsd: bool = True) -> dict:
    from thermal_anomaly_segmenter.evaluation.evaluate import EvaluateOptions, evaluate

    cached = out / "evaluation_manual_set_test.json"
    newest = max(p.stat().st_mtime for p in model.iterdir() if p.is_file())
    if reuse and cached.is_file() and cached.stat().st_mtime > newest:
        result = json.loads(cached.read_text())  # same model files, same test set
    else:
        result = evaluate(model, dataset, "test", EvaluateOptions(
            out_dir=out, device="cpu", false_alarms=false_alarms, match_gsd=match_gsd))
    row = {k: result[k] for k in COLUMNS}
    row.update(n_frames=result["n_frames"], n_empty_frames=result["n_empty_frames"],
               threshold=result["threshold"], reliability=result["reliability"])
    return row


def train_without(work: Path, held_out: str, families: list[str], frames: int,
                  minutes: float, seed: int, start: str | None = None,
                  zoom: str | None = None) -> Path:
    """Train with the CPU recipe on every family but ``held_out``; return the model folder."""
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset

    others = [f for f in families if f != held_out]
    data = work / f"train_without_{held_out}"
    if not (data / "manual_set" / "dataset_info.json").is_file():
        write_dataset(data, frames, seed=seed, families=others)
    model = work / "models" / f"without_{held_out}"
    if not (model / "train_config.json").is_file():
        cmd = [sys.executable, "-m", "thermal_anomaly_segmenter", "train", "--dataset-path",
               str(data), "--no-gpu", "--no-mlflow", "--max-time", str(minutes),
               "--train-phases", "fine_tune", "--output-dir", str(model),
               *(["--weights", start] if start else ["--from-scratch"]),
               *(["--zoom", zoom] if zoom else [])]
        env = {**os.environ, "MODELS_PATH": str(work / "models")}
        subprocess.run(cmd, check=True, env=env, cwd=ROOT)  # nosec B603 - own CLI
    return model


def false_alarm_stage(work: Path, model: Path, held_out: str, families: list[str],
                      frames: int, seed: int, min_leak_recall: float = 0.95) -> Path:
    """A false-alarm classifier trained on every family but ``held_out`` (cached), its keep
    threshold set to keep ``min_leak_recall`` of the training families' held-back leaks."""
    from thermal_anomaly_segmenter.false_alarms.classifier import (
        synthetic_training_set,
        train_classifier,
    )
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter

    suffix = "" if min_leak_recall == 0.95 else f"_r{min_leak_recall:g}"
    path = work / "false_alarms" / model.name / f"without_{held_out}{suffix}.json"
    if not path.is_file():
        segmenter = Segmenter.from_folder(model, device="cpu")
        threshold = segmenter.config.threshold
        x, y = synthetic_training_set([f for f in families if f != held_out], frames,
                                      seed=seed, segmenter=segmenter, threshold=threshold)
        path.parent.mkdir(parents=True, exist_ok=True)
        train_classifier(x, y, n_estimators=80, min_leak_recall=min_leak_recall).save(path)
    return path


def seen_map(values: list[str]) -> dict[str, set[str]]:
    """``NAME=FAM,FAM`` / ``NAME=all`` pairs: the families each model folder trained on."""
    from thermal_anomaly_segmenter.scenes import FAMILIES

    out: dict[str, set[str]] = {}
    for value in values:
        name, _, fams = value.partition("=")
        out[name] = set()
        for fam in filter(None, fams.split(",")):
            out[name] |= set(FAMILIES) if fam == "all" else {fam}
    return out


def table(rows: list[dict]) -> str:
    lines = ["| model | family | frames (leak-free) | threshold | pixel IoU | "
             "object recall | object precision | FA / frame | FA / leak-free frame | ECE |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        family = r["family"] + (" (seen family, new seeds)" if r.get("seen") else " (held out)")
        lines.append(
            f"| {r['model']} | {family} | {r['n_frames']} ({r['n_empty_frames']}) | "
            f"{r['threshold']:.2f} | {r['test_dataset_iou']:.3f} | "
            f"{r['test_object_recall']:.3f} | {r['test_object_precision']:.3f} | "
            f"{r['test_false_alarms_per_frame']:.2f} | "
            f"{r['test_false_alarms_per_empty_frame']:.2f} | "
            f"{r['test_expected_calibration_error']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from thermal_anomaly_segmenter.scenes import FAMILIES

    independent = independent_families()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.heldout_families",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="working folder (reused)")
    parser.add_argument("--frames", type=int, default=40, help="test frames per family")
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 640), metavar=("H", "W"))
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated model folders scored without training")
    parser.add_argument("--train", action="append", default=[], metavar="FAMILY",
                        help="leave-one-family-out: train on the others, score on FAMILY")
    parser.add_argument("--train-frames", type=int, default=120, help="frames per set")
    parser.add_argument("--train-minutes", type=float, default=6.0)
    parser.add_argument("--false-alarms", action="store_true",
                        help="also score network models with a leave-one-family-out "
                        "false-alarm stage")
    parser.add_argument("--false-alarm-frames", type=int, default=12,
                        help="training scenes per family for the false-alarm stage")
    parser.add_argument("--false-alarm-recall", type=float, default=0.95,
                        help="leak recall the stage's keep threshold holds on the training "
                        "families' held-back components")
    parser.add_argument("--seen", action="append", default=[], metavar="NAME=FAMS",
                        help="families model folder NAME trained on (comma-separated; 'all' is "
                        "every training-generator family); default karlsruhe_winter")
    parser.add_argument("--start-weights", help="model folder --train runs start from (it "
                        "must not have seen the held-out family); default random weights")
    parser.add_argument("--train-zoom", metavar="LOW,HIGH",
                        help="--zoom of the --train runs (default none)")
    parser.add_argument("--native-scale-too", action="store_true",
                        help="also score each model with frames at their own pixels (no "
                        "scale matching to the model's GSD), side by side")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a model's evaluation JSON when newer than its files")
    parser.add_argument("--independent", action="store_true",
                        help="also score every model on the independent evaluation families "
                        f"({', '.join(independent)}; written by generators that share no code "
                        "with the training one)")
    args = parser.parse_args(argv)
    refused = [f for f in args.train if f in independent]
    if refused:
        parser.error(f"--train {refused[0]}: the independent families are for evaluation "
                     "only; no model trains on them (leave-one-family-out runs use the "
                     f"training generator's families: {', '.join(FAMILIES)})")
    seen = seen_map(args.seen)
    work = Path(args.work)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    if args.independent:
        families += [f for f in independent if f not in families]
    rows = []
    t0 = time.perf_counter()
    for family in families:
        data = test_set(work, family, args.frames, args.seed, tuple(args.size))
        for model in [m for m in args.models.split(",") if m]:
            path = (ROOT / model) if not Path(model).is_absolute() else Path(model)
            row = score(path, data, work / "eval" / path.name / family, reuse=args.reuse)
            trained_on = seen.get(path.name, {"karlsruhe_winter"})
            rows.append({"model": path.name, "family": family,
                         "seen": family in trained_on, **row})
            print(json.dumps(rows[-1]), flush=True)
            if args.native_scale_too and path.name != "classical":
                row = score(path, data, work / "eval" / f"{path.name}+native" / family,
                            reuse=args.reuse, match_gsd=False)
                rows.append({"model": f"{path.name} (native scale)", "family": family,
                             "seen": family in trained_on, **row})
                print(json.dumps(rows[-1]), flush=True)
            if args.false_alarms and path.name != "classical":
                stage = false_alarm_stage(work, path, family, list(FAMILIES),
                                          args.false_alarm_frames, args.seed + 2,
                                          args.false_alarm_recall)
                tag = "" if args.false_alarm_recall == 0.95 else f"_r{args.false_alarm_recall:g}"
                row = score(path, data, work / "eval" / f"{path.name}+fa{tag}" / family,
                            stage, reuse=args.reuse)
                rows.append({"model": f"{path.name} + false-alarm stage"
                             f"{'' if not tag else f' (leak recall {args.false_alarm_recall:g})'}",
                             "family": family,
                             "seen": family in trained_on, **row})
                print(json.dumps(rows[-1]), flush=True)
    for held_out in args.train:
        model = train_without(work, held_out, list(FAMILIES), args.train_frames,
                              args.train_minutes, args.seed + 1, args.start_weights,
                              args.train_zoom)
        data = test_set(work, held_out, args.frames, args.seed, tuple(args.size))
        row = score(model, data, work / "eval" / model.name / held_out)
        rows.append({"model": f"{model.name} (trained {args.train_minutes:g} min)",
                     "family": held_out, "seen": False, **row})
        print(json.dumps(rows[-1]), flush=True)
    (work / "heldout.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\n{table(rows)}\n\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
