"""The ``taseg`` command: a thin adapter over the core functions.

Exit codes: 0 success; 2 bad input or usage (one line on stderr, never a traceback);
1 anything else. A bad frame among many is reported and the others still run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from thermal_anomaly_segmenter import __version__
from thermal_anomaly_segmenter.cli.commands import (
    EXIT_FAILED,
    EXIT_USAGE,
    cmd_build_dataset,
    cmd_calibrate,
    cmd_compare,
    cmd_evaluate,
    cmd_export,
    cmd_import_published,
    cmd_models,
    cmd_predict,
    cmd_report,
    cmd_synth,
    cmd_train,
)
from thermal_anomaly_segmenter.config import DEVICES, get_settings
from thermal_anomaly_segmenter.errors import TasegError

log = logging.getLogger("taseg")


def _checked(parse, kind: str, ok, rule: str):
    """An argparse type: ``parse`` the text, then require ``ok(value)``."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{value} {rule}")
        return value

    return convert


_positive_int = _checked(int, "a whole number", lambda v: v >= 1, "must be >= 1")
_unit_float = _checked(float, "a number", lambda v: 0.0 <= v <= 1.0, "is not within 0..1")
_positive_float = _checked(float, "a number", lambda v: v > 0, "must be > 0")


def _zoom(text: str) -> tuple[float, float] | str:
    """``LOW,HIGH`` within the zoom bounds, or ``none``."""
    if text.strip().lower() == "none":
        return "none"
    from thermal_anomaly_segmenter.config import check_zoom

    try:
        zoom = check_zoom(tuple(float(v) for v in text.split(",")) if text.count(",") == 1
                          else text)
    except (ValueError, TasegError) as exc:
        raise argparse.ArgumentTypeError(str(exc) if isinstance(exc, TasegError)
                                         else f"{text!r} is not LOW,HIGH") from None
    assert zoom is not None  # nosec B101
    return zoom


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taseg",
        description="Thermal Anomaly Segmenter (TASeg): find district-heating leaks in drone "
        "thermal frames.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "predict",
        help="segment frames and write masks, overlays and reports",
        description="Segment thermal frames (.npy.lz4, .npy, or float TIFF with "
        "--corridor) and write per frame <stem>_mask.png, <stem>_prob.png, "
        "<stem>_overlay.png, <stem>.json and <stem>.geojson. With --pipes NETWORK, "
        "georeferenced rasters of any size stream window by window and give <stem>_prob.tif, "
        "<stem>_mask.tif (COGs), <stem>.gpkg, <stem>.geojson (EPSG:4326), <stem>.json and "
        "<stem>_overlay.png.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="frame files, folders or globs")
    p.add_argument("--model-dir", help="model folder (default: the default model)")
    p.add_argument(
        "--threshold",
        type=_unit_float,
        default=None,
        help="probability threshold, 0..1 (default: the model folder's stored threshold, "
        "chosen on validation data; 0.5 if it has none)",
    )
    p.add_argument("--out", help="output folder (default: <model-dir>/predictions)")
    p.add_argument("--batch-size", type=_positive_int, default=4, help="frames per forward pass")
    p.add_argument(
        "--device",
        choices=DEVICES,
        default=None,
        help="where the model runs (default: TASEG_DEVICE or auto)",
    )
    p.add_argument("--corridor", help="corridor mask (nonzero = pipeline corridor) for TIFF input")
    _add_pipe_arguments(p)
    p.add_argument("--gsd", type=_positive_float,
                   help="ground sampling distance of the frames, m/pixel (default: a "
                   "GeoTIFF's own); frames finer than the model's are seen at its GSD")
    _add_native_scale(p)
    p.add_argument(
        "--tile-size",
        type=_positive_int,
        nargs=2,
        metavar=("H", "W"),
        help="tile size for large frames (default: the model's training size)",
    )
    p.add_argument("--tile-overlap", type=float, default=0.25, help="tile overlap fraction")
    p.add_argument(
        "--min-area",
        type=_positive_int,
        default=4,
        help="smallest anomaly kept, pixels (default 4)",
    )
    p.add_argument(
        "--outputs",
        help="comma-separated outputs to write (default all: mask, probability, overlay, "
        "json, geojson; with --pipes also gpkg)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace earlier outputs of the same name instead of adding -2, -3, ...",
    )
    p.add_argument(
        "--pipe-id-field",
        metavar="NAME",
        help="pipe layer field that names each pipe in the anomaly attributes (default: the "
        "first id-like field, else the feature index)",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        help="spread the inputs over a local Dask cluster of this many worker processes",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="spread the inputs over a running Dask cluster (tcp://host:8786); see docs",
    )
    _add_false_alarm_argument(p)
    _add_conditions_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)

    _add_report_parser(sub)
    _add_compare_parser(sub)
    _add_adapt_parser(sub)

    m = sub.add_parser("models", help="list model types and model folders")
    m.set_defaults(func=cmd_models)

    s = sub.add_parser("synth", help="write a seeded synthetic dataset in the TASeg layout")
    s.add_argument("out", help="dataset folder to create (must not exist or be empty)")
    s.add_argument("--frames", type=_positive_int, default=20, help="frames per set")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--height", type=_positive_int, default=512)
    s.add_argument("--width", type=_positive_int, default=640)
    s.add_argument("--family", help="scene family (default karlsruhe_winter; see docs)")
    s.add_argument("--families", help="comma-separated scene families used in turn, or 'all'")
    s.set_defaults(func=cmd_synth)

    _add_train_parser(sub)
    _add_evaluate_parser(sub)

    x = sub.add_parser("export", help="export a model folder to ONNX (verified against PyTorch)",
                       description="Write model.onnx into the model folder. On the CPU, predict "
                       "then uses ONNX Runtime for that folder (TASEG_BACKEND=torch to opt out).")
    x.add_argument("--model-dir", required=True, help="model folder to export")
    x.add_argument("--format", choices=("onnx",), default="onnx")
    x.set_defaults(func=cmd_export)

    c = sub.add_parser(
        "calibrate", help="fit a model folder's probability calibration on validation data",
        description="Fit Platt scaling of the logits on a split's corridor pixels, store it in "
        "train_config.json, then choose the threshold on the calibrated probabilities "
        "(training does this at its end).")
    c.add_argument("--model-dir", required=True, help="model folder to calibrate (rewritten)")
    c.add_argument("--dataset-path", required=True, help="dataset folder")
    c.add_argument("--set", dest="set_name", default="manual_set",
                   choices=("manual_set", "generated_set"))
    c.add_argument("--split", default="val", choices=("train", "val", "test"))
    c.set_defaults(func=cmd_calibrate)

    i = sub.add_parser(
        "import-published", help="convert a model folder of the published TASeg into ours",
        description="Read a published model folder (train_config.json with \"model\": "
        "\"segformer\" | \"smp\", Lightning checkpoints per phase) without unpickling code, "
        "pick the best checkpoint of its last phase and write DEST as a TASeg model folder "
        "(train_config.json + model.safetensors). Published folders also load directly, "
        "only more slowly.")
    i.add_argument("source", help="published model folder")
    i.add_argument("dest", help="new TASeg model folder to write (must not exist)")
    i.set_defaults(func=cmd_import_published)

    b = sub.add_parser("build-dataset", help="turn temperature TIFFs + corridor masks into a "
                       "TASeg dataset", description="Build generated_set (triangle auto-labels) "
                       "and manual_set (hand labels) with previews and seeded splits.")
    b.add_argument("tiff_dir", help="folder of single-band float temperature TIFFs")
    b.add_argument("corridor_dir", nargs="?", default=None,
                   help="folder of corridor masks named like the TIFFs (or give --pipes)")
    b.add_argument("out_dir", help="dataset folder to create (must not exist or be empty)")
    b.add_argument("--labels", help="folder of hand-drawn labels <stem>.png (0/1 or 0/255)")
    _add_pipe_arguments(b)
    b.add_argument("--subset", default="survey", help="subset name (default survey)")
    b.add_argument("--splits", type=float, nargs=3, default=(0.7, 0.15, 0.15),
                   metavar=("TRAIN", "VAL", "TEST"), help="split shares (default 0.7 0.15 0.15)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--gsd", type=_positive_float, metavar="METRES_PER_PIXEL",
                   help="ground sampling distance of frames without a metric georeference, "
                   "recorded in dataset_info.json (training then records the model's GSD)")
    b.add_argument("--previews", action=argparse.BooleanOptionalAction, default=True,
                   help="write preview PNGs")
    b.add_argument("--review", metavar="REVIEW_JSON",
                   help="review.json exported from taseg report's page: fully reviewed frames "
                   "get the confirmed leaks as manual_set labels, every decided component is "
                   "kept as a false-alarm stage example (review_examples.json)")
    b.set_defaults(func=cmd_build_dataset)
    return parser


