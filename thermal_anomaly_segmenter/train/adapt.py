"""``taseg adapt``: from an inspector's review of a report to a model folder for the survey.

The review (``review.json`` exported by ``report.html``,
:mod:`thermal_anomaly_segmenter.false_alarms.review`)
and the frames it was made on become a partial-label ``manual_set`` (every click counts: a
confirmed leak's footprint is a positive, a false alarm's a negative, the rest of a frame is
background only where every listed anomaly of it was decided, else left out of the loss).
The starting model is fine-tuned on it with the training code (:func:`.loop.train`, one
``fine_tune`` phase within the time budget), which writes the model folder with its
calibration and threshold chosen on the same reviewed frames. The network is fine-tuned
only from ``min_leaks`` (10) confirmed leaks on, gets the threshold that keeps the confirmed
leaks, and gives way to the start network where it collapsed (:mod:`.adapt_check`). Then the
survey's own
false-alarm stage is trained on the reviewed components and switched on only where
cross-validation says it keeps the leaks (:mod:`.adapt_stage`), the folder is exported to
ONNX and gets ``adapt.json``: what it learned from and whether more decisions would help.

Everything is written in a hidden folder beside ``--out`` and renamed to it at the end: bad
input, a failure or an interruption leave nothing under ``--out``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError

log = logging.getLogger(__name__)

RECORD_NAME = "adapt.json"
RECORD_SCHEMA = "taseg.adapt/1"
#: Smallest time budget: below it not one training step fits on a CPU.
MIN_BUDGET_S = 5.0
#: Most of the budget left after reading the frames that fine-tuning gets; it gets less where
#: the work after it (calibration and threshold: two passes over the reviewed frames; the
#: test frame; the ONNX export, about :data:`EXPORT_FRAMES` frames' worth) is estimated from
#: one timed inference to need more, but never under :data:`MIN_BUDGET_S`.
TRAIN_SHARE = 0.75
EXPORT_FRAMES = 20
#: How far a frame's corridor median may differ from the report's (degC) and still be the
#: frame the inspector saw (the report rounds it; a different corridor or frame moves it).
MEDIAN_TOLERANCE_DEGC = 0.05
#: Below these counts ``taseg adapt`` says that more decisions would likely help.
ENOUGH_LEAKS = 10
ENOUGH_FALSE_ALARMS = 10
ENOUGH_COMPLETE_FRAMES = 3
_MASK_SUFFIXES = (".png", ".tif", ".tiff", ".npy")
#: The network trains on the reviewed frames and its calibration and threshold are chosen on
#: them; the training code also wants a test split: it gets the first reviewed frame only
#: (its figures are not held out, and testing costs budget).
SPLITS = ("train", "val", "test")


@dataclass
class AdaptOptions:
    """One ``taseg adapt`` run."""

    review: str
    frames: list[str]
    out: str
    model_dir: str | None = None
    #: Whole budget in minutes (fine-tuning gets :data:`TRAIN_SHARE` of it).
    max_time: float = 15.0
    #: ``False`` trains on the CPU even where a GPU is present.
    gpu: bool | None = None
    #: Corridor mask for single-band TIFF frames: one file for all, or a folder of masks
    #: named like the frames.
    corridor: str | None = None
    seed: int = 0
    #: Fewest confirmed leaks to fine-tune the network on (:mod:`.adapt_check`).
    min_leaks: int = 10
    #: Band left out of the loss around a confirmed leak that was not outlined, in
    #: equivalent radii of its footprint (0: its surroundings are background where the
    #: frame is fully decided); see :meth:`Review.partial_label`.
    extent_band: float = 1.0
    #: Fully decided frames are background only inside the crops the inspector decided on
    #: (``False``: the whole frame but the confirmed leaks).
    seen_only: bool = False


@dataclass
class AdaptResult:
    model_dir: Path
    record: dict[str, Any]

    def summary(self) -> str:
        r = self.record
        d = r["decisions"]
        lines = [f"adapted model: {self.model_dir}",
                 f"  learned from {d['leak']} leak(s), {d['false_alarm']} false alarm(s) on "
                 f"{len(r['frames'])} frame(s) ({r['complete_frames']} fully decided)",
                 f"  network: {r['network']['network']}; threshold {r['threshold']:.2f}; "
                 "false-alarm stage "
                 f"{'ON' if r['false_alarm_stage']['on'] else 'off'}: "
                 f"{r['false_alarm_stage']['reason']}"]
        lines += [f"  more decisions would likely help: {h}" for h in r["hints"]]
        return "\n".join(lines)


def review_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _candidates(item: Path) -> list[Path]:
    """Frame files an input names: itself, a folder's frames, a dataset's images."""
    from thermal_anomaly_segmenter.io.frames import FRAME_SUFFIXES

    def is_frame(p: Path) -> bool:
        return p.is_file() and p.name.lower().endswith(FRAME_SUFFIXES)

    if item.is_file():
        return [item]
    if not item.is_dir():
        raise InvalidInputError(f"frame input {item} does not exist")
    sets = [item / s / "image" for s in ("manual_set", "generated_set")]
    if any(s.is_dir() for s in sets):
        return sorted(p for s in sets if s.is_dir() for p in s.rglob("*") if is_frame(p))
    return sorted(p for p in item.iterdir() if is_frame(p))


def _corridor_for(path: Path, corridor: str | None) -> Path | None:
    if corridor is None:
        return None
    given = Path(corridor).expanduser()
    if given.is_file():
        return given
    if not given.is_dir():
        raise InvalidInputError(f"--corridor {given} does not exist")
    from thermal_anomaly_segmenter.io.frames import frame_stem

    stem = frame_stem(path)
    found = [given / f"{stem}{s}" for s in _MASK_SUFFIXES if (given / f"{stem}{s}").is_file()]
    return found[0] if found else None


def resolve_frames(review, options: AdaptOptions) -> dict[str, Any]:
    """The review's decided frames, read from the inputs and checked against the report."""
    from thermal_anomaly_segmenter.io.frames import frame_stem
    from thermal_anomaly_segmenter.io.read import read_frame

    wanted = {name for name in review.frames if review.firm(name)}
    paths: dict[str, Path] = {}
    for item in options.frames:
        for path in _candidates(Path(item).expanduser()):
            name = frame_stem(path)
            if name in wanted:
                if name in paths and paths[name].resolve() != path.resolve():
                    raise InvalidInputError(f"frame {name} is given twice ({paths[name]} and "
                                            f"{path})")
                paths[name] = path
    if not paths:
        raise InvalidInputError(
            f"none of the {len(wanted)} reviewed frame(s) of {review.source} (e.g. "
            f"{', '.join(sorted(wanted)[:3])}) is among the given frames: was the review made "
            "on other frames?")
    missing = sorted(wanted - set(paths))
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise InvalidInputError(f"reviewed frame(s) missing from the inputs: "
                                f"{', '.join(missing[:3])}{more}")
    frames = {}
    for name, path in sorted(paths.items()):
        frame = read_frame(path, _corridor_for(path, options.corridor))
        _check_same_frame(review, name, frame)
        frames[name] = frame
    return frames


