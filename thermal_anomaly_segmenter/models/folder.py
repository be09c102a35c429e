"""The model folder: what training writes and inference loads, without network or pickles.

Layout (in the spirit of Hugging Face ``save_pretrained``)::

    <model_dir>/train_config.json   model type, architecture, normalisation, training size,
                                    training arguments, package version
    <model_dir>/model.safetensors   weights (absent for the classical model)

Folders are written to a temporary sibling and renamed into place, so a crash never leaves a
half-written model where a reader could load it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thermal_anomaly_segmenter.config import GSD_MAX_M
from thermal_anomaly_segmenter.errors import InvalidInputError, ModelNotFoundError
from thermal_anomaly_segmenter.io.atomic import move_into_place
from thermal_anomaly_segmenter.models.normalization import Normalization
from thermal_anomaly_segmenter.models.registry import get_spec, resolve_architecture

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CONFIG_NAME = "train_config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
#: Largest train_config.json read (a real one is a few KB).
CONFIG_MAX_BYTES = 2**20


@dataclass
class ModelConfig:
    """Contents of ``train_config.json``."""

    model_type: str
    architecture: dict[str, Any] = field(default_factory=dict)
    normalization: dict[str, Any] = field(default_factory=lambda: Normalization().to_dict())
    #: Frame size (height, width) the model was trained on; inference tiles larger frames.
    input_size: tuple[int, int] = (512, 640)
    #: Threshold recommended for this model (e.g. the best-F1 threshold of an evaluation).
    threshold: float = 0.5
    #: Calibration of the probabilities (:mod:`~thermal_anomaly_segmenter.inference.calibration`);
    #: ``{}`` = the network's own.
    calibration: dict[str, Any] = field(default_factory=dict)
    #: Ground sampling distance (m/px) of the training frames; finer frames are seen at it
    #: (:mod:`~thermal_anomaly_segmenter.io.gsd`). ``None``: unknown, frames are used at their own
    #: pixels.
    gsd_m: float | None = None
    train_args: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    taseg_version: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        get_spec(self.model_type)  # unknown types fail here with the list of valid ones
        self.architecture = resolve_architecture(self.model_type, self.architecture)
        self.input_size = tuple(int(v) for v in self.input_size)  # type: ignore[assignment]
        if len(self.input_size) != 2 or min(self.input_size) < 32:
            raise InvalidInputError(
                f"input_size must be (height, width) >= 32, got {self.input_size}"
            )
        if self.gsd_m is not None and not (isinstance(self.gsd_m, (int, float))
                                           and 0 < self.gsd_m <= GSD_MAX_M):
            raise InvalidInputError(f"gsd_m must be within 0..{GSD_MAX_M} m, got {self.gsd_m!r}")

    @property
    def norm(self) -> Normalization:
        return Normalization.from_dict(self.normalization)

    @property
    def family(self) -> str:
        return get_spec(self.model_type).family

    def to_json(self) -> str:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        if "model_type" not in data:
            raise InvalidInputError(f"{CONFIG_NAME} has no 'model_type'")
        if int(data.get("format_version", FORMAT_VERSION)) > FORMAT_VERSION:
            raise InvalidInputError(
                f"{CONFIG_NAME} format {data['format_version']} is newer than this TASeg "
                f"understands ({FORMAT_VERSION}); upgrade thermal-anomaly-segmenter"
            )
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def is_model_folder(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / CONFIG_NAME).is_file()


def list_model_folders(root: str | os.PathLike[str], depth: int = 2) -> list[Path]:
    """Model folders under ``root`` (itself included), at most ``depth`` levels down, sorted."""
    root = Path(root)
    found: list[Path] = []
    if not root.is_dir():
        return found
    level = [root]
    for _ in range(depth + 1):
        nxt: list[Path] = []
        for folder in level:
            if is_model_folder(folder):
                found.append(folder)
                continue  # a model folder's subfolders (predictions/) are not models
            try:
                nxt.extend(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
        level = sorted(nxt)
    return sorted(found)


def read_config_data(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``train_config.json`` of a folder (ours or the published format), read with
    bounded size, depth and number length.

    Raises:
        ModelNotFoundError: The folder has no ``train_config.json``.
        InvalidInputError: It cannot be read, is too large or deep, or is not a JSON object.
    """
    folder = Path(model_dir)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise ModelNotFoundError(f"{folder} is not a model folder: it has no {CONFIG_NAME}")
    try:
        if path.stat().st_size > CONFIG_MAX_BYTES:
            raise InvalidInputError(f"{path} is larger than {CONFIG_MAX_BYTES // 2**20} MiB")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}") from None
    except (ValueError, RecursionError):  # a 5,000-digit number, 100,000-deep nesting
        raise InvalidInputError(f"{path} nests too deep or holds a number too long to read"
                                ) from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path} must hold a JSON object")
    return data


