"""Scale matching (:mod:`thermal_anomaly_segmenter.io.gsd`): frames finer than the model's
training GSD are seen at that GSD, with the shipped default on generated fine-GSD scenes."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from thermal_anomaly_segmenter.config import PredictOptions
from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.io.frames import Frame, GeoInfo, compose_frame
from thermal_anomaly_segmenter.io.gsd import (
    MIN_SIDE_PX,
    enlarge,
    frame_gsd,
    scale_factor,
    shrink,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "models" / "unet_mobilenetv2_synthetic"


def _frame(h=200, w=240, geo=None) -> Frame:
    rng = np.random.default_rng(0)
    t_u = (5 + rng.normal(0, 0.1, (h, w))).astype(np.float32)
    corridor = np.zeros((h, w), bool)
    corridor[80:120] = True
    t_u[95:105, 100:110] += 4.0
    return Frame(compose_frame(t_u, corridor), corridor, "f", geo)


def test_the_factor_shrinks_finer_frames_only():
    assert scale_factor((512, 640), None, 0.1) is None  # frame GSD unknown
    assert scale_factor((512, 640), 0.04, None) is None  # model GSD unknown (published)
    assert scale_factor((512, 640), 0.04, 0.1) == pytest.approx(0.4)
    assert scale_factor((512, 640), 0.15, 0.1) is None  # coarser: never enlarged
    assert scale_factor((512, 640), 0.095, 0.1) is None  # within the tolerance
    # a small frame keeps MIN_SIDE_PX pixels on its shorter side
    assert scale_factor((100, 400), 0.02, 0.1) == pytest.approx(MIN_SIDE_PX / 100)
    assert scale_factor((MIN_SIDE_PX, 400), 0.02, 0.1) is None


def test_a_metric_georeference_states_the_gsd_before_the_option():
    geo = GeoInfo((0.05, 0.0, 500000.0, 0.0, -0.05, 5400000.0), "EPSG:25832")
    assert frame_gsd(_frame(geo=geo), 0.2) == pytest.approx(0.05)
    assert frame_gsd(_frame(), 0.2) == 0.2
    assert frame_gsd(_frame(), None) is None
    degrees = GeoInfo((1e-6, 0.0, 8.4, 0.0, -1e-6, 49.0), "EPSG:4326", metric=False)
    assert frame_gsd(_frame(geo=degrees), None) is None


def test_shrink_averages_temperatures_and_keeps_the_corridor():
    frame = _frame()
    small = shrink(frame, 0.5)
    assert small.shape == (100, 120) and small.geo is None
    assert small.corridor[40:60].all() and not small.corridor[:38].any()
    # area averaging keeps the mean temperature and halves the noise's spread
    assert small.t_u.mean() == pytest.approx(frame.t_u.mean(), abs=1e-3)
    assert small.t_u[:30].std() < 0.7 * frame.t_u[:30].std()
    # T_m is T_u in the corridor and the fill outside, as compose_frame makes frames
    assert np.array_equal(small.t_m[small.corridor], small.t_u[small.corridor])
    assert (small.t_m[~small.corridor] < small.t_u.min()).all()
    # a corridor thinner than one coarse pixel is kept, not lost
    thin = _frame()
    thin.corridor[:] = False
    thin.corridor[100, :] = True
    assert shrink(thin, 0.25).corridor.any()
    prob = np.linspace(0, 1, 100 * 120, dtype=np.float32).reshape(100, 120)
    big = enlarge(prob, (200, 240))
    assert big.shape == (200, 240) and big.dtype == np.float32
    assert big.min() >= 0.0 and big.max() <= 1.0


def test_model_folders_state_a_valid_gsd(tmp_path):
    from thermal_anomaly_segmenter.models.folder import CONFIG_NAME
    from thermal_anomaly_segmenter.models.load import read_model_config

    assert read_model_config(DEFAULT).gsd_m == pytest.approx(0.1)
    folder = tmp_path / "m"
    folder.mkdir()
    config = json.loads((DEFAULT / CONFIG_NAME).read_text())
    for bad in (-0.1, 0, "0.1", 1e6, True):
        config["gsd_m"] = bad
        (folder / CONFIG_NAME).write_text(json.dumps(config))
        with pytest.raises(InvalidInputError, match="gsd_m"):
            read_model_config(folder)
    config["gsd_m"] = None
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    assert read_model_config(folder).gsd_m is None


def _scenes(family: str, n: int):
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    return [make_scene(700 + i, 512, 640, family=family, n_leaks=2) for i in range(n)]


def test_the_default_sees_a_fine_frame_at_its_own_gsd():
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.models.normalization import corridor_median

    seg = Segmenter.from_folder(DEFAULT, device="cpu")
    scene = _scenes("city_wet", 1)[0]
    assert scene.gsd_m < 0.09
    frame = Frame(scene.data, scene.corridor, "s")
    options = PredictOptions(device="cpu", gsd_m=scene.gsd_m)
    matched = seg.probabilities([frame], options)[0]
    k = scene.gsd_m / 0.1
    median = [corridor_median(frame.t_u, frame.corridor)]  # of the frame itself
    small = seg.probabilities([shrink(frame, k)], replace(options, match_gsd=False), median)
    by_hand = enlarge(small[0], frame.shape)
    np.testing.assert_allclose(matched, by_hand, atol=1e-6)
    native = seg.probabilities([frame], replace(options, match_gsd=False))[0]
    assert matched.shape == native.shape == frame.shape
    assert np.abs(matched - native).max() > 0.1
    # Predictions keep the frame's own pixels: mask and components at full resolution.
    pred = seg.predict(frame, options)
    assert pred.mask.shape == frame.shape


def test_matching_the_gsd_improves_the_default_on_fine_scenes():
    """City scenes at 3-5 cm/px, never trained on: with the frames seen at the model's 10 cm
    the default marks fewer false alarms and more of each leak (RESULTS.md D11 measures 40)."""
    from thermal_anomaly_segmenter.evaluation.metrics import object_counts
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter

    seg = Segmenter.from_folder(DEFAULT, device="cpu")
    totals = {True: np.zeros(7), False: np.zeros(7)}
    for scene in _scenes("city_wet", 4):
        frame = Frame(scene.data, scene.corridor, "s")
        for match in (True, False):
            options = PredictOptions(device="cpu", gsd_m=scene.gsd_m, match_gsd=match)
            pred = seg.predict(frame, options).mask.astype(bool)
            truth = scene.leak_mask.astype(bool)
            totals[match] += [np.sum(pred & truth), np.sum(pred | truth),
                              *object_counts(pred, truth, 4), 0]
    iou = {m: t[0] / t[1] for m, t in totals.items()}
    false_alarms = {m: t[5] for m, t in totals.items()}
    assert iou[True] > iou[False] + 0.03, iou
    assert false_alarms[True] < false_alarms[False], false_alarms


def test_datasets_state_gsds_and_evaluate_uses_them(tmp_path):
    from thermal_anomaly_segmenter.evaluation.evaluate import EvaluateOptions, evaluate
    from thermal_anomaly_segmenter.io.datasets import frame_gsds, load_split
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset
    from thermal_anomaly_segmenter.train.opening import training_gsd

    assert frame_gsds({"gsd_m": 0.05}) == (0.05, {})
    assert frame_gsds({"gsd_m": -1, "generator": {"frames": {"a": {"gsd_m": 0.03},
                                                             "b": {"gsd_m": "x"}, "c": 3}}}
                      ) == (None, {"a": 0.03})
    root = write_dataset(tmp_path / "ds", 4, seed=5, height=128, width=160,
                         splits=(0.0, 0.0, 1.0), sets=("manual_set",), families=("city_wet",))
    test = load_split(root / "manual_set", "test", "manual_set")
    assert all(s.gsd_m is not None and s.gsd_m < 0.06 for s in test.samples)
    assert training_gsd({"manual_set": {"train": test}}) == pytest.approx(
        float(np.median([s.gsd_m for s in test.samples])), abs=1e-4)
    mixed = replace(test, samples=[replace(test.samples[0], gsd_m=0.15), *test.samples[1:]])
    wide = {"manual_set": {"train": mixed}}
    assert training_gsd(wide, rescale=False) is None  # too wide a spread for whole frames
    assert training_gsd(wide, start_gsd=0.1) == 0.1  # windows: the start model's scale
    assert training_gsd(wide) == pytest.approx(
        float(np.median([s.gsd_m for s in mixed.samples])), abs=1e-4)
    unknown = replace(test, samples=[replace(s, gsd_m=None) for s in test.samples])
    assert training_gsd({"manual_set": {"train": unknown}}) is None

    model = tmp_path / "default"
    shutil.copytree(DEFAULT, model, ignore=shutil.ignore_patterns("predictions", "evaluation"))
    matched = evaluate(model, root, "test", EvaluateOptions(out_dir=tmp_path / "e1", device="cpu"))
    assert matched["frames_at_model_gsd"] == 4
    assert matched["model_gsd_m"] == pytest.approx(0.1)
    lo, hi = matched["frame_gsd_m"]
    assert 0.03 <= lo <= hi <= 0.05
    native = evaluate(model, root, "test",
                      EvaluateOptions(out_dir=tmp_path / "e2", device="cpu", match_gsd=False))
    assert native["frames_at_model_gsd"] == 0
    # one GSD for every frame, as a user states it
    stated = evaluate(model, root, "test",
                      EvaluateOptions(out_dir=tmp_path / "e3", device="cpu", gsd_m=0.1))
    assert stated["frame_gsd_m"] == [0.1, 0.1] and stated["frames_at_model_gsd"] == 0
    assert stated["test_dataset_iou"] == pytest.approx(native["test_dataset_iou"])


def test_training_reads_finer_frames_at_the_model_gsd(tmp_path):
    from thermal_anomaly_segmenter.io.datasets import load_split, read_sample
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset
    from thermal_anomaly_segmenter.train.dataset import _window
    from thermal_anomaly_segmenter.train.frame_cache import FrameCache
    from thermal_anomaly_segmenter.train.opening import at_gsd

    root = write_dataset(tmp_path / "ds", 3, seed=6, height=256, width=320,
                         splits=(1.0, 0.0, 0.0), sets=("manual_set",), families=("city_wet",))
    train = load_split(root / "manual_set", "train", "manual_set")
    splits = at_gsd({"manual_set": {"train": train}}, 0.1)
    assert at_gsd({"manual_set": {"train": train}}, None)["manual_set"]["train"] is train
    for before, after in zip(train.samples, splits["manual_set"]["train"].samples,
                             strict=True):
        assert after.scale == pytest.approx(max(before.gsd_m / 0.1, MIN_SIDE_PX / 256))
        data, corridor, label = read_sample(before)
        small, small_corridor, small_label = read_sample(after)
        assert small.shape[:2] == small_corridor.shape == small_label.shape
        assert small.shape[0] == round(256 * after.scale)
        # the label keeps its share of the frame (area-averaged, then the majority)
        assert small_label.mean() == pytest.approx(label.mean(), abs=0.02)
        # the frame cache keys frames by their scale too
        cache = FrameCache(tmp_path / "cache")
        assert cache.read(after)[0].shape == small.shape
        assert cache.read(before)[0].shape == data.shape
        # a window larger than the shrunk frame mirrors it out (scale kept), not resizes
        win, win_corridor, win_label = _window(small, small_corridor, small_label, (256, 320),
                                               seed=1, pad=True)
        assert win.shape[:2] == (256, 320)
        assert np.array_equal(win[:small.shape[0], :small.shape[1]], small)
