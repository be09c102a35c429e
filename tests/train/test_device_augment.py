"""Device-side batch augmentation against the albumentations pipeline, on the CPU device.

Exact where exactness is possible (same draws: flips, affine matrix, elastic displacement maps
-> same frames and labels), distributional where it is not (the random draws themselves and
the elastic noise, which come from different generators).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

torch = pytest.importorskip("torch")

from thermal_anomaly_segmenter.models.normalization import Normalization  # noqa: E402
from thermal_anomaly_segmenter.train.augmentation import (  # noqa: E402
    ThermalAugment,
    draw_zoom,
    fill_values,
    zoom_frame,
)
from thermal_anomaly_segmenter.train.device_augment import (  # noqa: E402
    PARAMS,
    DeviceAugment,
    affine_matrix,
    normalize,  # the engine's (accel.normalize), shared
)

COL = {name: i for i, name in enumerate(PARAMS)}


@pytest.fixture(scope="module")
def frame(sample_frame):
    label = np.zeros(sample_frame.shape, np.uint8)
    ys, xs = np.nonzero(sample_frame.corridor)
    label[ys[::7], xs[::7]] = 1  # labels scattered over the corridor: every warp moves some
    return sample_frame.data, sample_frame.corridor, label


def _albumentations(aug: ThermalAugment, data, corridor, label, seed):
    """ThermalAugment.__call__ step by step, keeping albumentations' applied parameters."""
    rng = np.random.default_rng(seed)
    offset = float(rng.uniform(*aug.offset_range))
    aug.pipeline.set_random_seed(int(rng.integers(0, 2**31 - 1)))
    fill = fill_values(data, corridor)
    out = aug.pipeline(image=np.subtract(data, fill, dtype=np.float32), mask=label)
    image = out["image"] + (fill + np.float32(offset))
    return image, out["mask"], offset, fill, dict(out["applied_transforms"])


@pytest.mark.parametrize("seed", range(8))
def test_same_draws_give_the_albumentations_frames(frame, seed):
    data, corridor, label = frame
    aug = ThermalAugment(elastic_p=0.6, affine_p=0.8)
    aug.pipeline.save_applied_params = True
    expected, expected_label, offset, fill, applied = _albumentations(aug, data, corridor,
                                                                      label, seed)
    # With the same seed, ThermalAugment itself gives these very frames.
    plain, plain_label, plain_offset = ThermalAugment(elastic_p=0.6, affine_p=0.8)(
        data, corridor, label, seed)
    np.testing.assert_array_equal(plain, expected)
    assert plain_offset == offset

    h, w = data.shape[:2]
    matrix = np.eye(3)
    if "HorizontalFlip" in applied:
        matrix = np.array([[-1.0, 0, w - 1], [0, 1, 0], [0, 0, 1]]) @ matrix
    if "VerticalFlip" in applied:
        matrix = np.array([[1.0, 0, 0], [0, -1, h - 1], [0, 0, 1]]) @ matrix
    if "Affine" in applied:
        matrix = applied["Affine"]["matrix"] @ matrix
    row = np.zeros(len(PARAMS))
    row[COL["offset_degc"]] = offset
    displacement = None
    if "ElasticTransform" in applied:
        row[COL["elastic"]] = 1
        maps = applied["ElasticTransform"]
        xs, ys = np.meshgrid(np.arange(w), np.arange(h))
        displacement = torch.from_numpy(np.stack([maps["map_x"] - xs, maps["map_y"] - ys])[None])

    out, out_label, out_offset = DeviceAugment(Normalization()).augment(
        torch.from_numpy(np.ascontiguousarray(data.transpose(2, 0, 1)))[None],
        torch.from_numpy(label[None, None].astype(np.float32)), torch.from_numpy(fill)[None],
        row[None], torch.from_numpy(matrix)[None], displacement)
    got = out[0].numpy().transpose(1, 2, 0)
    # OpenCV weighs bilinear neighbours in 1/32 steps; torch exactly. Fill-shifted corridor
    # edges jump by ~15 degC, so the largest difference is a few thousandths of a degree.
    assert np.abs(got - expected).max() < 0.01
    assert np.abs(got - expected).mean() < 1e-4
    assert (out_label[0, 0].numpy().astype(np.uint8) != expected_label).mean() < 1e-3
    assert float(out_offset[0]) == pytest.approx(offset)
    # The corridor recovered after the warp, as the CPU dataset recovers it.
    from thermal_anomaly_segmenter.train.dataset import corridor_after

    cpu_corridor = corridor_after(expected)
    dev_corridor = np.abs(got[..., 0] - got[..., 2]) <= 1e-3
    assert (cpu_corridor != dev_corridor).mean() < 1e-3


