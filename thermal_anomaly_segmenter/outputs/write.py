"""Writing a prediction's files.

Everything in this wing is pure (arrays in, bytes or dicts out) except :func:`write_outputs`,
which writes the files for one frame atomically under a stem the caller has already reserved.

Outputs of one frame ``<stem>``:

- ``<stem>_mask.png``: 8-bit PNG holding 0 (background) and 1 (anomaly), like dataset labels.
- ``<stem>_prob.png``: 8-bit PNG of ``round(probability * 255)``.
- ``<stem>_overlay.png``: T_u in a thermal colour map with corridor and anomaly outlines,
  anomaly ids, a colour bar in degC and a title strip
  (:mod:`~thermal_anomaly_segmenter.outputs.overlay`).
- ``<stem>.json``: the anomaly report, schema ``taseg.anomalies/1``
  (:mod:`~thermal_anomaly_segmenter.outputs.document`).
- ``<stem>.geojson``: one polygon feature per anomaly
  (:mod:`~thermal_anomaly_segmenter.outputs.geojson`).

Pixel coordinates follow GDAL: pixel ``(col, row)`` covers ``[col, col + 1] x [row, row + 1]``,
so its centre is ``(col + 0.5, row + 0.5)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from thermal_anomaly_segmenter.errors import OutputError
from thermal_anomaly_segmenter.inference.postprocess import Prediction
from thermal_anomaly_segmenter.io.atomic import atomic_write
from thermal_anomaly_segmenter.outputs.document import anomalies_document
from thermal_anomaly_segmenter.outputs.geojson import anomalies_geojson
from thermal_anomaly_segmenter.outputs.overlay import render_overlay

#: Output kinds accepted by :func:`write_outputs`, with the file-name suffix of each.
OUTPUT_NAMES: dict[str, str] = {
    "mask": "_mask.png",
    "probability": "_prob.png",
    "overlay": "_overlay.png",
    "json": ".json",
    "geojson": ".geojson",
}


# PNG encoding


def encode_png(image: np.ndarray) -> bytes:
    """Encode an image as PNG bytes.

    Args:
        image: ``H x W`` grey, ``H x W x 3`` RGB or ``H x W x 4`` RGBA, dtype uint8 or uint16.

    Returns:
        The PNG file content.

    Raises:
        ValueError: If the array is not an image OpenCV can encode.
    """
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG images must be uint8 or uint16, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    elif image.ndim != 2:
        raise ValueError(f"expected an H x W, H x W x 3 or H x W x 4 image, got {image.shape}")
    if image.size == 0:
        raise ValueError("cannot encode an empty image")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image))
    if not ok:  # pragma: no cover - imencode fails only on arrays rejected above
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def mask_png(pred: Prediction) -> bytes:
    """Encode the binary mask as an 8-bit PNG of 0/1 values, the format of dataset labels."""
    return encode_png((np.asarray(pred.mask) != 0).astype(np.uint8))


def probability_png(pred: Prediction) -> bytes:
    """Encode the probability map as an 8-bit PNG of ``round(p * 255)`` (NaN -> 0)."""
    prob = np.nan_to_num(np.asarray(pred.probability, dtype=np.float32), nan=0.0)
    return encode_png(np.rint(np.clip(prob, 0.0, 1.0) * 255.0).astype(np.uint8))


# Files


def _json_bytes(doc: dict, indent: int | None) -> bytes:
    return (json.dumps(doc, indent=indent, allow_nan=False, ensure_ascii=False) + "\n").encode()


def write_outputs(
    pred: Prediction,
    out_dir: str | Path,
    stem: str,
    *,
    model_dir: str | None = None,
    outputs: Iterable[str] = tuple(OUTPUT_NAMES),
    document: dict | None = None,
) -> dict[str, Path]:
    """Write the requested outputs of one prediction as ``out_dir/<stem><suffix>``.

    The caller owns naming: ``stem`` must already be reserved; existing files with these exact
    names are replaced, nothing else in ``out_dir`` is touched. Every file is written through
    a temp file and a rename, so readers never see half a file. All payloads are built before
    the first write, and the JSON report is written last so its presence marks a complete set.

    Args:
        pred: The prediction to write.
        out_dir: Target folder, created if missing.
        stem: Base file name without folder.
        model_dir: Recorded in the JSON report.
        outputs: Any of ``mask``, ``probability``, ``overlay``, ``json``, ``geojson``.
        document: The JSON report, when the caller has already built it with
            :func:`~.document.anomalies_document` (it keeps it to answer from memory).

    Returns:
        Output kind -> written path, for the kinds requested.

    Raises:
        ValueError: If ``stem`` is not a plain file name or an output kind is unknown.
        OutputError: If the files cannot be written (read-only folder, disk full, ...).
    """
    out_dir = Path(out_dir)
    if not stem or stem in {".", ".."} or Path(stem).name != stem or "\\" in stem:
        raise ValueError(f"stem must be a plain file name, got {stem!r}")
    wanted = list(dict.fromkeys(outputs))
    unknown = [k for k in wanted if k not in OUTPUT_NAMES]
    if unknown:
        raise ValueError(f"unknown output(s) {unknown}; choose from {list(OUTPUT_NAMES)}")

    builders = {
        "mask": lambda: mask_png(pred),
        "probability": lambda: probability_png(pred),
        "overlay": lambda: encode_png(render_overlay(pred)),
        "geojson": lambda: _json_bytes(anomalies_geojson(pred), None),
        "json": lambda: _json_bytes(
            document if document is not None else anomalies_document(pred, model_dir=model_dir),
            2),
    }
    order = [k for k in builders if k in wanted]  # json last: it marks a complete set
    payloads = {kind: builders[kind]() for kind in order}
    written: dict[str, Path] = {}
    try:
        for kind in order:
            path = out_dir / f"{stem}{OUTPUT_NAMES[kind]}"
            atomic_write(path, payloads[kind])
            written[kind] = path
    except OSError as exc:
        reason = " ".join((exc.strerror or str(exc) or type(exc).__name__).split())
        raise OutputError(f"cannot write outputs to {out_dir}: {reason}") from exc
    return {kind: written[kind] for kind in wanted}
