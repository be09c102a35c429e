"""The third, independent evaluation generator (heldout/third_generator.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from heldout import third_generator as fam2
from thermal_anomaly_segmenter.io.datasets import frame_gsds, load_split, read_info, read_sample
from thermal_anomaly_segmenter.io.frames import FILL_OFFSET_DEGC

H, W = 96, 128
EIGHT = np.ones((3, 3), dtype=bool)


@pytest.mark.parametrize("family", fam2.FAMILIES)
def test_same_seed_same_bytes_other_seed_differs(family):
    a = fam2.generate_frame(family, 5, H, W, n_leaks=2)
    b = fam2.generate_frame(family, 5, H, W, n_leaks=2)
    c = fam2.generate_frame(family, 6, H, W, n_leaks=2)
    assert a.data.dtype == np.float32 and a.data.shape == (H, W, 3)
    assert a.data.tobytes() == b.data.tobytes()
    assert a.label.tobytes() == b.label.tobytes()
    assert a.gsd_m == b.gsd_m and a.distractors == b.distractors
    assert a.data.tobytes() != c.data.tobytes()


@pytest.mark.parametrize("family", fam2.FAMILIES)
def test_channels_are_masked_and_full_image(family):
    f = fam2.generate_frame(family, 3, H, W)
    t_m, t_u = f.data[..., 0], f.data[..., 2]
    assert np.array_equal(f.data[..., 0], f.data[..., 1])
    assert 0 < f.corridor.sum() < f.corridor.size
    assert np.array_equal(t_m[f.corridor], t_u[f.corridor])
    fill = np.float32(float(t_u.min()) - FILL_OFFSET_DEGC)
    assert np.all(t_m[~f.corridor] == fill)
    assert np.isfinite(t_u).all()
    assert -60 < float(np.median(t_u)) < 30  # degC, not Kelvin or counts


def _expected_label(f) -> np.ndarray:
    """The label convention, recomputed from each leak's own excess."""
    out = np.zeros((H, W), bool)
    for leak in f.leaks:
        exc = leak.excess_map((H, W))
        peak = float(exc.max())
        assert peak == pytest.approx(leak.peak_excess)
        assert exc[leak.row, leak.col] == pytest.approx(peak)
        assert peak >= fam2.LABEL_NETD_FACTOR * f.netd_k
        assert f.corridor[leak.row, leak.col], "a leak's peak lies inside the corridor"
        mask = (exc >= 0.3 * peak) & (exc >= 2 * f.netd_k) & f.corridor
        comps, _ = ndimage.label(mask, structure=EIGHT)
        piece = comps == comps[leak.row, leak.col]
        assert piece.sum() == leak.label_px
        out |= piece
    return out


@pytest.mark.parametrize("family", fam2.FAMILIES)
def test_label_follows_the_convention(family):
    n_leaks = 0
    for seed in range(4):
        f = fam2.generate_frame(family, seed, H, W, n_leaks=2)
        assert f.label.dtype == np.uint8 and set(np.unique(f.label)) <= {0, 1}
        expected = _expected_label(f)
        assert np.array_equal(f.label.astype(bool), expected)
        assert not (f.label.astype(bool) & ~f.corridor).any()
        if f.leaks:
            assert f.label.sum() > 0
            # each piece is one connected component: as many pieces as leaks at most
            _, n = ndimage.label(f.label, structure=EIGHT)
            assert 1 <= n <= len(f.leaks)
            # the label is where the leak is warm: its excess there beats the rest
            exc = sum(leak.excess_map((H, W)) for leak in f.leaks)
            assert exc[f.label > 0].mean() > 3 * exc[(f.label == 0) & f.corridor].mean()
        n_leaks += len(f.leaks)
    assert n_leaks >= 4  # leaks really are placed, even in tiny frames


@pytest.mark.parametrize("family", fam2.FAMILIES)
def test_leak_free_frames_have_empty_labels_but_warm_distractors(family):
    warm_seen = 0
    for seed in range(3):
        f = fam2.generate_frame(family, seed, 160, 200, n_leaks=0)
        bare = fam2.generate_frame(family, seed, 160, 200, n_leaks=0, objects=False)
        assert f.leaks == [] and f.label.sum() == 0 and bare.label.sum() == 0
        assert f.distractors["pipe_trace"] == 1
        assert set(bare.distractors) < set(f.distractors)  # objects add classes
        t_u = f.data[..., 2]
        warm_seen += float(t_u.max() - np.median(t_u)) > 8.0  # engines, lamps, people
    assert warm_seen >= 2


def test_leak_counts_share():
    for family in fam2.FAMILIES:
        for n in (1, 7, 20, 40, 41):
            counts = fam2.set_leak_counts(4242, family, n)
            assert len(counts) == n
            assert counts.count(0) == round(0.35 * n)
            assert all(1 <= c <= 3 for c in counts if c)
            assert counts == fam2.set_leak_counts(4242, family, n)
    many = fam2.set_leak_counts(1, fam2.FAMILIES[0], 200)
    assert {1, 2, 3} <= set(many)


