"""``python -m benchmarks gpu``: inference and training on a GPU in one run (issue 17).

What it measures, side by side in one process, and prints one line each:

1. ``bare``: the network alone on device-resident batches (B x 3 x 512 x 640, batch 32) for
   SegFormer-B0 and the shipped default (U-Net MobileNetV2), both the trained folders in
   ``models/``, and SegFormer-B2 (random weights): eager with bf16
   autocast (the figure RESULTS.md has today), bf16 weights, bf16 weights + CUDA graph,
   ``torch.compile(dynamic=False)``, compile + CUDA graph; img/s and utilisation against
   the bf16 peak, FLOPs from ``torch.utils.flop_counter.FlopCounterMode``.
2. ``engine``: :class:`~thermal_anomaly_segmenter.inference.segmenter.Segmenter` from numpy frames
in
   memory to masks and anomaly records (``predict_batch``), and to probabilities only, as a
   ratio of the best bare path of the same model.
3. ``profile``: torch.profiler over the engine path of SegFormer-B0: where the time goes.
4. ``train``: SegFormer-B0 training steps (AdamW, Tversky) fp32 against bf16 AMP with CPU
   (albumentations) and device augmentation (:mod:`.train.device_augment`), on the real
   data module with the frame cache; img/s and the share of the step spent waiting for data.

``--smoke`` runs every section on tiny shapes on the CPU (or a GPU when present) in seconds,
so the script is known to work before a lent GPU runs it; its figures mean nothing.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4"
SHIPPED_DEFAULT = ROOT / "models" / "unet_mobilenetv2_synthetic"
#: Trained folders (realistic probability maps, so realistic post-processing); other model
#: types are randomly initialised, and their masks + records rates are not representative.
TRAINED = {"default": SHIPPED_DEFAULT, "segformer_b0": ROOT / "models" / "segformer_b0_synthetic"}

#: Dense bf16 tensor-core peak of an H100 / H200 SXM (no sparsity), FLOP/s.
H100_BF16_PEAK = 989e12
GPU_MODELS = ("segformer_b0", "segformer_b2", "default")


@dataclass(frozen=True)
class Setup:
    """Sizes of a run: the real one or the smoke test's."""

    device: str
    hw: tuple[int, int] = (512, 640)
    batch: int = 32
    seconds: float = 3.0  # per timed rate
    least: int = 5  # calls per timed rate at the least
    train_batch: int = 16
    train_steps: int = 10
    train_frames: int = 64
    compile: bool = True
    smoke: bool = False


