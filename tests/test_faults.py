"""Faults during training: the MLflow tracking server dies while ``taseg train`` runs.

The training must finish anyway, with its metrics kept in the model folder and the run
folder, and say loudly (an ERROR line) that MLflow logging failed. (SIGKILL of the training
itself and ``--resume`` are covered by tests/train/test_training.py; an unwritable predictions
folder over HTTP by tests/test_hostile.py.)
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deepaas_server import free_port

from thermal_anomaly_segmenter.scenes.synthetic import write_dataset

requests = pytest.importorskip("requests")

pytestmark = [pytest.mark.http, pytest.mark.slow]

BIN = Path(sys.executable).parent
EPOCHS = 3


def _count(db: Path, query: str) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            return con.execute(query).fetchone()[0]
    except sqlite3.Error:  # not created yet, or being migrated
        return 0


def _runs_in(db: Path) -> int:
    return _count(db, "SELECT count(*) FROM runs")


def _runs_open_in(db: Path) -> int:
    """Runs whose parameters are stored: the training's run set-up has ended on the server.

    (A run alone is not enough: stopping the server between ``create_run`` and the parameters'
    ``log_batch`` makes the training rightly open its run in the local store instead.)
    """
    return _count(db, "SELECT count(DISTINCT run_uuid) FROM params")


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
            return


def test_mlflow_server_stopped_mid_training(tmp_path):
    mlflow_bin = BIN / "mlflow"
    if not mlflow_bin.exists():
        pytest.skip("mlflow server command not installed")
    dataset = write_dataset(tmp_path / "ds", 5, seed=9, height=64, width=80,
                            sets=("manual_set",))
    store = tmp_path / "mlflow"
    store.mkdir()
    db = store / "mlflow.db"
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TASEG_"))}
    env.update(HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")
    mlflow = subprocess.Popen(
        [str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{db}",
         "--artifacts-destination", str(store / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        cwd=store, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    train = None
    t_start = time.monotonic()
    try:
        deadline = time.monotonic() + 90
        while True:
            assert mlflow.poll() is None, "mlflow server exited"
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{uri}/health", timeout=2).ok:
                    break
            assert time.monotonic() < deadline, "mlflow server did not answer /health"
            time.sleep(0.5)
        t_up = time.monotonic()
        train = subprocess.Popen(
            [str(BIN / "taseg"), "train", "--model-type", "segformer_b0",
             "--train-phases", "fine_tune", "--dataset-path", str(dataset),
             "--epochs", str(EPOCHS), "--batch-size", "2", "--worker-count", "0", "--no-gpu",
             "--mlflow", "--no-data-augmentation", "--min-label-px", "0"],
            env={**env, "MODELS_PATH": str(tmp_path / "models"), "MLFLOW_TRACKING_URI": uri},
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        # Stop the tracking server as soon as the run is open on it: training is under way.
        deadline = time.monotonic() + 120
        while _runs_open_in(db) == 0:
            assert train.poll() is None, train.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the run never reached the MLflow server"
            time.sleep(0.2)
        time.sleep(0.3)  # the server's reply to the parameters' commit reaches the training
        t_run = time.monotonic()
        # SIGKILL, not SIGTERM: a gracefully stopping server keeps answering requests on
        # open keep-alive connections for a while (training could end its calls meanwhile).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(mlflow.pid, signal.SIGKILL)
        mlflow.wait(timeout=30)
        with pytest.raises(requests.RequestException):
            requests.get(f"{uri}/health", timeout=2)
        assert train.poll() is None, "training ended before the server was stopped"
        t_kill = time.monotonic()
        out, err = train.communicate(timeout=300)
        print(f"\nmlflow up {t_up - t_start:.1f} s; run open after {t_run - t_up:.1f} s; "
              f"server stopped in {t_kill - t_run:.1f} s; training ended "
              f"{time.monotonic() - t_kill:.1f} s later")
    finally:
        _kill_group(mlflow)
        if train is not None and train.poll() is None:
            _kill_group(train)
    assert train.returncode == 0, err[-3000:]
    assert "MLflow" in err and "failed" in err and "training goes on" in err, err[:3000]
    assert "Traceback" not in err, err[-3000:]  # warnings are one line each
    model_dir = Path(out.strip().splitlines()[-1])
    assert model_dir.is_dir() and (model_dir / "model.safetensors").is_file()
    with open(model_dir / "metrics_fine_tune.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == EPOCHS  # every epoch's metrics kept locally
    assert all(0.0 <= float(r["val_dataset_iou"]) <= 1.0 for r in rows)
    metrics = json.loads((model_dir / "train_config.json").read_text())["metrics"]
    assert 0.0 <= metrics["test_dataset_iou"] <= 1.0
    assert _runs_in(db) == 1  # the run opened before the server died is all it got