def _check_same_frame(review, name: str, frame) -> None:
    """Refuse a frame that is not the one the report showed (size, corridor median)."""
    from thermal_anomaly_segmenter.models.normalization import corridor_median

    info = review.frames.get(name, {})
    want = (info.get("height"), info.get("width"))
    if None not in want and tuple(want) != frame.shape:
        raise InvalidInputError(f"frame {name} is {frame.shape[0]} x {frame.shape[1]} px but "
                                f"the review's report showed {want[0]} x {want[1]} px: the "
                                "review was made on another frame")
    median = info.get("corridor_median_degc")
    if median is not None and frame.corridor.any():
        have = corridor_median(frame.t_u, frame.corridor)
        if abs(have - float(median)) > MEDIAN_TOLERANCE_DEGC:
            raise InvalidInputError(
                f"frame {name}: its corridor median is {have:.2f} degC but "
                f"{float(median):.2f} degC in the review's report: the review was made on "
                "another frame (or another corridor)")


def check_review(review) -> dict[str, int]:
    """Decision counts; refuses a review without a firm (leak / false alarm) decision."""
    counts = review.counts()
    if not counts["leak"] + counts["false_alarm"]:
        raise InvalidInputError(f"review {review.source} holds no leak or false-alarm decision "
                                "(click 'confirm leak' or 'false alarm' in report.html, then "
                                "export again)")
    return counts


def check_min_leaks(min_leaks: int) -> None:
    if isinstance(min_leaks, bool) or not isinstance(min_leaks, int) or min_leaks < 1:
        raise InvalidInputError(f"--min-leaks must be a whole number >= 1, got {min_leaks!r}")


