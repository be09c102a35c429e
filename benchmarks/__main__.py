"""TASeg benchmarks: ``python -m benchmarks [folder|api|tiled|onnx|gpu|all]``.

Every benchmark measures the paths it compares side by side in one run, interleaved, and
prints ratios: absolute figures on shared machines are noisy, ratios much less so. Models are
randomly initialised (speed does not depend on the weights), built from the zoo and saved as
real model folders in a temporary directory. Results go to benchmarks/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
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
    from thermal_anomaly_segmenter.frame_io import read_frame
    from thermal_anomaly_segmenter.inference import Segmenter
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
    from thermal_anomaly_segmenter.frame_io import read_frame
    from thermal_anomaly_segmenter.inference import Segmenter
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

        http()
        seg._forward(x)
        t_http, t_bare, t_reload = [], [], []
        for i in range(repeats):
            for fn, acc in ((http, t_http), (lambda: seg._forward(x), t_bare)):
                t0 = time.perf_counter()
                fn()
                acc.append(time.perf_counter() - t0)
            if i < max(3, repeats // 4):
                t0 = time.perf_counter()
                reload()
                t_reload.append(time.perf_counter() - t0)
        h, b, r = _median_ms(t_http), _median_ms(t_bare), _median_ms(t_reload)
        print(f"api   p50: HTTP predict {h:6.1f} ms, bare forward {b:6.1f} ms "
              f"(ratio {h / b:4.2f}), reload per request {r:6.1f} ms (warm is {r / h:4.1f}x "
              f"faster); HTTP p95 {1000 * np.percentile(t_http, 95):6.1f} ms")
    finally:
        server.terminate()
        server.wait(30)


def bench_tiled(tmp: Path, size: int) -> None:
    """A size x size frame in tiles: extra RSS and throughput against 512 x 640 frames."""
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.frame_io import read_frame, write_frame
    from thermal_anomaly_segmenter.inference import Segmenter
    from thermal_anomaly_segmenter.synthetic import make_scene

    folder = _model(tmp / "tiled")
    path = tmp / "big.npy.lz4"
    write_frame(path, make_scene(1, size, size).data)
    code = (
        "import resource,sys,time;"
        "from thermal_anomaly_segmenter.inference import Segmenter;"
        "from thermal_anomaly_segmenter.frame_io import read_frame;"
        "from thermal_anomaly_segmenter.config import PredictOptions;"
        f"s=Segmenter.from_folder({str(folder)!r},'cpu');"
        "r0=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        f"f=read_frame({str(path)!r});t=time.perf_counter();"
        "s.predict(f,PredictOptions(batch_size=4));"
        "print(time.perf_counter()-t,r0,resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, rss0, rss1 = (float(v) for v in out.stdout.split())
    seg = Segmenter.from_folder(folder, "cpu")
    frame = read_frame(SAMPLE)
    seg.predict(frame)
    n = 8
    t0 = time.perf_counter()
    seg.predict_batch([frame] * n, PredictOptions(batch_size=4))
    small = (time.perf_counter() - t0) / (n * 512 * 640)
    big = seconds / (size * size)
    extra_gib = (rss1 - rss0) / 2**20
    print(f"tiled {size}x{size}: peak RSS beyond the loaded model {extra_gib:5.2f} GiB, "
          f"{big * 1e6:6.3f} s/Mpx against {small * 1e6:6.3f} s/Mpx as 512x640 frames "
          f"(ratio {big / small:4.2f})")


def bench_gpu() -> None:
    import torch

    if not torch.cuda.is_available():
        print("gpu   skipped: no CUDA device on this machine")
        return
    print("gpu   not yet measured by this script on a GPU machine")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("which", nargs="*", default=["all"],
                        choices=["all", "folder", "api", "tiled", "onnx", "gpu"])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--size", type=int, default=4096, help="tiled frame side (8192 on big)")
    args = parser.parse_args()
    which = {"folder", "api", "tiled", "onnx", "gpu"} if "all" in args.which else set(args.which)
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
            bench_tiled(tmp, args.size)
        if "gpu" in which:
            bench_gpu()


if __name__ == "__main__":
    main()
