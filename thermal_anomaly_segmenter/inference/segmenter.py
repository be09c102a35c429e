"""Inference engine: the place where a frame becomes a mask.

:class:`Segmenter` loads a model folder once and keeps it warm. For each frame it normalises
the temperatures, runs the network under ``torch.inference_mode`` (on CUDA through
:class:`~.accel.DeviceEngine`: bf16 weights, work on the device, CUDA graphs),
and turns the sigmoid probabilities into a corridor-restricted mask and anomaly records.
Frames up to about the training size run whole and are batched together; larger frames go
through overlapping tiles blended with a smooth window, so memory stays bounded whatever the
frame size. The classical model skips the network and thresholds T_u directly.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from thermal_anomaly_segmenter.config import PredictOptions
from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.inference.calibration import Calibration
from thermal_anomaly_segmenter.inference.postprocess import Prediction, extract_anomalies
from thermal_anomaly_segmenter.io.frames import Frame
from thermal_anomaly_segmenter.models.folder import ModelConfig
from thermal_anomaly_segmenter.models.load import load_model_folder
from thermal_anomaly_segmenter.models.normalization import corridor_median

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx")

#: A frame runs whole when it has at most this many times the pixels of a tile.
WHOLE_FRAME_FACTOR = 1.5

#: Smallest default tile: one usual drone frame. Networks are trained at native resolution
#: (whole frames or random windows of them), so they run on any size; tiles only bound the
#: memory of large frames, and tiles smaller than a frame would add overlap work and edges.
MIN_TILE = (512, 640)


def select_device(device: str = "auto") -> str:
    """Resolve ``auto`` to ``cuda`` when a GPU is usable, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device 'cuda' was asked for, but no CUDA GPU is available")
    if device not in ("cpu", "cuda"):
        raise InvalidInputError(f"device must be auto, cpu or cuda, got {device!r}")
    return device


