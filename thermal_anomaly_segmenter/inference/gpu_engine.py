"""The inference engine's device path: what a :class:`~.inference.Segmenter` on a GPU runs.

On an H200 the engine path (``Segmenter``) reached a third of the bare bf16 forward
(benchmarks/RESULTS.md D23). :class:`DeviceEngine` moves what is not the network off the host and
makes the network itself cheaper:

* frames go from their numpy arrays straight into reused page-locked (pinned) buffers, one
  copy, and on to the GPU with ``non_blocking`` copies on a side stream; the compute stream
  waits for the copy by an event, not by a synchronisation, so the host stages the next
  batch (:meth:`DeviceEngine.probabilities_many`) or the next tiles while the GPU runs the
  current ones;
* normalisation (:func:`normalize`), layout (channels-last), sigmoid and, for tiled frames,
  the blending of tiles (:func:`blend_tiles`) run on the device; the host waits only for
  results (copied back into pinned memory);
* named profiler ranges (``taseg.engine.stage``, ``.forward``, ``.to_host``) for
  ``torch.profiler`` (``python -m benchmarks gpu`` prints them);
* bf16 weights (a bf16 copy of the network; no autocast per call), ``torch.compile`` with
  ``dynamic=False`` (drone frames come in one size, so one graph per batch shape), and a CUDA
  graph captured per fixed batch shape (replayed instead of launching every kernel; other
  shapes, such as a last partial batch, run without it).

Everything but the pinned memory, the side stream and the CUDA graphs also runs on the CPU
device, which is how the tests check it against the numpy path; on the CPU the Segmenter
does not use this module at all (its numpy / ONNX Runtime path is faster there).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.profiler import record_function

from thermal_anomaly_segmenter.models.normalization import Normalization

log = logging.getLogger(__name__)

#: Most CUDA graphs one engine keeps (one per batch shape); other shapes run without.
MAX_GRAPHS = 8

COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune",
                                  "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class EngineOptions:
    """What the device engine does; the defaults are the GPU setting of a Segmenter.

    Args:
        bf16_weights: Run a bf16 copy of the network (else float32 weights under bf16
            autocast on CUDA, float32 on the CPU).
        compile: Wrap the network in ``torch.compile(dynamic=False)``; the first batch of each
            shape compiles (tens of seconds).
        compile_mode: ``torch.compile`` mode; with ``cuda_graphs`` the engine captures graphs
            itself, so the default leaves inductor's own CUDA graphs out.
        cuda_graphs: Capture one CUDA graph per batch shape and replay it (GPU only).
        pinned: Stage frames in page-locked memory (GPU only).
        side_stream: Copy to the GPU on a stream of its own (GPU only).
    """

    bf16_weights: bool = True
    compile: bool = False
    compile_mode: str = "default"
    cuda_graphs: bool = True
    pinned: bool = True
    side_stream: bool = True

    def __post_init__(self) -> None:
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, "
                             f"got {self.compile_mode!r}")


def normalize(x: torch.Tensor, norm: Normalization, medians: torch.Tensor) -> torch.Tensor:
    """:meth:`Normalization.apply` on the device, for a B x 3 x H x W batch of degC."""
    if norm.mode == "relative":
        return (x - medians.to(x.dtype)[:, None, None, None]) * (1.0 / norm.scale_degc)
    if norm.mode == "dataset":
        mean = torch.tensor(norm.mean, dtype=x.dtype, device=x.device)[None, :, None, None]
        inv = 1.0 / torch.tensor(norm.std, dtype=x.dtype, device=x.device)
        return (x - mean) * inv[None, :, None, None]
    return x.clone()


def blend_tiles(probs: torch.Tensor, positions: Sequence[tuple[int, int]], shape: tuple[int, int],
                window_y: torch.Tensor, window_x: torch.Tensor, acc: torch.Tensor | None = None,
                total: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Add tile probabilities (N x th x tw) weighted by the blending window into ``acc`` and
    the weights into ``total`` (both H x W on the probabilities' device, made when ``None``);
    the blended map is ``acc / total`` where ``total > 0`` (:meth:`.inference.Segmenter._tiled`
    in numpy)."""
    if acc is None:
        acc = torch.zeros(shape, dtype=torch.float32, device=probs.device)
    if total is None:
        total = torch.zeros(shape, dtype=torch.float32, device=probs.device)
    weight = window_y.to(probs.device)[:, None] * window_x.to(probs.device)[None, :]
    th, tw = weight.shape
    for (r, c), prob in zip(positions, probs, strict=True):
        acc[r : r + th, c : c + tw] += prob * weight
        total[r : r + th, c : c + tw] += weight
    return acc, total


