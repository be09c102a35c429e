"""Tests of the synthetic scene and dataset generator."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import lz4.frame
import numpy as np
import pytest

from thermal_anomaly_segmenter.errors import InvalidInputError, TasegError
from thermal_anomaly_segmenter.io.frames import FILL_OFFSET_DEGC
from thermal_anomaly_segmenter.models.triangle import classical_label
from thermal_anomaly_segmenter.scenes.synthetic import Scene, make_scene, write_dataset

SMALL = (128, 160)


def _read_frame(path: Path) -> np.ndarray:
    return np.load(io.BytesIO(lz4.frame.decompress(path.read_bytes())), allow_pickle=False)


def _assert_same_scene(a: Scene, b: Scene) -> None:
    for field in ("data", "corridor", "leak_mask", "bait_mask"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.n_leaks == b.n_leaks


def test_scene_format() -> None:
    scene = make_scene(0, *SMALL)
    assert scene.data.shape == (*SMALL, 3) and scene.data.dtype == np.float32
    assert scene.corridor.shape == SMALL and scene.corridor.dtype == bool
    for mask in (scene.leak_mask, scene.bait_mask):
        assert mask.shape == SMALL and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1}
    t_m, t_u = scene.data[..., 0], scene.data[..., 2]
    np.testing.assert_array_equal(scene.data[..., 1], t_m)
    np.testing.assert_array_equal(t_m[scene.corridor], t_u[scene.corridor])
    fill = np.float32(t_u.min() - FILL_OFFSET_DEGC)
    assert np.all(t_m[~scene.corridor] == fill)
    np.testing.assert_array_equal(scene.t_u, t_u)


def test_same_seed_same_scene_and_different_seed_different_scene() -> None:
    _assert_same_scene(make_scene(7, *SMALL), make_scene(7, *SMALL))
    a, b = make_scene(7, *SMALL), make_scene(8, *SMALL)
    assert not np.array_equal(a.data, b.data)
    assert not np.array_equal(a.corridor, b.corridor)


def test_scene_statistics_are_plausible() -> None:
    means = []
    for seed in range(4):
        scene = make_scene(seed)  # full 512 x 640, as the sample frame
        t_u = scene.t_u
        assert 0.08 <= scene.corridor.mean() <= 0.30
        assert t_u.min() > -8.0 and t_u.max() < 15.0
        assert np.isfinite(scene.data).all()
        # Sensor noise: neighbouring ground pixels differ by about 0.1 degC, not 0 and not 1.
        noise = np.median(np.abs(np.diff(t_u, axis=1))) / 0.954
        assert 0.02 < noise < 0.3
        means.append(float(t_u.mean()))
    assert abs(np.mean(means) - (-1.3)) < 1.0, means


def test_ambient_shifts_the_whole_scene() -> None:
    cold = make_scene(3, *SMALL, ambient_degc=-1.5)
    warm = make_scene(3, *SMALL, ambient_degc=8.5)
    np.testing.assert_allclose(warm.t_u - cold.t_u, 10.0, atol=1e-3)
    np.testing.assert_array_equal(warm.corridor, cold.corridor)
    np.testing.assert_array_equal(warm.leak_mask, cold.leak_mask)
    assert abs(float(make_scene(3, *SMALL, ambient_degc=-11.5).t_u.mean()) - (-11.3)) < 1.5


def test_leaks_lie_in_the_corridor_and_are_warm() -> None:
    for seed in range(3):
        scene = make_scene(seed, *SMALL, n_leaks=2)
        assert scene.n_leaks == 2
        leak = scene.leak_mask.astype(bool)
        assert leak.any()
        assert not (leak & ~scene.corridor).any()
        # Same seed without leaks: the same scene minus the leak heat.
        dry = make_scene(seed, *SMALL, n_leaks=0)
        assert dry.n_leaks == 0 and not dry.leak_mask.any()
        np.testing.assert_array_equal(dry.corridor, scene.corridor)
        assert (scene.t_u - dry.t_u)[leak].min() > 0.3
    sizes = [int(make_scene(s, n_leaks=1).leak_mask.sum()) for s in range(3)]
    assert all(100 <= n <= 4000 for n in sizes), sizes


def test_scene_has_hot_baits() -> None:
    scene = make_scene(1)
    bait = scene.bait_mask.astype(bool)
    assert bait.any()
    assert (bait & scene.corridor).any()
    assert np.median(scene.t_u[bait]) > np.median(scene.t_u) + 1.0


def test_make_scene_rejects_bad_arguments() -> None:
    for kwargs in (
        {"seed": -1},
        {"seed": 1.5},
        {"seed": 0, "height": 8},
        {"seed": 0, "width": 100_000},
        {"seed": 0, "n_leaks": -1},
        {"seed": 0, "n_leaks": 11},
        {"seed": 0, "ambient_degc": float("nan")},
    ):
        with pytest.raises(InvalidInputError):
            make_scene(**kwargs)


def test_write_dataset_layout_and_labels(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", 7, seed=3, height=64, width=80)
    assert root == tmp_path / "ds"
    frames_by_set = {}
    for name in ("generated_set", "manual_set"):
        set_dir = root / name
        info = json.loads((set_dir / "dataset_info.json").read_text())
        assert info["image_type"] == "thermal" and info["masked"] is True
        assert info["labels"] == ["background", "thermal"]
        assert info["channel_mode"] == "mixed"
        assert info["generator"]["name"] == "taseg.synthetic"
        assert info["generator"]["seed"] == 3
        assert set(info["default_splits"]) == {"train", "val", "test"}

        # Read the set the way the published TASeg loader does: each split names subset
        # folders and takes every label file in them.
        ids_by_split = {}
        for split, subsets in info["default_splits"].items():
            assert set(subsets) <= set(info["subsets"])
            ids_by_split[split] = {
                f"{subset}/{p.stem}"
                for subset in subsets
                for p in (set_dir / "label" / subset).iterdir()
            }
        assert [len(ids_by_split[s]) for s in ("train", "val", "test")] == [5, 1, 1]
        all_ids = set().union(*ids_by_split.values())
        assert len(all_ids) == 7  # disjoint and complete
        assert {k: set(v) for k, v in info["generator"]["split_ids"].items()} == ids_by_split

        frames = {}
        for frame_id in sorted(all_ids):
            subset, stem = frame_id.split("/")
            data = _read_frame(set_dir / "image" / subset / f"{stem}.npy.lz4")
            label_path = set_dir / "label" / subset / f"{stem}.png"
            label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
            assert data.shape == (64, 80, 3) and data.dtype == np.float32
            assert label.shape == (64, 80) and label.dtype == np.uint8
            assert set(np.unique(label)) <= {0, 1}
            frame_seed = info["generator"]["frames"][stem]["seed"]
            scene = make_scene(frame_seed, 64, 80)
            np.testing.assert_array_equal(data, scene.data)
            corridor = data[..., 0] > data[..., 0].min()
            np.testing.assert_array_equal(corridor, scene.corridor)
            if name == "generated_set":
                np.testing.assert_array_equal(label, classical_label(data, corridor))
            else:
                np.testing.assert_array_equal(label, scene.leak_mask)
            frames[stem] = data
        frames_by_set[name] = frames
    # The two sets come from different seed streams.
    assert not np.array_equal(
        frames_by_set["generated_set"]["frame_0000"], frames_by_set["manual_set"]["frame_0000"]
    )


def test_write_dataset_is_deterministic_and_refuses_to_overwrite(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", 3, seed=1, height=48, width=64, sets=("manual_set",))
    b = write_dataset(tmp_path / "b", 3, seed=1, height=48, width=64, sets=("manual_set",))
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()

    before = (a / "manual_set" / "dataset_info.json").read_bytes()
    with pytest.raises(FileExistsError, match="refusing to overwrite") as excinfo:
        write_dataset(a, 2, seed=9, height=48, width=64)
    assert isinstance(excinfo.value, TasegError)  # the CLI reports it in one line
    assert (a / "manual_set" / "dataset_info.json").read_bytes() == before
    assert not (a / "generated_set").exists()  # nothing written when refusing
    assert not [p for p in a.iterdir() if p.name.startswith(".")]  # no leftovers

    (tmp_path / "c" / "generated_set").mkdir(parents=True)  # an empty folder is fine
    write_dataset(tmp_path / "c", 1, height=48, width=64, sets=("generated_set",))
    assert (tmp_path / "c" / "generated_set" / "dataset_info.json").is_file()


def test_write_dataset_rejects_bad_arguments(tmp_path: Path) -> None:
    for kwargs in (
        {"n_frames": 0},
        {"n_frames": 2, "splits": (0.5, 0.5)},
        {"n_frames": 2, "splits": (0.8, 0.3, 0.1)},
        {"n_frames": 2, "splits": (1.2, -0.1, -0.1)},
        {"n_frames": 2, "subset": "../evil"},
        {"n_frames": 2, "sets": ("a", "a")},
        {"n_frames": 2, "sets": ()},
    ):
        with pytest.raises(InvalidInputError):
            write_dataset(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()
