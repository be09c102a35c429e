"""The independent evaluation family (heldout/second_generator.py): determinism, the
label convention, GSD, the written set read by the project's own loader, and refusals."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from heldout import second_generator as indep
from thermal_anomaly_segmenter.errors import DatasetError
from thermal_anomaly_segmenter.io.datasets import frame_gsds, load_split, read_info, read_sample

H, W = 96, 128
BATCH = 12  # seeds per family for the batch checks


@pytest.fixture(scope="module")
def batches():
    return {fam: [indep.generate_frame(fam, 500 + s, H, W) for s in range(BATCH)]
            for fam in indep.FAMILIES}


@pytest.mark.parametrize("family", indep.FAMILIES)
def test_same_seed_same_bytes_other_seed_differs(family):
    a = indep.generate_frame(family, 7, H, W)
    b = indep.generate_frame(family, 7, H, W)
    c = indep.generate_frame(family, 8, H, W)
    assert a.data.tobytes() == b.data.tobytes()
    assert a.label.tobytes() == b.label.tobytes()
    assert a.gsd_m == b.gsd_m
    assert a.data.tobytes() != c.data.tobytes()


@pytest.mark.parametrize("family", indep.FAMILIES)
def test_channels_follow_the_frame_convention(family, batches):
    for f in batches[family]:
        assert f.data.shape == (H, W, 3) and f.data.dtype == np.float32
        assert f.label.shape == (H, W) and f.label.dtype == np.uint8
        assert set(np.unique(f.label)) <= {0, 1}
        t_m, t_u = f.data[..., 0], f.data[..., 2]
        assert np.array_equal(t_m, f.data[..., 1])
        assert f.corridor.any() and not f.corridor.all()
        assert np.array_equal(t_m[f.corridor], t_u[f.corridor])
        assert np.allclose(t_m[~f.corridor], t_u.min() - 10.0)
        assert np.isfinite(t_u).all()


@pytest.mark.parametrize("family", indep.FAMILIES)
def test_gsd_and_ambient_within_the_family_range(family, batches):
    spec = indep.SPECS[family]
    gsds = [f.gsd_m for f in batches[family]]
    assert all(spec.gsd_m[0] <= g <= spec.gsd_m[1] for g in gsds)
    assert len(set(gsds)) > 1
    assert all(spec.t_air_degc[0] <= f.t_air_degc <= spec.t_air_degc[1]
               for f in batches[family])
    assert all(spec.netd_k[0] <= f.netd_k <= spec.netd_k[1] for f in batches[family])


@pytest.mark.parametrize("family", indep.FAMILIES)
def test_labels_follow_the_convention(family, batches):
    frames = batches[family]
    empty = [f for f in frames if not f.leaks]
    assert empty, "a batch must hold leak-free frames"
    assert all(not f.label.any() for f in empty)
    assert any(f.leaks for f in frames)
    for f in frames:
        # Recompute the label from each leak's own excess: >= 30 % of its peak, >= 2 NETD,
        # inside the corridor, the one piece holding the peak.
        expected = np.zeros_like(f.label)
        for leak in f.leaks:
            assert leak.peak_k >= 0.3
            assert f.corridor[leak.row, leak.col]
            assert f.label[leak.row, leak.col] == 1
            keep = ((leak.excess >= max(0.3 * leak.peak_k, 2 * f.netd_k))
                    & f.corridor[leak.window]).astype(np.uint8)
            _, comp = cv2.connectedComponents(keep, connectivity=8)
            r, c = leak.row - leak.window[0].start, leak.col - leak.window[1].start
            expected[leak.window] |= (comp == comp[r, c]).astype(np.uint8)
        assert np.array_equal(expected, f.label)
        assert not (f.label.astype(bool) & ~f.corridor).any()
        n, comp = cv2.connectedComponents(f.label, connectivity=8)
        for k in range(1, n):
            assert any(comp[leak.row, leak.col] == k for leak in f.leaks)
        # Nothing but leak heat is labelled.
        assert (f.leak_excess[f.label > 0] >= 2 * f.netd_k - 1e-6).all()


@pytest.mark.parametrize("family", indep.FAMILIES)
def test_pipe_trace_and_distractors_are_never_labelled(family):
    frames = [indep.generate_frame(family, 900 + seed, H, W, n_leaks=0) for seed in range(6)]
    for f in frames:
        assert not f.leaks and f.leak_excess.max() == 0
        assert f.distractors.get("pipe_trace") == 1
        assert sum(f.distractors.values()) > 1  # objects besides the trace
        assert not f.label.any()
    # The trace may fade or break, but it is there in most frames, never labelled.
    assert sum(f.pipe_trace[f.corridor].max() > 0.05 for f in frames) >= 3
    # With leaks: where only the trace (and no leak) warms the ground, nothing is labelled.
    f = next(g for g in (indep.generate_frame(family, s, 192, 256, n_leaks=2)
                         for s in range(10)) if g.leaks and g.pipe_trace.max() > 0.1)
    trace_only = (f.pipe_trace > 2 * f.netd_k) & (f.leak_excess < f.netd_k)
    assert trace_only.any()
    assert not f.label[trace_only].any()
    assert f.label.any()


def test_frames_at_full_size_are_fast_and_leak_shapes_vary():
    import time

    t0 = time.perf_counter()
    f = indep.generate_frame("indep_parkland", 3, 512, 640, n_leaks=3)
    assert time.perf_counter() - t0 < 3.0  # well under 1 s alone; slack for busy machines
    assert len(f.leaks) >= 2
    assert f.label.sum() > 0


def test_written_set_is_read_by_the_project_loader(tmp_path):
    root = indep.write_set(tmp_path / "ds", "indep_oldtown", 4, seed=3, height=H, width=W)
    set_dir = root / "manual_set"
    assert sorted(p.name for p in set_dir.iterdir()) == ["dataset_info.json", "image", "label"]
    assert not [p for p in root.iterdir() if p.name != "manual_set"]  # no temp folder left
    split = load_split(set_dir, "test")
    assert len(split) == 4
    info = read_info(set_dir)
    gen = info["generator"]
    assert gen["name"] == "taseg.heldout.second_generator"
    assert gen["families"] == ["indep_oldtown"] and gen["seed"] == 3
    assert gen["split_ids"]["test"] == [s.id for s in split.samples]
    _, per_frame = frame_gsds(info)
    assert set(per_frame) == set(gen["frames"])
    for sample in split.samples:
        data, corridor, label = read_sample(sample)
        assert data.shape == (H, W, 3) and data.dtype == np.float32
        assert corridor.shape == (H, W) and label.shape == (H, W)
        meta = gen["frames"][sample.id.split("/")[1]]
        assert sample.gsd_m == meta["gsd_m"]
        assert 0.05 <= sample.gsd_m <= 0.09
        again = indep.generate_frame("indep_oldtown", meta["seed"], H, W,
                                     n_leaks=meta["n_leaks"])
        assert np.array_equal(again.data, data)
        assert np.array_equal(again.label, label)
        assert np.array_equal(again.corridor, corridor)
        assert meta["n_leaks"] == len(again.leaks)
        assert sample.anomaly_px == int(again.label.sum())
    assert sum(s.anomaly_px == 0 for s in split.samples) == 1  # round(35 % of 4)
    for split_name in ("train", "val"):
        with pytest.raises(DatasetError):
            load_split(set_dir, split_name)
    json.dumps(info)  # plain JSON all the way


@pytest.mark.parametrize("family", indep.FAMILIES)
def test_sets_hold_35_percent_leak_free_frames(family):
    for seed, n in ((4242, 40), (1, 20), (7, 3)):
        counts = indep.set_leak_counts(seed, family, n)
        assert len(counts) == n and counts.count(0) == round(0.35 * n)
        assert set(counts) <= {0, 1, 2, 3}
    counts = indep.set_leak_counts(4242, family, 40)
    assert counts.count(2) + counts.count(3) >= 4
    assert counts == indep.set_leak_counts(4242, family, 40)


def test_same_seed_writes_identical_files(tmp_path):
    a = indep.write_set(tmp_path / "a", "indep_parkland", 2, seed=11, height=H, width=W)
    b = indep.write_set(tmp_path / "b", "indep_parkland", 2, seed=11, height=H, width=W)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_refuses_a_non_empty_target_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    (root / "manual_set").mkdir(parents=True)
    (root / "manual_set" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        indep.write_set(root, "indep_oldtown", 1, seed=1, height=H, width=W)
    assert sorted(p.name for p in root.iterdir()) == ["manual_set"]
    assert (root / "manual_set" / "keep.txt").read_text() == "mine"

    with pytest.raises(ValueError):
        indep.write_set(tmp_path / "x", "karlsruhe_winter", 1, seed=1, height=H, width=W)

    calls = []
    real = indep.generate_frame

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(indep, "generate_frame", failing)
    with pytest.raises(RuntimeError):
        indep.write_set(tmp_path / "fresh", "indep_oldtown", 3, seed=1, height=H, width=W)
    assert not (tmp_path / "fresh").exists()
    empty_target = tmp_path / "pre"
    (empty_target / "manual_set").mkdir(parents=True)
    calls.clear()
    with pytest.raises(RuntimeError):
        indep.write_set(empty_target, "indep_oldtown", 3, seed=1, height=H, width=W)
    assert sorted(p.name for p in empty_target.iterdir()) == ["manual_set"]
    assert not any((empty_target / "manual_set").iterdir())


def test_cli_writes_a_set(tmp_path, capsys):
    indep.main([str(tmp_path / "cli"), "--family", "indep_parkland", "--frames", "2",
                "--seed", "5", "--size", str(H), str(W)])
    assert len(load_split(tmp_path / "cli" / "manual_set", "test")) == 2
    with pytest.raises(SystemExit):  # refuses the now non-empty set
        indep.main([str(tmp_path / "cli"), "--family", "indep_parkland", "--frames", "2"])


def test_heldout_benchmark_refuses_to_train_on_independent_families(tmp_path, capsys):
    from benchmarks import heldout_families

    with pytest.raises(SystemExit):
        heldout_families.main(["--work", str(tmp_path), "--train", "indep_parkland"])
    assert "evaluation" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before writing anything


def test_heldout_benchmark_writes_independent_test_sets_with_write_set(tmp_path):
    from benchmarks import heldout_families

    root = heldout_families.test_set(tmp_path, "indep_parkland", 2, 4242, (H, W))
    assert root == tmp_path / "test_sets" / "indep_parkland"
    info = read_info(root / "manual_set")
    assert info["generator"]["name"] == "taseg.heldout.second_generator"
    assert info["generator"]["families"] == ["indep_parkland"]
    stamp = (root / "manual_set" / "dataset_info.json").stat().st_mtime_ns
    assert heldout_families.test_set(tmp_path, "indep_parkland", 2, 4242, (H, W)) == root
    assert (root / "manual_set" / "dataset_info.json").stat().st_mtime_ns == stamp  # reused