def test_affine_matrix_is_albumentations_matrix():
    from albumentations.augmentations.geometric import functional as fgeometric

    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = int(rng.integers(16, 700)), int(rng.integers(16, 700))
        sx, sy, rot = rng.uniform(0.7, 1.3), rng.uniform(0.7, 1.3), rng.uniform(-40, 40)
        tx, ty = rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1)
        expected = fgeometric.create_affine_transformation_matrix(
            {"x": int(tx * w), "y": int(ty * h)}, {"x": 0.0, "y": 0.0}, {"x": sx, "y": sy},
            rot, fgeometric.center((h, w)))
        np.testing.assert_allclose(affine_matrix(tx, ty, sx, sy, rot, h, w).numpy(), expected,
                                   atol=1e-9)


def test_draws_follow_the_albumentations_distributions():
    """Rates and ranges of DeviceAugment.draw against ThermalAugment's own draws."""
    n = 400
    aug = ThermalAugment()
    aug.pipeline.save_applied_params = True
    tiny = np.zeros((16, 20, 3), np.float32)
    tiny[..., 0] = -10.0
    corridor = np.zeros((16, 20), bool)
    corridor[6:10] = True
    tiny[corridor, 0] = 0.0
    label = np.zeros((16, 20), np.uint8)
    seen = {"HorizontalFlip": 0, "VerticalFlip": 0, "Affine": 0, "ElasticTransform": 0}
    rotations, scales, offsets = [], [], []
    for seed in range(n):
        *_, offset, _, applied = _albumentations(aug, tiny, corridor, label, seed)
        offsets.append(offset)
        for name in seen:
            seen[name] += name in applied
        if "Affine" in applied:
            rotations.append(applied["Affine"]["rotate"])
            scales.append(applied["Affine"]["scale"]["x"])
    draws = np.stack([DeviceAugment(Normalization()).draw(seed) for seed in range(n)])
    rates = {"HorizontalFlip": "hflip", "VerticalFlip": "vflip", "Affine": "affine",
             "ElasticTransform": "elastic"}
    for name, col in rates.items():
        p = seen[name] / n
        q = draws[:, COL[col]].mean()
        assert abs(p - q) < 4 * np.sqrt(max(p, 0.05) * (1 - p) / n) * np.sqrt(2), (name, p, q)
    on = draws[:, COL["affine"]] > 0
    for ours, theirs, low, high in ((draws[on, COL["rotate_deg"]], rotations, -40, 40),
                                    (draws[on, COL["scale_x"]], scales, 0.7, 1.3),
                                    (draws[:, COL["offset_degc"]], offsets, -2, 2)):
        theirs = np.asarray(theirs)
        for values in (ours, theirs):
            assert values.min() >= low and values.max() <= high
        span = high - low
        assert abs(np.mean(ours) - np.mean(theirs)) < 0.1 * span
        assert abs(np.std(ours) - np.std(theirs)) < 0.06 * span


def test_elastic_fields_follow_the_albumentations_distribution():
    from albumentations.augmentations.geometric import functional as fgeometric

    dev = DeviceAugment(Normalization())
    h, w = 128, 160
    ours = torch.stack([dev.displacement(s, h, w) for s in range(32)]).numpy()
    theirs = np.stack([np.stack(fgeometric.generate_displacement_fields(
        (h, w), 30.0, 6.0, same_dxdy=False, kernel_size=(0, 0),
        random_generator=np.random.default_rng(s), noise_distribution="gaussian"))
        for s in range(32)])
    inner = (slice(None), slice(None), slice(20, -20), slice(20, -20))  # away from the seam
    o, t = ours[inner], theirs[inner]
    assert abs(o.std() / t.std() - 1) < 0.1
    assert abs(o.mean()) < 0.2 * o.std() and abs(t.mean()) < 0.2 * t.std()

    def corr(f, lag):  # smoothness: correlation of pixels `lag` apart along x
        a, b = f[..., :-lag].ravel(), f[..., lag:].ravel()
        return np.corrcoef(a, b)[0, 1]

    for lag in (3, 8):
        assert abs(corr(o, lag) - corr(t, lag)) < 0.05


