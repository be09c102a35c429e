"""Weight averaging ("model soup"): one model whose weights are the weighted mean of several
model folders fine-tuned from the same start.

Models fine-tuned from one set of weights tend to stay in one basin of the loss, so their
mean is itself a working model, often more robust off its training distribution than any
of them (Wortsman et al., "Model soups", ICML 2022; with the start model as one ingredient,
the "WiSE-FT" interpolation of the same authors). This benchmark builds such a folder so
that ``benchmarks.heldout_families`` can score it like any other: the folders must share
model type, architecture, normalisation, input size and GSD; the new folder gets no
calibration, then (``--calibrate-on``) the calibration and threshold that
``taseg calibrate`` fits on that dataset's validation split. Nothing else is read or
written; the output folder must not exist.

    python -m benchmarks.weight_averaging OUT MODEL[@WEIGHT] MODEL[@WEIGHT] ... \
        [--calibrate-on DATASET]

A weight (default 1) is relative: ``A@2 B C`` gives A half of the mean.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

#: Fields of ``train_config.json`` that must agree for weights to be averaged.
SHARED = ("model_type", "architecture", "normalization", "input_size", "gsd_m")


def parse_source(text: str) -> tuple[Path, float]:
    """``FOLDER`` or ``FOLDER@WEIGHT`` (a weight >= 0)."""
    folder, _, weight = text.rpartition("@") if "@" in text else (text, "", "1")
    try:
        value = float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: the weight after @ must be a number"
                                         ) from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: the weight must be finite and >= 0")
    return Path(folder), value


def average(out: str | os.PathLike[str], sources: list[tuple[Path, float]],
            calibrate_on: str | os.PathLike[str] | None = None) -> Path:
    """Write the weighted mean of ``sources`` (folder, weight) as model folder ``out``."""
    from thermal_anomaly_segmenter.errors import InvalidInputError
    from thermal_anomaly_segmenter.models.folder import save_model_folder
    from thermal_anomaly_segmenter.models.load import load_model_folder

    out = Path(out)
    if out.exists():
        raise InvalidInputError(f"{out} exists; choose another name")
    if len(sources) < 2:
        raise InvalidInputError("averaging needs at least two model folders")
    total = sum(w for _, w in sources)
    if total <= 0:
        raise InvalidInputError("the weights sum to zero")
    first_model, first = load_model_folder(sources[0][0])
    if first_model is None:
        raise InvalidInputError(f"{sources[0][0]} has no network weights to average")
    start = first_model.state_dict()
    mean = {k: v.detach().double() * (sources[0][1] / total) if v.is_floating_point()
            else v.clone() for k, v in start.items()}
    for folder, weight in sources[1:]:
        model, config = load_model_folder(folder)
        for key in SHARED:
            if getattr(config, key) != getattr(first, key):
                raise InvalidInputError(f"{folder} differs from {sources[0][0]} in {key}; "
                                        "only folders of one model can be averaged")
        for key, value in model.state_dict().items():  # same keys: same architecture
            if value.is_floating_point():
                mean[key] += value.detach().double() * (weight / total)
    state = {k: v.to(start[k].dtype) for k, v in mean.items()}
    first_model.load_state_dict(state)
    first.calibration, first.threshold, first.metrics = {}, 0.5, {}
    first.train_args = {"weight_average_of": [
        {"model": str(folder), "weight": weight / total} for folder, weight in sources]}
    save_model_folder(out, first, first_model)
    if calibrate_on is not None:
        from thermal_anomaly_segmenter.evaluation.calibration import calibrate_model_folder

        calibrate_model_folder(out, calibrate_on)
    return out


def main(argv: list[str] | None = None) -> int:
    from thermal_anomaly_segmenter.errors import TasegError

    parser = argparse.ArgumentParser(prog="python -m benchmarks.weight_averaging",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="new model folder (must not exist)")
    parser.add_argument("sources", nargs="+", type=parse_source, metavar="MODEL[@WEIGHT]")
    parser.add_argument("--calibrate-on", metavar="DATASET",
                        help="fit calibration and threshold on this dataset's validation split")
    args = parser.parse_args(argv)
    try:
        path = average(args.out, args.sources, args.calibrate_on)
    except (TasegError, OSError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
