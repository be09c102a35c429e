"""Which training settings reach the quality target within a CPU budget?

Trains several model types / settings with ``taseg train`` on one synthetic set, each for
the number of optimizer steps a 2-core CPU manages in its budget (the step count is what a
setting gets from ``--max-time``; the steps can run anywhere, a GPU included, to rank the
settings quickly), then evaluates each model folder with ``taseg evaluate`` on a held-out
synthetic set: the val split picks the threshold with the best pixel IoU, the test split
reports pixel IoU and object precision / recall at 0.5 and at that threshold.

    python -m benchmarks.quality_sweep --work /tmp/sweep --parallel 4 [--only NAME ...]

The winner still has to be confirmed by a real CPU run under ``--max-time`` (RESULTS.md D02).
"""

from __future__ import annotations

import argparse
import json
import subprocess  # nosec B404 - runs this project's own CLI
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

#: name -> (model type, architecture overrides, loss, lr, CPU seconds per step at batch 8 and
#: 256 x 320, measured on the 2-core AMD EPYC machine, forward + backward + AdamW, in fp32
#: and contiguous layout: the CPU default before bf16 and channels-last made steps up to 2.7x
#: faster, so these budgets are conservative now).
CONFIGS: dict[str, tuple[str, dict | None, str, float, float]] = {
    "segformer_b0_dice_1e-3": ("segformer_b0", None, "Dice", 1e-3, 1.58),
    "segformer_b0_dice_2e-3": ("segformer_b0", None, "Dice", 2e-3, 1.58),
    "segformer_b0_jaccard_1e-3": ("segformer_b0", None, "Jaccard", 1e-3, 1.58),
    "unet_mnv2_small_dice_1e-3": ("smp_unet", {"encoder_name": "mobilenet_v2",
                                  "decoder_channels": [128, 64, 32, 16, 16]}, "Dice", 1e-3, 1.59),
    "unet_mnv2_small_dice_3e-3": ("smp_unet", {"encoder_name": "mobilenet_v2",
                                  "decoder_channels": [128, 64, 32, 16, 16]}, "Dice", 3e-3, 1.59),
    "unet_r18_small_dice_1e-3": ("smp_unet", {"encoder_name": "resnet18",
                                 "decoder_channels": [128, 64, 32, 16, 16]}, "Dice", 1e-3, 2.09),
    "unet_effb0_small_dice_1e-3": ("smp_unet", {"encoder_name": "efficientnet-b0",
                                   "decoder_channels": [128, 64, 32, 16, 16]}, "Dice", 1e-3,
                                   1.96),
    "deeplab_r18_dice_1e-3": ("smp_deeplabV3plus", {"encoder_name": "resnet18"}, "Dice", 1e-3,
                              2.02),
    # Three times the budget (a third of the step time): how far more steps would go.
    "segformer_b0_dice_1e-3_x3": ("segformer_b0", None, "Dice", 1e-3, 1.58 / 3),
    "unet_mnv2_small_dice_1e-3_x3": ("smp_unet", {"encoder_name": "mobilenet_v2",
                                     "decoder_channels": [128, 64, 32, 16, 16]}, "Dice", 1e-3,
                                     1.59 / 3),
}
#: Measured on the CPU run of the shipped model: 425 steps in 14 minutes at 1.58 s per bare
#: step, so loading, augmentation and validation add about a quarter.
OVERHEAD = 1.25


def _taseg(*args: str, log: Path) -> str:
    with log.open("a") as fh:
        done = subprocess.run(  # nosec B603
            [sys.executable, "-m", "thermal_anomaly_segmenter", *args],
            stdout=subprocess.PIPE, stderr=fh, text=True, check=False,
        )
    if done.returncode:
        raise RuntimeError(f"taseg {args[0]} failed ({done.returncode}), see {log}")
    return done.stdout


def _train_samples(dataset: Path, min_label_px: int = 40, repeat: int = 2) -> int:
    import numpy as np
    from PIL import Image

    info = json.loads((dataset / "manual_set" / "dataset_info.json").read_text())
    ids = info["generator"]["split_ids"]["train"]
    kept = sum(
        int(np.count_nonzero(np.asarray(Image.open(dataset / "manual_set" / "label" /
                                                   f"{i}.png")))) > min_label_px
        for i in ids
    )
    return kept * repeat


