"""The device engine (.accel) on the CPU device against the Segmenter's numpy path.

On a GPU the Segmenter runs through DeviceEngine; here the same engine runs on the CPU device
(without the GPU-only pinned memory, side stream and CUDA graphs) and must give the numpy
path's probabilities, masks and records. ``python -m benchmarks gpu`` checks it on a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from thermal_anomaly_segmenter.config import PredictOptions  # noqa: E402
from thermal_anomaly_segmenter.inference.gpu_engine import (  # noqa: E402
    DeviceEngine,
    EngineOptions,
    blend_tiles,
)
from thermal_anomaly_segmenter.inference.segmenter import Segmenter  # noqa: E402
from thermal_anomaly_segmenter.models.normalization import corridor_median  # noqa: E402

FP32 = EngineOptions(bf16_weights=False)


@pytest.fixture(scope="module")
def segmenter(tiny_segformer_dir):
    seg = Segmenter.from_folder(tiny_segformer_dir, "cpu", "torch")
    assert seg._engine is None  # the CPU keeps the numpy path
    return seg


@pytest.fixture(scope="module")
def frames(sample_frame):
    crop = sample_frame.data[:64, :80].copy(), sample_frame.data[100:164, 200:280].copy()
    return [np.ascontiguousarray(c) for c in crop]


def _crop(frame, rows: slice, cols: slice):
    return type(frame)(frame.data[rows, cols].copy(), frame.corridor[rows, cols].copy(), "crop")


def _engine_segmenter(seg: Segmenter, options: EngineOptions = FP32) -> Segmenter:
    """The same model with the engine hooked in, as from_folder does on CUDA."""
    other = Segmenter(seg.config, seg.model, model_dir=seg.model_dir, device="cpu")
    other._engine = DeviceEngine(seg.model, seg.config.norm, "cpu", options,
                                 calibration=other.calibration)
    return other


def test_engine_probabilities_match_the_numpy_path(segmenter, frames):
    medians = [float(np.median(f[..., 2])) for f in frames]
    expected = segmenter._forward(np.stack([segmenter.norm.apply(f, m)
                                            for f, m in zip(frames, medians, strict=True)]))
    engine = DeviceEngine(segmenter.model, segmenter.norm, "cpu", FP32)
    got = engine.probabilities(frames, medians)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-6)
    normalised = np.stack([segmenter.norm.apply(f, m) for f, m in zip(frames, medians,
                                                                     strict=True)])
    np.testing.assert_allclose(engine.forward_normalized(normalised), expected, atol=2e-6)
    many = engine.probabilities_many([(frames, medians), (frames[::-1], medians[::-1])])
    np.testing.assert_allclose(many[0], expected, atol=2e-6)
    np.testing.assert_allclose(many[1], expected[::-1], atol=2e-6)


def test_bf16_weights_stay_close_and_leave_the_model_alone(segmenter, frames):
    before = {k: v.clone() for k, v in segmenter.model.state_dict().items()}
    engine = DeviceEngine(segmenter.model, segmenter.norm, "cpu", EngineOptions())
    medians = [0.0, 0.0]
    got = engine.probabilities(frames, medians)
    fp32 = DeviceEngine(segmenter.model, segmenter.norm, "cpu", FP32).probabilities(frames,
                                                                                    medians)
    assert np.abs(got - fp32).max() < 0.05
    assert next(engine.net.parameters()).dtype == torch.bfloat16
    after = segmenter.model.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())


def test_tiles_blended_by_the_engine_match_the_host_blending(segmenter, sample_frame):
    sample_frame = _crop(sample_frame, slice(60, 260), slice(250, 450))
    options = PredictOptions(tile_size=(64, 96), tile_overlap=0.25, batch_size=3)
    median = corridor_median(sample_frame.t_u, sample_frame.corridor)
    tile = segmenter.tile_size(options)
    expected = segmenter._tiled(sample_frame, median, tile, options)
    got = _engine_segmenter(segmenter)._tiled(sample_frame, median, tile, options)
    np.testing.assert_allclose(got, expected, atol=5e-6)


def test_predictions_through_the_engine_match(segmenter, sample_frame):
    options = PredictOptions(batch_size=2)
    # Three small frames: two chunks pipelined through probabilities_many; and a whole one.
    small = [_crop(sample_frame, slice(140 + d, 204 + d), slice(326, 406)) for d in (0, 3, 6)]
    frames = [sample_frame, *small]
    expected = segmenter.predict_batch(frames, options)
    got = _engine_segmenter(segmenter).predict_batch(frames, options)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a.probability, b.probability, atol=5e-6)
        np.testing.assert_array_equal(a.mask, b.mask)
        assert len(a.anomalies) == len(b.anomalies)


def test_blend_tiles_adds_weighted_tiles():
    probs = torch.ones(2, 4, 6)
    wy, wx = torch.tensor([0.5, 1, 1, 0.5]), torch.tensor([0.25, 1, 1, 1, 1, 0.25])
    acc, total = blend_tiles(probs, [(0, 0), (2, 3)], (6, 9), wy, wx)
    grid_weight = (wy[:, None] * wx[None, :])
    assert torch.equal(acc, total)  # probability 1 everywhere: acc is the weight sum
    assert total[0, 0] == grid_weight[0, 0] and total[5, 8] == grid_weight[3, 5]
    assert total[2, 3] == grid_weight[2, 3] + grid_weight[0, 0]
    assert total[0, 8] == 0


def test_engine_options_are_checked():
    with pytest.raises(ValueError, match="compile_mode"):
        EngineOptions(compile_mode="fastest")


@pytest.mark.slow
def test_compiled_engine_matches_eager_on_tiny_shapes():
    """torch.compile (inductor, dynamic=False) on the CPU with a tiny network: the same
    probabilities as eager. (A zoo network compiles for minutes on 2 cores.)"""
    from thermal_anomaly_segmenter.models.normalization import Normalization

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 1, 1)).eval()
    frames = [np.random.default_rng(i).normal(20, 3, (32, 40, 3)).astype(np.float32)
              for i in range(2)]
    eager = DeviceEngine(net, Normalization(), "cpu", FP32).probabilities(frames, [20.0, 21.0])
    compiled = DeviceEngine(net, Normalization(), "cpu", EngineOptions(
        bf16_weights=False, compile=True, compile_mode="default"))
    np.testing.assert_allclose(compiled.probabilities(frames, [20.0, 21.0]), eager, atol=1e-5)


def test_the_engine_applies_the_folder_calibration_like_the_host(segmenter, frames):
    import dataclasses

    config = dataclasses.replace(segmenter.config,
                                 calibration={"method": "platt", "scale": 0.4, "bias": -1.4})
    host = Segmenter(config, segmenter.model, model_dir=segmenter.model_dir, device="cpu")
    medians = [float(np.median(f[..., 2])) for f in frames]
    batch = np.stack([host.norm.apply(f, m) for f, m in zip(frames, medians, strict=True)])
    expected = host._forward(batch)
    assert not np.allclose(expected, segmenter._forward(batch), atol=1e-3)  # it does calibrate
    got = _engine_segmenter(host)._engine.probabilities(frames, medians)
    np.testing.assert_allclose(got, expected, atol=2e-6)