def versions(device: str) -> str:
    """GPU, driver, torch, CUDA and cuDNN versions (or the CPU) of this run."""
    import torch

    if device != "cuda":
        return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                f"torch {torch.__version__}, no GPU")
    try:
        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],  # nosec
            capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        driver = "unknown"
    return (f"{torch.cuda.get_device_name()}, driver {driver}, torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def rate(fn: Callable[[], object], images_per_call: int, device: str,
         seconds: float = 3.0, least: int = 5) -> float:
    """Images per second of ``fn``: warm up, calibrate, then time whole calls (``least``
    at the least)."""
    for _ in range(max(1, least // 2)):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    calls = max(least, int(seconds / max(time.perf_counter() - t0, 1e-6)))
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    _sync(device)
    return calls * images_per_call / (time.perf_counter() - t0)


def model_folder(tmp: Path, name: str, hw: tuple[int, int]) -> Path:
    """A model folder: a shipped trained one where there is one (:data:`TRAINED`), else the
    zoo type randomly initialised."""
    import torch

    from thermal_anomaly_segmenter.models.folder import ModelConfig, save_model_folder
    from thermal_anomaly_segmenter.models.registry import build_model

    if name in TRAINED and TRAINED[name].is_dir():
        return TRAINED[name]
    torch.manual_seed(0)
    config = ModelConfig(model_type=name, architecture={}, input_size=hw)
    return save_model_folder(tmp / f"gpu_{name}", config, build_model(name, {}))


def frames_in_memory(n: int, hw: tuple[int, int]):
    """``n`` copies of the sample frame (cropped around its pipe for small sizes)."""
    from thermal_anomaly_segmenter.io.frames import Frame
    from thermal_anomaly_segmenter.io.read import read_frame

    frame = read_frame(SAMPLE)
    if hw != frame.shape:
        r, c = 140, 326  # inside the sample's corridor
        rows, cols = slice(r, r + hw[0]), slice(c, c + hw[1])
        frame = Frame(frame.data[rows, cols].copy(), frame.corridor[rows, cols].copy(), "crop")
    return [frame] * n


def bench_bare(name: str, folder: Path, s: Setup, peak: float) -> float:
    """The network alone; returns the best img/s."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from thermal_anomaly_segmenter.inference.gpu_engine import DeviceEngine, EngineOptions
    from thermal_anomaly_segmenter.models.load import load_model_folder

    model, config = load_model_folder(folder, device=s.device)
    model = model.eval()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.randn(1, 3, *s.hw, device=s.device))
    flops = counter.get_total_flops()  # per image (a multiply-add counts 2)
    fmt = torch.channels_last if s.device == "cuda" else torch.contiguous_format
    x = torch.randn(s.batch, 3, *s.hw, device=s.device).contiguous(memory_format=fmt)
    rates: dict[str, float] = {}

    eager_net = model.to(memory_format=fmt)

    def autocast_eager() -> None:
        with torch.autocast(s.device, dtype=torch.bfloat16):
            eager_net(x)

    variants: list[tuple[str, Callable[[], object]]] = [("eager bf16 autocast",
                                                         autocast_eager)]
    engines = {"bf16 weights": EngineOptions(cuda_graphs=False)}
    if s.device == "cuda":
        engines["bf16 weights + CUDA graph"] = EngineOptions()
    if s.compile:
        engines["compiled"] = EngineOptions(compile=True, cuda_graphs=False)
        if s.device == "cuda":
            engines["compiled + CUDA graph"] = EngineOptions(compile=True)
    for label, options in engines.items():
        engine = DeviceEngine(model, config.norm, s.device, options)
        xb = x.to(torch.bfloat16)
        variants.append((label, lambda e=engine, xb=xb: e._logits(xb)))
    for label, fn in variants:
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                fn()
                _sync(s.device)
                first = time.perf_counter() - t0
                rates[label] = rate(fn, s.batch, s.device, s.seconds, s.least)
        except Exception as exc:  # report and go on: compile and graphs vary by install
            print(f"gpu   bare  {name:13s} {label}: failed: {type(exc).__name__}: {exc}",
                  flush=True)
            continue
        note = f", first call {first:5.1f} s" if first > 2 else ""
        print(f"gpu   bare  {name:13s} {flops / 1e9:6.1f} GFLOP/img b{s.batch} {label:26s} "
              f"{rates[label]:8.1f} img/s ({100 * flops * rates[label] / peak:5.2f} % of bf16 "
              f"peak){note}", flush=True)
    best = max(rates, key=rates.get)  # type: ignore[arg-type]
    base = rates["eager bf16 autocast"]
    print(f"gpu   bare  {name:13s} best: {best} {rates[best]:8.1f} img/s = "
          f"{rates[best] / base:4.2f}x eager bf16 autocast", flush=True)
    return rates[best]


def bench_engine(name: str, folder: Path, s: Setup, best_bare: float,
                 compile_model: bool = False) -> None:
    """Segmenter: numpy frames in memory -> probabilities, and -> masks and records."""
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.models.normalization import corridor_median

    seg = Segmenter.from_folder(folder, s.device, "torch", compile_model=compile_model)
    frames = frames_in_memory(s.batch * 2, s.hw)
    options = PredictOptions(batch_size=s.batch)
    medians = [corridor_median(f.t_u, f.corridor) for f in frames]
    probs = rate(lambda: seg.probabilities(frames, options, medians), len(frames), s.device,
                 s.seconds, s.least)
    full = rate(lambda: seg.predict_batch(frames, options), len(frames), s.device, s.seconds,
                s.least)
    engine = "device engine" if seg._engine is not None else "host numpy path"
    weights = "" if folder in TRAINED.values() else "; random weights: records not representative"
    print(f"gpu   engine {name:13s} b{s.batch} ({engine}{', compiled' if compile_model else ''}"
          f"): to probabilities {probs:8.1f} img/s ({probs / best_bare:4.2f}x best bare), to "
          f"masks + records {full:8.1f} img/s ({full / best_bare:4.2f}x best bare){weights}",
          flush=True)


def bench_profile(folder: Path, s: Setup, rows: int = 15) -> None:
    """torch.profiler over the engine path: the operators that take the time."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.models.normalization import corridor_median

    seg = Segmenter.from_folder(folder, s.device, "torch")
    frames = frames_in_memory(s.batch * 2, s.hw)
    options = PredictOptions(batch_size=s.batch)
    medians = [corridor_median(f.t_u, f.corridor) for f in frames]
    seg.predict_batch(frames, options)  # warm-up (graphs captured)
    activities = [ProfilerActivity.CPU]
    if s.device == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for _ in range(1 if s.smoke else 3):
            with record_function("engine.probabilities"):
                probs = seg.probabilities(frames, options, medians)
            with record_function("engine.postprocess"):
                for f, p, m in zip(frames, probs, medians, strict=True):
                    seg.finish(f, p, m, options)
    key = "self_cuda_time_total" if s.device == "cuda" else "self_cpu_time_total"
    averages = prof.key_averages()
    stages = {e.key: e.cpu_time_total for e in averages if e.key.startswith("engine.")}
    total = sum(stages.values()) or 1.0
    print("gpu   profile segformer_b0 engine wall by stage: " + ", ".join(
        f"{k} {100 * v / total:4.1f} %" for k, v in stages.items()), flush=True)
    inner = {e.key: e.cpu_time_total for e in averages if e.key.startswith("taseg.engine.")}
    if inner:  # the device engine's own ranges (host time; a GPU wait shows in to_host)
        print("gpu   profile segformer_b0 inside the device engine: " + ", ".join(
            f"{k} {100 * v / total:4.1f} %" for k, v in inner.items()), flush=True)
    print(averages.table(sort_by=key, row_limit=rows), flush=True)


def bench_training(tmp: Path, s: Setup) -> None:
    """SegFormer-B0 training steps: fp32 / bf16 AMP, CPU / device augmentation."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from thermal_anomaly_segmenter.io.datasets import load_split
    from thermal_anomaly_segmenter.models.normalization import Normalization
    from thermal_anomaly_segmenter.models.registry import build_model
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset
    from thermal_anomaly_segmenter.train.datamodule import ThermalDataModule, default_worker_count
    from thermal_anomaly_segmenter.train.task import make_loss

    root = tmp / "gpu_data"
    if not root.exists():
        write_dataset(root, s.train_frames, height=s.hw[0], width=s.hw[1],
                      splits=(0.8, 0.1, 0.1), sets=("generated_set",))
    split = load_split(root / "generated_set", "train")
    workers = 0 if s.smoke else default_worker_count()
    cuda = s.device == "cuda"
    results = {}
    for label, amp, site in (("fp32, CPU augmentation", False, "cpu"),
                             ("bf16 AMP, CPU augmentation", True, "cpu"),
                             ("bf16 AMP, device augmentation", True, "device")):
        module = ThermalDataModule(split, split, None, Normalization(), s.hw, s.train_batch,
                                   workers=workers, pin_memory=cuda, augment_on=site,
                                   frame_cache=True)
        loader = module.train_dataloader()

        def batches(loader=loader):
            while True:
                yield from loader

        torch.manual_seed(0)
        fmt = torch.channels_last if amp else torch.contiguous_format
        model = build_model("segformer_b0").to(s.device).to(memory_format=fmt).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        loss_fn = make_loss("Tversky")
        data = batches()

        def step(b, model=model, opt=opt, fmt=fmt, amp=amp, loss_fn=loss_fn) -> None:
            x = b["image"].contiguous(memory_format=fmt)
            with torch.autocast(s.device, dtype=torch.bfloat16, enabled=amp):
                logits = model(x)
            loss = loss_fn(logits.float(), b["mask"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for _ in range(1 if s.smoke else 3):  # warm-up, and the frame cache filled
            step(module.to_device(next(data), s.device))
        _sync(s.device)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            t0 = time.perf_counter()
            for _ in range(s.train_steps):
                with record_function("data"):  # next batch, copy, device augmentation
                    b = module.to_device(next(data), s.device)
                    _sync(s.device)
                with record_function("step"):
                    step(b)
                    _sync(s.device)
            wall = time.perf_counter() - t0
        ranges = {e.key: e.cpu_time_total for e in prof.key_averages()
                  if e.key in ("data", "step")}
        share = ranges["data"] / max(1.0, sum(ranges.values()))
        results[label] = s.train_steps * s.train_batch / wall
        print(f"gpu   train segformer_b0 b{s.train_batch} {s.hw[0]}x{s.hw[1]} ({workers} loader "
              f"workers) {label:30s} {results[label]:7.1f} img/s, data {100 * share:4.1f} % "
              "of the step", flush=True)
    amp_rate = results["bf16 AMP, device augmentation"]
    print(f"gpu   train segformer_b0: bf16 AMP + device augmentation = "
          f"{amp_rate / results['fp32, CPU augmentation']:4.2f}x fp32 + CPU augmentation, "
          f"{amp_rate / results['bf16 AMP, CPU augmentation']:4.2f}x bf16 AMP + CPU "
          "augmentation", flush=True)


def run(tmp: Path, models=GPU_MODELS, batch: int = 32, compile_too: bool = True,
        peak: float = H100_BF16_PEAK, smoke: bool = False) -> None:
    """Every section in order; on a machine without CUDA only ``--smoke`` runs."""
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not smoke:
        print("gpu   skipped: no CUDA device on this machine (run on a GPU host: "
              "python -m benchmarks gpu; python -m benchmarks gpu --smoke checks the script "
              "on the CPU)")
        return
    device = "cuda" if cuda else "cpu"
    if smoke:
        s = Setup(device, hw=(32, 40), batch=2, seconds=0.0, least=1, train_batch=2,
                  train_steps=1, train_frames=6, compile=compile_too and cuda, smoke=True)
        models = tuple(m for m in models if m != "segformer_b2")
    else:
        s = Setup(device, batch=batch, compile=compile_too)
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
    print(f"gpu   {versions(device)}; peak assumed {peak / 1e12:.0f} TFLOPS bf16 dense"
          f"{'; SMOKE TEST, tiny shapes: the figures mean nothing' if smoke else ''}",
          flush=True)
    started = time.perf_counter()
    folders = {name: model_folder(tmp, name, s.hw) for name in models}
    best = {}
    for name, folder in folders.items():
        best[name] = bench_bare(name, folder, s, peak)
    for name, folder in folders.items():
        bench_engine(name, folder, s, best[name])
    if "segformer_b0" in folders and s.compile:
        bench_engine("segformer_b0", folders["segformer_b0"], s, best["segformer_b0"],
                     compile_model=True)
    if "segformer_b0" in folders:
        bench_profile(folders["segformer_b0"], s)
    bench_training(tmp, s)
    print(f"gpu   done in {time.perf_counter() - started:5.0f} s", flush=True)



def bench_loader(tmp: Path, hw: tuple[int, int] = (512, 640), frames: int = 20,
                 rounds: int = 3, batch: int = 8) -> None:
    """Host work per training frame in a loader worker: decode + albumentations (the CPU
    path) against a cached fp16 frame + the draws (the device path), and the device path's
    batch augmentation on this machine's device (the CPU here), interleaved round by round."""
    import torch

    from thermal_anomaly_segmenter.io.datasets import load_split
    from thermal_anomaly_segmenter.models.normalization import Normalization
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset
    from thermal_anomaly_segmenter.train.augmentation import ThermalAugment
    from thermal_anomaly_segmenter.train.dataset import ThermalDataset
    from thermal_anomaly_segmenter.train.device_augment import DeviceAugment
    from thermal_anomaly_segmenter.train.frame_cache import FrameCache

    root = tmp / f"loader_{hw[0]}x{hw[1]}"
    if not root.exists():
        write_dataset(root, frames, height=hw[0], width=hw[1], splits=(1.0, 0.0, 0.0),
                      sets=("generated_set",))
    samples = load_split(root / "generated_set", "train").samples
    norm = Normalization()
    device_aug = DeviceAugment(norm)
    cpu = ThermalDataset(samples, norm, hw, ThermalAugment())
    dev = ThermalDataset(samples, norm, hw, cache=FrameCache(), draw=device_aug.draw)
    for i in range(len(dev)):  # fill the cache: epoch 1 decodes, later epochs read it
        dev[i]
    times: dict[str, list[float]] = {"cpu": [], "device": [], "augment": []}
    torch.manual_seed(0)
    for _ in range(rounds):
        for name, ds in (("cpu", cpu), ("device", dev)):
            t0 = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            times[name].append((time.perf_counter() - t0) / len(ds))
        items = [dev[i % len(dev)] for i in range(batch)]
        b = {k: torch.stack([s[k] for s in items]) for k in items[0]}
        params = b.pop("params")
        t0 = time.perf_counter()
        device_aug(b, params)
        times["augment"].append((time.perf_counter() - t0) / batch)
    c, d, a = (1000 * min(times[k]) for k in ("cpu", "device", "augment"))
    print(f"loader {len(samples)} frames {hw[0]}x{hw[1]}, host ms per frame in a loader "
          f"worker: decode + albumentations {c:6.1f} ms, cached fp16 frame + draws {d:6.1f} ms "
          f"({c / d:4.1f}x less); batch augmentation on the device (cpu here, batch {batch}) "
          f"{a:6.1f} ms per frame", flush=True)
