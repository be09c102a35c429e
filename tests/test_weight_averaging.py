"""benchmarks/weight_averaging.py: a weighted mean of model folders of one model."""

from __future__ import annotations

import pytest
import torch

from benchmarks import weight_averaging
from tests.conftest import save_tiny_model
from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.models.load import load_model_folder, read_model_config


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("avg")
    return save_tiny_model(root / "a", seed=1), save_tiny_model(root / "b", seed=2)


def test_weighted_mean_of_every_float_tensor(two_folders, tmp_path, sample_frame):
    a, b = two_folders
    out = weight_averaging.average(tmp_path / "soup", [(a, 1.0), (b, 3.0)])
    sa, sb, so = (load_model_folder(p)[0].state_dict() for p in (a, b, out))
    floats = [k for k in so if so[k].is_floating_point()]
    assert floats
    for key in floats:
        torch.testing.assert_close(so[key], 0.25 * sa[key] + 0.75 * sb[key])
    assert not torch.equal(so[floats[0]], sa[floats[0]])
    config = read_model_config(out)
    assert config.calibration == {} and config.threshold == 0.5
    assert config.train_args["weight_average_of"] == [
        {"model": str(a), "weight": 0.25}, {"model": str(b), "weight": 0.75}]
    # the averaged folder is a working model
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter

    prob = Segmenter.from_folder(out).probabilities([sample_frame], PredictOptions())[0]
    assert prob.shape == sample_frame.t_u.shape and 0 <= prob.min() <= prob.max() <= 1


def test_refuses_other_models_an_existing_output_and_one_folder(two_folders, tmp_path):
    a, b = two_folders
    other = save_tiny_model(tmp_path / "unet", model_type="smp_unet")
    with pytest.raises(InvalidInputError, match="differs .* in model_type"):
        weight_averaging.average(tmp_path / "x", [(a, 1.0), (other, 1.0)])
    with pytest.raises(InvalidInputError, match="at least two"):
        weight_averaging.average(tmp_path / "y", [(a, 1.0)])
    with pytest.raises(InvalidInputError, match="sum to zero"):
        weight_averaging.average(tmp_path / "z", [(a, 0.0), (b, 0.0)])
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("user data")
    with pytest.raises(InvalidInputError, match="exists"):
        weight_averaging.average(kept, [(a, 1.0), (b, 1.0)])
    assert (kept / "mine.txt").read_text() == "user data"
    assert not any((tmp_path / n).exists() for n in ("x", "y", "z"))


def test_cli_bad_input_is_one_line_and_exit_2(two_folders, tmp_path, capsys):
    a, b = two_folders
    for argv in ([str(tmp_path / "o"), f"{a}@x", str(b)], [str(tmp_path / "o"), f"{a}@-1", str(b)],
                 [str(tmp_path / "o"), str(a), str(tmp_path / "missing")]):
        with pytest.raises(SystemExit) as exc:
            weight_averaging.main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err and "Traceback" not in "".join(err)
