"""Run folders: run state, per-epoch CSV metrics and checkpoint I/O.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import pickle  # nosec B403
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thermal_anomaly_segmenter._compat import ensure_torchvision

ensure_torchvision()

import torch  # noqa: E402
from lightning.pytorch.plugins.io import TorchCheckpointIO  # noqa: E402

from thermal_anomaly_segmenter.config import PHASES, TrainOptions  # noqa: E402
from thermal_anomaly_segmenter.errors import InvalidInputError  # noqa: E402
from thermal_anomaly_segmenter.io.atomic import atomic_path, atomic_write  # noqa: E402
from thermal_anomaly_segmenter.io.csv_safe import SafeDictWriter  # noqa: E402

RUN_STATE = "run.json"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary sibling and renamed: never half a file on disk."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def append_csv_row(path: Path, row: dict[str, Any]) -> None:
    """Append a row to a CSV, widening the header when new columns appear."""
    rows = read_csv_rows(path)
    rows.append(row)
    write_csv_rows(path, rows)


def read_csv_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return [
            {k: _number(v) for k, v in row.items() if v not in (None, "")}
            for row in csv.DictReader(fh)
        ]


def write_csv_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = SafeDictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def epoch_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a phase's metrics.csv, one per epoch (a resumed epoch keeps its last row)."""
    by_epoch: dict[int, dict[str, Any]] = {}
    for row in read_csv_rows(path):
        by_epoch[int(row.get("epoch", 0))] = row
    return [by_epoch[e] for e in sorted(by_epoch)]


def _number(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _state_from_ckpt(path: Path) -> dict[str, torch.Tensor]:
    """Network weights of a Lightning checkpoint of our own run (``model.`` prefix removed)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InvalidInputError(f"checkpoint {path} refused: it holds more than weights "
                                f"({' '.join(str(exc).split())[:160]})") from None
    state = checkpoint["state_dict"]
    return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}


def _options_dict(options: TrainOptions) -> dict[str, Any]:
    data = dataclasses.asdict(options)
    data["train_phases"] = list(options.train_phases or ())
    if isinstance(options.input_size, (tuple, list)):
        data["input_size"] = list(options.input_size)
    return data


def _options_from_dict(data: dict[str, Any]) -> TrainOptions:
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    values = {k: v for k, v in data.items() if k in known}
    values["train_phases"] = tuple(values.get("train_phases", PHASES))
    if values.get("input_size") is not None:
        values["input_size"] = tuple(values["input_size"])
    return TrainOptions(**values)


@dataclass
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    run_dir: Path
    #: Test metrics of the final phase (``test_dataset_iou``, ``test_object_recall``, ...).
    metrics: dict[str, float]
    #: Test metrics of every phase that ran.
    phase_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Phases skipped because the time budget ran out.
    skipped_phases: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None
    mlflow_tracking_uri: str | None = None


def _unique_name(models_path: Path, base: str, reserve: bool) -> str:
    """``base`` or ``base-N``, free as a model folder and as a run folder.

    With ``reserve`` the run folder is created here, atomically, so two trainings started in
    the same second (two API requests, a sweep) never share one.
    """
    runs = models_path / ".runs"
    if reserve:
        runs.mkdir(parents=True, exist_ok=True)
    name, n = base, 1
    while True:
        if not (models_path / name).exists():
            if not reserve and not (runs / name).exists():
                return name
            if reserve:
                with contextlib.suppress(FileExistsError):
                    (runs / name).mkdir()
                    return name
        n += 1
        name = f"{base}-{n}"