def test_a_batch_is_seeded_and_normalised_like_the_cpu_dataset(tmp_path):
    """Raw loader batches augmented on the device: seeded, and with draws that change
    nothing, identical (to fp16 transport) to the CPU dataset's normalised frames."""
    from thermal_anomaly_segmenter.io.datasets import load_split
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset
    from thermal_anomaly_segmenter.train.dataset import ThermalDataset

    root = write_dataset(tmp_path / "ds", 6, seed=3, height=48, width=64)
    samples = load_split(root / "manual_set", "train").samples[:4]
    norm = Normalization()
    dev = DeviceAugment(norm)
    identity = np.zeros(len(PARAMS))
    raw = ThermalDataset(samples, norm, (48, 64), draw=lambda seed: identity.copy())
    plain = ThermalDataset(samples, norm, (48, 64))
    batch = {k: torch.stack([raw[i][k] for i in range(len(samples))]) for k in raw[0]}
    params = batch.pop("params")
    out = dev(batch, params)
    expected = torch.stack([plain[i]["image"] for i in range(len(samples))])
    assert out["image"].dtype == torch.float32 and out["image"].shape == expected.shape
    assert (out["image"] - expected).abs().max() < 0.01 / norm.scale_degc
    np.testing.assert_array_equal(out["mask"].numpy(),
                                  torch.stack([plain[i]["mask"] for i in range(4)]).numpy())
    assert torch.equal(out["corridor"], torch.stack([plain[i]["corridor"] for i in range(4)]))

    seeded = ThermalDataset(samples, norm, (48, 64), draw=dev.draw)
    torch.manual_seed(1)
    first = [seeded[i] for i in range(4)]
    torch.manual_seed(1)
    again = [seeded[i] for i in range(4)]
    for a, b in zip(first, again, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    batch = {k: torch.stack([s[k] for s in first]) for k in first[0]}
    params = batch.pop("params")
    one = dev(dict(batch), params)
    two = dev(dict(batch), params)
    assert torch.equal(one["image"], two["image"])
    assert set(torch.unique(one["mask"]).tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("norm", [Normalization(), Normalization("dataset", 5.0, (1, 2, 3),
                                                                 (2, 3, 4)),
                                  Normalization("none")])
def test_device_normalisation_is_normalization_apply(norm):
    data = np.random.default_rng(0).normal(5, 3, size=(2, 8, 10, 3)).astype(np.float32)
    medians = [1.5, -2.0]
    got = normalize(torch.from_numpy(data.transpose(0, 3, 1, 2).copy()), norm,
                    torch.tensor(medians)).numpy().transpose(0, 2, 3, 1)
    expected = np.stack([norm.apply(d, m) for d, m in zip(data, medians, strict=True)])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("aug") / "ds", 6, seed=5, height=64, width=80)


def test_frame_cache_serves_the_decoded_frames(tiny_set, tmp_path, monkeypatch):
    from thermal_anomaly_segmenter.io.datasets import load_split, read_sample
    from thermal_anomaly_segmenter.models.normalization import corridor_median
    from thermal_anomaly_segmenter.train import frame_cache
    from thermal_anomaly_segmenter.train.frame_cache import FrameCache

    samples = load_split(tiny_set / "manual_set", "train").samples
    # No disk reserve here: on a host whose disk is over 95 % full the cache (rightly)
    # stores nothing, which the end of this test checks on its own.
    monkeypatch.setattr(frame_cache, "RESERVE_FRACTION", 0.0)
    monkeypatch.setattr(frame_cache, "RESERVE_BYTES", 0)
    cache = FrameCache(tmp_path / "cache")
    for size in (None, (32, 40)):
        for sample in samples:
            data, corridor, label = read_sample(sample, size)
            for _ in range(2):  # decoded and stored, then read back
                got, got_corridor, got_label, median = cache.read(sample, size)
                assert median == corridor_median(data[..., 2], corridor)
                assert np.abs(got - data).max() <= 0.01  # fp16 of T - median
                np.testing.assert_array_equal(got[..., 0], got[..., 1])
                np.testing.assert_array_equal(got_corridor, corridor)
                np.testing.assert_array_equal(got_label, label)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2 * len(samples)
    # A private cache folder goes with its cache.
    private = FrameCache()
    private.read(samples[0])
    folder = private.folder
    assert any(folder.iterdir())
    del private
    assert not folder.exists()
    # A full disk (here: a reserve of all of it) caches nothing and still reads every frame.
    monkeypatch.setattr(frame_cache, "RESERVE_FRACTION", 1.0)
    full = FrameCache(tmp_path / "full")
    assert full.read(samples[0])[0].shape == (64, 80, 3)
    assert not list((tmp_path / "full").glob("*.npz"))


@pytest.mark.parametrize("crop", [False, True])
def test_cached_device_samples_match_decoded_ones(tiny_set, crop):
    """Device samples straight from the cache's float16 planes equal those made from the
    decoded frame (the same window, fill and draws), to float16 rounding."""
    from thermal_anomaly_segmenter.io.datasets import load_split
    from thermal_anomaly_segmenter.train.dataset import ThermalDataset
    from thermal_anomaly_segmenter.train.frame_cache import FrameCache

    samples = load_split(tiny_set / "manual_set", "train").samples
    norm = Normalization()
    draw = DeviceAugment(norm).draw
    size = (32, 48) if crop else (64, 80)
    cached = ThermalDataset(samples, norm, size, crop=crop, cache=FrameCache(), draw=draw)
    decoded = ThermalDataset(samples, norm, size, crop=crop, draw=draw)
    for i in range(len(samples)):
        cached[i]  # fill the cache
        torch.manual_seed(i)
        a = cached[i]
        torch.manual_seed(i)
        b = decoded[i]
        assert set(a) == set(b)
        assert a["data"].dtype == b["data"].dtype == torch.float16
        assert (a["data"].float() - b["data"].float()).abs().max() <= 0.02
        assert float(a["median"]) == pytest.approx(float(b["median"]))
        assert torch.allclose(a["fill"], b["fill"], atol=0.02)
        assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["params"], b["params"])


