"""Does a false-alarm stage trained on one generator's scenes carry over to another's?

The false-alarm stage (``thermal_anomaly_segmenter.false_alarms.classifier``) is trained on labelled
components; ``heldout_families --false-alarms`` trains it on the training generator's
families only. Here it is trained, for one model, on the model's own predicted components
(at its stored threshold, scale matched, as predict sees them) from each of these sources:

- ``scenes``: the training generator's families (``--train-frames`` frames each), causes
  from its distractor instance map;
- ``scenes+patches``: the same scenes with ``augmentation.surface_patches`` drawn on every
  frame (a straight-edged warm or cold surface is never a leak: its components are ``other``);
- each independent generator (``benchmarks.heldout_families.INDEPENDENT_GENERATORS``), its
  families' frames from ``--train-seed`` (the test sets use ``--seed``): ``leak`` where a
  component touches a label, else ``other``.

Leave one generator out: each independent generator's test sets (the 40-frame sets of
``heldout_families``) are scored with no stage and with stages trained on ``scenes``, on
``scenes+patches``, on ``scenes`` plus the *other* independent generators, and on all of
those. No stage ever sees the generator it is scored on. Pixel IoU, object recall and
precision, false alarms per frame, as ``taseg evaluate`` counts them (the stage removes whole
components, so the counts come from one pass of the network per frame).

    python -m benchmarks.false_alarm_transfer --work /tmp/heldout \
        [--model models/unet_mobilenetv2_synthetic] [--frames 40] [--keep-recall 0.95]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class FrameComponents:
    """One frame's predicted components: features, cause, area, leak pixels, labels hit."""

    x: np.ndarray
    causes: list[str] = field(default_factory=list)
    area: list[int] = field(default_factory=list)
    leak_px: list[int] = field(default_factory=list)
    hits: list[np.ndarray] = field(default_factory=list)
    n_leaks: int = 0
    label_px: int = 0


def frame_components(segmenter, data: np.ndarray, corridor: np.ndarray, label: np.ndarray,
                     gsd_m: float | None, instances: np.ndarray | None = None,
                     classes: tuple[str, ...] = ()) -> FrameComponents:
    """The segmenter's components of one frame, measured against its label."""
    import cv2

    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.false_alarms.classifier import cause_of, component_features
    from thermal_anomaly_segmenter.inference.postprocess import anomaly_mask
    from thermal_anomaly_segmenter.io.frames import Frame

    frame = Frame(data=data, corridor=corridor, name="frame")
    prob = segmenter.probabilities([frame], PredictOptions(device=segmenter.device,
                                                           gsd_m=gsd_m))[0]
    pred = anomaly_mask(prob, corridor, segmenter.config.threshold)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(pred, connectivity=8)
    truth = (np.asarray(label) > 0).astype(np.uint8)
    n_true, truth_ids = cv2.connectedComponents(truth, connectivity=8)
    out = FrameComponents(x=component_features(data[..., 2], corridor, labels, n),
                          n_leaks=n_true - 1, label_px=int(truth.sum()))
    for k in range(1, n):
        part = labels == k
        ids = np.unique(truth_ids[part])
        out.causes.append(cause_of(part, truth, instances, classes))
        out.area.append(int(stats[k, cv2.CC_STAT_AREA]))
        out.leak_px.append(int(truth[part].sum()))
        out.hits.append(ids[ids > 0])
    return out


def score(frames: list[FrameComponents], classifier=None) -> dict[str, float]:
    """Pixel IoU, object recall and precision, false alarms per frame, with the stage."""
    from thermal_anomaly_segmenter.config import PredictOptions

    min_area_px = PredictOptions().min_area_px  # specks ignored, as taseg evaluate does
    tp = fp = label_px = n_true = found = n_pred = false = 0
    for f in frames:
        keep = ([v["keep"] for v in classifier.judge(f.x)] if classifier is not None
                and len(f.area) else [True] * len(f.area))
        hit: set[int] = set()
        for kept, area, leak_px, ids in zip(keep, f.area, f.leak_px, f.hits, strict=True):
            if not kept:
                continue
            tp, fp = tp + leak_px, fp + area - leak_px
            if area >= min_area_px:
                n_pred += 1
                false += ids.size == 0
                hit.update(int(i) for i in ids)
        label_px, n_true, found = label_px + f.label_px, n_true + f.n_leaks, found + len(hit)
    return {"iou": tp / max(fp + label_px, 1), "recall": found / max(n_true, 1),
            "precision": (n_pred - false) / n_pred if n_pred else 1.0,
            "false_alarms_per_frame": false / max(len(frames), 1)}


def training_scenes(segmenter, frames: int, seed: int, size: tuple[int, int]
                    ) -> tuple[list[FrameComponents], list[FrameComponents]]:
    """Components of the training generator's scenes, and of the same scenes with surface
    patches drawn on every frame (each scene rendered once)."""
    from thermal_anomaly_segmenter.scenes import FAMILIES
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene
    from thermal_anomaly_segmenter.train.augmentation import surface_patches

    rng = np.random.default_rng(seed)
    plain, patched = [], []
    for f, family in enumerate(FAMILIES):
        for i in range(frames):
            scene = make_scene(seed * 1009 + f * 10_007 + i, *size, family=family)
            truth = (scene.corridor, scene.leak_mask, scene.gsd_m, scene.instances,
                     scene.instance_classes)
            plain.append(frame_components(segmenter, scene.data, *truth))
            patched.append(frame_components(segmenter, surface_patches(scene.data, rng, p=1.0),
                                            *truth))
    return plain, patched


