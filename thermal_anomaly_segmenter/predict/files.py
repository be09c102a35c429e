"""Predict files: inputs on disk -> frames -> predictions -> output files.

Both adapters call :func:`predict_paths`. Reading and writing run in thread pools beside the
model, so decoding, post-processing and PNG encoding overlap with the forward passes. A bad
frame is reported in its :class:`FrameResult` and the others still run. Output names are
claimed atomically, so nothing is silently overwritten, even by concurrent requests.
"""

from __future__ import annotations

import glob
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from thermal_anomaly_segmenter.config import PredictOptions, Settings, get_settings
from thermal_anomaly_segmenter.errors import InvalidInputError, OutputError, TasegError
from thermal_anomaly_segmenter.inference.postprocess import Prediction
from thermal_anomaly_segmenter.inference.segmenter import Segmenter, get_segmenter
from thermal_anomaly_segmenter.io.frames import FRAME_SUFFIXES, Frame
from thermal_anomaly_segmenter.io.read import read_frame
from thermal_anomaly_segmenter.models.folder import resolve_model_dir
from thermal_anomaly_segmenter.models.normalization import corridor_median
from thermal_anomaly_segmenter.outputs import deferred
from thermal_anomaly_segmenter.outputs.document import anomalies_document
from thermal_anomaly_segmenter.outputs.write import OUTPUT_NAMES, write_outputs

log = logging.getLogger(__name__)

OUTPUT_KINDS: tuple[str, ...] = tuple(OUTPUT_NAMES)
_MAX_SUFFIX = 100
#: Random suffixes tried after the numbered ones (48 bits each: a clash is never expected).
_RANDOM_TRIES = 16


@dataclass
class FrameResult:
    """What happened to one input."""

    source: str
    name: str | None = None
    outputs: dict[str, Path] = field(default_factory=dict)
    n_anomalies: int = 0
    max_dt_degc: float | None = None
    error: str | None = None
    #: ``"input"`` for a bad frame (exit code 2 / HTTP 400), ``"runtime"`` for anything else.
    error_kind: str | None = None
    seconds: float = 0.0
    prediction: Prediction | None = None
    #: The JSON report written as ``outputs["json"]``, when one was written.
    report: dict | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        """One line for a terminal or a log."""
        if not self.ok:
            return f"{self.source}: FAILED: {self.error}"
        dt = "" if self.max_dt_degc is None else f", max dT {self.max_dt_degc:+.1f} degC"
        where = self.outputs.get("overlay") or next(iter(self.outputs.values()), None)
        target = f" -> {where}" if where else ""
        return f"{self.name}: {self.n_anomalies} anomalies{dt}{target}"