def run_one(name: str, args: argparse.Namespace, steps_per_epoch: float) -> dict:
    log = args.work / f"{Path(name).name}.log"
    started = time.monotonic()
    if name in CONFIGS:
        model_type, arch, loss, lr, step_s = CONFIGS[name]
        steps = args.budget_min * 60 / (step_s * OVERHEAD)
        epochs = max(1, round(steps / steps_per_epoch))
        out = args.work / "models" / name
        config = args.work / f"{name}.json"
        config.write_text(json.dumps({"architecture": arch}) if arch else "{}")
    else:  # an existing model folder, evaluated only
        out, epochs = Path(name), 0
    if epochs and not (out / "train_config.json").is_file():
        _taseg("train", "--config", str(config), "--dataset-path", str(args.work / "train"),
               "--model-type", model_type, "--train-phases", "fine_tune", "--loss-fn", loss,
               "--lr", str(lr), "--batch-size", "8", "--epochs", str(epochs),
               "--input-size", "256", "320", "--worker-count", str(args.workers),
               "--seed", "10", "--no-mlflow", "--output-dir", str(out),
               *(["--gpu"] if args.gpu else ["--no-gpu"]), log=log)
    trained = time.monotonic() - started
    result: dict = {"name": name, "epochs": epochs, "steps": round(epochs * steps_per_epoch),
                    "train_s": round(trained)}
    for split in ("val", "test"):
        res = json.loads(_taseg("evaluate", "--model-dir", str(out), "--dataset-path",
                                str(args.work / "heldout"), "--split", split,
                                "--out", str(args.work / "eval" / Path(name).name), log=log))
        result[split] = res["sweep"]
    best = max(result["val"], key=lambda r: (r["iou"], -abs(r["threshold"] - 0.5)))
    at = {r["threshold"]: r for r in result["test"]}
    result["val_threshold"] = best["threshold"]
    result["test_at_0.5"] = at[0.5]
    result["test_at_val_threshold"] = at[best["threshold"]]
    result["val_at_0.5"] = {r["threshold"]: r for r in result["val"]}[0.5]
    result["val_best"] = best
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--only", nargs="*", choices=sorted(CONFIGS))
    parser.add_argument("--baseline", nargs="*", default=[],
                        help="model folders to evaluate alongside (not trained)")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="loader workers per run")
    parser.add_argument("--budget-min", type=float, default=14.0)
    parser.add_argument("--train-frames", type=int, default=300)
    parser.add_argument("--train-seed", type=int, default=2027)
    parser.add_argument("--heldout-frames", type=int, default=200)
    parser.add_argument("--heldout-seed", type=int, default=777)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--json", type=Path, help="write all results here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "synth.log"
    for sub, frames, seed in (("train", args.train_frames, args.train_seed),
                              ("heldout", args.heldout_frames, args.heldout_seed)):
        if not (args.work / sub).is_dir():
            _taseg("synth", str(args.work / sub), "--frames", str(frames), "--seed", str(seed),
                   log=log)
    per_epoch = _train_samples(args.work / "train") / 8
    names = [*args.baseline, *(list(CONFIGS) if args.only is None else args.only)]
    print("| setting | steps | val thr | test IoU @0.5 | obj R / P @0.5 | test IoU @thr | "
          "obj R / P @thr | val IoU @0.5 | val obj R / P @0.5 |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    results = []
    with ThreadPoolExecutor(args.parallel) as pool:
        futures = {pool.submit(run_one, n, args, per_epoch): n for n in names}
        for fut in as_completed(futures):  # a row as soon as a setting is done
            try:
                r = fut.result()
            except Exception as exc:  # report and go on with the others
                print(f"| {futures[fut]} | failed: {exc} |", flush=True)
                continue
            results.append(r)
            a, b, v = r["test_at_0.5"], r["test_at_val_threshold"], r["val_at_0.5"]
            print(f"| {r['name']} | {r['steps']} | {r['val_threshold']:.2f} | {a['iou']:.3f} | "
                  f"{a['object_recall']:.3f} / {a['object_precision']:.3f} | {b['iou']:.3f} | "
                  f"{b['object_recall']:.3f} / {b['object_precision']:.3f} | {v['iou']:.3f} | "
                  f"{v['object_recall']:.3f} / {v['object_precision']:.3f} |", flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))

if __name__ == "__main__":
    main()