@dataclass(frozen=True)
class TileGrid:
    """Start offsets of overlapping tiles along both axes and the blending window."""

    rows: tuple[int, ...]
    cols: tuple[int, ...]
    tile: tuple[int, int]
    window_y: np.ndarray
    window_x: np.ndarray

    @classmethod
    def plan(cls, shape: tuple[int, int], tile: tuple[int, int], overlap: float) -> TileGrid:
        th, tw = min(tile[0], shape[0]), min(tile[1], shape[1])
        return cls(
            _starts(shape[0], th, overlap),
            _starts(shape[1], tw, overlap),
            (th, tw),
            _ramp(th, overlap),
            _ramp(tw, overlap),
        )

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((r, c) for r in self.rows for c in self.cols)

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def weight_sums(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Per-axis sums of the window over all tiles.

        The 2-D weight of a tile is ``window_y[:, None] * window_x[None, :]`` and the tiles form
        a product grid, so the total weight at a pixel is the product of these two vectors:
        no full-size weight image is needed.
        """
        sy = np.zeros(shape[0], np.float32)
        sx = np.zeros(shape[1], np.float32)
        for r in self.rows:
            sy[r : r + self.tile[0]] += self.window_y
        for c in self.cols:
            sx[c : c + self.tile[1]] += self.window_x
        return sy, sx


def _starts(length: int, tile: int, overlap: float) -> tuple[int, ...]:
    if length <= tile:
        return (0,)
    step = max(1, int(tile * (1.0 - overlap)))
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return tuple(sorted(set(starts)))


def _ramp(n: int, overlap: float) -> np.ndarray:
    """A window that is 1 in the middle and falls linearly over the overlap, never to 0."""
    return blend_window(n, max(1, int(n * overlap)))


def blend_window(n: int, ramp: int) -> np.ndarray:
    """The blending window of a tile of ``n`` pixels: 1 in the middle, falling linearly over
    ``ramp`` pixels towards each end, never to 0."""
    i = np.arange(n, dtype=np.float32)
    edge = np.minimum(i + 1, n - i) / (ramp + 1)
    return np.clip(edge, 1.0 / (ramp + 1), 1.0).astype(np.float32)


class Segmenter:
    """A loaded model, warm in memory, that predicts frames."""

    def __init__(
        self,
        config: ModelConfig,
        model=None,
        *,
        model_dir: str | os.PathLike[str] | None = None,
        device: str = "cpu",
    ) -> None:
        self.config = config
        self.model = model
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.device = device
        self.norm = config.norm
        # One forward at a time: a model is not re-entrant across threads on every backend.
        self._lock = threading.Lock()
        self._session = None  # ONNX Runtime session, when that backend is used
        self._engine = None  # .accel.DeviceEngine on CUDA (issue 17); None on the CPU
        self._onnx_stride: int | None = None  # from model.onnx.json when model is not built
        # Issue 14: stored Platt scaling, applied to the logits of either backend.
        self.calibration = Calibration.from_config(config.calibration)

    @classmethod
    def from_folder(
        cls,
        model_dir: str | os.PathLike[str],
        device: str = "auto",
        backend: str = "auto",
        *,
        compile_model: bool = False,
    ) -> Segmenter:
        """Load a model folder (``train_config.json`` + safetensors weights).

        Args:
            backend: ``auto`` runs a fresh ``model.onnx`` (see :mod:`.export`) with ONNX Runtime
                on the CPU and PyTorch otherwise; ``torch`` or ``onnx`` force one.
            compile_model: wrap the PyTorch network in ``torch.compile`` (off by default; meant
                for GPUs, where it fuses the bf16 graph; the first batch of each new shape
                compiles, which takes tens of seconds). On the 2-core CPU machine it was much
                slower than eager, so leave it off there. ONNX Runtime ignores it.
        """
        if backend not in BACKENDS:
            raise InvalidInputError(
                f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}"
            )
        device = select_device(device)
        if device == "cpu" and backend != "torch":
            segmenter = cls._onnx_only(model_dir, device)
            if segmenter is not None:
                return segmenter
        model, config = load_model_folder(model_dir, device=device)
        segmenter = cls(config, model, model_dir=model_dir, device=device)
        if model is not None and device == "cuda":
            import torch

            segmenter.model = model.to(memory_format=torch.channels_last)
            from thermal_anomaly_segmenter.inference.gpu_engine import DeviceEngine, EngineOptions

            segmenter._engine = DeviceEngine(model, config.norm, device,
                                             EngineOptions(compile=compile_model),
                                             calibration=segmenter.calibration)
        elif model is not None and backend != "torch":
            segmenter._use_onnx(backend == "onnx")
        if (compile_model and model is not None and segmenter._session is None
                and segmenter._engine is None):
            import torch

            segmenter.model = torch.compile(segmenter.model)
        log.debug(
            "loaded %s from %s on %s (%s)", config.model_type, model_dir, device, segmenter.backend
        )
        return segmenter

    @classmethod
    def _onnx_only(cls, model_dir: str | os.PathLike[str], device: str) -> Segmenter | None:
        """A fresh ``model.onnx`` in ONNX Runtime, without building the PyTorch network
        (``model`` stays ``None``): that build is most of a worker's cold start, and the
        export's hashes already tie the ONNX file to these weights. ``None`` where anything
        is missing; :meth:`from_folder` then loads the folder as before (and reports)."""
        from thermal_anomaly_segmenter.models.load import read_model_config
        from thermal_anomaly_segmenter.models.onnx_export import (
            fresh_onnx,
            onnx_stride,
            open_session,
        )
        from thermal_anomaly_segmenter.models.published import is_published_folder

        if is_published_folder(Path(model_dir)):
            return None
        config = read_model_config(model_dir)
        if config.family == "classical":
            return None
        stride = onnx_stride(model_dir)
        path = fresh_onnx(model_dir) if stride else None
        if path is None:
            return None
        try:
            session = open_session(path)
        except Exception:  # the full load below reports it, or falls back to PyTorch
            return None
        segmenter = cls(config, None, model_dir=model_dir, device=device)
        segmenter._session, segmenter._onnx_stride = session, stride
        log.debug("loaded %s from %s on cpu (onnx)", config.model_type, model_dir)
        return segmenter

    @property
    def backend(self) -> str:
        return "onnx" if self._session is not None else "torch"

    def _use_onnx(self, required: bool) -> None:
        from thermal_anomaly_segmenter.models.onnx_export import fresh_onnx, open_session

        path = fresh_onnx(self.model_dir) if self.model_dir is not None else None
        if path is None:
            if required:
                raise InvalidInputError(
                    f"{self.model_dir} has no up-to-date model.onnx; run taseg export first"
                )
            return
        try:
            self._session = open_session(path)
        except Exception as exc:  # a broken runtime must not stop predictions
            if required:
                raise InvalidInputError(f"cannot open {path}: {exc}") from None
            log.warning("cannot open %s (%s); using PyTorch", path, exc)

    @property
    def model_type(self) -> str:
        return self.config.model_type

    # -- probabilities -----------------------------------------------------------------------

    def probabilities(
        self,
        frames: Sequence[Frame],
        options: PredictOptions,
        medians: Sequence[float] | None = None,
    ) -> list[np.ndarray]:
        """Sigmoid probability maps (H x W float32) for frames, batching same-size frames.

        A frame finer than the model's training GSD runs at that GSD and its map is
        interpolated back (:mod:`~thermal_anomaly_segmenter.io.gsd`)."""
        if medians is None:
            medians = [corridor_median(f.t_u, f.corridor) for f in frames]
        if self.config.family == "classical":
            return [self._classical(f) for f in frames]
        factors = self.scale_factors(frames, options)
        if any(factors):
            from thermal_anomaly_segmenter.io.gsd import enlarge, shrink

            small = [f if k is None else shrink(f, k) for f, k in zip(frames, factors,
                                                                       strict=True)]
            probs = self.probabilities(small, replace(options, match_gsd=False), medians)
            return [p if k is None else enlarge(p, f.shape)
                    for p, f, k in zip(probs, frames, factors, strict=True)]
        tile = self.tile_size(options)
        out: list[np.ndarray | None] = [None] * len(frames)
        whole: dict[tuple[int, int], list[int]] = {}
        for i, frame in enumerate(frames):
            h, w = frame.shape
            if (
                h * w <= WHOLE_FRAME_FACTOR * tile[0] * tile[1]
                and h <= 2 * tile[0]
                and w <= 2 * tile[1]
            ):
                whole.setdefault((h, w), []).append(i)
            else:
                out[i] = self._tiled(frame, medians[i], tile, options)
        if self._engine is not None:  # normalised and pipelined on the GPU (.accel)
            for indices in whole.values():
                chunks = [indices[s : s + options.batch_size]
                          for s in range(0, len(indices), options.batch_size)]
                results = self._engine.probabilities_many(
                    [([frames[i].data for i in c], [medians[i] for i in c]) for c in chunks])
                for chunk, probs in zip(chunks, results, strict=True):
                    for i, prob in zip(chunk, probs, strict=True):
                        out[i] = prob
            whole = {}
        for indices in whole.values():
            for start in range(0, len(indices), options.batch_size):
                chunk = indices[start : start + options.batch_size]
                batch = (self.norm.apply(frames[chunk[0]].data, medians[chunk[0]])[None]
                         if len(chunk) == 1 else  # no copy for a batch of one
                         np.stack([self.norm.apply(frames[i].data, medians[i]) for i in chunk]))
                for i, prob in zip(chunk, self._forward(batch), strict=True):
                    out[i] = prob
        return out  # type: ignore[return-value]

    def scale_factors(self, frames: Sequence[Frame], options: PredictOptions
                      ) -> list[float | None]:
        """Per frame, the factor it is shrunk by before the network (``None``: as it is)."""
        if not options.match_gsd or self.config.gsd_m is None:
            return [None] * len(frames)
        from thermal_anomaly_segmenter.io.gsd import frame_gsd, scale_factor

        return [scale_factor(f.shape, frame_gsd(f, options.gsd_m), self.config.gsd_m)
                for f in frames]

    def tile_size(self, options: PredictOptions) -> tuple[int, int]:
        """The tile: ``options.tile_size``, else the training size but at least a frame."""
        if options.tile_size:
            return tuple(options.tile_size)  # type: ignore[return-value]
        h, w = self.config.input_size
        return max(h, MIN_TILE[0]), max(w, MIN_TILE[1])

    def _classical(self, frame: Frame) -> np.ndarray:
        from thermal_anomaly_segmenter.models.triangle import ClassicalParams, classical_probability

        params = ClassicalParams(**self.config.architecture)
        return classical_probability(frame.data, frame.corridor, params)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on a ``B x H x W x 3`` normalised batch; returns ``B x H x W``."""
        if self._session is not None:
            return self._forward_onnx(batch)
        if self._engine is not None:
            return self._engine.forward_normalized(batch)
        import torch

        from thermal_anomaly_segmenter.models.networks import logits_at

        x = torch.from_numpy(batch).permute(0, 3, 1, 2)
        cuda = self.device == "cuda"
        if cuda:
            x = x.to("cuda", non_blocking=True).contiguous(memory_format=torch.channels_last)
        else:
            x = x.contiguous()
        with (
            self._lock,
            torch.inference_mode(),
            torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda),
        ):
            logits = self.calibration.apply_logits(logits_at(self.model(x), x.shape[-2:]).float())
            probs = torch.sigmoid(logits)[:, 0]
        return probs.cpu().numpy()

    def _forward_onnx(self, batch: np.ndarray) -> np.ndarray:
        # The exported graph expects sizes that are multiples of the stride; pad like
        # SegmentationNet does (edge replication) and crop back.
        stride = self._onnx_stride or self.model.stride
        _, h, w, _ = batch.shape
        x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        pad_h, pad_w = (-h) % stride, (-w) % stride
        if pad_h or pad_w:
            x = np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="edge")
        logits = self._session.run(None, {"input": x})[0][:, 0, :h, :w]
        # sigmoid(scale * z + bias) (issue 14's stored Platt scaling) as 0.5 * (1 + tanh(
        # 0.5 * scale * z + 0.5 * bias)): no overflow warnings for large |z|, one new array,
        # and bit for bit the float32 result of scaling first (halving is exact).
        cal = self.calibration
        probs = np.multiply(logits, np.float32(0.5 * cal.scale), dtype=np.float32)
        if cal.bias:
            probs += np.float32(0.5 * cal.bias)
        np.tanh(probs, out=probs)
        probs += np.float32(1.0)
        probs *= np.float32(0.5)
        return probs

    def _tiled(
        self,
        frame: Frame,
        median: float,
        tile: tuple[int, int],
        options: PredictOptions,
    ) -> np.ndarray:
        """Blend overlapping tile predictions; peak extra memory is one H x W float32 map."""
        shape = frame.shape
        grid = TileGrid.plan(shape, tile, options.tile_overlap)
        acc = np.zeros(shape, np.float32)
        weight = grid.window_y[:, None] * grid.window_x[None, :]
        th, tw = grid.tile
        positions = list(grid)
        if self._engine is not None and positions:  # tiles blended on the GPU (.accel)
            blended = self._engine.tiled(frame.data, median, positions, grid.tile,
                                         grid.window_y, grid.window_x, options.batch_size)
            if blended is not None:
                return blended
        for start in range(0, len(positions), options.batch_size):
            chunk = positions[start : start + options.batch_size]
            batch = np.stack(
                [self.norm.apply(frame.data[r : r + th, c : c + tw], median) for r, c in chunk]
            )
            for (r, c), prob in zip(chunk, self._forward(batch), strict=True):
                acc[r : r + th, c : c + tw] += prob * weight
        sy, sx = grid.weight_sums(shape)
        # Normalise in row blocks to avoid a full-size temporary.
        for r0 in range(0, shape[0], 1024):
            acc[r0 : r0 + 1024] /= sy[r0 : r0 + 1024, None] * sx[None, :]
        np.clip(acc, 0.0, 1.0, out=acc)
        return acc

    # -- predictions -------------------------------------------------------------------------

    def predict(self, frame: Frame, options: PredictOptions | None = None) -> Prediction:
        """Predict one frame: probability, mask, components and anomaly records."""
        return self.predict_batch([frame], options)[0]

    def predict_batch(
        self, frames: Sequence[Frame], options: PredictOptions | None = None
    ) -> list[Prediction]:
        options = options or PredictOptions()
        medians = [corridor_median(f.t_u, f.corridor) for f in frames]
        probs = self.probabilities(frames, options, medians)
        return [self.finish(*args, options) for args in zip(frames, probs, medians, strict=True)]

    def finish(
        self, frame: Frame, prob: np.ndarray, median: float, options: PredictOptions
    ) -> Prediction:
        """Turn a probability map into a :class:`Prediction` (mask, components, records).

        Needs no model state, so it may run in another thread than the forward passes.
        """
        threshold = self.config.threshold if options.threshold is None else options.threshold
        mask, labels, anomalies = extract_anomalies(
            frame,
            prob,
            threshold,
            corridor_median=median,
            min_area_px=options.min_area_px,
            gsd_m=options.gsd_m,
            conditions=options.conditions,
        )
        return Prediction(
            frame=frame,
            probability=prob,
            mask=mask,
            labels=labels,
            anomalies=anomalies,
            corridor_median_degc=median,
            threshold=threshold,
            model_name=self.model_type,
            gsd_m=options.gsd_m,
            network_gsd_m=(self.config.gsd_m
                           if self.scale_factors([frame], options)[0] is not None else None),
            conditions=options.conditions,
        )


