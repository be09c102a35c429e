"""Calibrated probabilities: the Platt fit, the stored numbers, and the engine applying them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from thermal_anomaly_segmenter.config import DEFAULT_MODEL_NAME, PredictOptions
from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.inference.calibration import Calibration, fit_platt, logits_of
from thermal_anomaly_segmenter.models.folder import CONFIG_NAME

ROOT = Path(__file__).resolve().parents[1]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_platt_fit_recovers_a_known_miscalibration():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 4.0, 200_000)
    # An overconfident network: the truth follows sigmoid(0.5 z - 1), it says sigmoid(z).
    truth = rng.random(z.size) < _sigmoid(0.5 * z - 1.0)
    fitted = fit_platt(_sigmoid(z), truth)
    assert fitted.scale == pytest.approx(0.5, abs=0.03)
    assert fitted.bias == pytest.approx(-1.0, abs=0.06)
    np.testing.assert_allclose(fitted.apply_probabilities(np.array([_sigmoid(2.0)])),
                               [_sigmoid(2.0 * fitted.scale + fitted.bias)], rtol=1e-5)
    with pytest.raises(InvalidInputError, match="anomalous and normal"):
        fit_platt(_sigmoid(z), np.zeros(z.size, bool))


def test_stored_calibration_is_checked():
    assert Calibration.from_config({}).identity and Calibration.from_config(None).identity
    stored = Calibration(0.4, -2.0).to_config()
    assert Calibration.from_config(json.loads(json.dumps(stored))) == Calibration(0.4, -2.0)
    for bad in ({"method": "isotonic"}, {"method": "platt", "scale": "x", "bias": 0},
                {"method": "platt", "scale": -1.0, "bias": 0.0},
                {"method": "platt", "scale": float("nan"), "bias": 0.0}, ["platt"]):
        with pytest.raises(InvalidInputError, match="calibration"):
            Calibration.from_config(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_engine_applies_the_stored_calibration(backend, tmp_path):
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.io.frames import Frame
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    folder = tmp_path / "m"
    shutil.copytree(ROOT / "models" / DEFAULT_MODEL_NAME, folder,
                    ignore=shutil.ignore_patterns("predictions", "evaluation"))
    path = folder / CONFIG_NAME
    config = json.loads(path.read_text())
    config["calibration"] = {}
    path.write_text(json.dumps(config))
    scene = make_scene(3, 256, 320, n_leaks=2)
    frame = Frame(data=scene.data, corridor=scene.corridor, name="s3")
    options = PredictOptions(device="cpu")
    raw = Segmenter.from_folder(folder, device="cpu", backend=backend)
    assert raw.backend == backend
    p0 = raw.probabilities([frame], options)[0]

    config["calibration"] = Calibration(0.5, -1.0).to_config()
    path.write_text(json.dumps(config))
    cal = Segmenter.from_folder(folder, device="cpu", backend=backend)
    p1 = cal.probabilities([frame], options)[0]
    # Where fp32 does not saturate, p1 = sigmoid(0.5 logit(p0) - 1) exactly as stored.
    ok = (p0 > 1e-5) & (p0 < 1 - 1e-5)
    assert ok.sum() > 100
    np.testing.assert_allclose(p1[ok], _sigmoid(0.5 * logits_of(p0[ok]) - 1.0), atol=2e-4)
    assert p1.max() < p0.max()  # the overconfident top end comes down
