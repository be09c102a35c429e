"""api.train in-process (AI4OS template layout): arguments, a tiny real training, its model."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from deepaas.model.v2.wrapper import UploadedFile

import api
from api.responses import ApiError

METRICS = [f"test_{scope}_{name}" for scope in ("dataset", "per_image")
           for name in ("dice", "f2", "iou", "precision", "recall")]
#: A training small enough for a 2-core CPU: 64 x 80 frames, one epoch, one phase or two.
TINY = {"model_type": "segformer_b0", "epochs": 1, "batch_size": 2, "worker_count": 0,
        "gpu": False, "mlflow": False, "data_augmentation": False}


@pytest.fixture()
def env(models_root, tmp_path, monkeypatch):
    """MODELS_PATH (shipped models), DATA_PATH with a tiny synthetic dataset, REMOTE_PATH."""
    from thermal_anomaly_segmenter.config import reload_settings
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset

    data = tmp_path / "data"
    write_dataset(data / "synthetic", 6, seed=1, height=64, width=80)
    (tmp_path / "remote").mkdir()
    monkeypatch.setenv("DATA_PATH", str(data))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    reload_settings()
    yield {"models": models_root, "dataset": data / "synthetic"}
    reload_settings()


@pytest.mark.parametrize("bad", [
    {"loss_fn": "MSE"}, {"model_type": "classical"}, {"train_phases": ["warm_up"]},
    {"batch_size": 0}, {"seed": 0}, {"max_time": -1}, {"epochs": 0},
    {"dataset_path": "/etc"}, {"dataset_path": "../../"},
])
def test_invalid_train_args_are_422(env, bad):
    with pytest.raises(ApiError) as info:
        api.train(**{**TINY, **bad})
    assert info.value.status == 422
    assert next(iter(bad)) in info.value.message


def test_dataset_path_default_is_found_at_call_time(env):
    from api import schemas

    loaded = schemas.load_args(schemas.TrainArgsSchema(), {})
    assert loaded["dataset_path"] == str(env["dataset"].resolve())


@pytest.mark.slow
def test_tiny_training_returns_the_published_metrics_and_a_usable_model(env):
    pytest.importorskip("lightning")
    result = api.train(**TINY, train_phases=["pre_train_frozen", "fine_tune"])
    for key in METRICS:
        assert isinstance(result[key], float) and 0.0 <= result[key] <= 1.0, key
    model_dir = Path(result["model_dir"])
    assert (model_dir / "train_config.json").is_file()
    assert model_dir.resolve().is_relative_to(env["models"].resolve())
    assert api.get_metadata()["models_local"].count(str(model_dir)) == 1

    # The new model answers a prediction through the API.
    fd, tmp = tempfile.mkstemp()
    os.close(fd)
    sample = Path(__file__).resolve().parent.parent / "data" / "samples"
    shutil.copy(sample / "KA1_DJI_0_0095_R.npy.lz4", tmp)
    doc = api.predict(input_file=UploadedFile("input_file", tmp, None, "x.npy.lz4"),
                      model_dir=str(model_dir))
    assert doc["model"]["type"] == "segformer_b0"


@pytest.mark.slow
def test_fine_tune_alone_needs_only_the_manual_set(env):
    pytest.importorskip("lightning")
    shutil.rmtree(env["dataset"] / "generated_set")
    result = api.train(**TINY, train_phases=["fine_tune"], dataset_path=str(env["dataset"]))
    assert set(METRICS) <= set(result)
