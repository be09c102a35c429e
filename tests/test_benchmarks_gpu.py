"""``python -m benchmarks gpu --smoke``: the GPU benchmark script runs end to end on the CPU.

The GPU figures need a lent GPU; this keeps the script that produces them working until one
runs it (every section: bare forwards, engine path, profile, training steps).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([sys.executable, "-m", "benchmarks", "gpu", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_gpu_benchmark_smoke_runs_every_section():
    out = _run("--smoke")
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert any("SMOKE TEST" in line for line in lines)
    for model in ("segformer_b0", "default"):
        assert any(line.startswith(f"gpu   bare  {model}") and "best:" in line
                   for line in lines), model
        assert any(line.startswith(f"gpu   engine {model}") and "masks + records" in line
                   for line in lines), model
    assert any("engine wall by stage" in line for line in lines)
    for label in ("fp32, CPU augmentation", "bf16 AMP, CPU augmentation",
                  "bf16 AMP, device augmentation"):
        assert any(label in line and "img/s" in line for line in lines), label
    assert lines[-1].startswith("gpu   done in")
