"""Pixel metrics (smp, micro and micro-imagewise) and object-level counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thermal_anomaly_segmenter.evaluation.metrics import (
    SCORES,
    batch_stats,
    object_counts,
    object_scores,
    pixel_counts,
    pixel_scores,
    summarize,
)


def _masks():
    target = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    pred = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    target[0, 0, :2, :2] = 1  # 4 true pixels
    pred[0, 0, :2, :1] = 1  # 2 of them found
    pred[0, 0, 3, 3] = 1  # 1 false pixel
    target[1, 0, 0, 0] = 1  # image 2: 1 true pixel, missed
    return pred, target


def test_pixel_scores_names_and_values():
    pred, target = _masks()
    counts = pixel_counts(pred, target)
    assert counts.tolist() == [[2, 1, 2, 11], [0, 0, 1, 15]]
    scores = pixel_scores(counts, "test_")
    expected = {f"test_{r}_{s}" for r in ("dataset", "per_image") for s in SCORES}
    assert set(scores) == expected
    # Pooled: tp 2, fp 1, fn 3.
    assert scores["test_dataset_iou"] == pytest.approx(2 / 6)
    assert scores["test_dataset_precision"] == pytest.approx(2 / 3)
    assert scores["test_dataset_recall"] == pytest.approx(2 / 5)
    assert scores["test_dataset_dice"] == pytest.approx(4 / 8)
    assert scores["test_dataset_f2"] == pytest.approx(5 * 2 / (5 * 2 + 4 * 3 + 1))
    # Per image: IoU 2/5 and 0.
    assert scores["test_per_image_iou"] == pytest.approx((2 / 5 + 0) / 2)


def test_empty_images_score_one():
    zeros = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    scores = pixel_scores(pixel_counts(zeros, zeros))
    assert all(v == 1.0 for v in scores.values())


def test_object_counts():
    target = np.zeros((10, 10), np.uint8)
    pred = np.zeros((10, 10), np.uint8)
    target[0:2, 0:2] = 1  # object A: found by a one-pixel overlap
    target[6:8, 6:8] = 1  # object B: missed
    pred[1:4, 1:4] = 1  # overlaps A
    pred[0, 8:10] = 1  # false alarm (2 px)
    pred[9, 0] = 1  # speck (1 px)
    assert object_counts(pred, target) == (2, 1, 3, 2)
    assert object_counts(pred, target, min_area_px=2) == (2, 1, 2, 1)
    scores = object_scores(2, 1, 2, 1, prefix="test_")
    assert scores == {"test_object_recall": 0.5, "test_object_precision": 0.5}
    assert object_scores(0, 0, 0, 0) == {"object_recall": 1.0, "object_precision": 1.0}


def test_batch_stats_and_summary():
    pred, target = _masks()
    stats = batch_stats(pred.bool(), target)
    assert stats.shape == (2, 8)
    summary = summarize(stats, "val_")
    assert summary["val_object_recall"] == pytest.approx(0.5)
    assert summary["val_object_precision"] == pytest.approx(0.5)
    assert summarize(torch.zeros((0, 8), dtype=torch.long)) == {}


def test_reliability_of_calibrated_and_overconfident_probabilities():
    from thermal_anomaly_segmenter.evaluation.metrics import reliability, reliability_counts

    rng = np.random.default_rng(0)
    prob = rng.uniform(0, 1, 200_000)
    calibrated = rng.uniform(0, 1, prob.size) < prob  # anomalies exactly as often as predicted
    table, ece = reliability(reliability_counts(prob, calibrated))
    assert len(table) == 10 and sum(r["pixels"] for r in table) == prob.size
    assert ece < 0.01
    for row in table:
        assert row["low"] <= row["predicted"] < row["high"]
        assert abs(row["observed"] - row["predicted"]) < 0.02
    # A model that says 0.9 where only one pixel in ten is an anomaly is 0.8 off.
    table, ece = reliability(reliability_counts(np.full(1000, 0.9), np.arange(1000) % 10 == 0))
    assert [r["pixels"] for r in table] == [1000] and ece == pytest.approx(0.8)