def generator_frames(segmenter, module, frames: int, seed: int,
                     size: tuple[int, int]) -> list[FrameComponents]:
    out = []
    for family in module.FAMILIES:
        counts = module.set_leak_counts(seed, family, frames)
        for i in range(frames):
            f = module.generate_frame(family, module.frame_seed(seed, family, i), *size,
                                      n_leaks=counts[i])
            out.append(frame_components(segmenter, f.data, f.corridor, f.label, f.gsd_m))
    return out


def held_out_frames(segmenter, root: Path) -> list[FrameComponents]:
    from thermal_anomaly_segmenter.io.datasets import load_split, open_set, read_label_mask
    from thermal_anomaly_segmenter.io.read import read_frame

    out = []
    for sample in load_split(open_set(root, "manual_set"), "test", "manual_set").samples:
        frame = read_frame(sample.image)
        out.append(frame_components(segmenter, frame.data, frame.corridor,
                                    read_label_mask(sample.label), sample.gsd_m))
    return out


def train_stage(sources: list[list[FrameComponents]], keep_recall: float):
    """A stage trained on the sources' components; None where they hold no leak."""
    from thermal_anomaly_segmenter.false_alarms.classifier import train_classifier

    frames = [f for source in sources for f in source if f.causes]
    causes = [c for f in frames for c in f.causes]
    if "leak" not in causes:
        return None
    x = np.concatenate([f.x for f in frames])
    return train_classifier(x, causes, n_estimators=80, min_leak_recall=keep_recall)


def main(argv: list[str] | None = None) -> None:
    import importlib

    from benchmarks.heldout_families import INDEPENDENT_GENERATORS, test_set
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter

    parser = argparse.ArgumentParser(prog="python -m benchmarks.false_alarm_transfer",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="working folder (test sets reused)")
    parser.add_argument("--model", default="models/unet_mobilenetv2_synthetic")
    parser.add_argument("--frames", type=int, default=40, help="test frames per family")
    parser.add_argument("--seed", type=int, default=4242, help="seed of the test sets")
    parser.add_argument("--train-seed", type=int, default=7100)
    parser.add_argument("--train-frames", type=int, default=10,
                        help="training frames per family of the training generator "
                        "(twice as many per independent family)")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 640), metavar=("H", "W"))
    parser.add_argument("--keep-recall", type=float, default=0.95,
                        help="leak recall the stage's keep threshold holds on its own "
                        "held-back training components")
    args = parser.parse_args(argv)
    size = tuple(args.size)
    model = Path(args.model) if Path(args.model).is_absolute() else ROOT / args.model
    segmenter = Segmenter.from_folder(model, device="cpu")
    t0 = time.perf_counter()
    generators = {name.rsplit(".", 1)[1]: importlib.import_module(name)
                  for name in INDEPENDENT_GENERATORS}
    plain, patched = training_scenes(segmenter, args.train_frames, args.train_seed, size)
    train = {"scenes": plain, "scenes+patches": patched}
    for name, module in generators.items():
        train[name] = generator_frames(segmenter, module, 2 * args.train_frames,
                                       args.train_seed, size)
    rows = []
    for name, module in generators.items():
        others = [g for g in generators if g != name]
        plans = {"no stage": None, "scenes": ["scenes"],
                 "scenes+patches": ["scenes", "scenes+patches"],
                 f"scenes + {', '.join(others)}": ["scenes", *others],
                 f"scenes+patches + {', '.join(others)}": ["scenes", "scenes+patches",
                                                           *others]}
        stages = {plan: None if sources is None else
                  train_stage([train[s] for s in sources], args.keep_recall)
                  for plan, sources in plans.items()}
        for plan in [p for p, s in stages.items() if s is None and plans[p] is not None]:
            print(f"{plan}: no leak among its components, no stage to score", flush=True)
            del stages[plan]
        for family in module.FAMILIES:
            frames = held_out_frames(segmenter, test_set(Path(args.work), family, args.frames,
                                                     args.seed, size))
            for plan, stage in stages.items():
                rows.append({"held_out_generator": name, "family": family, "stage": plan,
                             **score(frames, stage)})
                print(json.dumps(rows[-1]), flush=True)
    print(f"\nmodel {model.name}, stage keep recall {args.keep_recall:g}, "
          f"{time.perf_counter() - t0:.0f} s\n")
    print("| family | stage trained on | pixel IoU | object recall | object precision "
          "| FA / frame |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['family']} | {r['stage']} | {r['iou']:.3f} | {r['recall']:.3f} | "
              f"{r['precision']:.3f} | {r['false_alarms_per_frame']:.2f} |")
    Path(args.work, "false_alarm_transfer.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
