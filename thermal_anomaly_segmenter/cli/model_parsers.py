"""Arguments of the model commands: ``taseg adapt``, ``models``, ``train``, ``evaluate``,
``export``, ``calibrate`` and ``import-published``."""

from __future__ import annotations

import argparse

from thermal_anomaly_segmenter.cli.arguments import (
    add_command,
    add_native_scale,
    positive_float,
    positive_int,
    unit_float,
    zoom_range,
)
from thermal_anomaly_segmenter.cli.commands import (
    cmd_adapt,
    cmd_calibrate,
    cmd_evaluate,
    cmd_export,
    cmd_import_published,
    cmd_models,
    cmd_train,
)
from thermal_anomaly_segmenter.config import (
    AUGMENT_ON,
    DEVICES,
    LOSSES,
    PHASES,
    PRECISIONS,
    RECIPE_CHOICES,
)


def add_adapt_parser(sub) -> None:
    a = add_command(
        sub, "adapt", cmd_adapt,
        help="a model for this survey from the inspector's review of its report",
        description="Fine-tune a model on the decisions of review.json (exported from "
        "report.html) and the frames they were made on: confirmed leaks are positives, false "
        "alarms negatives, the rest of a fully decided frame background. Writes a complete "
        "model folder (weights, calibration and threshold chosen on the reviewed frames, the "
        "survey's own false-alarm stage where cross-validation says it keeps the leaks, ONNX, "
        "adapt.json) to --out; nothing existing is overwritten.")
    a.add_argument("review", metavar="REVIEW_JSON", help="review.json exported from report.html")
    a.add_argument("frames", nargs="+", metavar="FRAME_OR_FOLDER",
                   help="the reviewed frames (.npy.lz4/.npy, TIFF with --corridor), folders "
                   "of them, or a dataset folder")
    a.add_argument("--out", required=True, metavar="NEW_MODEL_DIR", help="new model folder")
    a.add_argument("--model-dir", help="model folder to start from (default: the default "
                   "model)")
    a.add_argument("--max-time", type=positive_float, default=15.0, metavar="MINUTES",
                   help="time budget of the whole run, minutes (default 15)")
    a.add_argument("--no-gpu", action="store_true", help="train on the CPU")
    a.add_argument("--corridor", help="corridor mask for TIFF frames: one file, or a folder of "
                   "masks named like the frames")
    a.add_argument("--min-leaks", type=int, default=10, metavar="N",
                   help="fewest confirmed leaks to fine-tune the network on; with fewer the "
                   "folder keeps the start network and only the false-alarm stage adapts "
                   "(default 10)")
    a.add_argument("--extent-band", type=float, default=1.0, metavar="RADII",
                   help="band left out of the loss around a confirmed leak that was not "
                   "outlined, in radii of its footprint (default 1; 0 teaches its "
                   "surroundings as background)")
    a.add_argument("--seen-only", action="store_true",
                   help="a fully decided frame is background only inside the crops that were "
                   "decided, not elsewhere (the inspector never saw the rest of the frame)")


def add_models_parser(sub) -> None:
    add_command(sub, "models", cmd_models, help="list model types and model folders")


def add_train_parser(sub) -> None:
    t = add_command(
        sub, "train", cmd_train,
        help="train a model with the three-phase TASeg recipe",
        description="Train a model on a TASeg dataset (generated_set for pre-training, "
        "manual_set for fine-tuning). The last line printed is the model folder.",
    )
    t.add_argument("--config", help="JSON file of train options (names as in the API), or a "
                   "published-format train_<model_type>.json (its phases, epochs, learning "
                   "rates, batch size and loss); flags given here override it")
    t.add_argument("--model-type", help="zoo model type (default: the recipe's)")
    t.add_argument("--train-phases", nargs="+", choices=PHASES, metavar="PHASE",
                   help=f"phases to run, any of {', '.join(PHASES)} (default: the recipe's)")
    t.add_argument("--dataset-path", help="folder with generated_set and/or manual_set "
                   "(default: first found under REMOTE_PATH, then DATA_PATH)")
    t.add_argument("--data-augmentation", action=argparse.BooleanOptionalAction, default=None)
    t.add_argument("--loss-fn", choices=LOSSES, help="loss (default: the recipe's)")
    t.add_argument("--batch-size", type=positive_int, help="default: the recipe's")
    t.add_argument("--worker-count", type=int, help="data loader workers (default: from "
                   "cores and memory; 0 loads in the main process)")
    t.add_argument("--seed", type=positive_int)
    t.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=None,
                   help="train on the GPU (default: when one is available)")
    t.add_argument("--mlflow", action=argparse.BooleanOptionalAction, default=None,
                   help="track the run with MLflow (default on)")
    t.add_argument("--epochs", nargs="+", metavar="N|PHASE=N",
                   help="epochs for every phase, or phase=N pairs")
    t.add_argument("--lr", nargs="+", metavar="LR|PHASE=LR",
                   help="learning rate for every phase, or phase=LR pairs")
    t.add_argument("--max-time", type=positive_float, help="wall-time budget, minutes")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    t.add_argument("--devices", type=positive_int, help="devices (GPUs or CPU processes)")
    t.add_argument("--num-nodes", type=positive_int)
    t.add_argument("--normalization", choices=("relative", "dataset"))
    t.add_argument("--early-stopping", type=positive_int, metavar="PATIENCE")
    t.add_argument("--min-label-px", type=int, help="skip training frames whose label has "
                   "this many anomaly pixels or fewer (default 40, as published: leak-free "
                   "frames are skipped; -1 keeps every frame)")
    t.add_argument("--input-size", nargs="+", metavar="H W|whole",
                   help="train on random H x W windows at native resolution, or 'whole' "
                   "frames (default: the recipe's)")
    t.add_argument("--precision", choices=PRECISIONS,
                   help="auto (default): bf16 mixed where the GPU or CPU computes in bf16 "
                   "natively, fp16 mixed on older GPUs, else fp32")
    _add_augmentation_arguments(t)
    t.add_argument("--recipe", choices=RECIPE_CHOICES,
                   help="defaults of the options not given: 'published' (segformer_b0, "
                   "Tversky, batch 16, all phases, whole frames), 'cpu' (smp_unet with a "
                   "MobileNetV2 encoder, Dice, batch 8, fine_tune, 256 x 320 windows, 20 "
                   "epochs: about 14 minutes on 2 cores for 200 frames) or 'auto' (cpu when "
                   "training on the CPU, published on a GPU; the default)")
    t.add_argument("--encoder", help="smp encoder name (default resnet101)")
    t.add_argument("--weights", help="initial weights: a TASeg model folder (fine-tune it), "
                   "a local weights folder/file, or a hub id (default: the shipped default "
                   "model's weights where its architecture matches the run's)")
    t.add_argument("--from-scratch", action="store_true", default=None,
                   help="start from random weights, not from the shipped default model")
    t.add_argument("--output-dir", help="model folder to write "
                   "(default MODELS_PATH/<model_type>_<loss>_<timestamp>)")
    t.add_argument("--review", action="store_true",
                   help="after training, train the false-alarm stage on the synthetic families "
                   "plus the dataset's reviewed components (review_examples.json, from "
                   "build-dataset --review) and store it in the model folder")


