"""Training over HTTP with data-loader workers (issue 11): DEEPaaS runs ``train`` in a spawned
process, whose loader workers are spawned too; they must survive unpickling the dataset on a
machine whose torchvision needs the compatibility shim, and the training must end ``done``."""

from __future__ import annotations

import pytest
from deepaas_server import TINY_TRAIN, make_folders, poll_training, running_server

requests = pytest.importorskip("requests")

pytestmark = [pytest.mark.http, pytest.mark.slow]


def test_training_with_one_and_two_loader_workers_ends_done(tmp_path):
    folders = make_folders(tmp_path)
    with running_server(folders) as server:
        for workers in (1, 2):
            params = {**TINY_TRAIN, "worker_count": workers, "data_augmentation": "true"}
            r = requests.post(f"{server.model_url}/train/", params=params, timeout=30)
            assert r.status_code == 200, r.text
            status = poll_training(server.model_url, r.json()["uuid"], 300)
            assert status["status"] == "done", (status, server.log_tail())
            assert 0.0 <= status["result"]["output"]["test_dataset_iou"] <= 1.0
        assert "exited unexpectedly" not in server.log_tail(200_000)
