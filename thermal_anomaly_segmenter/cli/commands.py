"""What each ``taseg`` command does: a few lines that call the core and print.

Each ``cmd_*`` takes the parsed arguments of :func:`.parser.build_parser` and returns the exit code
(0 success; 2 bad input; 1 anything else). Libraries load inside the commands, so importing
this module (and :mod:`.parser`) stays cheap.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from thermal_anomaly_segmenter.config import PredictOptions, TrainOptions, get_settings
from thermal_anomaly_segmenter.errors import InvalidInputError, TasegError

if TYPE_CHECKING:
    from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _phase_values(kind: type):
    """Parse ``N`` (every phase) or ``phase=N`` pairs into an int/float or a dict."""

    def parse(values: list[str]):
        from thermal_anomaly_segmenter.config import PHASES

        if len(values) == 1 and "=" not in values[0]:
            try:
                return kind(values[0])
            except ValueError:
                raise InvalidInputError(f"{values[0]!r} is not a number") from None
        out = {}
        for item in values:
            phase, sep, text = item.partition("=")
            if not sep or phase not in PHASES:
                raise InvalidInputError(
                    f"{item!r}: give one number or phase=number pairs; phases: {', '.join(PHASES)}"
                )
            try:
                out[phase] = kind(text)
            except ValueError:
                raise InvalidInputError(f"{item!r}: {text!r} is not a number") from None
        return out

    return parse


def _input_size(values: list[str]) -> tuple[int, int] | str:
    if values == ["whole"]:
        return "whole"
    try:
        size = tuple(int(v) for v in values)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise InvalidInputError(f"--input-size takes H W or 'whole', got {' '.join(values)}")
    return size  # type: ignore[return-value]


def cmd_train(args: argparse.Namespace) -> int:
    import json

    options = _train_options(args)

    from thermal_anomaly_segmenter.train.loop import train  # torch: only for valid options

    review_data = _reviewed_dataset(options) if args.review else None
    result = train(options, settings=get_settings())
    if review_data is not None:
        from thermal_anomaly_segmenter.false_alarms.apply import train_for_model

        print(f"false-alarm stage: {train_for_model(result.model_dir, review_data)}")
    print(json.dumps(result.metrics, indent=2, sort_keys=True))
    print(f"run folder: {result.run_dir}")
    print(result.model_dir)
    return EXIT_OK


def _train_options(args: argparse.Namespace) -> TrainOptions:
    """``--config``'s options, overridden by the flags given."""
    values = _config_options(args.config) if args.config else {}
    values.update({k: v for k, v in _train_flags(args).items() if v is not None})
    if args.lr:
        from thermal_anomaly_segmenter.config import PHASES

        lr = _phase_values(float)(args.lr)
        values["lr"] = lr if isinstance(lr, dict) else dict.fromkeys(PHASES, lr)
    if args.encoder:
        values["architecture"] = {**(values.get("architecture") or {}),
                                  "encoder_name": args.encoder}
    for key in ("train_phases", "input_size"):
        if isinstance(values.get(key), list):  # from --config JSON
            values[key] = tuple(values[key])
    return TrainOptions(**values)


def _config_options(path: str) -> dict:
    """The train options of a ``--config`` file: ours (API names) or a published recipe file."""
    import dataclasses
    import json
    from pathlib import Path

    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read --config {path}: {exc}") from None
    if not isinstance(values, dict):
        raise InvalidInputError(f"--config {path} must hold a JSON object")
    from thermal_anomaly_segmenter.models.recipe_files import (
        is_recipe_file_data,
        options_from_file,
    )

    if is_recipe_file_data(values):  # a published train_<model_type>.json
        values = options_from_file(path)
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InvalidInputError(f"--config: unknown options {unknown}")
    return values


def _train_flags(args: argparse.Namespace) -> dict:
    """The train options as the flags give them (None: not given)."""
    return {
        "model_type": args.model_type,
        "train_phases": tuple(args.train_phases) if args.train_phases else None,
        "dataset_path": args.dataset_path,
        "data_augmentation": args.data_augmentation,
        "loss_fn": args.loss_fn,
        "batch_size": args.batch_size,
        "worker_count": args.worker_count,
        "seed": args.seed,
        "gpu": args.gpu,
        "mlflow": args.mlflow,
        "epochs": _phase_values(int)(args.epochs) if args.epochs else None,
        "max_time": args.max_time,
        "resume": args.resume,
        "devices": args.devices,
        "num_nodes": args.num_nodes,
        "normalization": args.normalization,
        "early_stopping": args.early_stopping,
        "min_label_px": args.min_label_px,
        "input_size": _input_size(args.input_size) if args.input_size else None,
        "recipe": args.recipe,
        "precision": args.precision,
        "augment_on": args.augment_on,
        "zoom": getattr(args, "zoom", None),
        "photometric": getattr(args, "photometric", None),
        "surface_patches": getattr(args, "surface_patches", None),
        "weights": args.weights,
        "from_scratch": args.from_scratch,
        "output_dir": args.output_dir,
    }