def check_extent_band(band: float) -> None:
    if isinstance(band, bool) or not isinstance(band, (int, float)) or not 0 <= band <= 10:
        raise InvalidInputError(f"--extent-band must be a number from 0 to 10, got {band!r}")


def check_budget(max_time: float) -> None:
    if not max_time * 60 >= MIN_BUDGET_S:
        raise InvalidInputError(f"--max-time {max_time:g} min is too small to train (at least "
                                f"{MIN_BUDGET_S / 60:.2f} min)")


def write_partial_dataset(root: Path, review, frames: dict[str, Any],
                          extent_band: float = 1.0, seen_only: bool = False
                          ) -> dict[str, bool]:
    """A ``manual_set`` of the reviewed frames with partial labels in every split (see
    :data:`SPLITS`)."""
    import cv2

    from thermal_anomaly_segmenter.io.atomic import atomic_write
    from thermal_anomaly_segmenter.io.dataset_writer import write_info
    from thermal_anomaly_segmenter.io.formats import write_frame

    complete = {}
    set_dir = root / "manual_set"
    for k, (name, frame) in enumerate(frames.items()):
        ok, png = cv2.imencode(".png", review.partial_label(name, frame.shape, extent_band,
                                                                seen_only))
        if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
            raise InvalidInputError(f"cannot encode the label of {name}")
        complete[name] = review.complete(name)
        for split in SPLITS if k == 0 else SPLITS[:2]:
            write_frame(set_dir / "image" / f"review_{split}" / f"{name}.npy.lz4", frame.data)
            atomic_write(set_dir / "label" / f"review_{split}" / f"{name}.png", png.tobytes())
    gsds = {n: {"gsd_m": review.frames[n]["gsd_m"]} for n in frames
            if isinstance(review.frames[n].get("gsd_m"), (int, float))}
    write_info(set_dir, "review", list(SPLITS), "builder",
               {"review": review.source, "frames": gsds})
    return complete


