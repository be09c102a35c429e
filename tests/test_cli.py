"""The taseg command end to end, in a subprocess, on the real sample frame."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from thermal_anomaly_segmenter.config import DEFAULT_MODEL_NAME

OUTPUT_FILES = ("{s}_mask.png", "{s}_prob.png", "{s}_overlay.png", "{s}.json", "{s}.geojson")
STEM = "KA1_DJI_0_0095_R"


def taseg(*args: str, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "thermal_anomaly_segmenter", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_predict_sample_writes_every_output(sample_path, tmp_path):
    out = tmp_path / "out"
    proc = taseg("predict", sample_path, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{STEM}: ") and "anomalies" in proc.stdout
    for pattern in OUTPUT_FILES:
        assert (out / pattern.format(s=STEM)).stat().st_size > 0
    mask = cv2.imread(str(out / f"{STEM}_mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (512, 640) and set(np.unique(mask)) <= {0, 1}
    doc = json.loads((out / f"{STEM}.json").read_text())
    assert doc["summary"]["count"] == len(doc["anomalies"])
    assert doc["model"]["type"] == "smp_unet"  # the shipped default model
    assert Path(doc["model"]["dir"]).name == DEFAULT_MODEL_NAME
    overlay = cv2.imread(str(out / f"{STEM}_overlay.png"))
    assert overlay.shape[0] >= 512 and overlay.shape[1] > 640


def test_default_output_folder_is_under_the_model(sample_path, models_root, tmp_path):
    proc = taseg("predict", sample_path, env={"MODELS_PATH": str(models_root)})
    assert proc.returncode == 0, proc.stderr
    assert (models_root / DEFAULT_MODEL_NAME / "predictions" / f"{STEM}.json").is_file()


def test_nothing_is_overwritten(sample_path, tmp_path):
    out = tmp_path / "out"
    assert taseg("predict", sample_path, "--out", out, "--outputs", "json").returncode == 0
    first = (out / f"{STEM}.json").read_bytes()
    proc = taseg("predict", sample_path, "--out", out, "--outputs", "json", "--threshold", "0.9")
    assert proc.returncode == 0, proc.stderr
    assert (out / f"{STEM}.json").read_bytes() == first
    assert json.loads((out / f"{STEM}-2.json").read_text())["threshold"] == 0.9
    assert f"{STEM}-2" in proc.stdout


def test_a_bad_frame_in_a_folder_is_reported_and_the_others_run(sample_path, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(sample_path, inputs / "a.npy.lz4")
    (inputs / "b.npy.lz4").write_bytes(b"not a frame at all")
    shutil.copy(sample_path, inputs / "c.npy.lz4")
    proc = taseg("predict", inputs, "--out", tmp_path / "out", "--outputs", "json,mask")
    assert proc.returncode == 2
    assert "b.npy.lz4" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.json",
        "a_mask.png",
        "c.json",
        "c_mask.png",
    ]


def test_glob_input(sample_path, tmp_path):
    for name in ("x1", "x2"):
        shutil.copy(sample_path, tmp_path / f"{name}.npy.lz4")
    proc = taseg(
        "predict", tmp_path / "x*.npy.lz4", "--out", tmp_path / "o", "--outputs", "json", "-q"
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["x1.json", "x2.json"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "missing.npy.lz4"], "does not exist"),
        (["predict", "{sample}", "--threshold", "1.5"], "not within 0..1"),
        (["predict", "{sample}", "--model-dir", "{tmp}"], "not a model folder"),
        (["predict", "{sample}", "--device", "tpu"], "invalid choice"),
        (["predict", "nothing-*.npy"], "no file matches"),
        (["predict", "{sample}", "--outputs", "pdf"], "outputs must be"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args, message, sample_path, tmp_path):
    args = [a.format(sample=sample_path, tmp=tmp_path) for a in args]
    proc = taseg(*args, "--out", tmp_path / "o", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("flag", ["--photometric", "--surface-patches"])
def test_train_refuses_loader_only_augmentations_on_the_device(tmp_path, flag):
    proc = taseg("train", flag, "--augment-on", "device", "--dataset-path", tmp_path,
                 cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"{flag[2:]} augmentation runs in the loader workers only" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_models_lists_types_and_the_default(models_root):
    proc = taseg("models", env={"MODELS_PATH": str(models_root)})
    assert proc.returncode == 0, proc.stderr
    assert "segformer_b5" in proc.stdout and "(default)" in proc.stdout


def test_version_and_help():
    assert taseg("--version").stdout.startswith("taseg ")
    proc = taseg("predict", "--help")
    assert proc.returncode == 0 and "--model-dir" in proc.stdout


@pytest.mark.parametrize(("zoom", "message"), [("3,1", "low <= high"), ("1,x", "is not LOW,HIGH"),
                                               ("0.1,2", "0.25 <= low")])
def test_train_rejects_a_bad_zoom_range(zoom, message, tmp_path):
    proc = taseg("train", "--zoom", zoom, "--dataset-path", tmp_path, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