def test_gsd_in_family_range_and_seeds_stable():
    ranges = {"indep2_snowmelt": (0.03, 0.08), "indep2_railyard": (0.09, 0.16)}
    for family, (lo, hi) in ranges.items():
        gsds = [fam2.generate_frame(family, s, 32, 40, n_leaks=0).gsd_m for s in range(6)]
        assert all(lo <= g <= hi for g in gsds)
        assert len(set(gsds)) == 6
    assert fam2.frame_seed(1, "indep2_snowmelt", 0) == fam2.frame_seed(1, "indep2_snowmelt", 0)
    assert fam2.frame_seed(1, "indep2_snowmelt", 0) != fam2.frame_seed(1, "indep2_snowmelt", 1)
    assert fam2.frame_seed(1, "indep2_snowmelt", 0) != fam2.frame_seed(1, "indep2_railyard", 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="indep2_snowmelt"):
        fam2.generate_frame("suburb_snow", 1, H, W)
    with pytest.raises(ValueError, match="16"):
        fam2.generate_frame("indep2_railyard", 1, 15, W)


def test_write_set_reads_back(tmp_path):
    family, seed = "indep2_railyard", 9
    set_dir = fam2.write_set(tmp_path / "ds", family, 3, seed, height=48, width=64)
    assert set_dir == tmp_path / "ds" / "manual_set"
    info = read_info(set_dir)
    gen = info["generator"]
    assert gen["name"] == fam2.GENERATOR_NAME and gen["evaluation_only"] is True
    assert gen["split_ids"]["test"] == [f"synthetic_test/frame_{i:04d}" for i in range(3)]
    assert gen["split_ids"]["train"] == [] and gen["splits"] == [0, 0, 1]
    _, per_frame = frame_gsds(info)
    split = load_split(set_dir, "test")
    assert [s.id for s in split.samples] == gen["split_ids"]["test"]
    counts = fam2.set_leak_counts(seed, family, 3)
    for i, sample in enumerate(split.samples):
        fs = fam2.frame_seed(seed, family, i)
        f = fam2.generate_frame(family, fs, 48, 64, n_leaks=counts[i])
        meta = gen["frames"][f"frame_{i:04d}"]
        assert meta["seed"] == fs and meta["family"] == family
        assert sample.gsd_m == pytest.approx(f.gsd_m, rel=1e-5)
        assert per_frame[f"frame_{i:04d}"] == sample.gsd_m
        assert 0.09 <= sample.gsd_m <= 0.16
        data, corridor, label = read_sample(sample)
        assert np.array_equal(data, f.data) and np.array_equal(label, f.label)
        assert np.array_equal(corridor, f.corridor)
        assert sample.anomaly_px == int(f.label.sum())
    assert not [p for p in (tmp_path / "ds").iterdir() if p.name != "manual_set"]


def test_write_set_refuses_non_empty_target(tmp_path):
    (tmp_path / "manual_set").mkdir()
    (tmp_path / "manual_set" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        fam2.write_set(tmp_path, "indep2_snowmelt", 1, 1, height=32, width=32)
    assert (tmp_path / "manual_set" / "keep.txt").read_text() == "mine"


def test_write_set_leaves_nothing_when_generation_fails(tmp_path, monkeypatch):
    real = fam2.generate_frame
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(fam2, "generate_frame", failing)
    with pytest.raises(RuntimeError):
        fam2.write_set(tmp_path / "new" / "root", "indep2_snowmelt", 4, 1, height=32, width=32)
    assert not (tmp_path / "new").exists()
    calls.clear()
    existing = tmp_path / "kept"
    existing.mkdir()
    with pytest.raises(RuntimeError):
        fam2.write_set(existing, "indep2_snowmelt", 4, 1, height=32, width=32)
    assert existing.is_dir() and list(existing.iterdir()) == []


def test_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        fam2.main([str(tmp_path), "--family", "nope"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        fam2.main([str(tmp_path), "--family", "indep2_railyard", "--size", "8", "64"])
    assert exc.value.code == 2
    assert fam2.main([str(tmp_path), "--family", "indep2_railyard", "--frames", "2",
                      "--seed", "3", "--size", "32", "40"]) == 0
    assert len(list((tmp_path / "manual_set" / "image" / "synthetic_test").iterdir())) == 2
    with pytest.raises(SystemExit) as exc:  # refuses to overwrite
        fam2.main([str(tmp_path), "--family", "indep2_railyard", "--frames", "1"])
    assert exc.value.code == 2


def test_heldout_benchmark_scores_and_refuses_the_third_generator(tmp_path, capsys):
    from benchmarks import heldout_families

    gens = heldout_families.independent_families()
    assert gens["indep2_railyard"] is fam2 and gens["indep2_snowmelt"] is fam2
    assert gens["indep_oldtown"].__name__ == "heldout.second_generator"
    root = heldout_families.test_set(tmp_path, "indep2_railyard", 2, 4242, (96, 128))
    assert read_info(root / "manual_set")["generator"]["name"] == fam2.GENERATOR_NAME
    with pytest.raises(SystemExit):
        heldout_families.main(["--work", str(tmp_path / "w"), "--train", "indep2_snowmelt"])
    assert "evaluation" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
    seen = heldout_families.seen_map(["m=all,indep_oldtown", "n=suburb_snow"])
    assert "indep_oldtown" in seen["m"] and "karlsruhe_winter" in seen["m"]
    assert seen["n"] == {"suburb_snow"}
