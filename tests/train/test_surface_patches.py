"""The surface-patch augmentation: straight-edged man-made surfaces that are never leaks."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from thermal_anomaly_segmenter.config import TrainOptions  # noqa: E402
from thermal_anomaly_segmenter.errors import InvalidInputError  # noqa: E402
from thermal_anomaly_segmenter.io.frames import compose_frame  # noqa: E402
from thermal_anomaly_segmenter.train.augmentation import (  # noqa: E402
    SURFACE_STEP_DEGC,
    ThermalAugment,
    surface_patches,
)


def _window():
    """A flat 0 degC window with a corridor band and a 2 degC square leak on it."""
    t_u = np.zeros((96, 128), np.float32)
    corridor = np.zeros(t_u.shape, bool)
    corridor[30:70, :] = True
    label = np.zeros(t_u.shape, np.uint8)
    label[42:58, 56:72] = 1
    t_u[label.astype(bool)] = 2.0
    return compose_frame(t_u, corridor), corridor, label


def test_patches_are_uniform_straight_edged_steps_and_the_corridor_stays_consistent():
    image, corridor, _ = _window()
    shares, warm, cold = [], 0, 0
    for seed in range(40):
        out = surface_patches(image, np.random.default_rng(seed), p=1.0)
        step = out[..., 2] - image[..., 2]
        changed = np.abs(step) > 1e-4
        assert changed.any()
        shares.append(changed.mean())
        # Uniform inside, changing only along the edges: few pixels differ from a neighbour.
        edges = (np.abs(np.diff(step, axis=0)) > 1e-4).sum() + \
            (np.abs(np.diff(step, axis=1)) > 1e-4).sum()
        assert edges < 0.5 * changed.sum() + 400
        assert np.abs(step).max() <= 3 * SURFACE_STEP_DEGC[1] + 1e-4  # at most three overlap
        values = step[changed]
        warm += (values > 0).mean() > 0.5
        cold += (values < 0).mean() > 0.5
        inside = corridor
        np.testing.assert_allclose(out[..., 0][inside], out[..., 2][inside], atol=1e-5)
        np.testing.assert_array_equal(out[..., 0][~inside], image[..., 0][~inside])  # fill kept
        np.testing.assert_array_equal(out[..., 0], out[..., 1])
    assert 0.02 < float(np.median(shares)) < 0.8
    assert warm > cold > 0  # mostly warmer surfaces, some colder


def test_a_leak_keeps_its_step_over_what_covers_it():
    image, _, label = _window()
    leak = label.astype(bool)
    for seed in range(20):
        out = surface_patches(image, np.random.default_rng(seed), p=1.0)
        step = out[..., 2] - image[..., 2]
        # Wherever a patch covers the whole leak and its rim alike, the leak's contrast is 2 degC.
        rim = np.zeros_like(leak)
        rim[40:60, 54:74] = True
        rim &= ~leak
        if np.ptp(step[40:60, 54:74]) < 1e-4:
            contrast = out[..., 2][leak].mean() - out[..., 2][rim].mean()
            assert contrast == pytest.approx(2.0, abs=1e-4)


def test_seeded_off_by_default_and_labels_untouched(sample_frame):
    image, _, _ = _window()
    a = surface_patches(image, np.random.default_rng(3), p=1.0)
    b = surface_patches(image, np.random.default_rng(3), p=1.0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(surface_patches(image, np.random.default_rng(3), p=0.0), image)
    data, corridor = sample_frame.data, sample_frame.corridor
    label = np.zeros(sample_frame.shape, np.uint8)
    label[corridor] = 1
    plain, surf = ThermalAugment(), ThermalAugment(surfaces=True)
    assert plain.surfaces is False
    changed = 0
    for seed in range(8):
        a, la, _ = plain(data, corridor, label, seed)
        b, lb, _ = surf(data, corridor, label, seed)
        np.testing.assert_array_equal(la, lb)  # same geometry, same label
        changed += not np.array_equal(a, b)
    assert 1 <= changed <= 7  # p 0.5


def test_it_runs_in_the_loader_workers_only():
    from thermal_anomaly_segmenter.train.datamodule import augment_site

    assert augment_site("auto", "gpu", surface_patches=True) == "cpu"
    assert augment_site("auto", "cpu", surface_patches=True) == "cpu"
    with pytest.raises(InvalidInputError, match="surface-patches augmentation runs in the "
                       "loader workers only"):
        TrainOptions(surface_patches=True, augment_on="device")
    with pytest.raises(InvalidInputError, match="surface_patches"):
        TrainOptions(surface_patches=1)  # type: ignore[arg-type]
    assert TrainOptions().resolved("cpu").surface_patches is False  # off in both recipes
    assert TrainOptions(surface_patches=True).resolved("gpu").surface_patches is True
