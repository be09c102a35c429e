"""Two-process DDP training on the CPU (gloo), one tiny epoch."""

from __future__ import annotations

import dataclasses
import json

import pytest

from thermal_anomaly_segmenter.config import TrainOptions, get_settings
from thermal_anomaly_segmenter.synthetic import write_dataset


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_process_ddp_on_cpu(tmp_path, monkeypatch):
    from thermal_anomaly_segmenter.train.loop import train
    from thermal_anomaly_segmenter.train.task import SegmentationTask

    marks = tmp_path / "ranks"
    marks.mkdir()

    def on_train_start(self):  # runs in the worker processes: leave a file per rank
        (marks / f"{self.global_rank}_of_{self.trainer.world_size}").touch()

    monkeypatch.setattr(SegmentationTask, "on_train_start", on_train_start, raising=False)

    dataset = write_dataset(tmp_path / "ds", 6, seed=11, height=64, width=80,
                            sets=("manual_set",))
    settings = dataclasses.replace(get_settings(), models_path=tmp_path / "models",
                                   mlflow_tracking_uri=None)
    options = TrainOptions(model_type="segformer_b0", train_phases=("fine_tune",), epochs=1,
                           batch_size=2, worker_count=0, gpu=False, mlflow=False,
                           min_label_px=0, dataset_path=str(dataset), devices=2)
    result = train(options, settings=settings)
    assert "test_dataset_iou" in result.metrics
    assert (result.model_dir / "model.safetensors").is_file()
    config = json.loads((result.model_dir / "train_config.json").read_text())
    assert config["train_args"]["devices"] == 2
    assert (result.run_dir / "fine_tune" / "best.safetensors").is_file()
    assert not list(result.run_dir.glob("*/*.ckpt"))  # a done phase keeps no checkpoint
    assert sorted(p.name for p in marks.iterdir()) == ["0_of_2", "1_of_2"]