def test_data_module_augments_on_the_device(tiny_set):
    from thermal_anomaly_segmenter.io.datasets import load_split
    from thermal_anomaly_segmenter.train.datamodule import ThermalDataModule

    split = load_split(tiny_set / "manual_set", "train")
    module = ThermalDataModule(split, split, None, Normalization(), (64, 80), batch_size=3,
                               augment_on="device", frame_cache=True)
    raw = next(iter(module.train_dataloader()))
    assert raw["data"].dtype == torch.float16 and "params" in raw
    batch = module.to_device(raw, "cpu")
    assert set(batch) == {"image", "mask", "corridor"}
    assert batch["image"].shape == (3, 3, 64, 80) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (3, 1, 64, 80) and batch["corridor"].dtype == torch.bool
    assert batch["corridor"].any()
    val = next(iter(module.val_dataloader()))  # validation is never augmented
    assert set(module.to_device(val, "cpu")) == {"image", "mask", "corridor"}
    from thermal_anomaly_segmenter.errors import DatasetError

    with pytest.raises(DatasetError, match="augment_on"):
        ThermalDataModule(split, split, None, Normalization(), (64, 80), augment_on="gpu")


@pytest.mark.slow
def test_training_with_device_augmentation(tiny_set, tmp_path, monkeypatch):
    """A real run through Lightning's batch-transfer hooks, on the CPU device."""
    import dataclasses

    calls = []
    real = DeviceAugment.__call__

    def counted(self, batch, params):  # the real augmentation, counted
        calls.append(len(params))
        return real(self, batch, params)

    monkeypatch.setattr(DeviceAugment, "__call__", counted)

    from thermal_anomaly_segmenter.config import TrainOptions, get_settings
    from thermal_anomaly_segmenter.train.loop import train

    settings = dataclasses.replace(get_settings(), models_path=tmp_path / "models",
                                   mlflow_tracking_uri=None)
    options = TrainOptions(model_type="segformer_b0", train_phases=("fine_tune",), epochs=1,
                           batch_size=2, worker_count=0, mlflow=False, gpu=False,
                           min_label_px=0, dataset_path=str(tiny_set), augment_on="device")
    result = train(options, settings=settings)
    assert all(0.0 <= v <= 1.0 for v in result.metrics.values())
    assert calls and sum(calls) >= 2  # every training batch went through it
    from thermal_anomaly_segmenter.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="augment_on"):
        TrainOptions(augment_on="gpu")