class DeviceEngine:
    """A network, its normalisation and its buffers on one device.

    Args:
        model: The network (B x 3 x H x W -> B x 1 x H x W logits); it is not changed (bf16
            weights are a copy).
        norm: The model's input normalisation.
        device: ``cuda`` or ``cpu``.
        options: :class:`EngineOptions`.
    """

    def __init__(self, model: torch.nn.Module, norm: Normalization, device: str = "cuda",
                 options: EngineOptions | None = None, calibration: Any = None) -> None:
        self.options = options or EngineOptions()
        # The folder's stored Platt scaling (.calibration.Calibration), applied to the logits
        # before the sigmoid exactly as the host path does; None: uncalibrated.
        self.calibration = calibration
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.norm = norm
        net = model
        if self.options.bf16_weights:
            net = copy.deepcopy(model).to(dtype=torch.bfloat16)
        net = net.to(self.device).eval()
        if self.cuda:
            net = net.to(memory_format=torch.channels_last)
        if self.options.compile:
            net = torch.compile(net, mode=self.options.compile_mode, dynamic=False)
        self.net = net
        self.dtype = torch.bfloat16 if self.options.bf16_weights else torch.float32
        self._lock = threading.Lock()
        # Pinned staging buffer per batch shape, and the event of the last copy out of it.
        self._pinned: dict[tuple[int, ...], tuple[torch.Tensor, Any]] = {}
        self._graphs: dict[tuple[int, ...], tuple[Any, torch.Tensor, torch.Tensor]] = {}
        self._graphs_ok = self.cuda and self.options.cuda_graphs
        self._copy_stream = torch.cuda.Stream(self.device) if (
            self.cuda and self.options.side_stream) else None

    # -- host -> device ----------------------------------------------------------------------

    def _staged(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        """The arrays as one B x ... tensor on the device: through a reused pinned buffer on
        a GPU (one host copy), stacked on the CPU."""
        shape = (len(arrays), *arrays[0].shape)
        if not self.cuda:
            return torch.from_numpy(np.stack(arrays).astype(np.float32, copy=False))
        pin = self.options.pinned
        host, copied = self._pinned.get(shape, (None, None))
        if host is None:
            host = torch.empty(shape, dtype=torch.float32, pin_memory=pin)
        elif copied is not None:
            copied.synchronize()  # the last copy out of this buffer has finished
        view = host.numpy()
        for i, a in enumerate(arrays):
            np.copyto(view[i], a, casting="same_kind")
        stream = self._copy_stream or torch.cuda.current_stream(self.device)
        with torch.cuda.stream(stream):
            out = host.to(self.device, non_blocking=pin)
            done = torch.cuda.Event()
            done.record(stream)
        self._pinned[shape] = (host, done)
        if self._copy_stream is not None:
            torch.cuda.current_stream(self.device).wait_event(done)
            out.record_stream(torch.cuda.current_stream(self.device))
        return out

    def _medians(self, medians: Sequence[float]) -> torch.Tensor:
        med = torch.tensor(list(medians), dtype=torch.float32)
        if not self.cuda:
            return med
        # From pinned memory, so the copy queues behind the running batch instead of waiting.
        pin = self.options.pinned
        return (med.pin_memory() if pin else med).to(self.device, non_blocking=pin)

    def _to_host(self, probs: torch.Tensor) -> np.ndarray:
        out, done = self._to_host_async(probs)
        return self._ready(out, done)

    def _to_host_async(self, probs: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Start the copy back into pinned memory; returns it and its event (GPU)."""
        if not self.cuda:
            return probs, None
        out = torch.empty(probs.shape, dtype=probs.dtype, pin_memory=self.options.pinned)
        out.copy_(probs, non_blocking=self.options.pinned)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(self.device))
        return out, done

    @staticmethod
    def _ready(out: torch.Tensor, done: Any) -> np.ndarray:
        if done is not None:
            done.synchronize()
        return out.numpy()

    # -- the network -------------------------------------------------------------------------

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if self._graphs_ok and (key in self._graphs or len(self._graphs) < MAX_GRAPHS):
            try:
                return self._replay(x)
            except Exception as exc:  # a network that cannot be captured still predicts
                log.warning("CUDA graph capture failed (%s: %s); running without graphs",
                            type(exc).__name__, exc)
                self._graphs_ok = False
                self._graphs.clear()
        return self._run(x)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        autocast = self.cuda and not self.options.bf16_weights
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                            enabled=autocast):
            return self.net(x)

    def _replay(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._capture(x)
            self._graphs[key] = graph
        g, static_in, static_out = graph
        static_in.copy_(x)
        g.replay()
        return static_out

    def _capture(self, x: torch.Tensor) -> tuple[Any, torch.Tensor, torch.Tensor]:
        static_in = x.clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up outside the graph (allocator, autotuning)
            for _ in range(3):
                self._run(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            static_out = self._run(static_in)
        log.debug("captured a CUDA graph for batch shape %s", tuple(x.shape))
        return g, static_in, static_out

    def _probs(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised B x 3 x H x W -> sigmoid probabilities B x H x W (float32, device)."""
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self._logits(x.to(self.dtype)).float()
        if self.calibration is not None:
            logits = self.calibration.apply_logits(logits)
        return torch.sigmoid(logits)[:, 0]

    # -- calls -------------------------------------------------------------------------------

    def probabilities(self, frames: Sequence[np.ndarray], medians: Sequence[float]) -> np.ndarray:
        """Sigmoid probabilities (B x H x W float32) of same-size H x W x 3 degC frames,
        normalised on the device."""
        return self.probabilities_many([(frames, medians)])[0]

    @torch.inference_mode()
    def probabilities_many(self, chunks: Sequence[tuple[Sequence[np.ndarray], Sequence[float]]]
                           ) -> list[np.ndarray]:
        """:meth:`probabilities` of each ``(frames, medians)`` chunk, pipelined: the host
        copies chunk k + 1 into pinned memory and on to the GPU while the GPU still runs
        chunk k; the only waits are for chunk k's results and for a staging buffer's last
        copy out."""
        results: list[np.ndarray] = []
        pending = None
        with self._lock:
            for frames, medians in chunks:
                with record_function("taseg.engine.stage"):
                    x = self._staged(frames).permute(0, 3, 1, 2)
                    med = self._medians(medians)
                with record_function("taseg.engine.forward"):
                    probs = self._probs(normalize(x, self.norm, med))
                    started = self._to_host_async(probs)
                if pending is not None:
                    with record_function("taseg.engine.to_host"):
                        results.append(self._ready(*pending))
                pending = started
            if pending is not None:
                with record_function("taseg.engine.to_host"):
                    results.append(self._ready(*pending))
        return results

    @torch.inference_mode()
    def forward_normalized(self, batch: np.ndarray) -> np.ndarray:
        """:meth:`.inference.Segmenter._forward` on the device: a B x H x W x 3 normalised
        batch -> B x H x W probabilities."""
        with self._lock:
            with record_function("taseg.engine.stage"):
                x = self._staged(list(batch)).permute(0, 3, 1, 2)
            with record_function("taseg.engine.forward"):
                probs = self._probs(x)
            with record_function("taseg.engine.to_host"):
                return self._to_host(probs)

    @torch.inference_mode()
    def tiled(self, data: np.ndarray, median: float, positions: Sequence[tuple[int, int]],
              tile: tuple[int, int], window_y: np.ndarray, window_x: np.ndarray,
              batch_size: int) -> np.ndarray | None:
        """A tiled frame's blended probabilities (H x W float32), tiles normalised and blended
        on the device; ``None`` when the blending maps (8 bytes a pixel) would take more than
        a quarter of the free GPU memory (the caller then blends on the host)."""
        shape = data.shape[:2]
        if self.cuda:
            free, _ = torch.cuda.mem_get_info(self.device)
            if 8 * shape[0] * shape[1] > free // 4:
                return None
        th, tw = tile
        wy, wx = torch.from_numpy(window_y), torch.from_numpy(window_x)
        acc = total = None
        with self._lock:
            for start in range(0, len(positions), batch_size):
                chunk = list(positions[start : start + batch_size])
                x = self._staged([data[r : r + th, c : c + tw] for r, c in chunk])
                med = torch.full((len(chunk),), median, dtype=torch.float32, device=self.device)
                probs = self._probs(normalize(x.permute(0, 3, 1, 2), self.norm, med))
                acc, total = blend_tiles(probs, chunk, shape, wy, wx, acc, total)
            assert acc is not None and total is not None  # nosec B101
            blended = torch.where(total > 0, acc / total.clamp_min(1e-12), 0.0).clamp_(0.0, 1.0)
            return self._to_host(blended)
