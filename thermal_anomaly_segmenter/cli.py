"""The ``taseg`` command: a thin adapter over the core functions.

Exit codes: 0 success; 2 bad input or usage (one line on stderr, never a traceback);
1 anything else. A bad frame among many is reported and the others still run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .config import DEVICES, PredictOptions, get_settings
from .errors import TasegError

log = logging.getLogger("taseg")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not within 0..1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be > 0")
    return value


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
        "<stem>_overlay.png, <stem>.json and <stem>.geojson.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="frame files, folders or globs")
    p.add_argument("--model-dir", help="model folder (default: the default model)")
    p.add_argument(
        "--threshold",
        type=_unit_float,
        default=0.5,
        help="probability threshold, 0..1 (default 0.5)",
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
    p.add_argument("--gsd", type=_positive_float, help="ground sampling distance, m/pixel")
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
        default=",".join(("mask", "probability", "overlay", "json", "geojson")),
        help="comma-separated outputs to write",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace earlier outputs of the same name instead of adding -2, -3, ...",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)

    m = sub.add_parser("models", help="list model types and model folders")
    m.set_defaults(func=cmd_models)

    s = sub.add_parser("synth", help="write a seeded synthetic dataset in the TASeg layout")
    s.add_argument("out", help="dataset folder to create (must not exist or be empty)")
    s.add_argument("--frames", type=_positive_int, default=20, help="frames per set")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--height", type=_positive_int, default=512)
    s.add_argument("--width", type=_positive_int, default=640)
    s.set_defaults(func=cmd_synth)
    return parser


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import collect_inputs, predict_paths

    settings = get_settings()
    options = PredictOptions(
        threshold=args.threshold,
        batch_size=args.batch_size,
        device=args.device or settings.device,
        tile_size=tuple(args.tile_size) if args.tile_size else None,
        tile_overlap=args.tile_overlap,
        min_area_px=args.min_area,
        gsd_m=args.gsd,
    )
    outputs = [o.strip() for o in args.outputs.split(",") if o.strip()]
    paths = collect_inputs(args.inputs)
    results = predict_paths(
        paths,
        model_dir=args.model_dir,
        out_dir=args.out,
        options=options,
        corridor=args.corridor,
        overwrite=args.overwrite,
        outputs=outputs,
        settings=settings,
    )
    failures: list[str] = []
    progress = None
    if not args.quiet and len(paths) > 1:
        from tqdm import tqdm

        progress = tqdm(
            total=len(paths), unit="frame", file=sys.stderr, leave=False, dynamic_ncols=True
        )
    try:
        for result in results:
            line = result.summary()
            if progress is not None:
                progress.update()
                progress.write(line, file=sys.stdout if result.ok else sys.stderr)
            else:
                print(line, file=sys.stdout if result.ok else sys.stderr)
            if not result.ok:
                failures.append(result.error_kind or "runtime")
    finally:
        if progress is not None:
            progress.close()
    if not failures:
        return EXIT_OK
    print(f"taseg: {len(failures)} input(s) failed", file=sys.stderr)
    return EXIT_USAGE if all(kind == "input" for kind in failures) else EXIT_FAILED


def cmd_models(args: argparse.Namespace) -> int:
    from .model_folder import list_model_folders, read_model_config, resolve_model_dir
    from .zoo import MODEL_TYPES

    settings = get_settings()
    print("model types:")
    for name, spec in MODEL_TYPES.items():
        print(f"  {name:20s} {spec.description}")
    try:
        default = resolve_model_dir(None, settings)
    except TasegError:
        default = None
    print("model folders:")
    for root in (settings.models_path, settings.remote_path):
        for folder in list_model_folders(root):
            try:
                kind = read_model_config(folder).model_type
            except TasegError as exc:
                kind = f"unreadable ({exc})"
            mark = " (default)" if default is not None and folder.resolve() == default else ""
            print(f"  {folder}  [{kind}]{mark}")
    return EXIT_OK


def cmd_synth(args: argparse.Namespace) -> int:
    from .synthetic import write_dataset

    root = write_dataset(
        args.out, args.frames, seed=args.seed, height=args.height, width=args.width
    )
    print(root)
    return EXIT_OK


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
        print(f"taseg: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("taseg: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        print(
            f"taseg: internal error: {type(exc).__name__}: {exc} (run with -v for details)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