# -- the zoom (our recipes: frames of other ground sampling distances) --------------------------

def test_zoom_scales_objects_and_keeps_the_corridor_consistent(frame):
    data, corridor, label = frame
    blob = np.zeros_like(label)
    blob[150:170, 300:330] = 1  # 600 px, near the centre
    aug = ThermalAugment(affine_p=0.0, elastic_p=0.0, zoom=(0.5, 2.5), zoom_p=1.0)
    seen = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        rng.uniform(), rng.integers(0, 2**31 - 1)  # the offset and pipeline seed come first
        factor, noise = draw_zoom(rng, aug.zoom, aug.zoom_p)
        out, out_label, _ = aug(data, corridor, blob, seed)
        assert 0.5 <= factor <= 2.5
        # Area scales with the square of the factor (nearest-neighbour label).
        assert out_label.sum() == pytest.approx(600 * factor**2, rel=0.15)
        # T_m still equals T_u inside the (zoomed) corridor, noise included.
        from thermal_anomaly_segmenter.train.dataset import corridor_after

        inside = corridor_after(out)
        if factor < 1:  # the whole frame shrinks; the border brought in is not corridor
            assert inside.sum() == pytest.approx(corridor.sum() * factor**2, rel=0.1)
        else:  # the restored camera noise: T_u differs from the noiseless zoom by it
            fill = fill_values(data, corridor)
            quiet, _ = zoom_frame(np.subtract(data, fill, dtype=np.float32), blob, factor, 0.0,
                                  rng, float(fill[2] - fill[0]))
            diff = out[..., 2] - fill[2] - quiet[..., 2]
            assert 0.01 <= noise <= 0.05
            assert (diff - diff.mean()).std() == pytest.approx(noise, rel=0.1)
        seen.append(factor)
    assert min(seen) < 1 < max(seen)


def test_without_zoom_the_published_augmentation_is_unchanged(frame):
    data, corridor, label = frame
    for seed in range(3):
        a = ThermalAugment()(data, corridor, label, seed)
        b = ThermalAugment(zoom=None)(data, corridor, label, seed)
        np.testing.assert_array_equal(a[0], b[0])
    assert DeviceAugment(Normalization()).draw(5)[COL["log_zoom"]] == 0.0


@pytest.mark.parametrize("factor", [0.6, 2.2])
def test_device_zoom_is_the_cpu_zoom(frame, factor):
    data, corridor, label = frame
    fill = fill_values(data, corridor)
    shifted = np.subtract(data, fill, dtype=np.float32)
    expected, expected_label = zoom_frame(shifted, label, factor, 0.0,
                                          np.random.default_rng(0), float(fill[2] - fill[0]))
    row = np.zeros(len(PARAMS))
    row[COL["log_zoom"]] = np.log(factor)
    out, out_label, _ = DeviceAugment(Normalization()).augment(
        torch.from_numpy(np.ascontiguousarray(data.transpose(2, 0, 1)))[None],
        torch.from_numpy(label[None, None].astype(np.float32)), torch.from_numpy(fill)[None],
        row[None])
    got = out[0].numpy().transpose(1, 2, 0) - fill
    assert np.abs(got - expected).mean() < 1e-3
    assert (out_label[0, 0].numpy().astype(np.uint8) != expected_label).mean() < 1e-3


