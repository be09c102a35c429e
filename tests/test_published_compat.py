"""Drop-in for code written against the published module: its constants, its in-process call
forms, its per-model configuration files and its model folders (issue 11).

Published model folders are built here the way the published code saves them: a Lightning
checkpoint dict (``state_dict`` under ``model.``, ``hyper_parameters`` with numpy mean/std,
ModelCheckpoint state) per phase folder, and for SegFormer the HF ``save_pretrained`` folder
``<ckpt>.dir`` next to it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from deepaas.model.v2.wrapper import UploadedFile

import api
from api.responses import ApiError
from thermal_anomaly_segmenter.config import PHASES, TrainOptions
from thermal_anomaly_segmenter.errors import InvalidInputError

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED_TYPES = ("segformer_b0", "segformer_b1", "segformer_b2", "segformer_b3",
                   "segformer_b4", "smp_deeplabV3plus", "smp_pspnet", "smp_unet")
MEAN, STD = np.array([-3.5, -3.5, 1.25]), np.array([4.0, 4.0, 2.5])


# --------------------------------------------------------------------------- constants


def test_api_config_exposes_the_published_constants():
    from thermal_anomaly_segmenter import config as core

    for name in ("DATA_PATH", "MODELS_PATH", "REMOTE_PATH"):
        assert isinstance(getattr(api.config, name), Path), name
        assert getattr(api.config, name) == getattr(core, name)
    assert isinstance(core.REMOTE_DATA_PATH, Path) and isinstance(core.REMOTE_MODELS_PATH, Path)
    assert sorted(api.config.MODEL_VARIANTS) == sorted(PUBLISHED_TYPES)
    assert api.config.MODEL_VARIANTS["segformer_b0"] == "segfB0Poly"
    assert list(PHASES) == api.config.TRAIN_PHASES
    assert api.config.LOSS_FUNCTIONS["Tversky"] == "tversky_0.3_0.7"
    assert set(api.config.LOSS_FUNCTIONS) <= set(api.schemas.TrainArgsSchema().fields[
        "loss_fn"].validate.choices)
    assert set(api.config.MODEL_VARIANTS) <= set(api.schemas.TrainArgsSchema().fields[
        "model_type"].validate.choices)
    assert isinstance(api.config.MLFLOW_URI, str) and api.config.MLFLOW_URI
    assert isinstance(api.config.MLFLOW_USERNAME, str)
    assert isinstance(api.config.MLFLOW_PASSWORD, str)
    assert api.config.API_NAME == "thermal_anomaly_segmenter"
    assert {"name", "license", "version", "author-email"} <= set(api.config.PROJECT_METADATA)
    from api.config import DATA_PATH  # the published import form

    assert DATA_PATH == api.config.DATA_PATH


def _paths_in_fresh_process(cwd: Path, env: dict[str, str]) -> dict[str, str]:
    code = (
        "import json, os, api.config as c\n"
        "from thermal_anomaly_segmenter import config as k\n"
        "os.chdir('/')\n"  # a later chdir must not move the folders
        "s = k.get_settings()\n"
        "print(json.dumps({n: str(getattr(c, n)) for n in ('DATA_PATH', 'MODELS_PATH', "
        "'REMOTE_PATH')} | {n: str(getattr(k, n)) for n in ('REMOTE_DATA_PATH', "
        "'REMOTE_MODELS_PATH')} | {'used_data': str(s.data_path), "
        "'used_models': str(s.models_path), 'types': [type(c.DATA_PATH).__name__, "
        "type(c.MODELS_PATH).__name__]}))\n"
    )
    base = {k: v for k, v in os.environ.items()
            if k not in ("DATA_PATH", "MODELS_PATH", "REMOTE_PATH", "REMOTE_DATA_PATH",
                         "REMOTE_MODELS_PATH")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**base, **env},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_paths_follow_the_published_semantics(tmp_path):
    unset = _paths_in_fresh_process(tmp_path, {"PYTHONPATH": str(ROOT)})
    assert unset["DATA_PATH"] == str(ROOT / "data")  # the package's location, not the cwd
    assert unset["MODELS_PATH"] == str(ROOT / "models")
    assert unset["REMOTE_DATA_PATH"] == str(Path(unset["REMOTE_PATH"]) / "data")
    relative = _paths_in_fresh_process(tmp_path, {
        "PYTHONPATH": str(ROOT), "DATA_PATH": "mydata", "MODELS_PATH": "sub/models",
        "REMOTE_PATH": str(tmp_path / "remote"), "REMOTE_MODELS_PATH": "rm"})
    # Relative values stay relative in the published constants (code written against the
    # published module chdirs and resolves them anew); the package itself uses them resolved
    # against the working directory at start, also after the chdir('/').
    assert relative["DATA_PATH"] == "mydata" and relative["MODELS_PATH"] == "sub/models"
    assert relative["types"] == ["PosixPath", "PosixPath"]
    assert relative["used_data"] == str(tmp_path / "mydata")
    assert relative["used_models"] == str(tmp_path / "sub" / "models")
    assert relative["REMOTE_MODELS_PATH"] == str(tmp_path / "rm")
    assert relative["REMOTE_DATA_PATH"] == str(tmp_path / "remote" / "data")


def test_relative_paths_as_the_published_tests_use_them(tmp_path):
    """Relative DATA_PATH/MODELS_PATH, then a chdir into a folder holding copies of both and
    arguments spelled from the constants (f"{MODELS_PATH}/name", Path(DATA_PATH, file)), as
    the published test fixtures do: the predict finds the frame and the model there."""
    start, moved = tmp_path / "start", tmp_path / "moved"
    for base in (start, moved):
        shutil.copytree(ROOT / "models" / "unet_mobilenetv2_synthetic",
                        base / "tm" / "models" / "unet_mobilenetv2_synthetic")
        (base / "tm" / "data").mkdir()
        shutil.copyfile(ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4",
                        base / "tm" / "data" / "frame.npy.lz4")
    code = (
        "import os, json\nfrom pathlib import Path\nimport api\n"
        "from deepaas.model.v2.wrapper import UploadedFile\n"
        f"os.chdir({str(moved)!r})\n"
        "f = Path(api.config.DATA_PATH, 'frame.npy.lz4')\n"
        "a = api.predict(input_file=UploadedFile('input_file', f, 'x', 'frame.npy.lz4'), "
        "model_dir=f'{api.config.MODELS_PATH}/unet_mobilenetv2_synthetic', threshold=0.5, "
        "accept='application/json')\n"
        "print(json.dumps([str(api.config.DATA_PATH), str(api.config.MODELS_PATH), "
        "a['result']]))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASEG_", "MLFLOW_"))}
    env.update(PYTHONPATH=str(ROOT), DATA_PATH="tm/data", MODELS_PATH="tm/models",
               REMOTE_PATH=str(tmp_path / "remote"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=start, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data, models, result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (data, models) == ("tm/data", "tm/models")
    # A relative model_dir is read from the current folder, as published: the outputs go
    # to <model_dir>/predictions there (the published test looks for that folder).
    assert Path(result).is_relative_to(moved / "tm" / "models"), result
    assert Path(result).is_file()
    assert not (start / "tm" / "models" / "unet_mobilenetv2_synthetic" / "predictions").exists()


def test_constants_stay_current_after_reload(tmp_path, monkeypatch):
    from thermal_anomaly_segmenter.config import reload_settings

    monkeypatch.setenv("DATA_PATH", str(tmp_path))
    reload_settings()
    try:
        assert tmp_path == api.config.DATA_PATH  # as given
    finally:
        monkeypatch.undo()
        reload_settings()


# --------------------------------------------------------------------------- call forms


def _upload(path: Path, original: str | None = None) -> UploadedFile:
    return UploadedFile("input_file", path, "application/octet-stream", original or path.name)


def test_in_process_predict_with_path_arguments_keeps_the_callers_file(models_root, sample_path):
    # The caller's own frame, in a folder under the temp folder: never deleted or modified.
    with tempfile.TemporaryDirectory() as folder:
        own = Path(folder) / sample_path.name
        shutil.copyfile(sample_path, own)
        before = own.read_bytes()
        model_dir = models_root / "unet_mobilenetv2_synthetic"
        answer = api.predict(input_file=_upload(own), model_dir=model_dir, threshold=0.5,
                             accept="application/json")
        assert Path(answer["result"]).is_file()  # the published answer key
        assert own.read_bytes() == before
        with pytest.raises(ApiError) as info:  # failed validation: still kept
            api.predict(input_file=_upload(own), model_dir=model_dir, threshold=2.0)
        assert info.value.status == 422
        assert own.read_bytes() == before


def test_only_deepaas_temp_copies_are_removed(tmp_path, sample_path):
    from api import uploads

    temp = Path(tempfile.gettempdir())
    fd, name = tempfile.mkstemp()  # what DEEPaaS does with an HTTP upload
    os.close(fd)
    copy = Path(name)
    assert uploads.is_deepaas_temp_copy(_upload(copy, "frame.npy.lz4"))
    with pytest.raises(ApiError):
        api.predict(input_file=_upload(copy, "frame.npy.lz4"), threshold=2.0)
    assert not copy.exists()
    # A caller's file that merely looks like one, or lies elsewhere: kept.
    lookalike = temp / "tmpzz9_keep"
    lookalike.write_bytes(b"x")
    try:
        assert not uploads.is_deepaas_temp_copy(_upload(lookalike))  # same original name
        linked = tmp_path / "frame.npy.lz4"
        os.link(lookalike, linked)
        assert not uploads.is_deepaas_temp_copy(_upload(lookalike, "frame.npy.lz4"))  # 2 names
    finally:
        lookalike.unlink()
    own = tmp_path / "tmpabcdefgh"
    own.write_bytes(b"x")
    assert not uploads.is_deepaas_temp_copy(_upload(own, "frame.npy.lz4"))  # not the temp dir
    uploads.remove_temp_copy(_upload(own, "frame.npy.lz4"))
    assert own.exists()


def test_train_args_take_one_phase_as_a_string_and_paths(models_root, tmp_path, monkeypatch):
    from api import schemas
    from thermal_anomaly_segmenter.config import reload_settings
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset

    data = tmp_path / "data"
    write_dataset(data / "synth", 4, seed=1, height=64, width=80)
    monkeypatch.setenv("DATA_PATH", str(data))
    reload_settings()
    loaded = schemas.load_args(schemas.TrainArgsSchema(), {
        "train_phases": "fine_tune", "dataset_path": data / "synth"})
    assert loaded["train_phases"] == ["fine_tune"]
    assert loaded["dataset_path"] == str((data / "synth").resolve())
    with pytest.raises(ApiError) as info:
        api.train(train_phases="warm_up", dataset_path=data / "synth")
    assert info.value.status == 422 and "train_phases" in info.value.message


@pytest.mark.slow
def test_in_process_train_in_the_published_form(models_root, tmp_path, monkeypatch):
    from thermal_anomaly_segmenter.config import reload_settings
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset

    data = tmp_path / "data"
    write_dataset(data / "synth", 6, seed=1, height=64, width=80)
    monkeypatch.setenv("DATA_PATH", str(data))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    reload_settings()
    result = api.train(model_type="segformer_b0", train_phases="fine_tune",
                       dataset_path=Path(api.config.DATA_PATH) / "synth",
                       data_augmentation=True, loss_fn="Tversky", batch_size=2,
                       worker_count=0, seed=1, gpu=False, mlflow=False, epochs=1)
    assert 0.0 <= result["test_dataset_iou"] <= 1.0
    config = json.loads((Path(result["model_dir"]) / "train_config.json").read_text())
    assert config["train_args"]["train_phases"] == ["fine_tune"]


def test_a_published_folder_of_another_kind_is_refused_naming_it(models_root, sample_path):
    """The published test suite's dummy folder (``{"model": "dummy_model"}`` and a checkpoint)
    is a model folder by the published rule (it holds train_config.json) but neither kind the
    published TASeg could load: predict answers 400 naming the kind, and writes nothing."""
    folder = models_root / "dummy"
    folder.mkdir()
    (folder / "train_config.json").write_text('{"model": "dummy_model"}')
    (folder / "epoch=0.ckpt").write_bytes(b"never read")
    assert str(folder) in api.get_metadata()["models_local"]
    with tempfile.TemporaryDirectory() as temp:
        own = Path(temp) / sample_path.name
        shutil.copyfile(sample_path, own)
        with pytest.raises(ApiError) as info:
            api.predict(input_file=_upload(own), model_dir=folder, threshold=0.5,
                        accept="application/json")
        assert own.is_file()
    assert info.value.status == 400
    assert "'dummy_model'" in info.value.message and "segformer or smp" in info.value.message
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0.ckpt", "train_config.json"]


def _frames_only_data(tmp_path: Path, monkeypatch) -> Path:
    """DATA_PATH holding one frame under train/ and no dataset sets (the published tests'
    tests/data); the settings are reloaded for it."""
    from thermal_anomaly_segmenter.config import reload_settings

    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    shutil.copyfile(ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4",
                    data / "train" / "KA1_DJI_0_0095_R.npy.lz4")
    monkeypatch.setenv("DATA_PATH", str(data))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    reload_settings()
    return data


def test_dataset_content_is_checked_where_training_starts(models_root, tmp_path, monkeypatch):
    """As published, dataset_path is any existing folder when the request is read; what it
    holds is checked when the training starts, refused there with the reason, and nothing is
    written for it."""
    from api import schemas

    data = _frames_only_data(tmp_path, monkeypatch)
    loaded = schemas.load_args(schemas.TrainArgsSchema(), {"dataset_path": data})
    assert loaded["dataset_path"] == str(data.resolve())
    before = sorted(p.relative_to(models_root) for p in models_root.rglob("*"))
    with pytest.raises(ApiError) as info:
        api.train(model_type="segformer_b0", train_phases="fine_tune", dataset_path=data,
                  batch_size=1, worker_count=0, seed=1, gpu=False, mlflow=False, epochs=1)
    assert info.value.status == 404
    assert "neither generated_set nor manual_set" in info.value.message
    assert sorted(p.relative_to(models_root) for p in models_root.rglob("*")) == before
    for missing, reason in ((data / "nothing_here", "does not exist"),
                            (data / "train" / "KA1_DJI_0_0095_R.npy.lz4", "not a folder")):
        with pytest.raises(ApiError) as info:
            api.train(dataset_path=missing, gpu=False, mlflow=False)
        assert info.value.status == 422 and reason in info.value.message


def test_train_reaches_the_core_through_one_call_point(models_root, tmp_path, monkeypatch):
    """``thermal_anomaly_segmenter.train.train`` is the one core call of api.train (where the
    published tests mocked ``train_segmentation``): it gets the request as TrainOptions and
    its metrics, model and run folder are the answer. The training itself is tested in
    tests/test_training_api.py; here only the adapter's hand-over."""
    from unittest.mock import patch

    from thermal_anomaly_segmenter.train.runs import TrainResult

    data = _frames_only_data(tmp_path, monkeypatch)
    done = TrainResult(model_dir=models_root / "m", run_dir=models_root / ".runs" / "m",
                       metrics={"test_dataset_iou": 0.25, "test_per_image_dice": 0.5})
    with patch("thermal_anomaly_segmenter.train.train", autospec=True,
               return_value=done) as core:
        answer = api.train(model_type="smp_unet", train_phases="fine_tune",
                           dataset_path=Path(api.config.DATA_PATH), data_augmentation=True,
                           loss_fn="Dice", batch_size=1, worker_count=1, seed=3, gpu=False,
                           mlflow=False)
    core.assert_called_once()
    options = core.call_args.args[0]
    assert isinstance(options, TrainOptions)
    assert (options.model_type, options.train_phases, options.loss_fn) == (
        "smp_unet", ("fine_tune",), "Dice")
    assert (options.batch_size, options.worker_count, options.seed) == (1, 1, 3)
    assert Path(options.dataset_path) == data.resolve()
    assert answer == {"test_dataset_iou": 0.25, "test_per_image_dice": 0.5,
                      "model_dir": str(models_root / "m"),
                      "run_dir": str(models_root / ".runs" / "m")}