def _add_augmentation_arguments(t: argparse.ArgumentParser) -> None:
    """Where training frames are augmented, and the opt-in augmentations."""
    t.add_argument("--augment-on", choices=AUGMENT_ON,
                   help="where training frames are augmented: auto (default: on the device "
                   "on a GPU, in the loader workers on a CPU), cpu or device")
    t.add_argument("--zoom", type=zoom_range, metavar="LOW,HIGH|none",
                   help="isotropic zoom augmentation, drawn log-uniformly in LOW..HIGH with "
                   "p 0.5, so the network sees objects at the sizes other flight heights give, "
                   "e.g. 0.6,3 for a model meant for frames of unknown GSD (default none)")
    t.add_argument("--photometric", action="store_true", default=None,
                   help="photometric augmentation: contrast gain, background gradient, blur "
                   "and camera noise of other cameras and nights, for a model meant for "
                   "surveys unlike its training frames (default off)")
    t.add_argument("--surface-patches", action="store_true", default=None,
                   help="surface-patch augmentation: straight-edged warm and cold man-made "
                   "surfaces (driveways, paths, repairs, roofs), never labelled, so the network "
                   "learns they are not leaks (default off)")


def add_evaluate_parser(sub) -> None:
    e = add_command(
        sub, "evaluate", cmd_evaluate,
        help="pixel and object metrics of a model on a dataset split",
        description="Evaluate a model folder on a split of a TASeg dataset; prints the "
        "metrics as JSON and writes a threshold sweep / PR-curve plot.",
    )
    e.add_argument("--model-dir", help="model folder (default: the default model)")
    e.add_argument("--dataset-path", help="dataset folder (default: as for train)")
    e.add_argument("--split", default="test", choices=("train", "val", "test"))
    e.add_argument("--set", dest="set_name", default="manual_set",
                   choices=("manual_set", "generated_set"))
    e.add_argument("--threshold", type=unit_float, help="default: the model's threshold")
    e.add_argument("--min-area", type=positive_int, default=4)
    e.add_argument("--device", choices=DEVICES, default=None)
    e.add_argument("--out", help="output folder (default <model-dir>/evaluation)")
    e.add_argument("--gsd", type=positive_float,
                   help="ground sampling distance of every frame, m/pixel (default: what the "
                   "set's dataset_info.json states)")
    add_native_scale(e)


def add_export_parser(sub) -> None:
    x = add_command(
        sub, "export", cmd_export,
        help="export a model folder to ONNX (verified against PyTorch)",
        description="Write model.onnx into the model folder. On the CPU, predict then uses "
        "ONNX Runtime for that folder (TASEG_BACKEND=torch to opt out).")
    x.add_argument("--model-dir", required=True, help="model folder to export")
    x.add_argument("--format", choices=("onnx",), default="onnx")


def add_calibrate_parser(sub) -> None:
    c = add_command(
        sub, "calibrate", cmd_calibrate,
        help="fit a model folder's probability calibration on validation data",
        description="Fit Platt scaling of the logits on a split's corridor pixels, store it in "
        "train_config.json, then choose the threshold on the calibrated probabilities "
        "(training does this at its end).")
    c.add_argument("--model-dir", required=True, help="model folder to calibrate (rewritten)")
    c.add_argument("--dataset-path", required=True, help="dataset folder")
    c.add_argument("--set", dest="set_name", default="manual_set",
                   choices=("manual_set", "generated_set"))
    c.add_argument("--split", default="val", choices=("train", "val", "test"))


def add_import_published_parser(sub) -> None:
    i = add_command(
        sub, "import-published", cmd_import_published,
        help="convert a model folder of the published TASeg into ours",
        description="Read a published model folder (train_config.json with \"model\": "
        "\"segformer\" | \"smp\", Lightning checkpoints per phase) without unpickling code, "
        "pick the best checkpoint of its last phase and write DEST as a TASeg model folder "
        "(train_config.json + model.safetensors). Published folders also load directly, "
        "only more slowly.")
    i.add_argument("source", help="published model folder")
    i.add_argument("dest", help="new TASeg model folder to write (must not exist)")