def _add_train_parser(sub) -> None:
    from thermal_anomaly_segmenter.config import (
        AUGMENT_ON,
        LOSSES,
        PHASES,
        PRECISIONS,
        RECIPE_CHOICES,
    )

    t = sub.add_parser(
        "train", help="train a model with the three-phase TASeg recipe",
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
    t.add_argument("--batch-size", type=_positive_int, help="default: the recipe's")
    t.add_argument("--worker-count", type=int, help="data loader workers (default: from "
                   "cores and memory; 0 loads in the main process)")
    t.add_argument("--seed", type=_positive_int)
    t.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=None,
                   help="train on the GPU (default: when one is available)")
    t.add_argument("--mlflow", action=argparse.BooleanOptionalAction, default=None,
                   help="track the run with MLflow (default on)")
    t.add_argument("--epochs", nargs="+", metavar="N|PHASE=N",
                   help="epochs for every phase, or phase=N pairs")
    t.add_argument("--lr", nargs="+", metavar="LR|PHASE=LR",
                   help="learning rate for every phase, or phase=LR pairs")
    t.add_argument("--max-time", type=_positive_float, help="wall-time budget, minutes")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    t.add_argument("--devices", type=_positive_int, help="devices (GPUs or CPU processes)")
    t.add_argument("--num-nodes", type=_positive_int)
    t.add_argument("--normalization", choices=("relative", "dataset"))
    t.add_argument("--early-stopping", type=_positive_int, metavar="PATIENCE")
    t.add_argument("--min-label-px", type=int, help="skip training frames whose label has "
                   "this many anomaly pixels or fewer (default 40, as published: leak-free "
                   "frames are skipped; -1 keeps every frame)")
    t.add_argument("--input-size", nargs="+", metavar="H W|whole",
                   help="train on random H x W windows at native resolution, or 'whole' "
                   "frames (default: the recipe's)")
    t.add_argument("--precision", choices=PRECISIONS,
                   help="auto (default): bf16 mixed where the GPU or CPU computes in bf16 "
                   "natively, fp16 mixed on older GPUs, else fp32")
    t.add_argument("--augment-on", choices=AUGMENT_ON,
                   help="where training frames are augmented: auto (default: on the device "
                   "on a GPU, in the loader workers on a CPU), cpu or device")
    t.add_argument("--zoom", type=_zoom, metavar="LOW,HIGH|none",
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
    t.set_defaults(func=cmd_train)


def _add_native_scale(p) -> None:
    p.add_argument(
        "--native-scale", action="store_true",
        help="run the network at the frames' own pixels even where they are finer than the "
        "model's training GSD (default: seen at the model's GSD, then mapped back)")


def _add_evaluate_parser(sub) -> None:
    e = sub.add_parser(
        "evaluate", help="pixel and object metrics of a model on a dataset split",
        description="Evaluate a model folder on a split of a TASeg dataset; prints the "
        "metrics as JSON and writes a threshold sweep / PR-curve plot.",
    )
    e.add_argument("--model-dir", help="model folder (default: the default model)")
    e.add_argument("--dataset-path", help="dataset folder (default: as for train)")
    e.add_argument("--split", default="test", choices=("train", "val", "test"))
    e.add_argument("--set", dest="set_name", default="manual_set",
                   choices=("manual_set", "generated_set"))
    e.add_argument("--threshold", type=_unit_float, help="default: the model's threshold")
    e.add_argument("--min-area", type=_positive_int, default=4)
    e.add_argument("--device", choices=DEVICES, default=None)
    e.add_argument("--out", help="output folder (default <model-dir>/evaluation)")
    e.add_argument("--gsd", type=_positive_float,
                   help="ground sampling distance of every frame, m/pixel (default: what the "
                   "set's dataset_info.json states)")
    _add_native_scale(e)
    e.set_defaults(func=cmd_evaluate)


def _add_false_alarm_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--false-alarms", nargs="?", const=True, default=None, metavar="CLASSIFIER",
        help="apply the false-alarm stage: components it rejects leave the mask and are listed "
        "apart with their cause ('rejected' in the JSON). CLASSIFIER: a false_alarms.json; "
        "default the model folder's (trained once from the synthetic families and stored "
        "there when missing, about a minute)")