# --------------------------------------------------------------------------- config files


@pytest.mark.parametrize("model_type", [*PUBLISHED_TYPES, "segformer_b5"])
def test_per_type_configuration_files_hold_the_published_recipe(model_type):
    from thermal_anomaly_segmenter.models.recipe_files import config_path, recipe_for

    data = json.loads(config_path(model_type).read_text())
    family = "segformer" if model_type.startswith("segformer") else "smp"
    assert data["model"] == family
    assert data["train_phase_order"] == list(PHASES)
    assert data["loss_fn"] == "tversky_0.3_0.7" and data["lr_scheduler"] == "poly"
    if model_type in api.config.MODEL_VARIANTS:
        assert data["config_name"].startswith(api.config.MODEL_VARIANTS[model_type])
    recipe = recipe_for(model_type)
    big = model_type in ("segformer_b4", "segformer_b5")
    assert [p.epochs for p in recipe.phases.values()] == [15, 35, 95 if big else 60]
    lrs = [1e-4, 6e-5, 2.5e-5] if family == "segformer" else [3e-3, 2e-3, 1e-3]
    assert [p.lr for p in recipe.phases.values()] == lrs
    assert [p.frozen for p in recipe.phases.values()] == [True, False, False]
    assert [p.set_name for p in recipe.phases.values()] == [
        "generated_set", "generated_set", "manual_set"]
    assert recipe.phases["fine_tune"].repeat_train_images == 2
    assert recipe.batch_size == (8 if big else 16) and recipe.loss_fn == "Tversky"
    if family == "smp":
        assert data["smp_encoder"] == "resnet101"


