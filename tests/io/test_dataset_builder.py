"""Tests of the dataset builder: a small survey of TIFFs end to end, then every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from thermal_anomaly_segmenter.datasets import staging as dataset_staging
from thermal_anomaly_segmenter.datasets.builder import (
    BuildOptions,
    BuildReport,
    assign_splits,
    build_dataset,
)
from thermal_anomaly_segmenter.errors import (
    DatasetError,
    DatasetExistsError,
    DatasetNotFoundError,
    InvalidInputError,
    TasegError,
)
from thermal_anomaly_segmenter.io.datasets import load_split
from thermal_anomaly_segmenter.io.frames import compose_frame
from thermal_anomaly_segmenter.io.read import read_frame
from thermal_anomaly_segmenter.models.triangle import classical_label
from thermal_anomaly_segmenter.scenes.synthetic import Scene, make_scene, write_dataset

SIZE = (96, 128)
N_FRAMES = 10
LABELLED = ("f00", "f02", "f04", "f06", "f08")  # f02 and f06 as 0/255
SPLITS = ("train", "val", "test")
#: A GeoTIFF tag set: 0.1 m pixels, corner at (455000, 5430000) in EPSG:25832.
GEO_TAGS = [
    (33550, 12, 3, (0.1, 0.1, 0.0), True),
    (33922, 12, 6, (0.0, 0.0, 0.0, 455000.0, 5430000.0, 0.0), True),
    (34735, 3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 25832), True),
]


def _png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def _tiff(path: Path, t_u: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, t_u, **kwargs)
    return path


@pytest.fixture(scope="module")
def scenes() -> dict[str, Scene]:
    return {f"f{i:02d}": make_scene(100 + i, *SIZE) for i in range(N_FRAMES)}


def _survey(root: Path, scenes: dict[str, Scene]) -> tuple[Path, Path, Path]:
    """Write TIFFs (f00 a GeoTIFF), PNG corridors (0/255) and hand labels for LABELLED."""
    tiffs, corridors, labels = root / "tiff", root / "corridor", root / "labels"
    for name, scene in scenes.items():
        extra = {"extratags": GEO_TAGS} if name == "f00" else {}
        _tiff(tiffs / f"{name}.tif", scene.t_u.astype(np.float32), **extra)
        _png(corridors / f"{name}.png", scene.corridor.astype(np.uint8) * 255)
        if name in LABELLED:
            scale = 255 if name in ("f02", "f06") else 1
            _png(labels / f"{name}.png", scene.leak_mask * np.uint8(scale))
    return tiffs, corridors, labels


@pytest.fixture(scope="module")
def built(tmp_path_factory, scenes) -> tuple[Path, BuildReport]:
    root = tmp_path_factory.mktemp("survey")
    tiffs, corridors, labels = _survey(root, scenes)
    out = root / "out" / "dataset"
    report = build_dataset(tiffs, corridors, out, BuildOptions(labels_dir=labels, seed=3))
    return out, report


# --------------------------------------------------------------------------- end to end


def test_report(built) -> None:
    out, report = built
    assert report.out_dir == out
    assert report.count("generated_set") == N_FRAMES
    assert report.count("manual_set") == len(LABELLED)
    assert report.skipped == [] and report.unmatched_labels == [] and report.warnings == []
    summary = report.summary()
    assert "generated_set: 10 frames" in summary and "manual_set: 5 frames" in summary


def test_layout_and_info_match_synthetic(built, tmp_path) -> None:
    out, _ = built
    assert sorted(p.name for p in out.iterdir()) == ["generated_set", "manual_set"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left
    synthetic = write_dataset(tmp_path / "syn", 4, height=32, width=32) / "generated_set"
    reference = json.loads((synthetic / "dataset_info.json").read_text())
    for set_name in ("generated_set", "manual_set"):
        info = json.loads((out / set_name / "dataset_info.json").read_text())
        assert set(info) - {"builder"} == set(reference) - {"generator"}
        for key in ("image_type", "masked", "labels", "channel_mode"):
            assert info[key] == reference[key]
        assert info["subsets"] == ["survey_train", "survey_val", "survey_test"]
        assert info["default_splits"] == {s: [f"survey_{s}"] for s in SPLITS}
        assert sorted(p.name for p in (out / set_name).iterdir()) == [
            "dataset_info.json",
            "image",
            "label",
            "preview",
        ]
        for kind in ("image", "label", "preview"):
            assert sorted(p.name for p in (out / set_name / kind).iterdir()) == sorted(
                info["subsets"]
            )


def _ids(set_dir: Path) -> dict[str, set[str]]:
    return {
        split: {
            p.name[: -len(".npy.lz4")] for p in (set_dir / "image" / f"survey_{split}").iterdir()
        }
        for split in SPLITS
    }


def test_splits_disjoint_and_consistent(built) -> None:
    out, report = built
    generated, manual = _ids(out / "generated_set"), _ids(out / "manual_set")
    assert {k: set(v) for k, v in report.splits["generated_set"].items()} == generated
    assert {k: set(v) for k, v in report.splits["manual_set"].items()} == manual
    for ids in (generated, manual):
        assert sum(len(v) for v in ids.values()) == len(set().union(*ids.values()))
    assert set().union(*generated.values()) == {f"f{i:02d}" for i in range(N_FRAMES)}
    assert set().union(*manual.values()) == set(LABELLED)
    # A hand-labelled frame has the same split in both sets (no test frame in pre-training).
    for split in SPLITS:
        assert manual[split] <= generated[split]
    assert [len(manual[s]) for s in SPLITS] == [3, 1, 1]
    assert [len(generated[s]) for s in SPLITS] == [6, 2, 2]  # 3/1/1 labelled + 3/1/1 others
    info = json.loads((out / "manual_set" / "dataset_info.json").read_text())
    assert info["builder"]["split_ids"]["val"] == [f"survey_val/{i}" for i in sorted(manual["val"])]


def test_frames_and_labels_read_back(built, scenes) -> None:
    out, _ = built
    for set_name in ("generated_set", "manual_set"):
        for split, ids in _ids(out / set_name).items():
            for frame_id in ids:
                scene = scenes[frame_id]
                frame = read_frame(
                    out / set_name / "image" / f"survey_{split}" / f"{frame_id}.npy.lz4"
                )
                expected = compose_frame(scene.t_u, scene.corridor)
                np.testing.assert_array_equal(frame.data, expected)
                np.testing.assert_array_equal(frame.corridor, scene.corridor)
                label = cv2.imread(
                    str(out / set_name / "label" / f"survey_{split}" / f"{frame_id}.png"),
                    cv2.IMREAD_UNCHANGED,
                )
                assert label.dtype == np.uint8 and label.shape == SIZE
                if set_name == "generated_set":
                    want = classical_label(expected, scene.corridor)
                else:
                    want = scene.leak_mask  # 0/255 inputs come back as 0/1
                np.testing.assert_array_equal(label, want)
                preview = cv2.imread(
                    str(out / set_name / "preview" / f"survey_{split}" / f"{frame_id}.png")
                )
                assert preview.shape == (*SIZE, 3)


def test_training_loader_reads_both_sets(built) -> None:
    out, _ = built
    for set_name, total in (("generated_set", N_FRAMES), ("manual_set", len(LABELLED))):
        sizes = [len(load_split(out / set_name, split)) for split in SPLITS]
        assert sum(sizes) == total and min(sizes) >= 1


def test_geotiff_info_recorded(built) -> None:
    out, _ = built
    frames = json.loads((out / "generated_set" / "dataset_info.json").read_text())["builder"][
        "frames"
    ]
    assert frames["f00"]["geo"] == {
        "transform": [0.1, 0.0, 455000.0, 0.0, -0.1, 5430000.0],
        "crs": "EPSG:25832",
        "metric": True,
    }
    assert frames["f00"]["gsd_m"] == 0.1  # read back as the frame's GSD (scale matching)
    samples = [s for split in SPLITS for s in load_split(out / "generated_set", split).samples]
    gsds = {s.id.rsplit("/", 1)[1]: s.gsd_m for s in samples}
    assert gsds["f00"] == 0.1 and gsds["f01"] is None
    assert "geo" not in frames["f01"] and "gsd_m" not in frames["f01"]
    assert frames["f03"] == {
        "source": "f03.tif",
        "corridor": "f03.png",
        "height": SIZE[0],
        "width": SIZE[1],
    }


def test_stated_gsd_is_recorded_for_frames_without_a_georeference(tmp_path, scenes) -> None:
    tiffs, corridors, labels = _survey(tmp_path, scenes)
    out = tmp_path / "ds"
    build_dataset(tiffs, corridors, out,
                  BuildOptions(labels_dir=labels, gsd_m=0.04, previews=False))
    frames = json.loads((out / "generated_set" / "dataset_info.json").read_text())["builder"][
        "frames"]
    assert frames["f00"]["gsd_m"] == 0.1  # its metric GeoTIFF's own pixel size wins
    assert frames["f01"]["gsd_m"] == 0.04
    with pytest.raises(InvalidInputError, match="gsd_m"):
        build_dataset(tiffs, corridors, tmp_path / "bad", BuildOptions(gsd_m=-1.0))


def test_seeded_and_reproducible(tmp_path, scenes) -> None:
    tiffs, corridors, labels = _survey(tmp_path, scenes)
    runs = [
        build_dataset(
            tiffs,
            corridors,
            tmp_path / f"out{seed}{k}",
            BuildOptions(labels_dir=labels, seed=seed, previews=False),
        )
        for seed, k in ((3, "a"), (3, "b"), (4, "a"))
    ]
    assert runs[0].splits == runs[1].splits
    assert not (tmp_path / "out3a" / "generated_set" / "preview").exists()
    ids = [f"f{i:02d}" for i in range(40)]
    shares = (0.7, 0.15, 0.15)
    split_of = assign_splits(ids[:20], ids[20:], shares, 1)
    # The order ids come in does not matter; the seed does; each group gets its shares.
    assert split_of == assign_splits(ids[:20][::-1], ids[20:][::-1], shares, 1)
    assert split_of != assign_splits(ids[:20], ids[20:], shares, 2)
    for group in (ids[:20], ids[20:]):
        assert [sum(split_of[i] == s for i in group) for s in SPLITS] == [14, 3, 3]


def test_same_folder_for_frames_and_masks(tmp_path, scenes) -> None:
    folder = tmp_path / "flight"
    for name in ("f00", "f01", "f02"):
        _tiff(folder / f"{name}.tif", scenes[name].t_u)
        _png(folder / f"{name}.png", scenes[name].corridor.astype(np.uint8))
    report = build_dataset(folder, folder, tmp_path / "out", BuildOptions(splits=(1, 0, 0)))
    assert report.splits["generated_set"] == {"train": ["f00", "f01", "f02"], "val": [], "test": []}
    info = json.loads((tmp_path / "out" / "generated_set" / "dataset_info.json").read_text())
    assert info["subsets"] == ["survey_train"]
    assert info["default_splits"] == {"train": ["survey_train"], "val": [], "test": []}
    assert not (tmp_path / "out" / "manual_set").exists()
    assert any("manual_set was not written" in w for w in report.warnings)


# --------------------------------------------------------------------------- bad inputs


def test_bad_frames_and_labels_are_skipped_and_reported(tmp_path, scenes) -> None:
    tiffs, corridors, labels = tmp_path / "t", tmp_path / "c", tmp_path / "l"
    good = scenes["f01"]
    for name in (
        "good1",
        "good2",
        "nocorridor",
        "mismatch",
        "broken",
        "bytes8",
        "nan",
        "emptycorridor",
        "badlabel",
        "biglabel",
        "brokenlabel",
        "kelvin",
    ):
        t_u = good.t_u.copy()
        if name == "nan":
            t_u[5, 5] = np.nan
        if name == "kelvin":
            t_u = t_u + 273.15
        if name == "bytes8":
            _tiff(tiffs / f"{name}.tif", np.zeros(SIZE, np.uint8))
        elif name == "broken":
            (tiffs / f"{name}.tif").write_bytes(b"II*\x00" + b"\x17" * 200)
        else:
            _tiff(tiffs / f"{name}.tif", t_u)
        corridor = good.corridor.astype(np.uint8)
        if name == "mismatch":
            corridor = corridor[:-8]
        if name == "emptycorridor":
            corridor = np.zeros_like(corridor)
        if name != "nocorridor":
            _png(corridors / f"{name}.png", corridor)
    leak = good.leak_mask
    _png(labels / "good1.png", leak)
    _png(labels / "badlabel.png", leak * 2 + (leak == 0))  # values 1 and 2
    _png(labels / "biglabel.png", np.zeros((SIZE[0] + 4, SIZE[1]), np.uint8))
    (labels / "brokenlabel.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    _png(labels / "orphan.png", leak)
    (tiffs / "notes.txt").write_text("not a frame")  # other files are ignored

    report = build_dataset(tiffs, corridors, tmp_path / "out", BuildOptions(labels_dir=labels))

    frames = {s.name: s.reason for s in report.skipped if s.kind == "frame"}
    label_skips = {s.name: s.reason for s in report.skipped if s.kind == "label"}
    assert set(frames) == {
        "nocorridor.tif",
        "mismatch.tif",
        "broken.tif",
        "bytes8.tif",
        "nan.tif",
        "emptycorridor.tif",
        "kelvin.tif",
    }
    assert "no corridor mask nocorridor.png" in frames["nocorridor.tif"]
    assert "88 x 128 px but the frame is 96 x 128 px" in frames["mismatch.tif"]
    assert frames["broken.tif"].startswith("broken.tif: TIFF")
    assert "8-bit" in frames["bytes8.tif"]
    assert "NaN" in frames["nan.tif"]
    assert "corridor mask is empty" in frames["emptycorridor.tif"]
    assert "Kelvin" in frames["kelvin.tif"]
    assert set(label_skips) == {"badlabel.png", "biglabel.png", "brokenlabel.png"}
    assert "values 1, 2" in label_skips["badlabel.png"]
    assert "100 x 128 px but the frame is 96 x 128 px" in label_skips["biglabel.png"]
    assert "corrupt" in label_skips["brokenlabel.png"]
    assert all("\n" not in reason for reason in [*frames.values(), *label_skips.values()])
    assert report.unmatched_labels == ["orphan.png"]
    # Frames with a bad label still go to generated_set; only good1 reaches manual_set.
    assert report.count("generated_set") == 5
    assert report.count("manual_set") == 1
    assert any("manual_set: split(s) val, test are empty" in w for w in report.warnings)
    summary = report.summary()
    assert "skipped frame nocorridor.tif" in summary and "orphan.png" in summary


def test_ambiguous_and_duplicate_names(tmp_path, scenes) -> None:
    tiffs, corridors = tmp_path / "t", tmp_path / "c"
    for name in ("a.tif", "a.tiff", "b.tif", "c d.tif", "c_d.tif"):
        _tiff(tiffs / name, scenes["f01"].t_u)
    for name in ("a.png", "b.png", "b.tif", "c d.png", "c_d.png"):
        _png(corridors / name, scenes["f01"].corridor.astype(np.uint8))
    report = build_dataset(tiffs, corridors, tmp_path / "out")
    reasons = {s.name: s.reason for s in report.skipped}
    assert set(reasons) == {"a.tiff", "b.tif", "c_d.tif"}
    assert "already taken by a.tif" in reasons["a.tiff"]
    assert "several corridor masks match (b.png, b.tif)" in reasons["b.tif"]
    assert "already taken by c d.tif" in reasons["c_d.tif"]
    assert report.count("generated_set") == 2


@pytest.mark.parametrize("which", ["tiff_dir", "corridor_dir", "labels_dir"])
def test_missing_folders(tmp_path, scenes, which) -> None:
    tiffs, corridors, labels = _survey(tmp_path, {"f00": scenes["f00"]})
    args = {"tiff_dir": tiffs, "corridor_dir": corridors, "labels_dir": labels}

    def build() -> None:
        build_dataset(args["tiff_dir"], args["corridor_dir"], tmp_path / "out",
                      BuildOptions(labels_dir=args["labels_dir"]))

    args[which] = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError, match=f"{which} .*nowhere does not exist"):
        build()
    args[which] = tiffs / "f00.tif"
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        build()
    assert not (tmp_path / "out").exists()


def test_empty_inputs(tmp_path, scenes) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no frames here")
    with pytest.raises(DatasetError, match="holds no .tif/.tiff file"):
        build_dataset(empty, empty, tmp_path / "out")
    tiffs, corridors, _ = _survey(tmp_path, {"f01": scenes["f01"]})
    with pytest.raises(DatasetError, match="labels_dir .* holds no .png label"):
        build_dataset(tiffs, corridors, tmp_path / "out", BuildOptions(labels_dir=empty))
    assert not (tmp_path / "out").exists()


def test_nothing_usable(tmp_path, scenes) -> None:
    tiffs, corridors, _ = _survey(tmp_path, {"f01": scenes["f01"], "f03": scenes["f03"]})
    for mask in corridors.iterdir():
        mask.unlink()
    with pytest.raises(DatasetError, match=r"none of the 2 TIFF\(s\) .* is usable .*f01.tif: no "):
        build_dataset(tiffs, corridors, tmp_path / "out" / "ds")
    assert not (tmp_path / "out" / "ds").exists()
    assert list((tmp_path / "out").iterdir()) == []  # no temp folder left


def test_existing_output_is_never_overwritten(tmp_path, scenes) -> None:
    tiffs, corridors, _ = _survey(tmp_path, {"f01": scenes["f01"]})
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DatasetExistsError, match="refusing to overwrite") as err:
        build_dataset(tiffs, corridors, out)
    assert isinstance(err.value, FileExistsError) and isinstance(err.value, TasegError)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DatasetExistsError):
        build_dataset(tiffs, corridors, a_file)
    (out / "keep.txt").unlink()  # an existing empty folder is fine
    assert build_dataset(tiffs, corridors, out).count("generated_set") == 1


def test_failure_midway_leaves_nothing(tmp_path, scenes, monkeypatch) -> None:
    tiffs, corridors, _ = _survey(tmp_path, {"f01": scenes["f01"], "f02": scenes["f02"]})
    calls = []

    def failing_write(path, data):
        calls.append(path)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dataset_staging, "write_frame", failing_write)
    with pytest.raises(OSError, match="No space left"):
        build_dataset(tiffs, corridors, tmp_path / "out" / "ds")
    assert calls and list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"splits": (0.5, 0.5, 0.5)}, "summing to 1"),
        ({"splits": (0.8, 0.2)}, "summing to 1"),
        ({"splits": (1.2, -0.1, -0.1)}, "non-negative"),
        ({"splits": "abc"}, "three numbers"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"seed": 1.5}, "seed must be an integer >= 0"),
        ({"subset": "../up"}, "plain folder name"),
        ({"subset": ""}, "plain folder name"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build_dataset(tmp_path, tmp_path, tmp_path / "out", BuildOptions(**kwargs))


def test_preview_marks_corridor_and_label() -> None:
    from thermal_anomaly_segmenter.outputs.overlay import ANOMALY_RGB, CORRIDOR_RGB
    from thermal_anomaly_segmenter.outputs.preview import render_preview

    scene = make_scene(7, 2048, 1024)
    label = classical_label(scene.data, scene.corridor)
    preview = render_preview(scene.data, scene.corridor, label)
    assert preview.shape == (1024, 512, 3) and preview.dtype == np.uint8
    for colour in (ANOMALY_RGB, CORRIDOR_RGB):
        assert (preview == colour).all(axis=-1).any()


def test_cli_build_dataset(tmp_path, scenes) -> None:
    import subprocess
    import sys

    tiffs, corridors, labels = _survey(tmp_path / "in", scenes)
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "thermal_anomaly_segmenter", "build-dataset", tiffs, corridors,
           out, "--labels", labels, "--seed", "3", "--no-previews"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "generated_set" / "dataset_info.json").is_file()
    assert (out / "manual_set" / "dataset_info.json").is_file()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
