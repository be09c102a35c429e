"""Scale-out on Dask distributed: 2 local CPU workers give the outputs of one process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_geo import MODEL, write_ortho, write_pipes

pytest.importorskip("distributed")
pyogrio = pytest.importorskip("pyogrio")

pytestmark = pytest.mark.slow


def _files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir() if p.is_file()}


@pytest.mark.timeout(300)
def test_two_dask_workers_match_one_process(tmp_path, capsys) -> None:
    from thermal_anomaly_segmenter.cli.parser import main
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.predict.files import PredictRequest, predict_paths

    inputs = [write_ortho(tmp_path / f"ortho{i}.tif", 25832, seed=i) for i in range(2)]
    # a second file of the same name: its stem is fixed up front, not by task timing
    (tmp_path / "b").mkdir()
    inputs.append(write_ortho(tmp_path / "b" / "ortho0.tif", 25832, seed=7))
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832)
    one = list(predict_paths(inputs, PredictRequest(
        model_dir=MODEL, out_dir=tmp_path / "one", options=PredictOptions(device="cpu"),
        pipes=pipes, names=["ortho0", "ortho1", "ortho0-2"])))
    assert all(r.ok for r in one), [r.error for r in one]
    code = main(["predict", *map(str, inputs), "--model-dir", str(MODEL), "--device", "cpu",
                 "--pipes", str(pipes), "--out", str(tmp_path / "two"), "--workers", "2", "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines() == [r.summary().replace("/one/", "/two/") for r in one]
    first, second = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(first) == sorted(second) and len(first) == 3 * 6
    for name, path in first.items():
        if name.endswith(".gpkg"):  # a GeoPackage records its write time: compare content
            a = pyogrio.raw.read(path, layer="anomalies")
            b = pyogrio.raw.read(second[name], layer="anomalies")
            assert (a[2] == b[2]).all()
            for x, y in zip(a[3], b[3], strict=True):  # NaN (null cost without a price) too
                np.testing.assert_array_equal(x, y)
        else:
            assert path.read_bytes() == second[name].read_bytes(), name
