"""The model folder's stored threshold: chosen on validation data, used by predict and the API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from deepaas_server import MODEL, ROOT, make_folders, post_predict, running_server

from thermal_anomaly_segmenter.config import DEFAULT_MODEL_NAME, PredictOptions
from thermal_anomaly_segmenter.evaluation.evaluate import select_threshold
from thermal_anomaly_segmenter.models.folder import CONFIG_NAME


def _set_threshold(model_dir: Path, value: float) -> None:
    path = model_dir / CONFIG_NAME
    config = json.loads(path.read_text())
    config["threshold"] = value
    path.write_text(json.dumps(config))


def _row(t, f1, recall):
    return {"threshold": t, "f1": f1, "object_recall": recall}


def test_select_threshold_keeps_object_recall():
    curve = [_row(0.3, 0.6, 1.0), _row(0.5, 0.7, 0.96), _row(0.7, 0.8, 0.9)]
    assert select_threshold(curve) == 0.5  # 0.7 has the best F1 but misses leaks
    assert select_threshold(curve, min_object_recall=0.8) == 0.7
    assert select_threshold([_row(0.3, 0.5, 0.8), _row(0.5, 0.6, 0.7)]) == 0.3


def test_select_threshold_does_not_buy_recall_with_a_flood_of_false_alarms():
    # What a 15-frame validation split of a small user dataset gave: only the lowest
    # threshold reaches recall 0.95, with one true component in ten.
    curve = [{**_row(0.05, 0.30, 1.0), "object_precision": 0.09},
             {**_row(0.3, 0.55, 0.90), "object_precision": 0.70},
             {**_row(0.5, 0.60, 0.80), "object_precision": 0.90}]
    assert select_threshold(curve) == 0.3  # best object F2 when the floor cannot be met
    curve[0]["object_precision"] = 0.6
    assert select_threshold(curve) == 0.05  # recall >= 0.95 at a usable precision wins


def test_predict_uses_the_stored_threshold(tmp_path):
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.io.frames import Frame
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    folder = tmp_path / "m"
    shutil.copytree(ROOT / "models" / DEFAULT_MODEL_NAME, folder,
                    ignore=shutil.ignore_patterns("predictions"))
    _set_threshold(folder, 0.93)

    scene = make_scene(3, 256, 320, n_leaks=2)
    frame = Frame(data=scene.data, corridor=scene.corridor, name="s3")
    seg = Segmenter.from_folder(folder, device="cpu")
    stored = seg.predict(frame, PredictOptions(device="cpu"))
    explicit = seg.predict(frame, PredictOptions(device="cpu", threshold=0.93))
    default = seg.predict(frame, PredictOptions(device="cpu", threshold=0.5))
    assert stored.threshold == 0.93
    np.testing.assert_array_equal(stored.mask, explicit.mask)
    assert stored.mask.sum() < default.mask.sum()


@pytest.mark.slow
@pytest.mark.http
def test_api_uses_the_stored_threshold(tmp_path):
    folders = make_folders(tmp_path, synth=False)
    _set_threshold(folders / "models" / DEFAULT_MODEL_NAME, 0.87)
    with running_server(folders) as server:
        url = f"{server.url}/v2/models/{MODEL}"
        doc = post_predict(url).json()["predictions"]
        assert doc["threshold"] == 0.87
        assert post_predict(url, threshold=0.4).json()["predictions"]["threshold"] == 0.4


@pytest.mark.slow
def test_training_stores_a_threshold_chosen_on_validation(tmp_path):
    import dataclasses

    from thermal_anomaly_segmenter.config import TrainOptions, get_settings
    from thermal_anomaly_segmenter.evaluation.evaluate import SWEEP
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset
    from thermal_anomaly_segmenter.train.loop import train

    data = write_dataset(tmp_path / "ds", 8, seed=5, height=64, width=80, sets=("manual_set",),
                         splits=(0.5, 0.25, 0.25))
    settings = dataclasses.replace(get_settings(), models_path=tmp_path / "models",
                                   mlflow_tracking_uri=None)
    result = train(TrainOptions(model_type="segformer_b0", train_phases=("fine_tune",),
                                dataset_path=str(data), epochs=1, batch_size=2, worker_count=0,
                                mlflow=False, gpu=False, min_label_px=0), settings=settings)
    config = json.loads((result.model_dir / CONFIG_NAME).read_text())
    assert config["threshold"] in SWEEP
    assert config["train_args"]["threshold_selection"]["split"] == "val"
    assert (result.model_dir / "evaluation" / "evaluation_manual_set_val.json").is_file()