def _edited_configs(tmp_path: Path) -> Path:
    from thermal_anomaly_segmenter.models.recipe_files import CONFIG_DIR

    folder = tmp_path / "configurations"
    shutil.copytree(CONFIG_DIR, folder)
    path = folder / "train_smp_unet.json"
    data = json.loads(path.read_text())
    data["batch_size"] = 3
    data["loss_fn"] = "dice"
    data["train_phases"]["fine_tune"].update(epochs=7, lr=0.0005, freeze_encoder=True)
    data["datasets"]["manual_dataset"].update(repeat_train_images=4, augmentation_range=[-1, 3])
    path.write_text(json.dumps(data))
    return folder


def test_an_edited_configuration_file_takes_effect_and_explicit_values_win(tmp_path,
                                                                           monkeypatch):
    from thermal_anomaly_segmenter.models import recipe_files
    from thermal_anomaly_segmenter.train.recipe import phase_recipes

    monkeypatch.setattr(recipe_files, "CONFIG_DIR", _edited_configs(tmp_path))
    options = TrainOptions(model_type="smp_unet", train_phases=("fine_tune",))
    [fine] = phase_recipes(options)
    assert (fine.epochs, fine.lr, fine.frozen, fine.repeat_train_images,
            fine.augmentation_range) == (7, 0.0005, True, 4, (-1.0, 3.0))
    resolved = recipe_files.published_defaults(
        TrainOptions(model_type="smp_unet", recipe="published").resolved("gpu"), {"model_type"})
    assert resolved.batch_size == 3 and resolved.loss_fn == "Dice"
    explicit = TrainOptions(model_type="smp_unet", train_phases=("fine_tune",), epochs=2,
                            lr={"fine_tune": 0.01}, batch_size=5, loss_fn="BCE",
                            recipe="published")
    [fine] = phase_recipes(explicit)
    assert (fine.epochs, fine.lr) == (2, 0.01)
    kept = recipe_files.published_defaults(explicit.resolved("gpu"),
                                           {"model_type", "batch_size", "loss_fn"})
    assert kept.batch_size == 5 and kept.loss_fn == "BCE"
    # The CPU recipe keeps its own batch size and loss.
    cpu = recipe_files.published_defaults(TrainOptions().resolved("cpu"), set())
    assert cpu.recipe == "cpu" and cpu.loss_fn == "Dice" and cpu.batch_size == 8


