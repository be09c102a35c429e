"""Model folders written by the published TASeg, read without running pickled code.

A published model folder holds the ``train_config.json`` it trained with (``"model":
"segformer"`` or ``"smp"``), one folder per phase (``checkpoints/<phase>/``) with Lightning
checkpoints ``epoch=<e>-step=<s>.ckpt`` (the best by ``valid_dataset_iou``) and ``last.ckpt``,
and for SegFormer a Hugging Face ``save_pretrained`` folder ``<ckpt>.dir`` next to each. A
checkpoint's ``state_dict`` holds the network under ``model.``; its ``hyper_parameters`` hold
the normalisation (``mean``, ``std``: numpy arrays) and, for SegFormer, the pretrained name
that tells its size.

Checkpoints are read with ``torch.load(weights_only=True)``: tensors, plain containers and,
by an explicit allow-list, numpy arrays and dtypes (the published ``mean``/``std``). Anything
else in the pickle (a class, a function: what would run code) is refused before it is built.

The checkpoint used is the best one of the last phase that has one (the published loader
took whatever sorted first, possibly another phase): among that phase's ``epoch=*`` files, the
one whose stored ``current_score`` (its validation IoU) is highest, else the latest epoch.
:func:`import_published` converts such a folder into a TASeg model folder once
(``train_config.json`` + ``model.safetensors``), which then loads without torch.load at all.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thermal_anomaly_segmenter.errors import InvalidInputError, ModelNotFoundError, TasegError

if TYPE_CHECKING:
    import torch

    from thermal_anomaly_segmenter.models.folder import ModelConfig

log = logging.getLogger(__name__)

CONFIG_NAME = "train_config.json"
_CKPT = re.compile(r"epoch=(\d+)(?:-step=(\d+))?(?:-v\d+)?\.ckpt")
_PHASE_ORDER = ("pre_train_frozen", "pre_train_unfrozen", "fine_tune")


@dataclass(frozen=True)
class Choice:
    """The checkpoint picked from a published folder, and why."""

    path: Path
    phase: str
    score: float | None
    reason: str

    def describe(self, root: Path) -> str:
        rel = self.path.relative_to(root) if self.path.is_relative_to(root) else self.path
        return f"{rel} (phase {self.phase}, {self.reason})"


PUBLISHED_KINDS = ("segformer", "smp")


def is_published_config(data: Any) -> bool:
    """Whether a parsed ``train_config.json`` is the published format (not TASeg's own): a
    ``"model"`` kind and no ``model_type``. The kind itself is checked where the folder is
    read (:func:`load_published`), as the published loader did, so the error names it."""
    return isinstance(data, dict) and "model_type" not in data and "model" in data


def is_published_folder(folder: str | os.PathLike[str]) -> bool:
    from thermal_anomaly_segmenter.models.folder import read_config_data

    try:
        return is_published_config(read_config_data(folder))
    except TasegError:
        return False


def _read_config(folder: Path) -> dict[str, Any]:
    from thermal_anomaly_segmenter.models.folder import read_config_data

    data = read_config_data(folder)
    if not is_published_config(data):
        raise InvalidInputError(f"{folder} is not a published TASeg model folder")
    if data["model"] not in PUBLISHED_KINDS:
        raise InvalidInputError(
            f"{folder / CONFIG_NAME}: \"model\" {data['model']!r:.40} is not a kind the "
            "published TASeg wrote (segformer or smp), and there is no model_type of a TASeg "
            "folder")
    return data


def _allowed_globals() -> list[Any]:
    """What a published checkpoint may hold beyond tensors and plain containers: numpy arrays
    (the normalisation statistics), named as numpy 1 and numpy 2 pickle them."""
    import numpy as np

    reconstruct = np._core.multiarray._reconstruct  # type: ignore[attr-defined]
    allowed: list[Any] = [
        np.ndarray, np.dtype,
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),  # type: ignore[attr-defined]
        (np._core.multiarray.scalar, "numpy._core.multiarray.scalar"),  # type: ignore[attr-defined]
    ]
    allowed += [type(np.dtype(t)) for t in ("f8", "f4", "f2", "i8", "i4", "u1", "b1")]
    return allowed


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A Lightning checkpoint as data, never running code stored in it.

    Raises:
        InvalidInputError: The file is not a checkpoint, or its pickle names anything beyond
            tensors, plain containers and numpy arrays (refused before it is built).
    """
    import pickle  # nosec B403

    import torch

    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.findall(r"GLOBAL ([\w.]+)", str(exc)) or ["an object that is not plain data"]
        raise InvalidInputError(
            f"checkpoint {path} holds {', '.join(sorted(set(found)))}, which is not weights or "
            "plain data; refused (TASeg never unpickles code)") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise InvalidInputError(f"cannot read checkpoint {path}: {reason}") from None
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
        raise InvalidInputError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return data


def _score(checkpoint: dict[str, Any]) -> float | None:
    """The monitored value stored by ModelCheckpoint when it saved this file."""
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if "ModelCheckpoint" in str(key) and isinstance(state, dict):
            value = state.get("current_score")
            try:
                return None if value is None else float(value)
            except (TypeError, ValueError):
                return None
    return None


def _epoch_step(path: Path) -> tuple[int, int]:
    match = _CKPT.fullmatch(path.name)
    return (int(match.group(1)), int(match.group(2) or 0)) if match else (-1, -1)


def _best_of(files: list[Path], phase: str) -> Choice:
    if len(files) == 1:
        return Choice(files[0], phase, None, "the only best checkpoint there")
    scored = [(s, f) for f in files if (s := _score(read_checkpoint(f))) is not None]
    if scored:
        score, best = max(scored, key=lambda item: item[0])
        return Choice(best, phase, score, f"highest stored validation IoU {score:.4f} of "
                      f"{len(files)}")
    latest = max(files, key=_epoch_step)
    return Choice(latest, phase, None, f"latest epoch of {len(files)} (no stored scores)")


def choose_checkpoint(folder: str | os.PathLike[str]) -> Choice:
    """The best ``epoch=*.ckpt`` of the last phase that has one (``last.ckpt`` is never used:
    it holds the last weights, not the best).

    Raises:
        ModelNotFoundError: No such checkpoint anywhere in the folder.
    """
    folder = Path(folder)
    config = _read_config(folder)
    order = [p for p in (config.get("train_phase_order") or list(config.get("train_phases") or {})
                         or list(_PHASE_ORDER)) if isinstance(p, str)]
    found = sorted(p for p in folder.rglob("epoch=*.ckpt") if _CKPT.fullmatch(p.name)
                   and p.is_file())
    for phase in reversed(order):
        files = [p for p in found if p.parent.name == phase]
        if files:
            if phase != order[-1]:
                log.warning("%s: no checkpoint of the last phase %s; using phase %s",
                            folder, order[-1], phase)
            return _best_of(files, phase)
    if found:  # not in phase folders (copied by hand): the best of them all
        return _best_of(found, "unknown (no phase folder)")
    raise ModelNotFoundError(
        f"{folder} has no Lightning checkpoint epoch=<e>-step=<s>.ckpt (phases: "
        f"{', '.join(order)})")


def _model_type(config: dict[str, Any], hparams: dict[str, Any], hf_dir: Path) -> str:
    from thermal_anomaly_segmenter.models.recipe_files import infer_model_type
    from thermal_anomaly_segmenter.models.registry import _MIT_SIZES

    hf_config = hf_dir / "config.json"
    if config["model"] == "segformer" and hf_config.is_file():
        try:
            data = json.loads(hf_config.read_text(encoding="utf-8"))
            for size, (hidden, depths, _) in _MIT_SIZES.items():
                if data.get("hidden_sizes") == hidden and data.get("depths") == depths:
                    return f"segformer_{size}"
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            pass
    # The checkpoint's own pretrained name first: it is what the network was built from.
    names = {**config, "pretrained_weights": hparams.get("segformer_pretrained_model")
             or config.get("pretrained_weights", "")}

    def fail(key: str, rule: str) -> InvalidInputError:
        return InvalidInputError(f"published model: {key} {rule}")

    return infer_model_type(names, fail)


def _stats(hparams: dict[str, Any], key: str) -> tuple[float, float, float]:
    import numpy as np

    value = hparams.get(key)
    try:
        values = tuple(float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1))
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3:
        raise InvalidInputError(f"published checkpoint has no 3-channel '{key}' in its "
                                f"hyper_parameters (got {value!r})")
    return values  # type: ignore[return-value]


