"""Scene families: deterministic frames, the label convention, distractor instances."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from thermal_anomaly_segmenter.cli.parser import main
from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.scenes import (
    DISTRACTOR_CLASSES,
    FAMILIES,
    get_family,
    parse_families,
    render_scene,
)
from thermal_anomaly_segmenter.scenes.synthetic import make_scene, write_dataset

SMALL = (96, 120)


def test_there_are_at_least_five_named_families_besides_the_original():
    assert "karlsruhe_winter" in FAMILIES and len(FAMILIES) >= 6
    gsds = [g for f in FAMILIES.values() for g in f.gsd_m]
    assert min(gsds) <= 0.03 and max(gsds) >= 0.15
    assert parse_families("all") == tuple(FAMILIES)
    with pytest.raises(InvalidInputError, match="unknown scene family"):
        get_family("mars")
    with pytest.raises(InvalidInputError):
        make_scene(0, *SMALL, family="mars")


def test_default_family_is_the_original_generator():
    # Figures of make_scene(seed, 128, 160) from the generator before it became layers (v1;
    # its frames were also compared bit for bit at the change).
    for seed, corridor, leak, bait, mean in ((0, 5060, 64, 500, -1.1514),
                                             (1, 5035, 177, 286, -1.4421)):
        scene = make_scene(seed, 128, 160)
        assert (int(scene.corridor.sum()), int(scene.leak_mask.sum()),
                int(scene.bait_mask.sum())) == (corridor, leak, bait)
        assert abs(float(scene.t_u.mean()) - mean) < 1e-3
        assert scene.family == "karlsruhe_winter" and scene.gsd_m == 0.1


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_is_deterministic_and_follows_the_label_convention(family):
    fam = FAMILIES[family]
    a = render_scene(5, *SMALL, n_leaks=2, family=family)
    b = render_scene(5, *SMALL, n_leaks=2, family=family)
    for name in ("data", "corridor", "leak_mask", "instances"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.instance_classes == b.instance_classes and a.family == family
    assert not np.array_equal(a.data, render_scene(6, *SMALL, n_leaks=2, family=family).data)
    assert fam.gsd_m[0] <= a.gsd_m <= fam.gsd_m[1]

    leak = a.leak_mask.astype(bool)
    assert leak.any() and not (leak & ~a.corridor).any()
    # Same seed without leaks: the same background, so the difference is the leaks' heat.
    dry = render_scene(5, *SMALL, n_leaks=0, family=family)
    assert not dry.leak_mask.any()
    heat = a.t_u - dry.t_u
    n, labels = cv2.connectedComponents(a.leak_mask)
    for k in range(1, n):
        piece = heat[labels == k]
        # Labelled pixels are clearly warmer: the label stops well inside the leak's faint
        # edge (a weaker leak merged into a stronger one keeps its own 30 % level).
        assert piece.min() > 0.02 * piece.max(), (family, k)
        assert np.mean(piece < 0.1 * piece.max()) < 0.3, (family, k)
    # Distractors are recorded, never labelled; the pipe trace is one of them.
    assert set(a.instance_classes) <= set(DISTRACTOR_CLASSES)
    assert "pipe_trace" in a.instance_classes
    assert not (a.instances.astype(bool) & leak).any()
    assert a.instances.max() == len(a.instance_classes)


def test_halo_is_warm_but_not_labelled():
    fam = "suburb_snow"
    wet, dry = (render_scene(s, 128, 160, n_leaks=n, family=fam) for s, n in ((11, 3), (11, 0)))
    heat = (wet.t_u - dry.t_u)[wet.corridor]
    warmed = heat > 0.05 * heat.max()
    assert warmed.sum() > 1.5 * wet.leak_mask.sum()


def test_families_differ_in_temperature_and_scale():
    def mean(f):
        return float(np.mean([render_scene(s, *SMALL, family=f).t_u.mean() for s in range(3)]))

    assert mean("suburb_snow") < mean("karlsruhe_winter") - 4 < mean("city_wet") - 8
    assert {render_scene(0, *SMALL, family=f).gsd_m for f in FAMILIES} != {0.1}


def test_many_frames_have_no_leak():
    counts = [render_scene(s, 64, 80, family="rural_coarse").n_leaks for s in range(40)]
    assert 0.25 <= counts.count(0) / len(counts) <= 0.8


def test_write_dataset_records_families_and_distractors(tmp_path):
    root = write_dataset(tmp_path / "ds", 4, seed=1, height=64, width=80,
                         sets=("manual_set",), families=("city_wet", "rural_coarse"))
    info = json.loads((root / "manual_set" / "dataset_info.json").read_text())
    assert info["generator"]["families"] == ["city_wet", "rural_coarse"]
    frames = info["generator"]["frames"]
    assert [frames[f"frame_{i:04d}"]["family"] for i in range(4)] == [
        "city_wet", "rural_coarse"] * 2
    for split, ids in info["generator"]["split_ids"].items():
        for frame_id in ids:
            folder, stem = frame_id.split("/")
            meta = frames[stem]
            scene = make_scene(meta["seed"], 64, 80, family=meta["family"])
            png = root / "manual_set" / "distractors" / folder / f"{stem}.png"
            inst = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
            assert inst.dtype == np.uint16, split
            np.testing.assert_array_equal(inst, scene.instances)
            assert meta["distractor_classes"] == list(scene.instance_classes)


def test_cli_synth_selects_families(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "a"), "--frames", "2", "--height", "48", "--width",
                 "64", "--family", "industrial_gravel"]) == 0
    info = json.loads((tmp_path / "a" / "manual_set" / "dataset_info.json").read_text())
    assert info["generator"]["families"] == ["industrial_gravel"]
    assert main(["synth", str(tmp_path / "b"), "--frames", "2", "--height", "48", "--width",
                 "64", "--families", "city_wet,suburb_snow"]) == 0
    assert main(["synth", str(tmp_path / "c"), "--family", "atlantis"]) == 2
    assert "unknown scene family" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
