"""MLflow tracking: the local sqlite store, a real server, and the loud fallback."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from thermal_anomaly_segmenter.config import TrainOptions, get_settings, local_tracking_uri
from thermal_anomaly_segmenter.scenes.synthetic import write_dataset
from thermal_anomaly_segmenter.train.tracking import experiment_name


@pytest.fixture(scope="module")
def manual_only(tmp_path_factory) -> Path:
    root = write_dataset(tmp_path_factory.mktemp("mlflow") / "ds", 5, seed=9, height=64,
                         width=80, sets=("manual_set",))
    return root


def _options(dataset: Path) -> TrainOptions:
    return TrainOptions(model_type="segformer_b0", train_phases=("fine_tune",), epochs=2,
                        recipe="published", batch_size=2, worker_count=0, gpu=False,
                        mlflow=True, min_label_px=0, dataset_path=str(dataset))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_run(uri: str, run_id: str, expect_artifacts: bool = True) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == experiment_name()
    assert run.data.params["model_type"] == "segformer_b0"
    assert run.data.params["loss_fn"] == "Tversky"
    history = client.get_metric_history(run_id, "val_dataset_iou")
    assert sorted(m.step for m in history) == [0, 1]  # one value per epoch
    assert "fine_tune_test_dataset_iou" in run.data.metrics
    if expect_artifacts:
        names = {a.path for a in client.list_artifacts(run_id, "model")}
        assert {"model/train_config.json", "model/model.safetensors"} <= names


def test_local_store_by_default(manual_only, tmp_path):
    from thermal_anomaly_segmenter.train.loop import train

    settings = dataclasses.replace(get_settings(), models_path=tmp_path / "models",
                                   mlflow_tracking_uri=None)
    result = train(_options(manual_only), settings=settings)
    uri = local_tracking_uri(settings.models_path)
    assert result.mlflow_tracking_uri == uri
    assert (tmp_path / "models" / "mlflow.db").is_file()
    _check_run(uri, result.mlflow_run_id)
    # Resuming a finished run rewrites its model folder and logs into the same MLflow run.
    again = train(TrainOptions(resume=str(result.run_dir), worker_count=0, gpu=False),
                  settings=settings)
    assert again.mlflow_run_id == result.mlflow_run_id
    assert again.model_dir == result.model_dir and again.metrics == result.metrics
    _check_run(uri, result.mlflow_run_id)


def test_unreachable_server_falls_back_loudly(manual_only, tmp_path, caplog):
    from thermal_anomaly_segmenter.train.loop import train

    settings = dataclasses.replace(
        get_settings(), models_path=tmp_path / "models",
        mlflow_tracking_uri=f"http://127.0.0.1:{_free_port()}",
    )
    with caplog.at_level(logging.WARNING):
        result = train(_options(manual_only), settings=settings)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("LOCAL store" in r.getMessage() for r in errors)
    assert result.model_dir.is_dir()
    assert result.mlflow_tracking_uri == local_tracking_uri(settings.models_path)
    _check_run(result.mlflow_tracking_uri, result.mlflow_run_id, expect_artifacts=False)


@pytest.mark.http
@pytest.mark.slow
def test_run_arrives_at_real_server(manual_only, tmp_path):
    import requests

    from thermal_anomaly_segmenter.train.loop import train

    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    if mlflow_bin is None:
        pytest.skip("mlflow server command not installed")
    port = _free_port()
    store = tmp_path / "server"
    store.mkdir()
    cmd = [mlflow_bin, "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
           "--artifacts-destination", str(store / "artifacts"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true")
    server = subprocess.Popen(cmd, cwd=store, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited: {server.stderr.read().decode()[-1500:]}")
            try:
                if requests.get(f"{uri}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail("mlflow server did not answer /health within 60 s")
            time.sleep(0.5)
        settings = dataclasses.replace(get_settings(), models_path=tmp_path / "models",
                                       mlflow_tracking_uri=uri)
        result = train(_options(manual_only), settings=settings)
        assert result.mlflow_tracking_uri == uri
        assert not (tmp_path / "models" / "mlflow.db").exists()
        _check_run(uri, result.mlflow_run_id)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        server.stderr.close()
