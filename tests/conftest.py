"""Shared fixtures: the real sample frame, small saved models, an isolated MODELS_PATH."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Set before any model library is imported by a test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4"


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def sample_frame():
    from thermal_anomaly_segmenter.io.read import read_frame

    return read_frame(SAMPLE)


#: What tests copy of ``models/``: the default and classical models; not the previous default
#: (22 MB more per copy) nor a developer's own runs, predictions and MLflow store.
SHIPPED_ONLY = shutil.ignore_patterns("predictions", ".runs", "segformer_b0_synthetic",
                                      "mlflow.db", "mlartifacts", "mlruns")


@pytest.fixture()
def models_root(tmp_path, monkeypatch) -> Path:
    """A private MODELS_PATH holding a copy of the shipped models, so outputs stay in tmp."""
    from thermal_anomaly_segmenter.config import reload_settings

    root = tmp_path / "models"
    shutil.copytree(ROOT / "models", root, ignore=SHIPPED_ONLY)
    monkeypatch.setenv("MODELS_PATH", str(root))
    monkeypatch.setenv("REMOTE_PATH", str(tmp_path / "remote"))
    reload_settings()
    yield root
    monkeypatch.undo()
    reload_settings()


def save_tiny_model(
    folder: Path, model_type: str = "segformer_b0", input_size=(64, 80), seed: int = 0
) -> Path:
    """Save a randomly initialised model folder (real weights, real format)."""
    import torch

    from thermal_anomaly_segmenter.models.folder import ModelConfig, save_model_folder
    from thermal_anomaly_segmenter.models.registry import build_model

    arch = {"encoder_name": "resnet18"} if model_type.startswith("smp_") else None
    torch.manual_seed(seed)
    model = build_model(model_type, arch)
    config = ModelConfig(model_type=model_type, architecture=arch or {}, input_size=input_size)
    return save_model_folder(folder, config, model)


@pytest.fixture(scope="session")
def tiny_segformer_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "segformer_b0_tiny")


@pytest.fixture()
def browser(tmp_path):
    """A headless Chromium of its own (DevTools websocket URL of its page)."""
    from headless_browser import start_browser

    yield from start_browser(tmp_path / "profile")


@pytest.fixture(scope="session")
def one_frame_report(tmp_path_factory) -> dict:
    """One synthetic 192 x 256 frame (three anomalies) reported with the shipped model: its
    folder, survey, page data, HTML and file URL. Read only."""
    import json
    import re

    from thermal_anomaly_segmenter.io.formats import write_frame
    from thermal_anomaly_segmenter.report.inspector import make_report
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    root = tmp_path_factory.mktemp("one_frame_report")
    (root / "frames").mkdir()
    write_frame(root / "frames" / "g0.npy.lz4",
                make_scene(7, 192, 256, family="karlsruhe_winter").data)
    result = make_report([root / "frames"], root / "report",
                         model_dir=ROOT / "models" / "unet_mobilenetv2_synthetic")
    html = (root / "report" / "report.html").read_text()
    data = json.loads(re.search(r'id="taseg-data">(.*?)</script>', html, re.S).group(1))
    return {"root": root, "survey": result.survey, "data": data, "html": html,
            "url": (root / "report" / "report.html").as_uri()}
