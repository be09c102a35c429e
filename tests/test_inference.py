"""Inference engine: whole frames, tiling, batching, caching and post-processing."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from conftest import save_tiny_model

from thermal_anomaly_segmenter.config import PredictOptions
from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.inference.postprocess import extract_anomalies
from thermal_anomaly_segmenter.inference.segmenter import (
    Segmenter,
    TileGrid,
    get_segmenter,
    select_device,
)
from thermal_anomaly_segmenter.io.frames import Frame, compose_frame
from thermal_anomaly_segmenter.models.folder import ModelConfig


def make_frame(h: int, w: int, seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    t_u = (rng.normal(-1.0, 1.0, (h, w)) + np.linspace(0, 3, w)[None, :]).astype(np.float32)
    corridor = np.zeros((h, w), bool)
    corridor[h // 4 : 3 * h // 4, :] = True
    return Frame(compose_frame(t_u, corridor), corridor, f"f{seed}")


class PixelModel(torch.nn.Module):
    """A real network with a 1-pixel receptive field: tiled output must equal whole output."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 1, 1)

    def forward(self, x):
        return self.conv(x)


def pixel_segmenter(input_size=(64, 80)) -> Segmenter:
    return Segmenter(ModelConfig("segformer_b0", input_size=input_size), PixelModel().eval())


def test_tile_grid_covers_frame_and_weights_are_positive():
    grid = TileGrid.plan((150, 170), (64, 80), 0.25)
    cover = np.zeros((150, 170), int)
    for r, c in grid:
        cover[r : r + 64, c : c + 80] += 1
    assert cover.min() >= 1
    sy, sx = grid.weight_sums((150, 170))
    assert sy.min() > 0 and sx.min() > 0
    assert TileGrid.plan((40, 50), (64, 80), 0.25).tile == (40, 50)


def test_tiled_equals_whole_frame_for_a_local_model():
    seg = pixel_segmenter()
    frame = make_frame(150, 170)
    tiled = seg.probabilities([frame], PredictOptions(tile_size=(64, 80)))[0]
    whole = seg.probabilities([frame], PredictOptions(tile_size=(512, 512)))[0]
    assert tiled.shape == (150, 170) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_tiled_close_to_whole_frame_for_segformer(tiny_segformer_dir):
    seg = Segmenter.from_folder(tiny_segformer_dir, device="cpu")
    frame = make_frame(128, 160, seed=1)
    whole = seg.probabilities([frame], PredictOptions(tile_size=(128, 160)))[0]
    tiled = seg.probabilities([frame], PredictOptions(tile_size=(64, 80), tile_overlap=0.5))[0]
    # A frame that is exactly one tile goes through the same path: identical.
    one = seg._tiled(
        frame, float(np.median(frame.t_u[frame.corridor])), (128, 160), PredictOptions()
    )
    np.testing.assert_allclose(one, whole, atol=1e-5)
    # Transformers see less context per tile; blended tiles stay close to the whole frame.
    assert np.abs(tiled - whole).mean() < 0.05


def test_a_usual_frame_runs_whole_even_for_a_model_trained_on_small_windows(tiny_segformer_dir):
    # The tiny model was trained at 64 x 80; a 512 x 640 frame must not be cut into tiles.
    seg = Segmenter.from_folder(tiny_segformer_dir, device="cpu")
    assert seg.tile_size(PredictOptions()) == (512, 640)
    assert seg.tile_size(PredictOptions(tile_size=(64, 80))) == (64, 80)
    assert pixel_segmenter((768, 1024)).tile_size(PredictOptions()) == (768, 1024)
    frame = make_frame(512, 640)
    prob = seg.probabilities([frame], PredictOptions())[0]
    x = seg.norm.apply(frame.data, float(np.median(frame.t_u[frame.corridor])))[None]
    np.testing.assert_allclose(prob, seg._forward(x)[0], atol=1e-5)