def _convert(folder: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """The TASeg configuration of a published folder and its network weights (as keys of
    :class:`~.networks.SegmentationNet`), from the chosen checkpoint."""
    from thermal_anomaly_segmenter.models.folder import ModelConfig

    config = _read_config(folder)
    choice = choose_checkpoint(folder)
    log.info("published model %s: using %s", folder, choice.describe(folder))
    checkpoint = read_checkpoint(choice.path)
    hparams = checkpoint.get("hyper_parameters") or {}
    architecture: dict[str, Any] = {}
    if config["model"] == "smp":
        architecture["encoder_name"] = str(config.get("smp_encoder", "resnet101"))
    state = {f"net.{k[len('model.'):]}": v for k, v in checkpoint["state_dict"].items()
             if k.startswith("model.")}
    if not state:
        raise InvalidInputError(f"{choice.path} has no network weights (state_dict model.*)")
    model_config = ModelConfig(
        model_type=_model_type(config, hparams, Path(f"{choice.path}.dir")),
        architecture=architecture,
        normalization={"mode": "dataset", "mean": list(_stats(hparams, "mean")),
                       "std": list(_stats(hparams, "std"))},
        train_args={"published": {"source": str(folder), "checkpoint": str(choice.path),
                                  "phase": choice.phase, "reason": choice.reason,
                                  "train_config": config}},
    )
    return model_config, state


def load_published(
    folder: str | os.PathLike[str], device: str = "cpu"
) -> tuple[torch.nn.Module, ModelConfig]:
    """Build the network of a published model folder and load its chosen checkpoint."""
    from thermal_anomaly_segmenter.models.folder import fit_weights
    from thermal_anomaly_segmenter.models.registry import build_model

    folder = Path(folder)
    model_config, state = _convert(folder)
    model = build_model(model_config.model_type, model_config.architecture)
    fit_weights(model, state, model_config.train_args["published"]["checkpoint"],
                model_config.model_type)
    return model.to(device).eval(), model_config


def published_model_config(folder: str | os.PathLike[str]) -> ModelConfig:
    """The TASeg model configuration a published folder converts to (no network built)."""
    return _convert(Path(folder))[0]


def import_published(
    source: str | os.PathLike[str], dest: str | os.PathLike[str]
) -> tuple[Path, Choice]:
    """Convert a published model folder into a TASeg one (``train_config.json`` + safetensors).

    Raises:
        FileExistsError: ``dest`` exists (nothing is overwritten).
        InvalidInputError / ModelNotFoundError: ``source`` is not a usable published folder.
    """
    from thermal_anomaly_segmenter.models.folder import save_model_folder

    source, dest = Path(source).expanduser(), Path(dest).expanduser()
    if dest.exists():
        raise InvalidInputError(f"{dest} exists; choose a new folder for the imported model")
    if not is_published_folder(source):
        raise InvalidInputError(
            f"{source} is not a published TASeg model folder (its {CONFIG_NAME} has no "
            "\"model\" kind)")
    model, config = load_published(source)
    chosen = config.train_args["published"]
    choice = Choice(Path(chosen["checkpoint"]), chosen["phase"], None, chosen["reason"])
    return save_model_folder(dest, config, model.cpu()), choice