def test_published_config_file_as_taseg_train_config(tmp_path):
    from thermal_anomaly_segmenter.models.recipe_files import options_from_file, read_recipe_file

    path = _edited_configs(tmp_path) / "train_smp_unet.json"
    values = options_from_file(path)
    assert values["model_type"] == "smp_unet" and values["batch_size"] == 3
    assert values["loss_fn"] == "Dice" and values["train_phases"] == tuple(PHASES)
    TrainOptions(**values)  # valid options
    bad = json.loads(path.read_text())
    bad["train_phases"]["fine_tune"]["lr"] = -1
    path.write_text(json.dumps(bad))
    with pytest.raises(InvalidInputError, match=r"train_phases\.fine_tune\.lr"):
        read_recipe_file(path)
    proc = subprocess.run([sys.executable, "-m", "thermal_anomaly_segmenter", "train",
                           "--config", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "train_phases.fine_tune.lr" in proc.stderr and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- model folders


def _callback_state(score: float) -> dict:
    import torch

    key = ("ModelCheckpoint{'monitor': 'valid_dataset_iou', 'mode': 'max', "
           "'every_n_train_steps': 0, 'every_n_epochs': 1, 'train_time_interval': None}")
    return {key: {"monitor": "valid_dataset_iou", "current_score": torch.tensor(score),
                  "best_model_score": torch.tensor(score), "best_model_path": "x"}}


def save_published_checkpoint(path: Path, net, hparams: dict, score: float) -> None:
    """A checkpoint as Lightning writes it for the published LightningModules."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "epoch": 3, "global_step": 40, "pytorch-lightning_version": "2.1.0",
        "state_dict": {f"model.{k}": v.clone() for k, v in net.state_dict().items()},
        "loops": {}, "callbacks": _callback_state(score), "optimizer_states": [],
        "lr_schedulers": [], "hparams_name": "kwargs",
        "hyper_parameters": {"mean": MEAN.copy(), "std": STD.copy(), "lr_scheduler": "poly",
                             "loss_fn": "tversky_0.3_0.7", **hparams},
    }, path)


def make_published_folder(root: Path, kind: str) -> tuple[Path, object]:
    """A published model folder with a tiny random network; returns it and the network whose
    weights the deliberate choice must pick (the best of the last phase)."""
    import torch

    from thermal_anomaly_segmenter.models.registry import build_model

    folder = root / f"published_{kind}"
    config = json.loads((ROOT / "thermal_anomaly_segmenter" / "configurations" /
                         f"train_{'segformer_b0' if kind == 'segformer' else 'smp_unet'}.json"
                         ).read_text())
    hparams: dict = {"lr": 2.5e-5}
    if kind == "segformer":
        hparams.update(id2label={1: "thermal"}, segformer_pretrained_model=config[
            "pretrained_weights"], load_pretrained=True)
    else:
        config["smp_encoder"] = "resnet18"  # tiny; the published default is resnet101
        hparams.update(arch="Unet", encoder_name="resnet18", in_channels=3)
    folder.mkdir(parents=True)
    (folder / "train_config.json").write_text(json.dumps(config))
    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = build_model("segformer_b0" if kind == "segformer" else "smp_unet",
                            {"encoder_name": "resnet18"} if kind == "smp" else None)
        nets.append(model.net.eval())
    checkpoints = folder / "checkpoints"
    # Earlier phase: a high score that must not win (it is not the last phase).
    files = [(checkpoints / "pre_train_unfrozen" / "epoch=30-step=310.ckpt", nets[0], 0.95),
             # Last phase: sort order puts epoch=12 first, the stored score picks epoch=5.
             (checkpoints / "fine_tune" / "epoch=12-step=120.ckpt", nets[1], 0.40),
             (checkpoints / "fine_tune" / "epoch=5-step=50.ckpt", nets[2], 0.70)]
    for path, net, score in files:
        save_published_checkpoint(path, net, hparams, score)
        if kind == "segformer":
            net.save_pretrained(f"{path}.dir")
    save_published_checkpoint(checkpoints / "fine_tune" / "last.ckpt", nets[1], hparams, 0.4)
    return folder, nets[2]


def published_probability(net, frame) -> np.ndarray:
    """Published inference: per-channel (x - mean) / std, logits upsampled bilinearly."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(((frame.data - MEAN) / STD).astype(np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        out = net(pixel_values=x).logits if hasattr(net, "segformer") else net(x)
    out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return out.sigmoid()[0, 0].numpy()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("published")
    return {kind: make_published_folder(root, kind) for kind in ("segformer", "smp")}


@pytest.mark.parametrize("kind", ["segformer", "smp"])
def test_published_folder_loads_imports_and_predicts_identically(published, kind, tmp_path,
                                                                 sample_frame):
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.models.folder import WEIGHTS_NAME
    from thermal_anomaly_segmenter.models.load import read_model_config
    from thermal_anomaly_segmenter.models.published import choose_checkpoint, import_published

    folder, best_net = published[kind]
    choice = choose_checkpoint(folder)
    assert choice.phase == "fine_tune" and choice.path.name == "epoch=5-step=50.ckpt"
    config = read_model_config(folder)
    assert config.model_type == ("segformer_b0" if kind == "segformer" else "smp_unet")
    assert config.norm.mode == "dataset" and config.norm.mean == tuple(MEAN)
    options = PredictOptions(device="cpu")
    before = Segmenter.from_folder(folder, device="cpu", backend="torch").probabilities(
        [sample_frame], options)[0]
    np.testing.assert_allclose(before, published_probability(best_net, sample_frame),
                               atol=1e-5)
    dest, _ = import_published(folder, tmp_path / "imported")
    assert (dest / WEIGHTS_NAME).is_file()
    assert json.loads((dest / "train_config.json").read_text())["model_type"] == config.model_type
    after = Segmenter.from_folder(dest, device="cpu", backend="torch").probabilities(
        [sample_frame], options)[0]
    assert np.array_equal(before, after)
    with pytest.raises(InvalidInputError, match="exists"):
        import_published(folder, dest)  # nothing is overwritten


def test_a_network_answering_published_outputs_predicts_like_the_published_inference(
        published, sample_frame):
    """The published loader's contract: a network whose forward returns an object carrying
    ``.logits`` at a coarser resolution (a Hugging Face output, the published suite's dummy
    model) is run like the published inference: logits upsampled bilinearly to the frame."""
    import types

    import torch

    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.models.load import read_model_config

    folder, net = published["smp"]

    class Coarse(torch.nn.Module):  # answers at a quarter of the input, as SegFormer does
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return types.SimpleNamespace(logits=self.net(x)[..., ::4, ::4])

    segmenter = Segmenter(read_model_config(folder), Coarse().eval(), device="cpu")
    got = segmenter.probabilities([sample_frame], PredictOptions(device="cpu"))[0]

    class Published(torch.nn.Module):  # what published_probability's interpolation reads
        def forward(self, x):
            return net(x)[..., ::4, ::4]

    assert got.shape == sample_frame.data.shape[:2]
    np.testing.assert_allclose(got, published_probability(Published().eval(), sample_frame),
                               atol=1e-5)


def test_checkpoint_outside_phase_folders_and_last_ckpt(published, tmp_path):
    from thermal_anomaly_segmenter.errors import ModelNotFoundError
    from thermal_anomaly_segmenter.models.published import choose_checkpoint

    folder = tmp_path / "flat"
    folder.mkdir()
    shutil.copyfile(published["smp"][0] / "train_config.json", folder / "train_config.json")
    shutil.copyfile(published["smp"][0] / "checkpoints" / "fine_tune" / "last.ckpt",
                    folder / "last.ckpt")
    with pytest.raises(ModelNotFoundError, match="no Lightning checkpoint"):
        choose_checkpoint(folder)  # last.ckpt holds the last weights, not the best
    shutil.copyfile(folder / "last.ckpt", folder / "epoch=0.ckpt")
    choice = choose_checkpoint(folder)
    assert choice.path == folder / "epoch=0.ckpt" and "no phase folder" in choice.phase


def test_published_folder_via_the_api_and_cli(published, models_root, sample_path, tmp_path):
    folder, _ = published["segformer"]
    shutil.copytree(folder, models_root / "published")
    answer = api.predict(input_file=_upload(sample_path), model_dir="published",
                         accept="application/json")
    assert Path(answer["result"]).is_file()
    assert answer["model"]
    dest = models_root / "imported"
    proc = subprocess.run([sys.executable, "-m", "thermal_anomaly_segmenter", "import-published",
                           str(folder), str(dest)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "epoch=5-step=50.ckpt" in proc.stdout and proc.stdout.strip().endswith(str(dest))
    again = subprocess.run([sys.executable, "-m", "thermal_anomaly_segmenter",
                            "import-published", str(folder), str(dest)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "exists" in again.stderr


class _Payload:
    """Unpickling this would call ``Path.touch(marker)``: proof of code run from a pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_carrying_code_is_refused_and_never_runs(published, tmp_path):
    import torch

    from thermal_anomaly_segmenter.models.load import load_model_folder

    folder = tmp_path / "hostile"
    shutil.copytree(published["smp"][0], folder)
    marker = tmp_path / "pwned"
    target = folder / "checkpoints" / "fine_tune" / "epoch=5-step=50.ckpt"
    checkpoint = torch.load(target, weights_only=False)  # our own test file  # nosec B614
    checkpoint["hyper_parameters"]["mean"] = _Payload(marker)
    torch.save(checkpoint, target)
    (folder / "checkpoints" / "fine_tune" / "epoch=12-step=120.ckpt").unlink()
    with pytest.raises(InvalidInputError, match="refused") as info:
        load_model_folder(folder)
    assert "getattr" in str(info.value)  # how pickle names Path.touch
    assert not marker.exists()


def test_published_folder_evaluates_and_starts_a_fine_tune(published, tmp_path):
    from thermal_anomaly_segmenter.config import TrainOptions, get_settings
    from thermal_anomaly_segmenter.evaluation.evaluate import EvaluateOptions, evaluate
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset
    from thermal_anomaly_segmenter.train.loop import _starting_point

    folder, _ = published["smp"]
    data = write_dataset(tmp_path / "synth", 4, seed=2, height=64, width=80)
    result = evaluate(folder, data, "test",
                      EvaluateOptions(out_dir=tmp_path / "eval", device="cpu"))
    assert result["model_type"] == "smp_unet" and result["n_frames"] >= 1
    assert Path(result["metrics_json"]).is_file()
    architecture, state, start = _starting_point(
        TrainOptions(model_type="smp_unet", weights=str(folder)), folder_norm(folder),
        get_settings())
    assert architecture["encoder_name"] == "resnet18"
    assert state is not None and any(k.startswith("net.encoder.") for k in state)
    assert start == {"source": str(folder), "kind": "weights"}


def folder_norm(folder: Path):
    from thermal_anomaly_segmenter.models.load import read_model_config

    return read_model_config(folder).norm


# --------------------------------------------------------------------------- loader workers


def test_a_spawned_process_unpickles_the_dataset_with_lightnings_worker_init(tmp_path):
    """What a spawned loader worker receives: the dataset, then Lightning's worker init
    function. Unpickled in a fresh interpreter, the dataset must come first and make the
    rest importable (torchvision repaired before lightning pulls it in)."""
    import pickle
    import pickletools

    from thermal_anomaly_segmenter._compat import ensure_torchvision

    ensure_torchvision()  # this process imports lightning itself, below
    from lightning.fabric.utilities.seed import pl_worker_init_function

    from thermal_anomaly_segmenter.io.datasets import load_split
    from thermal_anomaly_segmenter.models.normalization import Normalization
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset
    from thermal_anomaly_segmenter.train.augmentation import ThermalAugment
    from thermal_anomaly_segmenter.train.dataset import ThermalDataset

    root = write_dataset(tmp_path / "synth", 4, seed=1, height=64, width=80)
    split = load_split(root / "manual_set", "train")
    dataset = ThermalDataset(split.samples, Normalization(), (64, 80), ThermalAugment())
    payload = pickle.dumps((dataset, pl_worker_init_function))
    first = next(arg for op, arg, _ in pickletools.genops(payload)
                 if op.name in ("GLOBAL", "SHORT_BINUNICODE", "BINUNICODE"))
    assert first == "thermal_anomaly_segmenter._spawn_safe"
    (tmp_path / "payload.pkl").write_bytes(payload)
    code = ("import pickle, sys\n"
            "dataset, init = pickle.loads(open(sys.argv[1], 'rb').read())\n"
            "print(len(dataset), dataset[0]['image'].shape, init.__name__)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "payload.pkl")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pl_worker_init_function" in proc.stdout