def test_tiling_memory_is_bounded_on_a_large_frame():
    seg = pixel_segmenter((256, 256))
    frame = make_frame(2048, 3072)
    pixels = 2048 * 3072
    tracemalloc.start()
    try:
        prob = seg.probabilities([frame], PredictOptions(batch_size=4))[0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert prob.shape == (2048, 3072)
    # the accumulator (4 B/px) plus a few tiles; nothing like a second frame copy (12 B/px)
    assert peak < 4 * pixels + 64 * 2**20, peak / 2**20


def test_batched_equals_one_by_one(tiny_segformer_dir):
    seg = Segmenter.from_folder(tiny_segformer_dir, device="cpu")
    frames = [make_frame(64, 80, seed=s) for s in range(3)]
    batched = seg.probabilities(frames, PredictOptions(batch_size=3))
    for frame, prob in zip(frames, batched, strict=True):
        np.testing.assert_allclose(seg.probabilities([frame], PredictOptions())[0], prob, atol=1e-5)


def test_relative_normalisation_ignores_a_global_offset(tiny_segformer_dir):
    seg = Segmenter.from_folder(tiny_segformer_dir, device="cpu")
    frame = make_frame(64, 80)
    warmer = Frame(frame.data + np.float32(10.0), frame.corridor, "warm")
    a, b = seg.probabilities([frame, warmer], PredictOptions())
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_predict_on_the_sample_frame_gives_consistent_records(tiny_segformer_dir, sample_frame):
    seg = get_segmenter(tiny_segformer_dir, "cpu")
    pred = seg.predict(sample_frame, PredictOptions(threshold=0.5))
    assert pred.probability.shape == sample_frame.shape
    assert not pred.mask[~sample_frame.corridor].any()
    assert pred.mask.sum() == sum(a.area_px for a in pred.anomalies)


def test_segmenter_cache_reuses_and_reloads(tmp_path):
    folder = save_tiny_model(tmp_path / "m")
    first = get_segmenter(folder, "cpu")
    assert get_segmenter(folder, "cpu") is first
    import shutil

    shutil.rmtree(folder)
    save_tiny_model(folder, seed=5)
    assert get_segmenter(folder, "cpu") is not first


def test_cuda_refused_without_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InvalidInputError, match="no CUDA GPU"):
        select_device("cuda")
    assert select_device("auto") == "cpu"


def _blob_frame():
    h, w = 60, 80
    t_u = np.zeros((h, w), np.float32)
    corridor = np.zeros((h, w), bool)
    corridor[10:50, :] = True
    prob = np.zeros((h, w), np.float32)
    prob[20:30, 10:30] = 0.9  # 200 px, inside
    t_u[20:30, 10:30] = 3.0
    prob[40:44, 60:63] = 0.8  # 12 px, inside
    t_u[40:44, 60:63] = 1.0
    prob[0:5, 0:5] = 0.99  # outside the corridor: never an anomaly
    prob[15, 70] = 0.7  # a 1-px speck
    return Frame(compose_frame(t_u, corridor), corridor, "blobs"), prob


def test_extract_anomalies_records():
    frame, prob = _blob_frame()
    mask, labels, anomalies = extract_anomalies(
        frame, prob, 0.5, corridor_median=0.0, min_area_px=2, gsd_m=0.5
    )
    assert [a.area_px for a in anomalies] == [200, 12]
    big = anomalies[0]
    assert big.id == 1 and big.bbox == (10, 20, 30, 30)
    assert big.centroid == pytest.approx((19.5, 24.5))
    assert big.area_m2 == pytest.approx(50.0)
    assert big.max_t_degc == pytest.approx(3.0) and big.mean_dt_degc == pytest.approx(3.0)
    assert big.mean_probability == pytest.approx(0.9)
    assert mask.sum() == 212 and not mask[0:5, 0:5].any() and mask[15, 70] == 0
    assert set(np.unique(labels)) == {0, 1, 2}
    assert (labels == 2).sum() == 12


def test_threshold_extremes():
    frame, prob = _blob_frame()
    assert extract_anomalies(frame, prob, 1.0, corridor_median=0.0)[2] == []
    mask, _, found = extract_anomalies(frame, prob, 0.0, corridor_median=0.0)
    assert mask.sum() == (prob > 0).sum() - 25  # the block outside the corridor is dropped
    assert len(found) == 3


def test_classical_default_model_finds_a_planted_leak_and_ignores_a_far_lamp():
    import cv2

    from thermal_anomaly_segmenter.config import BASE_DIR
    from thermal_anomaly_segmenter.io.frames import compose_frame
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    scene = make_scene(seed=7, n_leaks=1)
    t_u = scene.t_u.copy()
    # a very hot street lamp as far from the corridor as the frame allows
    dist = cv2.distanceTransform((~scene.corridor).astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(np.argmax(dist), dist.shape)
    t_u[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4] += 15.0
    frame = Frame(compose_frame(t_u, scene.corridor), scene.corridor, "planted")

    seg = get_segmenter(BASE_DIR / "models" / "classical", "cpu")
    pred = seg.predict(frame, PredictOptions())
    leak = scene.leak_mask.astype(bool)
    assert (pred.mask.astype(bool) & leak).sum() / leak.sum() > 0.5
    assert pred.mask[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4].sum() == 0
    hit = [a for a in pred.anomalies if leak[int(a.centroid[1]), int(a.centroid[0])]]
    assert hit and hit[0].mean_dt_degc > 0.5
