"""Export a model folder to ONNX, verified against PyTorch.

``export_onnx`` writes ``model.onnx`` and ``model.onnx.json`` into the model folder. The
sidecar records the SHA-256 of the weights it was exported from, of the ONNX file itself and
the largest difference to PyTorch measured on random frames;
:mod:`~thermal_anomaly_segmenter.inference.segmenter` uses the ONNX
model on the CPU only while both hashes still match, so a retrained folder never runs stale
weights and a ``model.onnx`` copied in from another model is never run (PyTorch is used, with
a warning).

The exported graph takes inputs whose height and width are multiples of the model's stride
(the runtime pads, as :class:`.networks.SegmentationNet` does in PyTorch) and any batch size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.io.atomic import atomic_path, atomic_write
from thermal_anomaly_segmenter.models.folder import WEIGHTS_NAME
from thermal_anomaly_segmenter.models.load import load_model_folder

log = logging.getLogger(__name__)

ONNX_NAME = "model.onnx"
ONNX_META_NAME = "model.onnx.json"
OPSET = 17
#: Largest accepted difference between ONNX Runtime and PyTorch logits.
TOLERANCE = 1e-3


def weights_digest(model_dir: str | os.PathLike[str]) -> str:
    """SHA-256 of a folder's weights file."""
    return file_digest(Path(model_dir) / WEIGHTS_NAME)


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_onnx(
    model_dir: str | os.PathLike[str], *, check_shapes=((1, 64, 96), (2, 96, 64))
) -> Path:
    """Export ``model_dir`` to ``model_dir/model.onnx`` and verify it with ONNX Runtime.

    Raises:
        InvalidInputError: for the classical model (no network), or when ONNX Runtime and
            PyTorch disagree by more than :data:`TOLERANCE`.
    """
    import torch

    folder = Path(model_dir)
    from thermal_anomaly_segmenter.models.published import is_published_folder

    if is_published_folder(folder):
        raise InvalidInputError(f"{folder} is a published model folder: convert it with "
                                f"taseg import-published {folder} DEST, then export DEST")
    model, config = load_model_folder(folder, device="cpu")
    if model is None:
        raise InvalidInputError("the classical model has no network to export")
    stride = model.stride
    h, w = (max(stride, v - v % stride) for v in config.input_size)
    example = torch.randn(1, 3, h, w)
    # 0644: model folders are meant to be shared
    with atomic_path(folder / ONNX_NAME, mode=0o644) as tmp:
        # The TorchScript exporter needs no extra package; shapes stay symbolic.
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={
                "input": {0: "batch", 2: "height", 3: "width"},
                "logits": {0: "batch", 2: "height", 3: "width"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
        max_diff = _verify(str(tmp), model, stride, check_shapes)
        meta = {
            "weights_sha256": weights_digest(folder),
            "onnx_sha256": file_digest(tmp),
            "opset": OPSET,
            "stride": stride,
            "max_abs_diff": max_diff,
            "torch": torch.__version__,
        }
    atomic_write(folder / ONNX_META_NAME, json.dumps(meta, indent=2) + "\n")
    log.info("exported %s (max |diff| %.2e)", folder / ONNX_NAME, max_diff)
    return folder / ONNX_NAME


def _verify(path: str, model, stride: int, shapes) -> float:
    import torch

    session = open_session(path)
    worst = 0.0
    generator = torch.Generator().manual_seed(0)
    for b, h, w in shapes:
        x = torch.randn(
            b, 3, h - h % stride or stride, w - w % stride or stride, generator=generator
        )
        with torch.inference_mode():
            ref = model(x).numpy()
        out = session.run(None, {"input": x.numpy()})[0]
        worst = max(worst, float(np.abs(out - ref).max()))
    if worst > TOLERANCE:
        raise InvalidInputError(f"ONNX export differs from PyTorch by {worst:.2e} > {TOLERANCE}")
    return worst


def open_session(path: str | os.PathLike[str]):
    """An ONNX Runtime CPU session using as many threads as PyTorch would."""
    # Before the first import: ONNX Runtime's telemetry otherwise leaves a session file
    # (".ses") in the temp folder, and TASeg sends nothing anywhere.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle intra-op threads sleep instead of spinning: the post-processing, the file
    # writers and the server run on the same few cores right after each forward
    # (benchmarks/RESULTS.md D05).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_stride(model_dir: str | os.PathLike[str]) -> int | None:
    """The stride recorded in a folder's ``model.onnx.json`` (``None`` if absent)."""
    try:
        meta = json.loads((Path(model_dir) / ONNX_META_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    stride = meta.get("stride") if isinstance(meta, dict) else None
    return stride if isinstance(stride, int) and not isinstance(stride, bool) and stride > 0 \
        else None


def fresh_onnx(model_dir: str | os.PathLike[str]) -> Path | None:
    """``model.onnx`` of a folder if it was exported from the current weights, else ``None``."""
    folder = Path(model_dir)
    path, meta_path = folder / ONNX_NAME, folder / ONNX_META_NAME
    if not (path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        fresh = (isinstance(meta, dict)
                 and meta.get("weights_sha256") == weights_digest(folder)
                 and meta.get("onnx_sha256") == file_digest(path))
    except (OSError, ValueError, RecursionError):
        fresh = False
    if not fresh:
        log.warning("%s was not exported from this folder's weights (or its %s is missing or "
                    "unreadable); using PyTorch. Run taseg export to refresh it",
                    path, ONNX_META_NAME)
        return None
    return path
