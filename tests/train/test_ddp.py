"""Two-process DDP training on the CPU (gloo), one tiny epoch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# DDP on the CPU forks its ranks; a test process that already runs threads (thread pools of
# earlier tests) can deadlock a fork, so the run gets a fresh interpreter of its own.
SCRIPT = textwrap.dedent("""
    import dataclasses, json, sys
    from pathlib import Path

    from thermal_anomaly_segmenter.config import TrainOptions, get_settings
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset
    from thermal_anomaly_segmenter.train.loop import train
    from thermal_anomaly_segmenter.train.task import SegmentationTask

    tmp = Path(sys.argv[1])
    marks = tmp / "ranks"
    marks.mkdir()

    def on_train_start(self):  # runs in the worker processes: leave a file per rank
        (marks / f"{self.global_rank}_of_{self.trainer.world_size}").touch()

    SegmentationTask.on_train_start = on_train_start
    dataset = write_dataset(tmp / "ds", 6, seed=11, height=64, width=80, sets=("manual_set",))
    settings = dataclasses.replace(get_settings(), models_path=tmp / "models",
                                   mlflow_tracking_uri=None)
    options = TrainOptions(model_type="segformer_b0", train_phases=("fine_tune",), epochs=1,
                           batch_size=2, worker_count=0, gpu=False, mlflow=False,
                           min_label_px=0, dataset_path=str(dataset), devices=2)
    result = train(options, settings=settings)
    print(json.dumps({"metrics": result.metrics, "model_dir": str(result.model_dir),
                      "run_dir": str(result.run_dir)}))
""")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_process_ddp_on_cpu(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    model_dir, run_dir = Path(result["model_dir"]), Path(result["run_dir"])
    assert "test_dataset_iou" in result["metrics"]
    assert (model_dir / "model.safetensors").is_file()
    config = json.loads((model_dir / "train_config.json").read_text())
    assert config["train_args"]["devices"] == 2
    assert (run_dir / "fine_tune" / "best.safetensors").is_file()
    assert not list(run_dir.glob("*/*.ckpt"))  # a done phase keeps no checkpoint
    assert sorted(p.name for p in (tmp_path / "ranks").iterdir()) == ["0_of_2", "1_of_2"]
