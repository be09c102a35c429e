"""TASeg benchmarks: ``python -m benchmarks [folder|api|tiled|onnx|gpu|train_step|loader|...]``
(``heldout``, ``all``).

``heldout`` (quality, not speed) runs :mod:`benchmarks.heldout_families` with its defaults
(``all`` leaves it out).

Every benchmark measures the paths it compares side by side in one run, interleaved, and
prints ratios: absolute figures on shared machines are noisy, ratios much less so. Models are
randomly initialised (speed does not depend on the weights), built from the zoo and saved as
real model folders in a temporary directory. Results go to benchmarks/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4"


def _model(folder: Path, model_type: str = "segformer_b0", input_size=(512, 640)) -> Path:
    import torch

    from thermal_anomaly_segmenter.models.folder import ModelConfig, save_model_folder
    from thermal_anomaly_segmenter.models.registry import build_model

    arch = {"encoder_name": "resnet34"} if model_type.startswith("smp_") else {}
    torch.manual_seed(0)
    config = ModelConfig(model_type=model_type, architecture=arch, input_size=input_size)
    return save_model_folder(folder, config, build_model(model_type, arch))


def _median_ms(values: list[float]) -> float:
    return 1000 * statistics.median(values)


def machine() -> str:
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"python {platform.python_version()}")


def bench_onnx(tmp: Path, repeats: int) -> None:
    """Bare forward: eager PyTorch against ONNX Runtime on the CPU, 512 x 640."""
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.models.onnx_export import export_onnx

    for model_type in ("segformer_b0", "smp_deeplabV3plus"):
        folder = _model(tmp / f"onnx_{model_type}", model_type)
        export_onnx(folder)
        backends = {b: Segmenter.from_folder(folder, "cpu", backend=b) for b in ("torch", "onnx")}
        for batch in (1, 4):
            x = np.random.default_rng(0).normal(size=(batch, 512, 640, 3)).astype(np.float32)
            times: dict[str, list[float]] = {b: [] for b in backends}
            for seg in backends.values():
                seg._forward(x)  # warm up
            for _ in range(repeats):
                for name, seg in backends.items():
                    t0 = time.perf_counter()
                    seg._forward(x)
                    times[name].append((time.perf_counter() - t0) / batch)
            t, o = _median_ms(times["torch"]), _median_ms(times["onnx"])
            print(f"onnx  {model_type:18s} batch {batch}: torch {t:7.1f} ms/frame, "
                  f"onnxruntime {o:7.1f} ms/frame, speed-up {t / o:4.2f}x")


def bench_folder(tmp: Path, frames: int, backend: str) -> None:
    """``taseg predict`` over a folder against the bare batched forward of the same frames.

    ``onnx``: the shipped default model's ``model.onnx``, the bare side a plain ONNX Runtime
    session (:func:`benchmarks.serving.bare_session`) run on the normalised batch; ``torch``:
    a random SegFormer-B0, the bare side ``Segmenter._forward``.
    """
    from benchmarks.serving import bare_session, default_model_copy, normalised_input
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.predict.files import PredictRequest, predict_paths

    if backend == "onnx":
        folder = default_model_copy(tmp / "folder_onnx")
    else:
        folder = _model(tmp / f"folder_{backend}")
    inputs = tmp / "frames"
    if not inputs.exists():
        inputs.mkdir()
        for i in range(frames):
            shutil.copy(SAMPLE, inputs / f"f{i:03d}.npy.lz4")
    seg = Segmenter.from_folder(folder, "cpu", backend=backend)
    options = PredictOptions(batch_size=4)
    x = normalised_input(seg, 4)
    forwards = {}
    if backend == "onnx":  # ORT's defaults, and idle threads sleeping (TASeg's setting)
        for label, spinning in (("defaults", True), ("sleeping", False)):
            session = bare_session(folder / "model.onnx", spinning=spinning)
            forwards[label] = lambda s=session: s.run(None, {"input": x})
    else:
        x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        forwards["Segmenter._forward"] = lambda: seg._forward(x_nhwc)
    for forward in forwards.values():
        forward()
    warm = sorted(inputs.iterdir())[:4]  # first use: thread pools, the overlay's imports
    list(predict_paths(warm, PredictRequest(out_dir=tmp / f"warm{backend}", options=options),
                       segmenter=seg))
    bare: dict[str, list[float]] = {k: [] for k in forwards}
    full, lean = [], []
    for rnd in range(3):  # interleave: bare, full, JSON only, bare, full, ...
        for label, forward in forwards.items():
            time.sleep(0.3)
            t0 = time.perf_counter()
            for _ in range(frames // 4):
                forward()
            bare[label].append(frames / (time.perf_counter() - t0))
        time.sleep(0.3)
        t0 = time.perf_counter()
        request = PredictRequest(out_dir=tmp / f"out{backend}{rnd}", options=options)
        done = sum(r.ok for r in predict_paths([inputs], request, segmenter=seg))
        full.append(done / (time.perf_counter() - t0))
        time.sleep(0.3)
        t0 = time.perf_counter()  # the pipeline's own cost: the JSON report, no images
        request = PredictRequest(out_dir=tmp / f"json{backend}{rnd}", options=options,
                                 outputs=("json",))
        done = sum(r.ok for r in predict_paths([inputs], request, segmenter=seg))
        lean.append(done / (time.perf_counter() - t0))
    rates = {k: statistics.median(v) for k, v in bare.items()}
    fastest = max(rates, key=rates.__getitem__)
    b, f = rates[fastest], statistics.median(full)
    ratios = ", ".join(f"{fr / br:4.2f}" for br, fr in zip(bare[fastest], full, strict=True))
    print(f"folder {backend:5s} {frames} frames 512x640 ({folder.name}, batch 4): bare batched "
          f"forward {', '.join(f'{k} {v:5.2f}' for k, v in rates.items())} frames/s; taseg "
          f"predict (read+infer+post+5 outputs) {f:5.2f} frames/s; ratio to the fastest bare "
          f"({fastest}) {f / b:4.2f} (per round {ratios}); writing only the JSON report "
          f"{statistics.median(lean):5.2f} frames/s, ratio {statistics.median(lean) / b:4.2f}")


def bench_api(tmp: Path, repeats: int) -> None:
    """Warm HTTP predict against the bare ONNX Runtime forward, eager PyTorch and the rest;
    where the time beside the forward goes (see :mod:`benchmarks.serving`)."""
    from benchmarks.serving import bench_api as serving

    serving(tmp, repeats)


_TILED_CHILD = """
import json, resource, sys, time
from thermal_anomaly_segmenter.config import PredictOptions
from thermal_anomaly_segmenter.io.read import read_frame
from thermal_anomaly_segmenter.inference.segmenter import Segmenter
folder, big_path, small_path, overlap = sys.argv[1:5]
def peak_kib():  # VmHWM starts afresh at exec; ru_maxrss would keep the parent's peak
    try:
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
opts = PredictOptions(batch_size=4, tile_overlap=float(overlap))
s = Segmenter.from_folder(folder, "cpu", "torch")
small = read_frame(small_path)
def small_rate():
    t = time.perf_counter()
    s.predict_batch([small] * 8, opts)
    return (time.perf_counter() - t) / (8 * small.shape[0] * small.shape[1])