def _stage_examples(review, frames: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    from thermal_anomaly_segmenter.false_alarms.classifier import FEATURES
    from thermal_anomaly_segmenter.false_alarms.review import component_examples

    rows = [e for name, f in frames.items()
            for e in component_examples(review, name, f.t_u, f.corridor)]
    x = np.asarray([r["features"] for r in rows], np.float32).reshape(-1, len(FEATURES))
    return x, [r["cause"] for r in rows]


def hints(counts: dict[str, int], complete: int, stage, fine_tuned: bool = True) -> list[str]:
    """Why more decisions would likely help (empty when the review looks sufficient)."""
    out = [] if fine_tuned else [
        "the folder keeps the start network (see adapt.json's network.reason); its "
        "false-alarm stage still learned from your decisions"]
    if counts["leak"] < ENOUGH_LEAKS:
        out.append(f"only {counts['leak']} leak(s) confirmed (aim for {ENOUGH_LEAKS}+)")
    if counts["false_alarm"] < ENOUGH_FALSE_ALARMS:
        out.append(f"only {counts['false_alarm']} false alarm(s) decided (aim for "
                   f"{ENOUGH_FALSE_ALARMS}+)")
    if complete < ENOUGH_COMPLETE_FRAMES:
        out.append(f"{complete} frame(s) fully decided: decide every anomaly of "
                   f"{ENOUGH_COMPLETE_FRAMES}+ frames so the model learns their background")
    spread = stage.cv.get("fold_leak_recall_spread")
    if spread is not None and spread > 0.25:
        out.append(f"the false-alarm stage's cross-validation is unstable (leak recall varies "
                   f"by {spread:.0%} between folds)")
    return out


def start_model(model_dir: str | None, settings) -> Path:
    """The folder to fine-tune: the one given, else the default model (TASEG_DEFAULT_MODEL or
    the shipped one); it must hold a network."""
    from thermal_anomaly_segmenter.config import BASE_DIR, DEFAULT_MODEL_NAME
    from thermal_anomaly_segmenter.models.folder import default_model_dir, resolve_model_dir
    from thermal_anomaly_segmenter.models.load import read_model_config

    if model_dir:
        folder = resolve_model_dir(model_dir, settings)
    else:
        folder = default_model_dir(settings) or (BASE_DIR / "models" / DEFAULT_MODEL_NAME)
        folder = resolve_model_dir(folder, settings)
    if read_model_config(folder).family == "classical":
        raise InvalidInputError(f"{folder} is the classical model: it has no network to adapt "
                                "(give --model-dir a network model folder)")
    return folder


def adapt(options: AdaptOptions, *, settings=None) -> AdaptResult:
    """Fine-tune, screen, calibrate and export a model folder for the reviewed survey."""
    from thermal_anomaly_segmenter.config import get_settings
    from thermal_anomaly_segmenter.false_alarms.review import Review

    started = time.monotonic()
    settings = settings or get_settings()
    check_budget(options.max_time)
    check_min_leaks(options.min_leaks)
    check_extent_band(options.extent_band)
    out = Path(options.out).expanduser()
    if out.exists() or out.is_symlink():
        raise InvalidInputError(f"{out} already exists; choose another --out (nothing is "
                                "overwritten)")
    review_path = Path(options.review).expanduser()
    review = Review.read(review_path)
    counts = check_review(review)
    start = start_model(options.model_dir, settings)
    frames = resolve_frames(review, options)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.adapt-", dir=out.parent))
    except OSError as exc:
        raise InvalidInputError(f"cannot write beside {out}: {exc.strerror or exc}") from None
    try:
        complete = write_partial_dataset(staging / "data", review, frames,
                                         options.extent_band, options.seen_only)
        model_dir, verdict = _network(options, start, staging, (review, frames, counts),
                                      settings, started)
        x, causes = _stage_examples(review, frames)
        stage = _store_stage(model_dir, x, causes, options.seed)
        from thermal_anomaly_segmenter.models.onnx_export import export_onnx

        export_onnx(model_dir)
        digests = {n: hashlib.sha256(f.data.tobytes()).hexdigest() for n, f in frames.items()}
        learned = _Learned(review, review_path, counts, complete, digests, start, verdict)
        record = _record(learned, stage, options, time.monotonic() - started, model_dir)
        from thermal_anomaly_segmenter.io.atomic import publish_dir

        publish_dir(model_dir, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return AdaptResult(out, record)


def _network(options: AdaptOptions, start: Path, staging: Path, reviewed: tuple,
             settings, started: float):
    """The adapted folder's network: fine-tuned and checked, or the start one where the
    review has too few confirmed leaks (:mod:`.adapt_check`)."""
    from thermal_anomaly_segmenter.models.load import read_model_config
    from thermal_anomaly_segmenter.train.adapt_check import start_folder, too_few_leaks

    review, frames, counts = reviewed
    verdict = too_few_leaks(counts["leak"], counts["false_alarm"],
                            read_model_config(start).threshold, options.min_leaks)
    if verdict is not None:
        log.info("network not fine-tuned: %s", verdict.reason)
        return start_folder(start, staging / "model"), verdict
    after_s = _seconds_after_training(start, frames, options.gpu)
    model_dir = _fine_tune(options, start, staging, settings, started, after_s)
    return model_dir, _judge(model_dir, start, review, frames, options.gpu)


def _device(gpu: bool | None) -> str:
    return "cpu" if gpu is False else "auto"


def _seconds_after_training(start: Path, frames: dict[str, Any], gpu: bool | None) -> float:
    """Estimated seconds of the work after fine-tuning, from one timed inference (so a busy
    machine reserves more)."""
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter

    segmenter = Segmenter.from_folder(start, device=_device(gpu))
    frame = next(iter(frames.values()))
    t0 = time.monotonic()
    segmenter.probabilities([frame], PredictOptions(device=segmenter.device))
    # calibration and threshold (two passes), the test frame, the fine-tuned network's
    # scores of the decisions (one pass), the ONNX export
    return (time.monotonic() - t0) * (3 * len(frames) + 1 + EXPORT_FRAMES)


def _judge(model_dir: Path, start: Path, review, frames: dict[str, Any], gpu: bool | None):
    """Check the fine-tuned network on the decisions (:mod:`.adapt_check`)."""
    from thermal_anomaly_segmenter.models.load import read_model_config
    from thermal_anomaly_segmenter.train.adapt_check import apply_verdict, decision_scores, judge

    verdict = judge(decision_scores(model_dir, review, frames, _device(gpu)),
                    read_model_config(model_dir).threshold, read_model_config(start).threshold)
    apply_verdict(model_dir, start, verdict)
    log.info("network: %s (%s)", verdict.record()["network"], verdict.reason)
    return verdict


def _fine_tune(options: AdaptOptions, start: Path, staging: Path, settings, started: float,
               after_s: float) -> Path:
    from thermal_anomaly_segmenter.config import TrainOptions
    from thermal_anomaly_segmenter.train.loop import train

    left = options.max_time - (time.monotonic() - started) / 60
    if left * 60 < MIN_BUDGET_S:
        raise InvalidInputError(f"--max-time {options.max_time:g} min is too small to train: "
                                f"reading the frames took {(time.monotonic() - started):.0f} s")
    train_options = TrainOptions(
        dataset_path=str(staging / "data"), weights=str(start), train_phases=("fine_tune",),
        max_time=max(MIN_BUDGET_S / 60, min(left * TRAIN_SHARE, left - after_s / 60)),
        gpu=options.gpu, mlflow=False, seed=options.seed + 1,
        output_dir=str(staging / "model"), min_label_px=-1)
    # the run folder (checkpoints) lives in the staging folder too and goes with it
    result = train(train_options, settings=dataclasses.replace(settings,
                                                               models_path=staging / "runs"))
    return Path(result.model_dir)


def _store_stage(model_dir: Path, x: np.ndarray, causes: list[str], seed: int):
    from thermal_anomaly_segmenter.false_alarms.classifier import FILE_NAME
    from thermal_anomaly_segmenter.io.atomic import atomic_write
    from thermal_anomaly_segmenter.models.folder import CONFIG_NAME
    from thermal_anomaly_segmenter.models.load import read_model_config
    from thermal_anomaly_segmenter.train.adapt_stage import stage_decision, train_survey_stage

    stage = stage_decision(x, causes, seed)
    if stage.on:
        clf = train_survey_stage(x, causes, seed)
        atomic_write(model_dir / FILE_NAME, json.dumps(clf.to_dict()) + "\n")
    config = read_model_config(model_dir)
    config.train_args["false_alarm_stage"] = "on" if stage.on else "off"
    atomic_write(model_dir / CONFIG_NAME, config.to_json() + "\n")
    log.info("false-alarm stage %s: %s", "on" if stage.on else "off", stage.reason)
    return stage


@dataclass(frozen=True)
class _Learned:
    """What an adapted folder learned from: the review, its decisions, the frames."""

    review: Any
    review_path: Path
    counts: dict[str, int]
    #: frame name -> whether every listed anomaly of it was decided
    complete: dict[str, bool]
    #: frame name -> SHA-256 of its data
    digests: dict[str, str]
    start: Path
    #: the fine-tuned network against the start one (:class:`.adapt_check.Verdict`)
    verdict: Any


def _record(learned: _Learned, stage, options: AdaptOptions, seconds: float,
            model_dir: Path) -> dict[str, Any]:
    """``adapt.json``: what the folder learned from, and whether more decisions would help."""
    from thermal_anomaly_segmenter.io.atomic import atomic_write
    from thermal_anomaly_segmenter.models.folder import CONFIG_NAME
    from thermal_anomaly_segmenter.models.load import read_model_config

    config = read_model_config(model_dir)
    review, review_path, counts = learned.review, learned.review_path, learned.counts
    complete, digests = learned.complete, learned.digests
    n_complete = sum(complete.values())
    record = {
        "schema": RECORD_SCHEMA, "review": str(review_path.resolve()),
        "review_sha256": review_digest(review_path), "report_id": review.report_id,
        "decisions": counts, "complete_frames": n_complete,
        "frames": [{"name": n, "fully_decided": c, "decisions": len(review.firm(n)),
                    "data_sha256": digests[n]} for n, c in complete.items()],
        "start_model": str(learned.start), "max_time_min": options.max_time,
        "seconds": round(seconds, 1), "threshold": config.threshold,
        "calibration": config.calibration.get("fitted_on"),
        "network": learned.verdict.record(),
        "false_alarm_stage": stage.record(),
        "hints": hints(counts, n_complete, stage, learned.verdict.fine_tuned_kept),
    }
    atomic_write(model_dir / RECORD_NAME, json.dumps(record, indent=2) + "\n")
    # the training's data and run folders were staging folders, gone with it: point to the
    # record instead
    for key in ("dataset_path", "output_dir", "run_dir"):
        config.train_args[key] = None
    config.train_args.update(adapt=RECORD_NAME, review_sha256=record["review_sha256"])
    atomic_write(model_dir / CONFIG_NAME, config.to_json() + "\n")
    return record