_cache: dict[tuple[str, str, str], tuple[tuple[float, ...], Segmenter]] = {}
_cache_lock = threading.Lock()


def _stamp(model_dir: Path) -> tuple[float, ...]:
    from thermal_anomaly_segmenter.models.folder import CONFIG_NAME, WEIGHTS_NAME

    stamps = []
    for name in (CONFIG_NAME, WEIGHTS_NAME, "model.onnx"):
        try:
            stamps.append((model_dir / name).stat().st_mtime_ns)
        except OSError:
            stamps.append(0.0)
    return tuple(stamps)


def get_segmenter(
    model_dir: str | os.PathLike[str], device: str = "auto", backend: str = "auto"
) -> Segmenter:
    """A warm :class:`Segmenter` for ``model_dir``, loaded once per process.

    The cache is keyed on the resolved folder and device, and a model folder rewritten on disk
    (new weights) is loaded again. It holds at most two models to bound memory.
    """
    folder = Path(model_dir).resolve()
    key = (str(folder), select_device(device), backend)
    stamp = _stamp(folder)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        segmenter = Segmenter.from_folder(folder, device=key[1], backend=backend)
        if len(_cache) >= 2 and key not in _cache:
            _cache.pop(next(iter(_cache)))
        _cache[key] = (stamp, segmenter)
        return segmenter