def _add_report_parser(sub) -> None:
    r = sub.add_parser(
        "report", help="the inspector's report of a survey: ranked places to dig",
        description="Collect the anomalies of a survey (frames, folders, orthomosaics with "
        "--pipes, or folders of earlier predict outputs, which are not predicted again) and "
        "write DIR/report.html (self-contained; severity classes, crops, map, review "
        "buttons), DIR/anomalies.csv and, where georeferenced, DIR/anomalies.gpkg. New "
        "predictions go to DIR/predictions. Nothing existing is overwritten.")
    r.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="frames, folders, globs, orthomosaics or predict output folders")
    r.add_argument("--out", required=True, metavar="DIR", help="report folder")
    r.add_argument("--severity-config", metavar="FILE",
                   help="TOML or JSON file of severity thresholds (tables A and B; see docs)")
    r.add_argument("--model-dir", help="model folder (default: the default model)")
    r.add_argument("--threshold", type=_unit_float, default=None,
                   help="probability threshold (default: the model folder's)")
    r.add_argument("--device", choices=DEVICES, default=None)
    r.add_argument("--corridor", help="corridor mask for TIFF input")
    _add_pipe_arguments(r)
    r.add_argument("--pipe-id-field", metavar="NAME",
                   help="pipe layer field that names each pipe (default: the first id-like)")
    r.add_argument("--gsd", type=_positive_float,
                   help="ground sampling distance of the frames, m/pixel (default: a "
                   "GeoTIFF's own); frames finer than the model's are seen at its GSD")
    _add_native_scale(r)
    r.add_argument("--min-area", type=_positive_int, default=4,
                   help="smallest anomaly kept, pixels (default 4)")
    _add_false_alarm_argument(r)
    _add_conditions_arguments(r)
    r.add_argument("--rank-by", choices=("severity", "loss"), default="severity",
                   help="order of the places to dig: severity then mean dT (default), or "
                   "the estimated heat loss (largest first)")
    r.add_argument("--previous", metavar="OLD",
                   help="an earlier survey of the same network (output folder of taseg "
                   "predict --pipes or taseg report, or its GeoPackage): adds each anomaly's "
                   "status since then, the old crop beside the new and totals per status")
    r.add_argument("--tolerance", type=_positive_float, default=None, metavar="METRES",
                   help="with --previous: largest gap between the two footprints of one "
                   "anomaly (default 2)")
    r.set_defaults(func=cmd_report)


