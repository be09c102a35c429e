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
import socket
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

    from thermal_anomaly_segmenter.model_folder import ModelConfig, save_model_folder
    from thermal_anomaly_segmenter.zoo import build_model

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
    from thermal_anomaly_segmenter.export import export_onnx
    from thermal_anomaly_segmenter.inference import Segmenter

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
    """``taseg predict`` over a folder against the bare batched forward of the same frames."""
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.export import export_onnx
    from thermal_anomaly_segmenter.inference import Segmenter
    from thermal_anomaly_segmenter.io.read import read_frame
    from thermal_anomaly_segmenter.normalization import corridor_median
    from thermal_anomaly_segmenter.predict import predict_paths

    folder = _model(tmp / f"folder_{backend}")
    if backend == "onnx":
        export_onnx(folder)
    inputs = tmp / "frames"
    if not inputs.exists():
        inputs.mkdir()
        for i in range(frames):
            shutil.copy(SAMPLE, inputs / f"f{i:03d}.npy.lz4")
    seg = Segmenter.from_folder(folder, "cpu", backend=backend)
    options = PredictOptions(batch_size=4)
    frame = read_frame(SAMPLE)
    batch = np.stack([seg.norm.apply(frame.data, corridor_median(frame.t_u, frame.corridor))] * 4)
    seg._forward(batch)
    bare, full = [], []
    for rnd in range(2):  # interleave: bare, full, bare, full
        t0 = time.perf_counter()
        for _ in range(frames // 4):
            seg._forward(batch)
        bare.append(frames / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        done = sum(r.ok for r in predict_paths([inputs], out_dir=tmp / f"out{backend}{rnd}",
                                               options=options, segmenter=seg))
        full.append(done / (time.perf_counter() - t0))
    b, f = max(bare), max(full)
    print(f"folder {backend:5s} {frames} frames 512x640: bare batched forward {b:5.2f} frames/s, "
          f"taseg predict (read+infer+post+5 outputs) {f:5.2f} frames/s, ratio {f / b:4.2f}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_api(tmp: Path, repeats: int) -> None:
    """HTTP predict on a warm deepaas-run against the bare forward and a reload per request."""
    import requests

    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.inference import Segmenter
    from thermal_anomaly_segmenter.io.read import read_frame
    from thermal_anomaly_segmenter.normalization import corridor_median

    models = tmp / "api_models"
    folder = _model(models / "b0")
    port = _free_port()
    env = {**os.environ, "MODELS_PATH": str(models), "TASEG_DEFAULT_MODEL": str(folder),
           "DATA_PATH": str(tmp), "REMOTE_PATH": str(tmp / "remote")}
    server = subprocess.Popen([str(Path(sys.executable).parent / "deepaas-run"), "--listen-ip",
                               "127.0.0.1", "--listen-port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v2/models/thermal_anomaly_segmenter/predict/"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        payload = SAMPLE.read_bytes()

        def http() -> None:
            r = requests.post(url, files={"input_file": (SAMPLE.name, payload)},
                              headers={"accept": "application/json"}, timeout=120)
            r.raise_for_status()

        seg = Segmenter.from_folder(folder, "cpu")
        frame = read_frame(SAMPLE)
        x = seg.norm.apply(frame.data, corridor_median(frame.t_u, frame.corridor))[None]

        def reload() -> None:  # what the published system does on every request
            Segmenter.from_folder(folder, "cpu").predict(read_frame(SAMPLE), PredictOptions())

        def cold() -> None:  # a fresh process per request: imports, model load, predict
            subprocess.run([str(Path(sys.executable).parent / "taseg"), "predict", str(SAMPLE),
                            "--model-dir", str(folder), "--out", str(tmp / "cold"), "-q"],
                           env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

        http()
        seg._forward(x)
        reload()
        t_http, t_bare, t_reload, t_cold = [], [], [], []
        # Alternate short blocks rather than single calls: on 2 cores, a forward in one
        # process right after a forward in the other runs while the first one's idle
        # OpenMP threads still spin, which taxes whichever path comes second. The pause
        # lets them sleep; blocks keep both paths under the same machine load.
        block = max(3, repeats // 4)
        for start in range(0, repeats, block):
            n = min(block, repeats - start)
            paths = [(http, t_http, n), (lambda: seg._forward(x), t_bare, n),
                     (reload, t_reload, 1), (cold, t_cold, 1)]
            for fn, acc, count in paths:
                time.sleep(0.3)
                for _ in range(count):
                    t0 = time.perf_counter()
                    fn()
                    acc.append(time.perf_counter() - t0)
        h, b, r, c = (_median_ms(t) for t in (t_http, t_bare, t_reload, t_cold))
        print(f"api   p50 over {repeats}: HTTP predict {h:6.1f} ms (p95 "
              f"{1000 * np.percentile(t_http, 95):6.1f}), bare forward {b:6.1f} ms: ratio "
              f"{h / b:4.2f}; reload per request (in process, n={len(t_reload)}) {r:6.1f} ms: "
              f"warm is {r / h:4.1f}x faster; fresh `taseg predict` process per request "
              f"(n={len(t_cold)}) {c:6.0f} ms: warm is {c / h:4.1f}x faster", flush=True)
    finally:
        server.terminate()
        server.wait(30)


_TILED_CHILD = """
import json, resource, sys, time
from thermal_anomaly_segmenter.config import PredictOptions
from thermal_anomaly_segmenter.frame_io import read_frame
from thermal_anomaly_segmenter.inference import Segmenter
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
    from thermal_anomaly_segmenter.inference import TileGrid
    from thermal_anomaly_segmenter.io.formats import write_frame
    from thermal_anomaly_segmenter.synthetic import make_scene

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
    from thermal_anomaly_segmenter.zoo import build_model

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
            for backend in ("torch", "onnx"):
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
