"""Arguments of the dataset commands: ``taseg synth`` and ``build-dataset``."""

from __future__ import annotations

import argparse

from thermal_anomaly_segmenter.cli.arguments import (
    add_command,
    add_pipe_arguments,
    positive_float,
    positive_int,
)
from thermal_anomaly_segmenter.cli.commands import cmd_build_dataset, cmd_synth


def add_synth_parser(sub) -> None:
    s = add_command(sub, "synth", cmd_synth,
                    help="write a seeded synthetic dataset in the TASeg layout")
    s.add_argument("out", help="dataset folder to create (must not exist or be empty)")
    s.add_argument("--frames", type=positive_int, default=20, help="frames per set")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--height", type=positive_int, default=512)
    s.add_argument("--width", type=positive_int, default=640)
    s.add_argument("--family", help="scene family (default karlsruhe_winter; see docs)")
    s.add_argument("--families", help="comma-separated scene families used in turn, or 'all'")


def add_build_dataset_parser(sub) -> None:
    b = add_command(
        sub, "build-dataset", cmd_build_dataset,
        help="turn temperature TIFFs + corridor masks into a TASeg dataset",
        description="Build generated_set (triangle auto-labels) and manual_set (hand labels) "
        "with previews and seeded splits.")
    b.add_argument("tiff_dir", help="folder of single-band float temperature TIFFs")
    b.add_argument("corridor_dir", nargs="?", default=None,
                   help="folder of corridor masks named like the TIFFs (or give --pipes)")
    b.add_argument("out_dir", help="dataset folder to create (must not exist or be empty)")
    b.add_argument("--labels", help="folder of hand-drawn labels <stem>.png (0/1 or 0/255)")
    add_pipe_arguments(b)
    b.add_argument("--subset", default="survey", help="subset name (default survey)")
    b.add_argument("--splits", type=float, nargs=3, default=(0.7, 0.15, 0.15),
                   metavar=("TRAIN", "VAL", "TEST"), help="split shares (default 0.7 0.15 0.15)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--gsd", type=positive_float, metavar="METRES_PER_PIXEL",
                   help="ground sampling distance of frames without a metric georeference, "
                   "recorded in dataset_info.json (training then records the model's GSD)")
    b.add_argument("--previews", action=argparse.BooleanOptionalAction, default=True,
                   help="write preview PNGs")
    b.add_argument("--review", metavar="REVIEW_JSON",
                   help="review.json exported from taseg report's page: fully reviewed frames "
                   "get the confirmed leaks as manual_set labels, every decided component is "
                   "kept as a false-alarm stage example (review_examples.json)")
