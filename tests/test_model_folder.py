"""Model folder format: safetensors + train_config.json, atomic, loadable offline, no pickle."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import save_tiny_model

from thermal_anomaly_segmenter.config import DEFAULT_MODEL_NAME
from thermal_anomaly_segmenter.errors import InvalidInputError, ModelNotFoundError
from thermal_anomaly_segmenter.models.folder import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    ModelConfig,
    list_model_folders,
    resolve_model_dir,
    save_model_folder,
)
from thermal_anomaly_segmenter.models.load import load_model_folder, read_model_config
from thermal_anomaly_segmenter.models.registry import build_model


@pytest.mark.parametrize("model_type", ["segformer_b0", "smp_deeplabV3plus"])
def test_round_trip_gives_identical_outputs(tmp_path, model_type):
    arch = {"encoder_name": "resnet18"} if model_type.startswith("smp_") else {}
    torch.manual_seed(3)
    model = build_model(model_type, arch).eval()
    config = ModelConfig(
        model_type=model_type, architecture=arch, input_size=(64, 96), train_args={"seed": 10}
    )
    folder = save_model_folder(tmp_path / "m", config, model)
    assert sorted(p.name for p in folder.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    loaded, cfg = load_model_folder(folder)
    assert cfg.model_type == model_type and cfg.input_size == (64, 96)
    assert cfg.train_args == {"seed": 10} and cfg.taseg_version
    x = torch.randn(1, 3, 48, 50)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))


def test_half_precision_weights_load_as_float32(tmp_path):
    folder = save_tiny_model(tmp_path / "a")
    model, _ = load_model_folder(folder)
    half = save_model_folder(tmp_path / "h", read_model_config(folder), model, half=True)
    assert (half / WEIGHTS_NAME).stat().st_size < 0.6 * (folder / WEIGHTS_NAME).stat().st_size
    loaded, _ = load_model_folder(half)
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert (torch.sigmoid(loaded(x)) - torch.sigmoid(model(x))).abs().max() < 1e-2


def test_existing_folder_is_not_overwritten(tmp_path):
    folder = save_tiny_model(tmp_path / "m")
    with pytest.raises(FileExistsError):
        save_tiny_model(folder)


def test_missing_and_broken_folders_give_clear_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no train_config.json"):
        read_model_config(tmp_path)
    (tmp_path / CONFIG_NAME).write_text("{not json")
    with pytest.raises(InvalidInputError, match="cannot read"):
        read_model_config(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"model_type": "segformer_b9"}))
    with pytest.raises(InvalidInputError, match="unknown model type"):
        read_model_config(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"model_type": "segformer_b0"}))
    with pytest.raises(ModelNotFoundError, match=WEIGHTS_NAME):
        load_model_folder(tmp_path)
    (tmp_path / WEIGHTS_NAME).write_bytes(b"\x80\x04garbage")  # e.g. a pickle renamed
    with pytest.raises(InvalidInputError, match="cannot read weights"):
        load_model_folder(tmp_path)


def test_weights_of_another_architecture_are_refused(tmp_path):
    folder = save_tiny_model(tmp_path / "m", "segformer_b0")
    cfg = json.loads((folder / CONFIG_NAME).read_text())
    cfg["model_type"] = "segformer_b1"
    cfg["architecture"] = {}
    (folder / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(InvalidInputError, match="do not fit segformer_b1"):
        load_model_folder(folder)


def test_newer_format_is_refused(tmp_path):
    (tmp_path / CONFIG_NAME).write_text(
        json.dumps({"model_type": "classical", "format_version": 99})
    )
    with pytest.raises(InvalidInputError, match="upgrade"):
        read_model_config(tmp_path)


def test_default_model_resolution(models_root, tmp_path, monkeypatch):
    from thermal_anomaly_segmenter.config import reload_settings

    assert resolve_model_dir(None).name == DEFAULT_MODEL_NAME
    other = save_tiny_model(tmp_path / "elsewhere" / "mine")
    assert resolve_model_dir(str(other)) == other.resolve()
    monkeypatch.setenv("TASEG_DEFAULT_MODEL", str(other))
    assert resolve_model_dir(None, reload_settings()) == other.resolve()
    with pytest.raises(ModelNotFoundError, match="not a model folder"):
        resolve_model_dir(str(tmp_path))
    assert [p.name for p in list_model_folders(models_root)] == sorted(
        ["classical", DEFAULT_MODEL_NAME])


def test_no_model_anywhere_is_a_clear_error(tmp_path, monkeypatch):
    from thermal_anomaly_segmenter.config import reload_settings

    monkeypatch.setenv("MODELS_PATH", str(tmp_path / "none"))
    monkeypatch.setenv("REMOTE_PATH", str(tmp_path / "none2"))
    try:
        with pytest.raises(ModelNotFoundError, match="no model folder found"):
            resolve_model_dir(None, reload_settings())
    finally:
        monkeypatch.undo()
        reload_settings()
