"""benchmarks/false_alarm_transfer.py: components measured against labels, and the counts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import false_alarm_transfer as fat
from thermal_anomaly_segmenter.false_alarms.classifier import FEATURES, train_classifier


def frame(features, causes, area, leak_px, hits, n_leaks, label_px):
    return fat.FrameComponents(x=np.asarray(features, np.float32), causes=causes, area=area,
                               leak_px=leak_px, hits=[np.asarray(h) for h in hits],
                               n_leaks=n_leaks, label_px=label_px)


def test_score_counts_as_evaluate_does_and_a_stage_removes_whole_components():
    feats = np.zeros((3, len(FEATURES)), np.float32)
    feats[:, 0] = (5.0, 1.0, 5.0)  # log_area: the stage below keeps the first and last
    one = frame(feats, ["leak", "lamp", "other"], [100, 10, 2], [60, 0, 0], [[1], [], []],
                n_leaks=2, label_px=80)
    empty = frame(np.zeros((0, len(FEATURES)), np.float32), [], [], [], [], 0, 0)
    plain = fat.score([one, empty])
    assert plain["recall"] == 0.5  # one of two leaks touched
    assert plain["precision"] == 0.5  # the 2-pixel speck is not counted, the lamp is
    assert plain["false_alarms_per_frame"] == 0.5
    assert plain["iou"] == pytest.approx(60 / (112 + 80 - 60))
    rng = np.random.default_rng(0)
    x = np.zeros((200, len(FEATURES)))
    x[:, 0] = np.r_[rng.uniform(4, 6, 100), rng.uniform(0, 2, 100)]
    stage = train_classifier(x, ["leak"] * 100 + ["lamp"] * 100, n_estimators=10)
    staged = fat.score([one, empty], stage)
    assert staged["precision"] == 1.0 and staged["recall"] == 0.5
    assert staged["false_alarms_per_frame"] == 0.0
    assert staged["iou"] == pytest.approx(60 / (100 + 2 + 80 - 60))


def test_frame_components_of_a_real_model_on_a_labelled_scene():
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    segmenter = Segmenter.from_folder(fat.ROOT / "models" / "unet_mobilenetv2_synthetic")
    scene = make_scene(3, 256, 320, n_leaks=3, family="karlsruhe_winter")
    out = fat.frame_components(segmenter, scene.data, scene.corridor, scene.leak_mask,
                               scene.gsd_m, scene.instances, scene.instance_classes)
    assert out.n_leaks >= 1 and out.label_px == int(scene.leak_mask.sum())
    assert out.x.shape == (len(out.causes), len(FEATURES)) and out.causes
    for cause, leak_px, hits in zip(out.causes, out.leak_px, out.hits, strict=True):
        assert (cause == "leak") == (leak_px > 0) == (hits.size > 0)
    assert "leak" in out.causes


@pytest.mark.slow
def test_benchmark_runs_end_to_end_on_tiny_sets(tmp_path, capsys):
    fat.main(["--work", str(tmp_path), "--frames", "2", "--train-frames", "2",
              "--size", "192", "240"])
    rows = json.loads((tmp_path / "false_alarm_transfer.json").read_text())
    assert {r["family"] for r in rows} == {"indep_oldtown", "indep_parkland",
                                           "indep2_snowmelt", "indep2_railyard"}
    assert {r["stage"] for r in rows if r["family"] == "indep2_railyard"} == {
        "no stage", "scenes", "scenes+patches", "scenes + second_generator",
        "scenes+patches + second_generator"}
    assert "| indep_oldtown | no stage |" in capsys.readouterr().out