def collect_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files, folders (frames directly inside, sorted) and glob patterns.

    Missing inputs are kept so that each gets its own error in the results.
    """
    found: list[Path] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text).expanduser()
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.is_file() and _is_frame_name(p)))
        elif not path.exists() and glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise InvalidInputError(f"no file matches {text!r}")
            found.extend(matches)
        else:
            found.append(path)
    if not found:
        raise InvalidInputError("no input frames given")
    return found


def _is_frame_name(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in FRAME_SUFFIXES)


def reserve_stem(out_dir: Path, stem: str, kinds: Sequence[str], overwrite: bool = False,
                 suffixes: Mapping[str, str] = OUTPUT_NAMES) -> str:
    """Claim an output stem in ``out_dir``: ``stem``, else ``stem-2`` ... ``stem-99``, then
    ``stem-<random hex>`` (names never run out, and a claim costs at most ~100 lookups).

    The claim creates the first output file exclusively (``O_EXCL``), so two processes never
    get the same stem; with ``overwrite`` the plain stem is reused.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from None
    folder = os.fspath(out_dir)
    for n in range(1, _MAX_SUFFIX + _RANDOM_TRIES):
        candidate = (stem if n == 1 else f"{stem}-{n}" if n < _MAX_SUFFIX
                     else f"{stem}-{secrets.token_hex(6)}")
        if overwrite:
            return candidate
        # Plain strings: a server walks many taken numbers of a common name per request.
        names = [os.path.join(folder, f"{candidate}{suffixes[k]}") for k in kinds]
        if any(os.path.lexists(p) for p in names):
            continue
        try:
            fd = os.open(names[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
        os.close(fd)
        return candidate
    raise OutputError(f"too many outputs named {stem}-N in {out_dir}")


class _Writer:
    """Claims names and writes a prediction's outputs (runs in a worker thread).

    The kinds in ``later`` are written after the result is handed back, by the
    background writer of :mod:`.report.deferred` (the first kind, whose file claims the
    name, never is).
    """

    def __init__(
        self, out_dir: Path, kinds: Sequence[str], overwrite: bool, model_dir: Path, keep: bool,
        screen: Callable[[Prediction], Prediction] | None = None,
        later: Sequence[str] = (),
    ) -> None:
        self.out_dir, self.kinds, self.overwrite = out_dir, tuple(kinds), overwrite
        self.model_dir, self.keep, self.screen = model_dir, keep, screen
        self.later = tuple(k for k in self.kinds[1:] if k in later)

    def __call__(self, result: FrameResult, finish: Callable[[], Prediction]) -> FrameResult:
        pred = finish()  # post-processing runs here, beside the next batch's forward
        if self.screen is not None:
            pred = self.screen(pred)
        stem = reserve_stem(self.out_dir, pred.frame.name, self.kinds, self.overwrite)
        if "json" in self.kinds:  # kept: the API answers from it without reading the file
            result.report = anomalies_document(pred, model_dir=str(self.model_dir))
        now = [k for k in self.kinds if k not in self.later]
        try:
            written = write_outputs(pred, self.out_dir, stem, model_dir=str(self.model_dir),
                                    outputs=now, document=result.report)
        except BaseException:
            if not self.overwrite:  # give the claimed name back
                (self.out_dir / f"{stem}{OUTPUT_NAMES[self.kinds[0]]}").unlink(missing_ok=True)
            raise
        if self.later:
            deferred.submit(partial(_write_later, pred, self.out_dir, stem,
                                    str(self.model_dir), self.later, result.report),
                            name=f"the outputs of {stem} in {self.out_dir}",
                            cost=_held_bytes(pred))
            written.update((k, self.out_dir / f"{stem}{OUTPUT_NAMES[k]}") for k in self.later)
        result.outputs = {k: written[k] for k in self.kinds}
        result.n_anomalies = len(pred.anomalies)
        if pred.anomalies:
            result.max_dt_degc = max(a.mean_dt_degc for a in pred.anomalies)
        if self.keep:
            result.prediction = pred
        return result


def _write_later(pred: Prediction, out_dir: Path, stem: str, model_dir: str,
                 kinds: Sequence[str], document: dict | None) -> None:
    """The deferred files one by one, the JSON report last (its presence marks a complete
    set), yielding to requests between them."""
    for i, kind in enumerate(sorted(kinds, key=lambda k: k == "json")):
        if i:
            deferred.pause_point()
        write_outputs(pred, out_dir, stem, model_dir=model_dir, outputs=(kind,),
                      document=document)


def _held_bytes(pred: Prediction) -> int:
    arrays = (pred.frame.data, pred.frame.corridor, pred.probability, pred.mask, pred.labels)
    return sum(int(getattr(a, "nbytes", 0)) for a in arrays)


def _fail(result: FrameResult, exc: BaseException) -> FrameResult:
    result.error_kind = (
        "input" if isinstance(exc, (InvalidInputError, FileNotFoundError)) else "runtime"
    )
    if isinstance(exc, FileNotFoundError) and not isinstance(exc, TasegError):
        result.error = f"no such file: {exc.filename or result.source}"
    elif isinstance(exc, TasegError):
        result.error = str(exc)
    else:
        # One line for the user; the traceback only in debug logs (taseg -v).
        log.debug("prediction of %s failed", result.source, exc_info=exc)
        text = " ".join(str(exc).split())[:300]
        result.error = f"{type(exc).__name__}: {text}"
    return result


@dataclass(frozen=True)
class PredictRequest:
    """What :func:`predict_paths` does with its inputs: model, options, outputs.

    Attributes:
        model_dir: model folder; default from :func:`.models.folder.resolve_model_dir`.
        out_dir: output folder; default ``<model_dir>/predictions``.
        options: threshold, batch size, device, tiling and area options.
        corridor: corridor mask for inputs that need one (single-band TIFF), for all inputs.
        overwrite: reuse existing output names instead of choosing ``<stem>-N``.
        outputs: subset of :data:`OUTPUT_KINDS` to write (default all); with ``pipes``, of
            :data:`.outputs.names.ORTHO_NAMES` (which adds ``gpkg``).
        keep_predictions: attach the in-memory :class:`Prediction` to each result.
        names: output stems to use instead of the input file names (one per input).
        pipes: pipe network layer: every input must then be a georeferenced raster, streamed
            window by window through :func:`.geo.ortho.predict_ortho` (any size), with the
            corridor buffered from the pipes; writes COGs, a GeoPackage and GeoJSON.
        corridor_width_m: full corridor width around the pipe axes (default 8 m).
        pipe_id_field: field of the pipe layer naming each pipe (default: the first id-like).
        false_alarms: apply the false-alarm stage (:mod:`.false_alarms`): ``True`` for the
            model folder's classifier, or a classifier file. Rejected components leave the
            mask and are listed apart in the JSON report (``rejected``, with cause and score).
        deferred_outputs: kinds of ``outputs`` written after each result is yielded, in the
            background (:mod:`.outputs.deferred`): its ``outputs`` then name files that
            appear shortly after. The first kind of ``outputs`` is always written before.
    """

    model_dir: str | os.PathLike[str] | None = None
    out_dir: str | os.PathLike[str] | None = None
    options: PredictOptions | None = None
    corridor: str | os.PathLike[str] | np.ndarray | None = None
    overwrite: bool = False
    outputs: Sequence[str] | None = None
    keep_predictions: bool = False
    names: Sequence[str] | None = None
    pipes: str | os.PathLike[str] | None = None
    corridor_width_m: float | None = None
    pipe_id_field: str | None = None
    false_alarms: str | os.PathLike[str] | bool | None = None
    deferred_outputs: Sequence[str] = ()


def predict_paths(
    inputs: Iterable[str | os.PathLike[str]],
    request: PredictRequest | None = None,
    *,
    segmenter: Segmenter | None = None,
    settings: Settings | None = None,
) -> Iterator[FrameResult]:
    """Predict every input and write its outputs; yields one result per input, in order.

    The generator owns reader and writer threads: exhaust it or ``close()`` it. One left
    suspended stops its threads only when the garbage collector finalises it, at an arbitrary
    point of another thread, where joining threads can deadlock.

    Args:
        inputs: files, folders or glob patterns.
        request: model, options and outputs (default: all defaults).
        segmenter: an already loaded model (the API keeps one warm).
    """
    settings = settings or get_settings()
    request = request or PredictRequest()
    options = request.options or PredictOptions()
    kinds = _output_kinds(request)
    paths = collect_inputs(inputs)
    if request.names is not None and len(request.names) != len(paths):
        raise InvalidInputError("names must give one output name per input")
    if segmenter is None:
        folder = resolve_model_dir(request.model_dir, settings)
        segmenter = get_segmenter(folder, options.device, settings.backend)
    folder = segmenter.model_dir or Path(".")
    out = Path(request.out_dir).expanduser() if request.out_dir else folder / "predictions"
    screen = _screen_for(request, segmenter)
    if request.pipes is not None:
        yield from _predict_georeferenced(paths, request, segmenter, options, out, kinds)
        return
    writer = _Writer(out, kinds, request.overwrite, folder, request.keep_predictions, screen,
                     request.deferred_outputs)
    if writer.later:
        deferred.finish_on_sigterm()

    def read(i: int) -> Frame:
        name = None if request.names is None else request.names[i]
        return read_frame(paths[i], request.corridor, name=name, max_pixels=settings.max_pixels)

    yield from _pipeline(paths, read, segmenter, options, writer)


def _output_kinds(request: PredictRequest) -> Sequence[str]:
    """The kinds of output to write: the request's, checked, or every kind of its path."""
    outputs = request.outputs
    if request.pipes is not None:  # the streamed path has its own kinds (COGs, gpkg)
        from thermal_anomaly_segmenter.geo.ortho import ortho_outputs

        return ortho_outputs(outputs)
    if outputs is None:
        return OUTPUT_KINDS
    if not outputs or set(outputs) - set(OUTPUT_KINDS):
        raise InvalidInputError(f"outputs must be a non-empty subset of {', '.join(OUTPUT_KINDS)}")
    return outputs


def _screen_for(
    request: PredictRequest, segmenter: Segmenter
) -> Callable[[Prediction], Prediction] | None:
    """The false-alarm stage to apply to each prediction, if any: the request's, else the
    model folder's own when ``taseg adapt`` switched it on (never on the ``pipes`` path)."""
    false_alarms = request.false_alarms
    if false_alarms is None and request.pipes is None and getattr(
            segmenter.config, "train_args", {}).get("false_alarm_stage") == "on":
        false_alarms = True  # the folder's own stage, switched on by taseg adapt
    if not false_alarms:
        return None
    if request.pipes is not None:
        raise InvalidInputError("the false-alarm stage does not apply to --pipes yet")
    from thermal_anomaly_segmenter.false_alarms.apply import classifier_for
    from thermal_anomaly_segmenter.false_alarms.apply import screen as screen_prediction

    classifier = classifier_for(false_alarms, segmenter.model_dir)
    source = str(false_alarms if false_alarms is not True
                 else Path(segmenter.model_dir or ".") / "false_alarms.json")
    return partial(screen_prediction, classifier=classifier, source=source)


def _predict_georeferenced(
    paths: list[Path],
    request: PredictRequest,
    segmenter: Segmenter,
    options: PredictOptions,
    out: Path,
    kinds: Sequence[str],
) -> Iterator[FrameResult]:
    """Stream each georeferenced raster with the corridor of ``request.pipes`` (one at a
    time: each already runs block by block with bounded memory)."""
    from thermal_anomaly_segmenter.geo.leftovers import claim_name, sweep_outputs
    from thermal_anomaly_segmenter.geo.network import DEFAULT_CORRIDOR_WIDTH_M, PipeNetwork
    from thermal_anomaly_segmenter.geo.ortho import OrthoOptions, predict_ortho
    from thermal_anomaly_segmenter.io.frames import frame_stem
    from thermal_anomaly_segmenter.outputs.names import ORTHO_NAMES

    names, overwrite = request.names, request.overwrite
    network = PipeNetwork.read(request.pipes, request.pipe_id_field)  # type: ignore[arg-type]
    width = (DEFAULT_CORRIDOR_WIDTH_M if request.corridor_width_m is None
             else request.corridor_width_m)
    sweep_outputs(out, ORTHO_NAMES.values())  # what killed predicts left
    for i, path in enumerate(paths):
        result = FrameResult(source=str(path))
        t0 = time.perf_counter()
        stem = claim = None
        try:
            if not path.is_file():
                raise FileNotFoundError(2, "no such file", str(path))
            stem = reserve_stem(out, frame_stem(names[i] if names else path), kinds, overwrite,
                                ORTHO_NAMES)
            result.name = stem
            claim = out / claim_name(stem)  # a killed predict's name is given back later
            claim.touch()
            ortho = predict_ortho(path, network, segmenter, options, out, stem,
                                  OrthoOptions(corridor_width_m=width,
                                               model_dir=str(segmenter.model_dir),
                                               outputs=kinds))
        except BaseException as exc:  # an interrupt too gives the name back
            if stem is not None and not overwrite:  # give the claimed name back
                (out / f"{stem}{ORTHO_NAMES[kinds[0]]}").unlink(missing_ok=True)
            if not isinstance(exc, Exception):
                raise
            _fail(result, exc)
        else:
            result.outputs = ortho.outputs
            result.n_anomalies = len(ortho.records)
            if ortho.records:
                result.max_dt_degc = max(r["mean_dt_degc"] for r in ortho.records)
        finally:
            if claim is not None:
                claim.unlink(missing_ok=True)
        result.seconds = time.perf_counter() - t0
        yield result


def _pipeline(paths: list[Path], read: Callable[[int], Frame], segmenter: Segmenter,
              options: PredictOptions, writer: _Writer) -> Iterator[FrameResult]:
    prefetch = max(2, options.batch_size * 2)
    pending: deque[tuple[FrameResult, Future | None, float]] = deque()
    # One input (an API request) has nothing to overlap with: its read, forward and writes
    # run in this thread, without starting threads or handing work between them.
    pool = _Inline if len(paths) == 1 else ThreadPoolExecutor
    with (
        pool(2, thread_name_prefix="taseg-read") as readers,
        pool(2, thread_name_prefix="taseg-write") as writers,
    ):
        reads = deque(readers.submit(read, i) for i in range(min(prefetch, len(paths))))
        next_read = len(reads)
        batch: list[tuple[FrameResult, Frame, float]] = []

        def flush() -> None:
            if not batch:
                return
            frames = [frame for _, frame, _ in batch]
            medians: list[float | None] = [None] * len(frames)
            probs: list[np.ndarray | None] = [None] * len(frames)
            try:
                medians = [corridor_median(f.t_u, f.corridor) for f in frames]
                probs = segmenter.probabilities(frames, options, medians)  # type: ignore[assignment]
            except Exception:  # isolate the culprit: retry frame by frame
                for i, (res, frame, _) in enumerate(batch):
                    try:
                        medians[i] = corridor_median(frame.t_u, frame.corridor)
                        probs[i] = segmenter.probabilities([frame], options, [medians[i]])[0]
                    except Exception as exc:
                        probs[i] = None
                        _fail(res, exc)
            # Only the forward passes run here; post-processing and writing run in the
            # writer threads, overlapping with the next batch's forward.
            for (res, frame, t0), prob, median in zip(batch, probs, medians, strict=True):
                fut = None
                if prob is not None:
                    fut = writers.submit(
                        writer, res, partial(segmenter.finish, frame, prob, median, options)
                    )
                pending.append((res, fut, t0))
            batch.clear()

        for path in paths:
            fut = reads.popleft()
            if next_read < len(paths):
                reads.append(readers.submit(read, next_read))
                next_read += 1
            result = FrameResult(source=str(path))
            t0 = time.perf_counter()
            try:
                frame = fut.result()
            except Exception as exc:
                flush()  # keep results in input order
                pending.append((_fail(result, exc), None, t0))
            else:
                result.name = frame.name
                if batch and frame.shape != batch[0][1].shape:
                    flush()
                batch.append((result, frame, t0))
                if len(batch) >= options.batch_size:
                    flush()
            while pending and (pending[0][1] is None or pending[0][1].done()):
                yield _finish(*pending.popleft())
            # Bound memory: wait for writes when too many predictions are queued.
            while len(pending) > prefetch:
                yield _finish(*pending.popleft())
        flush()
        while pending:
            yield _finish(*pending.popleft())


class _Inline:
    """An executor that runs each call at once, in the caller's thread."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable[..., object], *args: object) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # delivered by result(), as a thread pool would
            future.set_exception(exc)
        return future


def _finish(result: FrameResult, fut: Future | None, t0: float) -> FrameResult:
    if fut is not None:
        try:
            result = fut.result()
        except Exception as exc:
            _fail(result, exc)
    result.seconds = time.perf_counter() - t0
    return result