def _reviewed_dataset(options: TrainOptions) -> Path:
    """The dataset of ``--review``, checked before training (not after it) to hold reviews."""
    from thermal_anomaly_segmenter.false_alarms.review import read_examples
    from thermal_anomaly_segmenter.io.datasets import resolve_dataset_path

    review_data = resolve_dataset_path(options.dataset_path, get_settings())
    if not read_examples(review_data)[1]:
        raise InvalidInputError(f"--review: {review_data} holds no reviewed components "
                                "(build it with taseg build-dataset --review)")
    return review_data


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from thermal_anomaly_segmenter.evaluation.evaluate import EvaluateOptions, evaluate
    from thermal_anomaly_segmenter.models.folder import resolve_model_dir

    settings = get_settings()
    model_dir = resolve_model_dir(args.model_dir, settings)
    result = evaluate(model_dir, args.dataset_path, args.split, EvaluateOptions(
        set_name=args.set_name, threshold=args.threshold, out_dir=args.out,
        min_area_px=args.min_area, device=args.device or settings.device, gsd_m=args.gsd,
        match_gsd=not args.native_scale), settings=settings)
    print(json.dumps(result, indent=2))
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from thermal_anomaly_segmenter.predict.files import (
        PredictRequest,
        collect_inputs,
        predict_paths,
    )

    _check_corridor_flags(args)

    settings = get_settings()
    options = PredictOptions(
        threshold=args.threshold,
        batch_size=args.batch_size,
        device=args.device or settings.device,
        tile_size=tuple(args.tile_size) if args.tile_size else None,
        tile_overlap=args.tile_overlap,
        min_area_px=args.min_area,
        gsd_m=args.gsd,
        match_gsd=not args.native_scale,
        conditions=_conditions(args),
    )
    outputs = None  # not given: every output of the path (frames or --pipes)
    if args.outputs is not None:
        outputs = [o.strip() for o in args.outputs.split(",") if o.strip()]
    paths = collect_inputs(args.inputs)
    request = PredictRequest(
        model_dir=args.model_dir, out_dir=args.out, options=options, corridor=args.corridor,
        overwrite=args.overwrite, outputs=outputs, pipes=args.pipes,
        corridor_width_m=args.corridor_width, pipe_id_field=args.pipe_id_field,
        false_alarms=args.false_alarms,
    )
    if args.workers or args.scheduler:
        from thermal_anomaly_segmenter.predict.scaleout import predict_distributed

        if args.false_alarms:
            raise InvalidInputError(
                "--false-alarms does not work with --workers/--scheduler yet")

        results = predict_distributed(paths, request, workers=args.workers,
                                      scheduler=args.scheduler)
    else:
        results = predict_paths(paths, request, settings=settings)
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


def _check_corridor_flags(args: argparse.Namespace) -> None:
    """``--corridor`` or ``--pipes``; the corridor's width and the pipe ids need ``--pipes``."""
    if args.pipes and args.corridor:
        raise InvalidInputError("give either --corridor or --pipes, not both")
    if not args.pipes and (args.corridor_width is not None or args.pipe_id_field):
        raise InvalidInputError("--corridor-width and --pipe-id-field need --pipes")


def _conditions(args: argparse.Namespace):
    from thermal_anomaly_segmenter.heat_loss.conditions import OPTION_FIELDS, resolve_conditions

    return resolve_conditions(args.inputs, args.conditions,
                              {k: getattr(args, k) for k in OPTION_FIELDS})


