"""Hardware of a training run: accelerator, precision, DDP strategy, ranks, progress bar."""

from __future__ import annotations

import os
from pathlib import Path

from thermal_anomaly_segmenter._compat import ensure_torchvision

ensure_torchvision()  # lightning imports torchmetrics, which imports torchvision

import torch  # noqa: E402

from thermal_anomaly_segmenter.config import TrainOptions  # noqa: E402
from thermal_anomaly_segmenter.errors import InvalidInputError  # noqa: E402


def progress_bar():
    """A progress bar on stderr (rich), so stdout keeps only results; tqdm without rich."""
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    try:
        return RichProgressBar(console_kwargs={"stderr": True})
    except ModuleNotFoundError:  # rich is not installed
        return TQDMProgressBar()


def is_rank_zero() -> bool:
    """False in the non-zero ranks of an external launcher (torchrun, SLURM)."""
    for key in ("RANK", "SLURM_PROCID"):
        if key in os.environ:
            return os.environ[key] == "0"
    return True


def ddp_strategy(options: TrainOptions, accelerator: str):
    world = options.devices * options.num_nodes
    if world <= 1:
        return "auto"
    from lightning.pytorch.strategies import DDPStrategy

    backend = "nccl" if accelerator == "gpu" else "gloo"
    external = "LOCAL_RANK" in os.environ or "SLURM_PROCID" in os.environ
    if external:
        return DDPStrategy(process_group_backend=backend)
    # CPU: fork, so the children inherit the torchvision repair of ``_compat`` (a spawned child
    # unpickles lightning, and with it torchvision, before any TASeg code could run). GPU:
    # spawn, as CUDA cannot be forked; GPU machines have a working torchvision.
    method = "fork" if accelerator == "cpu" and os.name == "posix" else "spawn"
    return DDPStrategy(start_method=method, process_group_backend=backend)


def accelerator_for(options: TrainOptions) -> str:
    cuda = torch.cuda.is_available()
    if options.gpu is True and not cuda:
        raise InvalidInputError("gpu=True but no CUDA GPU is available; pass --no-gpu for CPU")
    return "gpu" if (cuda if options.gpu is None else options.gpu) else "cpu"


def cpu_has_bf16() -> bool:
    """Whether the CPU computes in bf16 natively (AVX512-BF16 or AMX on x86, BF16 on Arm)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(flag in ("avx512_bf16", "amx_bf16", "bf16")
               for line in text.splitlines() if line.startswith(("flags", "Features"))
               for flag in line.split(":", 1)[-1].split())


def precision_for(accelerator: str, precision: str = "auto") -> str:
    """Lightning precision: ``auto`` = bf16 mixed where the hardware has bf16, else fp16 on a
    GPU and fp32 on a CPU."""
    if precision != "auto":
        return precision
    if accelerator == "gpu":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_bf16() else "32-true"