def save_model_folder(
    folder: str | os.PathLike[str],
    config: ModelConfig,
    model: torch.nn.Module | None = None,
    *,
    half: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a model folder atomically. ``half`` stores float weights as float16."""
    from thermal_anomaly_segmenter import __version__

    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"model folder {folder} exists; choose another name")
    if model is None and config.family != "classical":
        raise InvalidInputError(f"{config.model_type} needs weights to save")
    config.taseg_version = config.taseg_version or __version__
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes 0700; a model folder is meant to be shared
        (tmp / CONFIG_NAME).write_text(config.to_json() + "\n", encoding="utf-8")
        if model is not None:
            from safetensors.torch import save_file

            state = {}
            for key, tensor in model.state_dict().items():
                tensor = tensor.detach().to("cpu").contiguous()
                if half and tensor.is_floating_point():
                    tensor = tensor.half()
                state[key] = tensor.clone()  # no shared storage: safetensors refuses aliases
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            (tmp / WEIGHTS_NAME).chmod(0o644)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            move_into_place(folder, old)
            move_into_place(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            move_into_place(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def fit_weights(model: torch.nn.Module, state: dict[str, Any], source: str,
                model_type: str) -> None:
    """Load ``state`` into ``model`` (every key, no other); a mismatch is bad input naming
    ``source``. float16 weights are cast back to the model's float32 parameters."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InvalidInputError(f"weights in {source} do not fit {model_type}: {first}") from None


def default_model_dir(settings) -> Path | None:
    """``TASEG_DEFAULT_MODEL`` as a model folder (a folder, or a name under MODELS_PATH), or
    None where it names none."""
    default = Path(settings.default_model).expanduser()
    for candidate in (default, Path(settings.models_path) / settings.default_model):
        if candidate.is_absolute() and is_model_folder(candidate):
            return candidate.resolve()
    return None


def resolve_model_dir(model_dir: str | os.PathLike[str] | None = None, settings=None) -> Path:
    """The model folder to use: the one given, else the default, else the first one found.

    Without ``model_dir``: ``TASEG_DEFAULT_MODEL`` (a folder, or a name under MODELS_PATH;
    ``classical`` until a trained default ships), then the first model folder under
    MODELS_PATH, then under REMOTE_PATH (the published order).
    """
    from thermal_anomaly_segmenter.config import get_settings

    settings = settings or get_settings()
    if model_dir not in (None, ""):
        folder = Path(model_dir).expanduser()
        if not is_model_folder(folder):
            raise ModelNotFoundError(
                f"model_dir {model_dir} is not a model folder (no {CONFIG_NAME}); "
                f"model folders under {settings.models_path}: "
                f"{', '.join(p.name for p in list_model_folders(settings.models_path)) or 'none'}"
            )
        return folder.resolve()
    default = default_model_dir(settings)
    if default is not None:
        return default
    for root in (settings.models_path, settings.remote_path):
        found = list_model_folders(root)
        if found:
            return found[0].resolve()
    raise ModelNotFoundError(
        f"no model folder found under MODELS_PATH={settings.models_path} or "
        f"REMOTE_PATH={settings.remote_path}; pass --model-dir or train a model"
    )
