"""Benchmark: does a model survive a change of season? Relative vs dataset normalisation.

Trains two identical small models on synthetic winter-night scenes (ambient about -1.5 degC),
one with ``relative`` inputs (temperatures minus the corridor median, the TASeg default) and
one with the published ``dataset`` inputs (absolute temperatures standardised with the
training set's mean/std). Both are then evaluated on held-out scenes rendered with the same
seeds at the training ambient and 10 degC colder and warmer
(``make_scene(..., ambient_degc=...)``: the whole scene shifts, nothing else changes).
The classical baseline is shown for reference (it is offset-invariant by construction).

Usage (CPU, about 5 minutes with the defaults)::

    python benchmarks/normalization_shift.py [--frames 40] [--epochs 15] [--size 128 160]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402

from thermal_anomaly_segmenter.config import (  # noqa: E402
    PredictOptions,
    TrainOptions,
    get_settings,
)
from thermal_anomaly_segmenter.io.frames import Frame  # noqa: E402  # noqa: E402
from thermal_anomaly_segmenter.scenes.synthetic import (  # noqa: E402
    DEFAULT_AMBIENT_DEGC,
    make_scene,
    write_dataset,
)

SHIFTS_DEGC = (-10.0, 0.0, 10.0)


def _scores(segmenter, scenes, min_area_px: int = 4) -> dict[str, float]:
    import torch

    from thermal_anomaly_segmenter.evaluation.metrics import batch_stats, summarize

    frames = [Frame(data=s.data, corridor=s.corridor, name=f"s{i}") for i, s in enumerate(scenes)]
    options = PredictOptions(device="cpu", min_area_px=min_area_px)
    rows = []
    for frame, scene in zip(frames, scenes, strict=True):
        prob = segmenter.probabilities([frame], options)[0]
        pred = torch.from_numpy((prob > 0.5) & frame.corridor)[None, None]
        target = torch.from_numpy(scene.leak_mask.astype(np.uint8))[None, None]
        rows.append(batch_stats(pred, target, min_area_px))
    metrics = summarize(torch.cat(rows))
    return {k: metrics[k] for k in ("dataset_iou", "object_recall", "object_precision")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="frames of the training set")
    parser.add_argument("--test-frames", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 160), metavar=("H", "W"))
    parser.add_argument("--model-type", default="segformer_b0")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--loss-fn", default="Dice")
    args = parser.parse_args(argv)

    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.train.loop import train

    h, w = args.size
    with tempfile.TemporaryDirectory(prefix="taseg-normbench-") as tmp:
        root = write_dataset(Path(tmp) / "ds", args.frames, seed=args.seed, height=h, width=w,
                             sets=("manual_set",))
        settings = dataclasses.replace(get_settings(), models_path=Path(tmp) / "models")
        models = {}
        for mode in ("relative", "dataset"):
            start = time.monotonic()
            result = train(
                TrainOptions(model_type=args.model_type, train_phases=("fine_tune",),
                             epochs=args.epochs, lr={"fine_tune": args.lr}, batch_size=8,
                             loss_fn=args.loss_fn,
                             worker_count=0, gpu=False, mlflow=False, seed=args.seed,
                             min_label_px=10, normalization=mode, dataset_path=str(root)),
                settings=settings,
            )
            models[mode] = Segmenter.from_folder(result.model_dir, device="cpu")
            print(f"trained {mode}: {time.monotonic() - start:.0f} s, in-distribution test "
                  f"IoU {result.metrics['test_dataset_iou']:.3f}", file=sys.stderr)
        classical = Segmenter.from_folder(Path(__file__).resolve().parent.parent / "models"
                                          / "classical", device="cpu")
        test_seeds = [10_000 + i for i in range(args.test_frames)]
        rows = []
        for shift in SHIFTS_DEGC:
            scenes = [make_scene(s, h, w, ambient_degc=DEFAULT_AMBIENT_DEGC + shift)
                      for s in test_seeds]
            row = {"shift": shift}
            for name, seg in (("relative", models["relative"]), ("dataset", models["dataset"]),
                              ("classical", classical)):
                row[name] = _scores(seg, scenes)
            rows.append(row)

    print(f"\n{args.model_type} ({args.loss_fn}, lr {args.lr:g}), {args.frames} training frames "
          f"{h}x{w}, {args.epochs} epochs "
          f"fine_tune, seed {args.seed}; {args.test_frames} held-out scenes per shift\n")
    print("| ambient shift | relative IoU | dataset IoU | classical IoU | relative obj R/P "
          "| dataset obj R/P |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        rel, dat, cla = row["relative"], row["dataset"], row["classical"]
        print(f"| {row['shift']:+.0f} degC | {rel['dataset_iou']:.3f} | {dat['dataset_iou']:.3f} "
              f"| {cla['dataset_iou']:.3f} | {rel['object_recall']:.2f} / "
              f"{rel['object_precision']:.2f} | {dat['object_recall']:.2f} / "
              f"{dat['object_precision']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
