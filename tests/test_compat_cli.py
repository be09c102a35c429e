"""The published compatibility CLI at the repository root: ``python -m cli {train,predict}``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cli
from api import schemas
from thermal_anomaly_segmenter.config import DEFAULT_MODEL_NAME

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("command", ["train", "predict"])
def test_help_works_from_the_repo_root(command):
    proc = run_cli(command, "--help")
    assert proc.returncode == 0, proc.stderr
    if command == "predict":
        for flag in ("--input_filepath", "--model_dir", "--threshold", "--accept"):
            assert flag in proc.stdout
    else:
        for flag in ("--model_type", "--train_phases", "--dataset_path", "--data_augmentation",
                     "--no-data_augmentation", "--loss_fn", "--batch_size", "--worker_count",
                     "--seed", "--gpu", "--mlflow", "--epochs", "--max_time"):
            assert flag in proc.stdout


def parse(*argv: str) -> dict:
    args = cli.build_parser().parse_args(list(argv))
    return {k: v for k, v in vars(args).items() if k != "command"}


def test_booleans_take_true_false_and_no_forms():
    assert parse("train", "--data_augmentation", "false") == {"data_augmentation": False}
    assert parse("train", "--mlflow", "TRUE") == {"mlflow": True}
    assert parse("train", "--gpu") == {"gpu": True}
    assert parse("train", "--no-mlflow", "--no-gpu") == {"mlflow": False, "gpu": False}


def test_train_phases_take_several_values_and_defaults_come_from_the_schema(models_root):
    values = parse("train", "--train_phases", "fine_tune", "pre_train_frozen")
    assert values == {"train_phases": ["fine_tune", "pre_train_frozen"]}
    loaded = schemas.load_args(schemas.TrainArgsSchema(), values)
    assert loaded["train_phases"] == ["fine_tune", "pre_train_frozen"]
    assert loaded["batch_size"] == 16 and loaded["seed"] == 10 and loaded["mlflow"] is True
    assert loaded["loss_fn"] == "Tversky" and loaded["model_type"] == "segformer_b0"


@pytest.mark.parametrize("argv", [
    ("train", "--mlflow", "maybe"),
    ("train", "--train_phases", "warm_up"),
    ("train", "--loss_fn", "MSE"),
    ("predict", "--input_filepath"),
])
def test_bad_usage_is_exit_2(argv):
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(list(argv))
    assert info.value.code == 2


def test_predict_without_input_defaults_to_the_shipped_sample_and_gpu_false_parses():
    assert Path(parse("predict")["input_file"]) == cli.SAMPLE_FRAME
    assert cli.SAMPLE_FRAME.is_file()
    assert parse("train", "--gpu", "False", "--mlflow", "False") == {"gpu": False,
                                                                      "mlflow": False}


def test_schema_arguments_mirror_the_schema():
    parser = argparse.ArgumentParser()
    cli.add_schema_arguments(parser, schemas.PredArgsSchema())
    dests = {a.dest for a in parser._actions}
    assert set(schemas.PredArgsSchema().fields) <= dests


def test_predict_prints_the_json_report(sample_path, models_root):
    proc = run_cli("predict", "--input_filepath", sample_path, "--threshold", "0.4",
                   env={"MODELS_PATH": str(models_root)})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["threshold"] == 0.4 and doc["summary"]["count"] >= 1
    assert Path(doc["result"]).parent == models_root / DEFAULT_MODEL_NAME / "predictions"
    assert sample_path.is_file()


def test_predict_writes_binary_answers_to_output(sample_path, models_root, tmp_path, capsys):
    out = tmp_path / "overlay.png"
    code = cli.main(["predict", "--input_filepath", str(sample_path), "--accept", "image/png",
                     "--output", str(out)])
    assert code == 0 and out.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(("argv", "needle"), [
    (["predict", "--input_filepath", "/etc/hostname"], "not a TASeg frame"),
    (["predict", "--input_filepath", "/nonexistent.npy.lz4"], "nonexistent"),
    (["predict", "--input_filepath", "x", "--model_dir", "/etc"], "not inside"),
    (["predict", "--input_filepath", "x", "--threshold", "1.5"], "threshold"),
    (["train", "--dataset_path", "/etc"], "not inside"),
])
def test_errors_are_one_line_and_exit_2(models_root, capsys, argv, needle):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


@pytest.mark.slow
def test_tiny_training(models_root, tmp_path, monkeypatch, capsys):
    pytest.importorskip("lightning")
    from thermal_anomaly_segmenter.config import reload_settings
    from thermal_anomaly_segmenter.scenes.synthetic import write_dataset

    write_dataset(tmp_path / "data" / "ds", 4, seed=2, height=64, width=80)
    monkeypatch.setenv("DATA_PATH", str(tmp_path / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    reload_settings()
    code = cli.main(["train", "--train_phases", "fine_tune", "--epochs", "1", "--batch_size", "2",
                     "--worker_count", "0", "--no-gpu", "--mlflow", "false",
                     "--data_augmentation", "false"])
    assert code == 0
    out = capsys.readouterr().out  # Lightning prints its model summary first
    result = json.loads(out[out.rfind("\n{") + 1:])
    assert 0.0 <= result["test_dataset_iou"] <= 1.0
    assert (Path(result["model_dir"]) / "train_config.json").is_file()
