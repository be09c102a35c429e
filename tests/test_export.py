"""ONNX export and the ONNX Runtime CPU backend: same probabilities as PyTorch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import save_tiny_model
from test_inference import make_frame

from thermal_anomaly_segmenter.config import BASE_DIR, PredictOptions
from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.inference.segmenter import Segmenter
from thermal_anomaly_segmenter.models.onnx_export import ONNX_NAME, export_onnx, fresh_onnx


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = save_tiny_model(tmp_path_factory.mktemp("onnx") / "m", input_size=(64, 96))
    export_onnx(folder)
    return folder


def test_export_writes_a_verified_fresh_model(exported):
    assert (exported / ONNX_NAME).stat().st_size > 100_000
    assert fresh_onnx(exported) == exported / ONNX_NAME


@pytest.mark.parametrize(("shape", "tile"), [((64, 96), None), ((77, 101), None),
                                             ((150, 200), (64, 96))])
def test_onnx_backend_matches_torch(exported, shape, tile):
    onnx = Segmenter.from_folder(exported, "cpu", backend="auto")
    torch_ = Segmenter.from_folder(exported, "cpu", backend="torch")
    assert onnx.backend == "onnx" and torch_.backend == "torch"
    frames = [make_frame(*shape, seed=s) for s in range(2)]
    options = PredictOptions(tile_size=tile, batch_size=2)
    for a, b in zip(onnx.probabilities(frames, options), torch_.probabilities(frames, options),
                    strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("shape, calibration", [((64, 96), None), ((77, 101), None),
                                                ((77, 101), (0.399, -1.404))])
def test_onnx_probabilities_are_exactly_the_sigmoid_of_the_session(exported, shape,
                                                                   calibration):
    """The in-place sigmoid gives bit for bit 0.5 * (1 + tanh(z / 2)) of the bare session's
    logits z, padded or not, and with a stored calibration z = scale * logits + bias
    (computed first, in float32)."""
    from thermal_anomaly_segmenter.inference.calibration import Calibration

    seg = Segmenter.from_folder(exported, "cpu", backend="onnx")
    if calibration:
        seg.calibration = Calibration(scale=calibration[0], bias=calibration[1])
    batch = np.stack([seg.norm.apply(make_frame(*shape, seed=s).data, 20.0) for s in range(2)])
    h, w = shape
    stride = json.loads((exported / "model.onnx.json").read_text())["stride"]
    pad = ((0, 0), (0, 0), (0, -h % stride), (0, -w % stride))
    x = np.pad(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)), pad, mode="edge")
    logits = seg._session.run(None, {"input": x})[0][:, 0, :h, :w]
    if calibration:
        logits = logits * np.float32(calibration[0]) + np.float32(calibration[1])
        assert logits.dtype == np.float32
    expected = (0.5 * (1.0 + np.tanh(0.5 * logits))).astype(np.float32)
    assert np.array_equal(seg._forward(batch), expected)


def test_the_onnx_path_does_not_build_the_pytorch_network(exported):
    """A worker's cold start skips the PyTorch network; same probabilities as with it."""
    fast = Segmenter.from_folder(exported, "cpu", backend="auto")
    torch_ = Segmenter.from_folder(exported, "cpu", backend="torch")
    assert fast.backend == "onnx" and fast.model is None
    frame = make_frame(150, 200, seed=1)
    options = PredictOptions(tile_size=(64, 96))
    np.testing.assert_allclose(fast.probabilities([frame], options)[0],
                               torch_.probabilities([frame], options)[0], atol=1e-4)


def test_stale_export_falls_back_to_torch(exported, tmp_path):
    copy = shutil.copytree(exported, tmp_path / "m")
    (copy / "model.safetensors").unlink()
    save_tiny_model(tmp_path / "other", seed=9)
    shutil.copy(tmp_path / "other" / "model.safetensors", copy / "model.safetensors")
    assert fresh_onnx(copy) is None
    assert Segmenter.from_folder(copy, "cpu").backend == "torch"
    with pytest.raises(InvalidInputError, match="taseg export"):
        Segmenter.from_folder(copy, "cpu", backend="onnx")


def test_classical_cannot_be_exported():
    with pytest.raises(InvalidInputError, match="no network"):
        export_onnx(BASE_DIR / "models" / "classical")


def test_cli_export_and_predict(tmp_path, sample_path):
    folder = save_tiny_model(tmp_path / "m", input_size=(64, 96))
    run = [sys.executable, "-m", "thermal_anomaly_segmenter"]
    proc = subprocess.run([*run, "export", "--model-dir", folder], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(ONNX_NAME)
    proc = subprocess.run([*run, "-v", "predict", sample_path, "--model-dir", folder, "--out",
                           tmp_path / "o", "--outputs", "json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "(onnx)" in proc.stderr
