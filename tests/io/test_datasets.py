"""TASeg dataset layout: discovery, validation with clear errors, zips, augmentation."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from thermal_anomaly_segmenter.config import get_settings
from thermal_anomaly_segmenter.errors import DatasetError, DatasetNotFoundError
from thermal_anomaly_segmenter.io.datasets import (
    list_dataset_folders,
    load_split,
    open_set,
    resolve_dataset_path,
)
from thermal_anomaly_segmenter.io.formats import write_label
from thermal_anomaly_segmenter.models.normalization import Normalization, dataset_statistics
from thermal_anomaly_segmenter.scenes.synthetic import write_dataset
from thermal_anomaly_segmenter.train.augmentation import ThermalAugment
from thermal_anomaly_segmenter.train.dataset import ThermalDataset, corridor_after


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("ds") / "tiny", 6, seed=3, height=64, width=80)


@pytest.fixture()
def tiny_copy(tiny_root, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_root, tmp_path / "copy"))


def _settings(tmp_path, remote, data):
    return dataclasses.replace(get_settings(), remote_path=Path(remote), data_path=Path(data))


def test_list_and_resolve_dataset_folders(tiny_root, tmp_path):
    remote, data = tmp_path / "remote", tmp_path / "data"
    shutil.copytree(tiny_root, data / "site_b")
    (remote / "empty").mkdir(parents=True)
    assert list_dataset_folders(data) == [data / "site_b"]
    settings = _settings(tmp_path, remote, data)
    assert resolve_dataset_path(None, settings) == (data / "site_b").resolve()
    # REMOTE_PATH comes first (published order); a zipped set counts too.
    (remote / "site_a" / "manual_set").mkdir(parents=True)
    (remote / "site_a" / "generated_set.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    assert resolve_dataset_path(None, settings) == (remote / "site_a").resolve()
    assert resolve_dataset_path(str(data / "site_b"), settings) == (data / "site_b").resolve()


def test_resolve_errors(tmp_path):
    settings = _settings(tmp_path, tmp_path / "r", tmp_path / "d")
    with pytest.raises(DatasetNotFoundError, match="no dataset folder"):
        resolve_dataset_path(None, settings)
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        resolve_dataset_path(str(tmp_path / "nope"), settings)
    (tmp_path / "x").mkdir()
    with pytest.raises(DatasetNotFoundError, match="neither generated_set nor manual_set"):
        resolve_dataset_path(str(tmp_path / "x"), settings)


def test_load_split_and_filters(tiny_root):
    split = load_split(tiny_root / "manual_set", "train")
    assert len(split) >= 3
    assert all(s.label.is_file() and s.image.is_file() for s in split.samples)
    everything = split.filtered(-1)
    assert len(everything) == len(split)
    assert len(split.filtered(10**9)) == 0
    assert len(split.repeated(2)) == 2 * len(split)


def test_missing_info_and_subset(tiny_copy):
    (tiny_copy / "manual_set" / "dataset_info.json").unlink()
    with pytest.raises(DatasetError, match="missing dataset_info.json"):
        load_split(tiny_copy / "manual_set", "train")
    info_path = tiny_copy / "generated_set" / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["default_splits"]["val"] = ["no_such_subset"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="image/no_such_subset does not exist"):
        load_split(tiny_copy / "generated_set", "val")


def test_ids_without_labels(tiny_copy):
    labels = sorted((tiny_copy / "manual_set" / "label" / "synthetic_train").glob("*.png"))
    labels[0].unlink()
    with pytest.raises(DatasetError, match=f"no label PNG.*{labels[0].stem}"):
        load_split(tiny_copy / "manual_set", "train")


def test_non_binary_and_255_labels(tiny_copy, caplog):
    folder = tiny_copy / "manual_set" / "label" / "synthetic_train"
    labels = sorted(folder.glob("*.png"))
    import cv2

    mask = np.zeros((64, 80), np.uint8)
    mask[10:20, 10:30] = 255
    cv2.imwrite(str(labels[0]), mask)
    with caplog.at_level(logging.WARNING):
        split = load_split(tiny_copy / "manual_set", "train")
    assert "0/255" in caplog.text
    assert split.samples[0].anomaly_px == 200
    mask[0, 0] = 7
    cv2.imwrite(str(labels[0]), mask)
    with pytest.raises(DatasetError, match="values 0, 7, 255"):
        load_split(tiny_copy / "manual_set", "train")


def test_empty_split(tiny_copy):
    for f in (tiny_copy / "manual_set" / "image" / "synthetic_val").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="split 'val' is empty"):
        load_split(tiny_copy / "manual_set", "val")
    info_path = tiny_copy / "manual_set" / "dataset_info.json"
    info = json.loads(info_path.read_text())
    del info["default_splits"]["test"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="no 'test' entry"):
        load_split(tiny_copy / "manual_set", "test")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("nested", [True, False])
def test_zip_is_extracted_elsewhere_and_kept(tiny_root, tmp_path, nested):
    root = tmp_path / "zipped"
    root.mkdir()
    archive = root / "manual_set.zip"
    src = tiny_root / "manual_set"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                arc = f.relative_to(tiny_root if nested else src)
                zf.write(f, str(arc))
    before = (_digest(archive), archive.stat().st_mtime_ns)
    work = tmp_path / "work"
    set_dir = open_set(root, "manual_set", work)
    assert work in set_dir.parents
    assert len(load_split(set_dir, "train")) == len(load_split(src, "train"))
    assert open_set(root, "manual_set", work) == set_dir  # reused, not extracted again
    assert (_digest(archive), archive.stat().st_mtime_ns) == before
    assert sorted(p.name for p in root.iterdir()) == ["manual_set.zip"]


def test_unsafe_or_broken_zip(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    with zipfile.ZipFile(root / "manual_set.zip", "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(DatasetError, match="unsafe member path"):
        open_set(root, "manual_set", tmp_path / "work")
    (root / "generated_set.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="cannot extract"):
        open_set(root, "generated_set", tmp_path / "work")
    assert (root / "generated_set.zip").read_bytes() == b"not a zip"
    with pytest.raises(DatasetNotFoundError):
        open_set(tmp_path, "manual_set")


def test_dataset_samples_and_statistics(tiny_root):
    split = load_split(tiny_root / "generated_set", "train")
    norm = dataset_statistics(split)
    assert norm.mode == "dataset" and min(norm.std) > 0
    ds = ThermalDataset(split.samples, Normalization(), size=(32, 48), augment=ThermalAugment())
    item = ds[0]
    assert item["image"].shape == (3, 32, 48) and item["mask"].shape == (1, 32, 48)
    assert item["corridor"].dtype.is_floating_point is False
    assert set(np.unique(item["mask"].numpy())) <= {0.0, 1.0}


def test_crop_windows_keep_scale(tiny_root):
    import torch

    split = load_split(tiny_root / "manual_set", "train")
    ds = ThermalDataset(split.samples, Normalization(), size=(32, 48), crop=True)
    torch.manual_seed(0)
    a = ds[0]
    torch.manual_seed(0)
    b = ds[0]
    assert a["image"].shape == (3, 32, 48) and torch.equal(a["image"], b["image"])
    whole = ThermalDataset(split.samples, Normalization())[0]
    # A window is a cut-out of the whole normalised frame: same values, same scale.
    img, full = a["image"].numpy(), whole["image"].numpy()
    hits = [(r, c) for r in range(64 - 32 + 1) for c in range(80 - 48 + 1)
            if np.array_equal(full[:, r:r + 32, c:c + 48], img)]
    assert hits


def _toy_frame():
    t_u = np.linspace(-3, 3, 40 * 50, dtype=np.float32).reshape(40, 50)
    corridor = np.zeros((40, 50), bool)
    corridor[10:30] = True
    fill = np.float32(t_u.min() - 10)
    t_m = np.where(corridor, t_u, fill)
    label = np.zeros((40, 50), np.uint8)
    label[15:20, 20:30] = 1
    return np.stack([t_m, t_m, t_u], -1), corridor, label


def test_augmentation_is_seeded():
    data, corridor, label = _toy_frame()
    aug = ThermalAugment(elastic_p=1.0, affine_p=1.0)
    a = aug(data, corridor, label, 123)
    b = aug(data, corridor, label, 123)
    c = aug(data, corridor, label, 124)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert a[2] != c[2]
    assert -2.0 <= a[2] <= 2.0


def test_offset_shifts_every_channel_and_fill():
    data, corridor, label = _toy_frame()
    aug = ThermalAugment(elastic_p=0.0, affine_p=0.0)  # flips only: exact comparison
    out, out_label, offset = aug(data, corridor, label, 7)
    candidates = [data, data[::-1], data[:, ::-1], data[::-1, ::-1]]
    assert any(np.allclose(out, c + offset, atol=1e-5) for c in candidates)
    assert out_label.sum() == label.sum()


def test_affine_fill_is_consistent():
    t_u = np.full((40, 50), 5.0, np.float32)
    corridor = np.ones((40, 50), bool)
    data = np.stack([t_u, t_u, t_u], -1)
    label = np.ones((40, 50), np.uint8)
    aug = ThermalAugment(elastic_p=0.0, affine_p=1.0)
    for seed in range(5):
        out, out_label, offset = aug(data, corridor, label, seed)
        # T_u is filled with the corridor median: constant everywhere.
        assert np.allclose(out[..., 2], 5.0 + offset, atol=1e-4)
        # T_m outside the frame takes the outside-corridor value, shifted by the offset too.
        assert out[..., 0].min() == pytest.approx(5.0 - 10.0 + offset, abs=1e-3)
        filled = out[..., 0] < 5.0 + offset - 9.9
        assert not out_label[filled].any()
        assert not corridor_after(out)[filled].any()


def test_write_label_roundtrip(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4] = 1
    write_label(tmp_path / "x.png", mask)
    from thermal_anomaly_segmenter.io.datasets import check_label

    assert check_label(tmp_path / "x.png") == (4, False)