small_rate()  # warm up
rss0 = peak_kib()
before = small_rate()
t = time.perf_counter()
frame = read_frame(big_path)
read = time.perf_counter() - t
pred = s.predict(frame, opts)
big = (time.perf_counter() - t - read) / (frame.shape[0] * frame.shape[1])
rss1 = peak_kib()
del frame, pred
after = small_rate()
print(json.dumps({"rss0": rss0, "rss1": rss1, "big": big, "read": read,
                  "small": (before + after) / 2, "small_spread": abs(before - after)}))
"""


def bench_tiled(tmp: Path, size: int, overlap: float = 0.25) -> None:
    """A size x size frame in tiles: peak RSS beyond the warm model, and seconds per pixel
    against 512 x 640 frames measured in the same process right before and after it."""
    from thermal_anomaly_segmenter.inference.segmenter import TileGrid
    from thermal_anomaly_segmenter.io.formats import write_frame
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    folder = _model(tmp / "tiled")
    path = tmp / f"big{size}.npy.lz4"
    if not path.exists():
        write_frame(path, make_scene(1, size, size).data)
    out = subprocess.run([sys.executable, "-c", _TILED_CHILD, str(folder), str(path), str(SAMPLE),
                          str(overlap)], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    grid = TileGrid.plan((size, size), (512, 640), overlap)
    computed = len(grid) * grid.tile[0] * grid.tile[1] / size**2
    extra_gib = (r["rss1"] - r["rss0"]) / 2**20  # KiB
    ratio = r["big"] / r["small"]
    print(f"tiled {size}x{size} overlap {overlap}: peak RSS beyond the warm model "
          f"{extra_gib:5.2f} GiB; {r['big'] * 1e6:6.3f} s/Mpx (predict; reading took "
          f"{r['read']:4.1f} s) against "
          f"{r['small'] * 1e6:6.3f} s/Mpx as 512x640 frames (before/after spread "
          f"{r['small_spread'] / r['small']:4.0%}): ratio {ratio:4.2f}; {len(grid)} tiles = "
          f"{computed:4.2f}x the pixels, ratio per computed pixel {ratio / computed:4.2f}",
          flush=True)


def bench_gpu(tmp: Path, models: Sequence[str], batch: int = 32, compile_too: bool = True,
              peak: float = 989e12, smoke: bool = False) -> None:
    """GPU inference and training in one run: see :mod:`benchmarks.gpu`."""
    from benchmarks.gpu import run

    run(tmp, tuple(models), batch, compile_too, peak, smoke)


_STEP_SETTINGS = {"fp32": (False, False), "fp32 channels-last": (False, True),
                  "bf16 channels-last": (True, True)}


def _train_step(model, opt, x, y, bf16: bool, last: bool) -> float:
    import torch

    fmt = torch.channels_last if last else torch.contiguous_format
    model.to(memory_format=fmt)
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(x.contiguous(memory_format=fmt))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(out.float(), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return time.perf_counter() - started


def bench_train_step(repeats: int) -> None:
    """CPU training step (batch 8, 256 x 320, AdamW): fp32 against channels-last and bf16.

    The settings alternate round by round, so machine load hits them alike; medians are
    reported with their ratio to fp32 in contiguous layout.
    """
    import torch

    from thermal_anomaly_segmenter.config import RECIPES
    from thermal_anomaly_segmenter.models.registry import build_model

    cpu = RECIPES["cpu"]
    x = torch.randn(8, 3, 256, 320)
    y = (torch.rand(8, 1, 256, 320) > 0.9).float()
    for model_type, arch in ((cpu.model_type, cpu.architecture), ("segformer_b0", None)):
        torch.manual_seed(0)
        model = build_model(model_type, arch)
        opt = torch.optim.AdamW(model.parameters(), 1e-4)
        times: dict[str, list[float]] = {k: [] for k in _STEP_SETTINGS}
        for flags in _STEP_SETTINGS.values():  # warm-up
            _train_step(model, opt, x, y, *flags)
        for _ in range(repeats):
            for key, flags in _STEP_SETTINGS.items():
                times[key].append(_train_step(model, opt, x, y, *flags))
        base = statistics.median(times["fp32"])
        line = ", ".join(f"{k} {statistics.median(v):.2f} s ({base / statistics.median(v):.2f}x)"
                         for k, v in times.items())
        print(f"train {model_type:<13} step: {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("which", nargs="*", default=["all"],
                        choices=["all", "folder", "api", "tiled", "onnx", "gpu", "train_step",
                                 "loader", "heldout"])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--folder-backends", default="torch,onnx",
                        help="folder: comma-separated backends to measure")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--size", type=int, default=4096, help="tiled frame side (8192 on big)")
    parser.add_argument("--tile-overlap", type=float, default=0.25,
                        help="tiled: overlap fraction between tiles (predict's default 0.25)")
    parser.add_argument("--gpu-models", default="segformer_b0,segformer_b2,default",
                        help="gpu: comma-separated zoo model types; 'default' = the shipped "
                             "default model folder")
    parser.add_argument("--gpu-batch", type=int, default=32, help="batch of the GPU fast path")
    parser.add_argument("--no-compile", action="store_true", help="gpu: skip torch.compile")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="bf16 dense peak of the GPU, for utilisation (H100 SXM: 989)")
    parser.add_argument("--smoke", action="store_true",
                        help="gpu: every section on tiny shapes, on the CPU when there is no "
                             "GPU, in seconds (checks the script; the figures mean nothing)")
    args = parser.parse_args()
    if "heldout" in args.which:
        from benchmarks.heldout_families import main as heldout

        heldout(["--work", str(Path(tempfile.gettempdir()) / "taseg-heldout")])
        return
    everything = {"folder", "api", "tiled", "onnx", "gpu", "train_step", "loader"}
    which = everything if "all" in args.which else set(args.which)
    print(machine())
    with tempfile.TemporaryDirectory(prefix="taseg-bench-") as tmp:
        tmp = Path(tmp)
        if "onnx" in which:
            bench_onnx(tmp, args.repeats)
        if "folder" in which:
            for backend in args.folder_backends.split(","):
                bench_folder(tmp, args.frames, backend)
        if "api" in which:
            bench_api(tmp, args.repeats)
        if "tiled" in which:
            bench_tiled(tmp, args.size, args.tile_overlap)
        if "train_step" in which:
            bench_train_step(max(3, args.repeats // 4))
        if "loader" in which:
            from benchmarks.gpu import bench_loader

            bench_loader(tmp)
        if "gpu" in which:
            bench_gpu(tmp, args.gpu_models.split(","), args.gpu_batch, not args.no_compile,
                      args.peak_tflops * 1e12, args.smoke)


if __name__ == "__main__":
    main()