def cmd_models(args: argparse.Namespace) -> int:
    from thermal_anomaly_segmenter.models.folder import list_model_folders, resolve_model_dir
    from thermal_anomaly_segmenter.models.load import read_model_config
    from thermal_anomaly_segmenter.models.registry import MODEL_TYPES

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
    from thermal_anomaly_segmenter.scenes import parse_families
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset

    if args.family and args.families:
        raise InvalidInputError("give --family or --families, not both")
    root = write_dataset(
        args.out, args.frames, seed=args.seed, height=args.height, width=args.width,
        families=parse_families(args.family or args.families),
    )
    print(root)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from thermal_anomaly_segmenter.models.onnx_export import export_onnx

    print(export_onnx(args.model_dir))
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    import json

    from thermal_anomaly_segmenter.evaluation.calibration import calibrate_model_folder

    result = calibrate_model_folder(args.model_dir, args.dataset_path, args.set_name,
                                    split=args.split, settings=get_settings())
    print(json.dumps(result, indent=2, sort_keys=True))
    return EXIT_OK


def cmd_import_published(args: argparse.Namespace) -> int:
    from thermal_anomaly_segmenter.models.published import import_published

    folder, choice = import_published(args.source, args.dest)
    print(f"checkpoint: {choice.path} (phase {choice.phase}, {choice.reason})")
    print(folder)
    return EXIT_OK


def cmd_build_dataset(args: argparse.Namespace) -> int:
    from thermal_anomaly_segmenter.datasets.builder import BuildOptions, build_dataset

    if (args.corridor_dir is None) == (args.pipes is None):
        raise InvalidInputError("give either CORRIDOR_DIR or --pipes NETWORK")
    report = build_dataset(args.tiff_dir, args.corridor_dir, args.out_dir, BuildOptions(
        labels_dir=args.labels, pipes=args.pipes, corridor_width_m=args.corridor_width,
        subset=args.subset, splits=tuple(args.splits), seed=args.seed,
        previews=args.previews, review=args.review, gsd_m=args.gsd))
    print(report.summary())
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from thermal_anomaly_segmenter.report.inspector import make_report

    _check_corridor_flags(args)
    settings = get_settings()
    options = PredictOptions(threshold=args.threshold, device=args.device or settings.device,
                             min_area_px=args.min_area, gsd_m=args.gsd,
                             match_gsd=not args.native_scale, conditions=_conditions(args))
    result = make_report(args.inputs, args.out, severity_config=args.severity_config,
                         rank_by=args.rank_by,
                         model_dir=args.model_dir, options=options, corridor=args.corridor,
                         pipes=args.pipes, corridor_width_m=args.corridor_width,
                         pipe_id_field=args.pipe_id_field, false_alarms=args.false_alarms,
                         settings=settings, **_previous_args(args))
    for line in result.survey.failures:
        print(line, file=sys.stderr)
    print(result.summary())
    return EXIT_OK


def _previous_args(args: argparse.Namespace) -> dict:
    """``taseg report --previous OLD [--tolerance M]`` as make_report's arguments."""
    from thermal_anomaly_segmenter.geo.compare import CompareOptions

    if args.previous is None:
        if args.tolerance is not None:
            raise InvalidInputError("--tolerance needs --previous")
        return {}
    options = CompareOptions() if args.tolerance is None else CompareOptions(
        tolerance_m=args.tolerance)
    return {"previous": args.previous, "compare_options": options}


def cmd_compare(args: argparse.Namespace) -> int:
    from thermal_anomaly_segmenter.geo.compare import CompareOptions, compare_surveys
    from thermal_anomaly_segmenter.geo.compare_outputs import write_changes
    from thermal_anomaly_segmenter.geo.survey_layer import read_survey

    options = CompareOptions(tolerance_m=args.tolerance, grown_area_ratio=args.grown_area_ratio,
                             shrunk_area_ratio=args.shrunk_area_ratio,
                             grown_dt_degc=args.grown_dt, shrunk_dt_degc=args.shrunk_dt,
                             residual_m=args.residual)
    old = read_survey(args.old, "OLD")
    new = read_survey(args.new, "NEW")
    comparison = compare_surveys(old, new, options)
    paths = write_changes(comparison, args.out, overwrite=args.overwrite)
    print(f"{comparison.summary()} -> {paths['gpkg']}")
    return EXIT_OK


def cmd_adapt(args: argparse.Namespace) -> int:
    from thermal_anomaly_segmenter.train.adapt import AdaptOptions, adapt

    result = adapt(AdaptOptions(review=args.review, frames=list(args.frames), out=args.out,
                                model_dir=args.model_dir, max_time=args.max_time,
                                gpu=False if args.no_gpu else None, corridor=args.corridor,
                                min_leaks=args.min_leaks, extent_band=args.extent_band,
                                seen_only=args.seen_only),
                   settings=get_settings())
    print(result.summary())
    return EXIT_OK
