"""Tests of the classical triangle-threshold method."""

from __future__ import annotations

import numpy as np
import pytest

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.io.frames import compose_frame
from thermal_anomaly_segmenter.models.triangle import (
    ClassicalParams,
    classical_label,
    classical_probability,
    triangle_threshold,
)
from thermal_anomaly_segmenter.scenes.synthetic import make_scene


def _bimodal(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    background = rng.normal(0.0, 0.3, 50_000)
    foreground = rng.normal(5.0, 0.3, 2_000)
    return background, foreground


def test_triangle_threshold_lands_between_the_modes() -> None:
    background, foreground = _bimodal(np.random.default_rng(0))
    thr = triangle_threshold(np.concatenate([background, foreground]))
    assert 0.3 < thr < 4.0
    assert (foreground > thr).mean() > 0.99
    assert (background > thr).mean() < 0.05


def test_triangle_threshold_handles_a_peak_at_the_high_end() -> None:
    background, foreground = _bimodal(np.random.default_rng(1))
    values = np.concatenate([background, foreground])
    thr = triangle_threshold(values)
    flipped = triangle_threshold(-values)
    bin_width = (values.max() - values.min()) / 256
    assert flipped == pytest.approx(-thr, abs=1.01 * bin_width)
    assert -4.0 < flipped < -0.3


def test_triangle_threshold_constant_and_non_finite_input() -> None:
    assert triangle_threshold(np.full(10, 3.5)) == 3.5
    assert triangle_threshold(np.array([2.0, np.nan, 2.0, np.inf])) == 2.0
    with pytest.raises(InvalidInputError):
        triangle_threshold(np.array([np.nan, np.inf]))
    with pytest.raises(InvalidInputError):
        triangle_threshold(np.array([], dtype=np.float32))
    with pytest.raises(InvalidInputError):
        triangle_threshold(np.arange(10.0), bins=1)


def _hand_made_frame() -> tuple[np.ndarray, np.ndarray, dict[str, tuple]]:
    """128 x 160 night frame: corridor band, a leak in it, a 3 px speck, a far lamp."""
    rng = np.random.default_rng(5)
    height, width = 128, 160
    t_u = -1.5 + rng.normal(0.0, 0.08, (height, width)).astype(np.float32)
    corridor = np.zeros((height, width), bool)
    corridor[40:90, :] = True
    yy, xx = np.mgrid[:height, :width]
    t_u += 3.0 * np.exp(-0.5 * (((xx - 50) / 9.0) ** 2 + ((yy - 65) / 5.0) ** 2))
    t_u[70, 130:133] = 3.0  # speck of 3 pixels
    t_u[8:12, 140:144] = 8.0  # hot street lamp far outside the corridor
    where = {
        "leak": (slice(60, 71), slice(40, 61)),
        "speck": (70, slice(130, 133)),
        "lamp": (slice(8, 12), slice(140, 144)),
    }
    return compose_frame(t_u, corridor), corridor, where


def test_classical_finds_leak_ignores_far_lamp_and_removes_speck() -> None:
    data, corridor, where = _hand_made_frame()
    prob = classical_probability(data, corridor)
    label = classical_label(data, corridor)

    assert prob.dtype == np.float32 and prob.shape == corridor.shape
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    assert label.dtype == np.uint8 and set(np.unique(label)) <= {0, 1}
    np.testing.assert_array_equal(label, (prob > 0.5).astype(np.uint8))
    assert not label[~corridor].any() and not prob[~corridor].any()

    assert label[where["leak"]].mean() > 0.8
    assert not label[where["lamp"]].any()
    assert not label[where["speck"]].any()
    assert (prob[where["speck"]] < 0.5).all()
    kept = classical_label(data, corridor, ClassicalParams(min_area_px=0))
    assert kept[where["speck"]].all()


def test_probability_above_half_is_exactly_the_threshold_label() -> None:
    rng = np.random.default_rng(2)
    t_u = rng.normal(0.0, 0.3, (192, 192)).astype(np.float32)
    t_u[80:120, 80:120] += 3.0
    corridor = np.ones_like(t_u, dtype=bool)
    thr = np.float32(triangle_threshold(t_u))
    # One float32 step above the threshold the soft score rounds to 0.5; the label must not.
    t_u[5, 5:7] = np.nextafter(thr, np.float32(np.inf))
    t_u[7, 5:7] = thr
    assert np.float32(triangle_threshold(t_u)) == thr
    label = classical_label(compose_frame(t_u, corridor), corridor, ClassicalParams(min_area_px=0))
    np.testing.assert_array_equal(label.astype(bool), t_u > thr)
    assert label[5, 5:7].all() and not label[7, 5:7].any()


def test_classical_on_synthetic_scenes_finds_leaks_and_the_baits() -> None:
    recalls = []
    for seed in range(4):
        scene = make_scene(seed, 256, 320, n_leaks=1)
        label = classical_label(scene.data, scene.corridor)
        leak = scene.leak_mask.astype(bool)
        recalls.append(label[leak].mean())
        assert not label[~scene.corridor].any()
    assert np.mean(recalls) > 0.6, recalls
    # Its known weakness: warm objects in the corridor are flagged as well.
    scene = make_scene(0, 256, 320, n_leaks=0)
    label = classical_label(scene.data, scene.corridor).astype(bool)
    assert label.any()
    assert (label & (scene.bait_mask > 0)).any()


def test_empty_corridor_gives_zero_probability() -> None:
    data = compose_frame(np.zeros((16, 20), np.float32), np.ones((16, 20), bool))
    prob = classical_probability(data, np.zeros((16, 20), bool))
    assert prob.shape == (16, 20) and not prob.any()


def test_invalid_inputs_raise() -> None:
    data = np.zeros((16, 20, 3), np.float32)
    with pytest.raises(InvalidInputError):
        classical_probability(data[..., 0], np.ones((16, 20), bool))
    with pytest.raises(InvalidInputError):
        classical_probability(data, np.ones((16, 21), bool))
    for bad in ({"bins": 1}, {"min_area_px": -1}, {"softness_degc": 0.0}, {"bins": 2.5}):
        with pytest.raises(InvalidInputError):
            ClassicalParams(**bad)