def test_device_zoom_restores_noise_inside_the_frame_only(frame):
    data, corridor, label = frame
    aug = DeviceAugment(Normalization(), zoom=(2.0, 2.0), zoom_p=1.0)
    row = aug.draw(3)
    assert row[COL["log_zoom"]] == pytest.approx(np.log(2.0))
    assert 0.01 <= row[COL["zoom_noise_degc"]] <= 0.05
    row[COL["offset_degc"]] = 0.0
    fill = fill_values(data, corridor)
    tensor = torch.from_numpy(np.ascontiguousarray(data.transpose(2, 0, 1)))[None]
    lab = torch.from_numpy(label[None, None].astype(np.float32))
    noisy = aug.augment(tensor, lab, torch.from_numpy(fill)[None], row[None])[0][0].numpy()
    quiet_row = row.copy()
    quiet_row[COL["zoom_noise_degc"]] = 0.0
    quiet = aug.augment(tensor, lab, torch.from_numpy(fill)[None], quiet_row[None])[0][0].numpy()
    diff = noisy[2] - quiet[2]
    assert diff.std() == pytest.approx(row[COL["zoom_noise_degc"]], rel=0.1)
    # T_m follows T_u inside the corridor and keeps its fill outside it.
    inside = np.abs(quiet[0] - quiet[2]) <= 1e-3
    np.testing.assert_allclose(noisy[0][inside] - quiet[0][inside], diff[inside], atol=1e-4)
    np.testing.assert_array_equal(noisy[0][~inside], quiet[0][~inside])


def test_zoom_ranges_are_validated():
    from thermal_anomaly_segmenter.config import TrainOptions
    from thermal_anomaly_segmenter.errors import InvalidInputError

    for bad in [(2.0, 1.0), (0.1, 2.0), (1.0, 9.0), "wide", (1.0,)]:
        with pytest.raises(InvalidInputError, match="zoom"):
            TrainOptions(zoom=bad)
    assert TrainOptions().resolved("cpu").zoom_range is None  # off unless asked for
    assert TrainOptions().resolved("gpu").zoom_range is None
    assert TrainOptions(zoom="none").resolved("cpu").zoom_range is None
    assert TrainOptions(zoom=(0.8, 1.5)).resolved("cpu").zoom_range == (0.8, 1.5)
    assert TrainOptions(zoom=[0.6, 3]).resolved("gpu").zoom_range == (0.6, 3.0)  # run.json


@pytest.mark.parametrize("site", ["cpu", "device"])
def test_the_data_module_hands_the_zoom_to_either_augmentation(tiny_set, site):
    from thermal_anomaly_segmenter.io.datasets import load_split
    from thermal_anomaly_segmenter.train.datamodule import ThermalDataModule

    split = load_split(tiny_set / "manual_set", "train")
    module = ThermalDataModule(split, split, None, Normalization(), (64, 80), batch_size=3,
                               augment_on=site, zoom=(2.0, 2.0))
    dataset = module.train_dataloader().dataset
    if site == "cpu":
        assert dataset.augment.zoom == (2.0, 2.0)
    else:
        rows = np.stack([dataset.draw(seed) for seed in range(40)])
        zoomed = rows[:, COL["log_zoom"]] != 0
        assert 0.3 < zoomed.mean() < 0.7  # p 0.5
        np.testing.assert_allclose(rows[zoomed, COL["log_zoom"]], np.log(2.0))


@pytest.mark.parametrize(("option", "attribute", "name"), [
    ("photometric", "photometric", "photometric"),
    ("surface_patches", "surfaces", "surface-patch"),
])
def test_the_data_module_hands_loader_only_augmentations_to_the_loader(tiny_set, option,
                                                                       attribute, name):
    from thermal_anomaly_segmenter.errors import DatasetError
    from thermal_anomaly_segmenter.io.datasets import load_split
    from thermal_anomaly_segmenter.train.datamodule import ThermalDataModule

    split = load_split(tiny_set / "manual_set", "train")
    module = ThermalDataModule(split, split, None, Normalization(), (64, 80), batch_size=3,
                               **{option: True})
    assert getattr(module.train_dataloader().dataset.augment, attribute) is True
    with pytest.raises(DatasetError, match=name):  # loader workers only
        ThermalDataModule(split, split, None, Normalization(), (64, 80), augment_on="device",
                          **{option: True})