def _add_conditions_arguments(p: argparse.ArgumentParser) -> None:
    """The night's conditions of the heat loss estimate (docs/heat_loss.rst); unchecked
    here: the core validates them (one line, exit 2)."""
    g = p.add_argument_group(
        "heat loss", "conditions of the per-anomaly heat loss estimate (needs the pixel size); "
        "defaults, then a taseg_conditions.toml/.json in the inputs' folder, then "
        "--conditions, then these flags")
    g.add_argument("--conditions", metavar="FILE",
                   help="TOML or JSON file of conditions (field names as in the docs)")
    g.add_argument("--air-temp", type=float, metavar="DEGC", help="air temperature, degC")
    g.add_argument("--wind-speed", type=float, metavar="M_PER_S",
                   help="wind speed, m/s (default 1)")
    g.add_argument("--emissivity", type=float, help="surface emissivity (default 0.95)")
    g.add_argument("--season-hours", type=float, metavar="HOURS",
                   help="heating season length, hours a year (default 5000)")
    g.add_argument("--heat-price", type=float, metavar="PRICE_PER_MWH",
                   help="price of heat per MWh: gives cost_per_year")
    g.add_argument("--currency", help="currency of --heat-price (default EUR)")
    g.add_argument("--co2-factor", type=float, metavar="T_PER_MWH",
                   help="emission factor, t CO2 per MWh of heat: gives co2_t_per_year")


