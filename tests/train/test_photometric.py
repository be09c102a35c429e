"""The photometric augmentation: other cameras, nights and terrain, on the same labels."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from thermal_anomaly_segmenter.config import TrainOptions  # noqa: E402
from thermal_anomaly_segmenter.errors import InvalidInputError  # noqa: E402
from thermal_anomaly_segmenter.io.frames import compose_frame  # noqa: E402
from thermal_anomaly_segmenter.train.augmentation import (  # noqa: E402
    GAIN_RANGE,
    GRADIENT_DEGC,
    NOISE_DEGC,
    STRIPE_DEGC,
    ThermalAugment,
    photometric,
)


def _window(leak_degc: float = 2.0):
    """A flat 0 degC window with a corridor band and a square leak of ``leak_degc`` on it."""
    t_u = np.zeros((96, 128), np.float32)
    corridor = np.zeros(t_u.shape, bool)
    corridor[30:70, :] = True
    label = np.zeros(t_u.shape, np.uint8)
    label[42:58, 56:72] = 1
    t_u[label.astype(bool)] = leak_degc
    return compose_frame(t_u, corridor), corridor, label


def test_the_corridor_stays_consistent_and_the_label_untouched(sample_frame):
    data, corridor = sample_frame.data, sample_frame.corridor
    label = np.zeros(sample_frame.shape, np.uint8)
    label[corridor] = 1
    plain, photo = ThermalAugment(), ThermalAugment(photometric=True)
    changed = 0
    for seed in range(6):
        a, la, _ = plain(data, corridor, label, seed)
        b, lb, _ = photo(data, corridor, label, seed)
        np.testing.assert_array_equal(la, lb)  # same geometry, same label
        inside = np.abs(a[..., 0] - a[..., 2]) <= 1e-3
        np.testing.assert_allclose(b[..., 0][inside], b[..., 2][inside], atol=1e-4)
        np.testing.assert_array_equal(b[..., 0][~inside], a[..., 0][~inside])  # T_m fill kept
        np.testing.assert_array_equal(b[..., 0], b[..., 1])
        changed += not np.array_equal(a, b)
    assert changed >= 5  # four effects at p 0.5: nearly every window differs


def test_every_effect_is_bounded():
    image, _, label = _window(2.0)
    leak = label.astype(bool)
    ring = np.zeros_like(leak)
    ring[36:64, 50:78] = True  # around the leak, inside the corridor
    ring &= ~leak
    contrasts = []
    for seed in range(30):
        out = photometric(image, np.random.default_rng(seed), p=1.0)
        t_u = out[..., 2]
        # Blur and gradient may move the edge and the level; the leak's contrast stays within
        # the gain range (the blur softens its rim only: the centre is 6 sigma in).
        contrast = float(t_u[46:54, 60:68].mean() - np.median(t_u[ring]))
        contrasts.append(contrast)
        assert 2.0 * GAIN_RANGE[0] - 0.3 <= contrast <= 2.0 * GAIN_RANGE[1] + 0.3
        # Far from the leak only the gradient and the noise remain.
        flat = t_u[:, :40]
        assert np.ptp(flat) <= GRADIENT_DEGC + 10 * (NOISE_DEGC + 2 * STRIPE_DEGC)
    assert np.ptp(contrasts) > 0.8  # the gain really varies the contrast


def test_without_it_nothing_changes():
    image, _, _ = _window()
    out = photometric(image, np.random.default_rng(0), p=0.0)
    np.testing.assert_array_equal(out, image)


def test_it_runs_in_the_loader_workers_only():
    from thermal_anomaly_segmenter.train.datamodule import augment_site

    assert augment_site("auto", "gpu", photometric=True) == "cpu"
    assert augment_site("auto", "gpu") == "device"
    with pytest.raises(InvalidInputError, match="photometric"):
        TrainOptions(photometric=True, augment_on="device")
    with pytest.raises(InvalidInputError, match="photometric"):
        TrainOptions(photometric="yes")  # type: ignore[arg-type]
    assert TrainOptions().resolved("cpu").photometric is False  # off in both recipes
    assert TrainOptions().resolved("gpu").photometric is False
    assert TrainOptions(photometric=True).resolved("cpu").photometric is True