def _add_compare_parser(sub) -> None:
    from thermal_anomaly_segmenter.geo.compare import CompareOptions

    d = CompareOptions()
    c = sub.add_parser(
        "compare", help="compare two surveys of one network, leak by leak",
        description="Match the anomalies of an earlier survey (OLD) to a later one (NEW) in "
        "map coordinates and give each a status: new, gone, grown, stable or shrunk (by the "
        "change of area and of mean dT against each flight's own corridor). OLD and NEW are "
        "output folders of 'taseg predict --pipes' or 'taseg report', or their GeoPackages. "
        "Writes DIR/changes.gpkg (with a QGIS style), changes.csv and changes.geojson.")
    c.add_argument("old", metavar="OLD", help="the earlier survey")
    c.add_argument("new", metavar="NEW", help="the later survey")
    c.add_argument("--out", required=True, metavar="DIR", help="output folder")
    c.add_argument("--tolerance", type=_positive_float, default=d.tolerance_m,
                   metavar="METRES", help="largest gap between the two footprints of one "
                   f"anomaly, metres (default {d.tolerance_m:g})")
    c.add_argument("--grown-area-ratio", type=_positive_float, default=d.grown_area_ratio,
                   help=f"area ratio NEW/OLD from which it has grown (default "
                   f"{d.grown_area_ratio:g})")
    c.add_argument("--shrunk-area-ratio", type=_positive_float, default=d.shrunk_area_ratio,
                   help=f"area ratio up to which it has shrunk (default {d.shrunk_area_ratio:g})")
    c.add_argument("--grown-dt", type=_positive_float, default=d.grown_dt_degc, metavar="K",
                   help=f"rise of mean dT from which it has grown (default {d.grown_dt_degc:g})")
    c.add_argument("--shrunk-dt", type=_positive_float, default=d.shrunk_dt_degc, metavar="K",
                   help=f"fall of mean dT from which it has shrunk (default "
                   f"{d.shrunk_dt_degc:g})")
    c.add_argument("--overwrite", action="store_true",
                   help="replace changes.* already in DIR (default: refuse)")
    c.set_defaults(func=cmd_compare)


def _add_adapt_parser(sub) -> None:
    from thermal_anomaly_segmenter.cli.commands import cmd_adapt

    a = sub.add_parser(
        "adapt", help="a model for this survey from the inspector's review of its report",
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
    a.add_argument("--max-time", type=_positive_float, default=15.0, metavar="MINUTES",
                   help="time budget of the whole run, minutes (default 15)")
    a.add_argument("--no-gpu", action="store_true", help="train on the CPU")
    a.add_argument("--corridor", help="corridor mask for TIFF frames: one file, or a folder of "
                   "masks named like the frames")
    a.set_defaults(func=cmd_adapt)


def _add_pipe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pipes",
        metavar="NETWORK",
        help="pipe network layer (GeoJSON, GeoPackage, Shapefile or zipped Shapefile, any "
        "CRS): the corridor of every georeferenced input is buffered from its lines",
    )
    p.add_argument(
        "--corridor-width",
        type=_positive_float,
        default=None,
        metavar="METRES",
        help="full corridor width around the pipe axes with --pipes (default 8)",
    )


def _one_line(exc: BaseException, limit: int = 500) -> str:
    """A library's message on one line: the promise of exit code 2 is one line on stderr."""
    return " ".join(str(exc).split())[:limit]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        level = "DEBUG" if args.verbose else get_settings().log_level
        logging.basicConfig(
            level=getattr(logging, level, logging.INFO),
            format="%(levelname)s %(name)s: %(message)s",
        )
        return int(args.func(args))
    except TasegError as exc:
        print(f"taseg: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("taseg: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        print(
            f"taseg: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(run with -v for details)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
