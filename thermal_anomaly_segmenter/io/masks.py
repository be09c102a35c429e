"""Corridor masks and label PNGs: reading them and turning them into bool/0-1 masks.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from thermal_anomaly_segmenter import limits
from thermal_anomaly_segmenter.config import get_settings
from thermal_anomaly_segmenter.io.formats import (
    _describe,
    _read_lz4_file,
    _read_npy_file,
    _read_png,
    _read_tiff,
    _sniff,
)
from thermal_anomaly_segmenter.io.frames import _fail, _fmt_shape

if TYPE_CHECKING:
    from thermal_anomaly_segmenter.io.validate import MetaCheck

logger = logging.getLogger(__name__)


def _mask_meta_check(
    source: str, max_pixels: int, shape: tuple[int, int] | None, what: str = "corridor mask"
) -> MetaCheck:
    def check(got: tuple[int, ...], dtype: np.dtype) -> None:
        if len(got) not in (2, 3) or (len(got) == 3 and not 1 <= got[2] <= 4):
            raise _fail(source, f"{what} has shape {_fmt_shape(got)}; expected H x W (one band)")
        if dtype.names is not None or dtype.kind not in "biuf":
            raise _fail(source, f"{what} has non-numeric pixels ({dtype})")
        h, w = int(got[0]), int(got[1])
        if shape is not None and (h, w) != tuple(shape):
            raise _fail(
                source,
                f"{what} is {h} x {w} px but the frame is {shape[0]} x {shape[1]} px: "
                "use the mask made for this frame",
            )
        if h * w > max_pixels:
            raise _fail(source, f"{what} is {h} x {w} px, above the limit of {max_pixels:,} pixels")
        limits.check_decoded_bytes(int(np.prod(got)) * dtype.itemsize, source, what,
            limit=get_settings().max_decoded_bytes)

    return check


def _mask_to_bool(mask: np.ndarray, source: str, shape: tuple[int, int] | None) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0]  # multi-channel masks: first channel (grey PNGs saved as RGB)
    _mask_meta_check(source, 1 << 62, shape)(mask.shape, mask.dtype)
    if mask.dtype.kind == "f" and not np.isfinite(mask).all():
        raise _fail(source, "corridor mask holds NaN or infinite values; use 0 and 1")
    corridor = np.ascontiguousarray(mask != 0)
    if not corridor.any():
        raise _fail(
            source,
            "corridor mask is empty (all zero): mark the pipeline corridor with nonzero pixels",
        )
    return corridor


def read_corridor(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a pipeline corridor mask (nonzero = corridor) from a PNG, TIFF or .npy file.

    Args:
        path: Mask file; the format is recognised by content. Multi-channel images use their
            first channel.
        shape: ``(H, W)`` of the frame the mask belongs to; a different size is refused.

    Returns:
        ``H x W`` bool mask.

    Raises:
        InvalidInputError: Missing, empty, corrupt or unsupported file, wrong shape, or no
            corridor pixel.
    """
    path = Path(path)
    source = path.name or "corridor mask"
    kind = _sniff(path, source, "corridor mask")
    check = _mask_meta_check(source, get_settings().max_pixels, shape)
    if kind == "png":
        mask = _read_png(path, source, "corridor mask", check)
    elif kind == "tiff":
        mask = _read_tiff(path, source, check)[0]
    elif kind == "npy":
        mask = _read_npy_file(path, source, check)
    elif kind == "lz4":
        mask = _read_lz4_file(path, source, check)
    else:
        raise _fail(
            source,
            f"corridor mask has an unsupported format ({kind}); expected a PNG, TIFF or .npy "
            "mask (nonzero = corridor)",
        )
    return _mask_to_bool(mask, source, shape)


def read_label(path: str | Path) -> np.ndarray:
    """Read a label PNG as uint8 0 (background) / 1 (anomaly).

    0/255 labels are converted with a warning; any other value is refused.

    Raises:
        InvalidInputError: Missing, empty, corrupt or non-PNG file, or values other than 0/1.
    """
    path = Path(path)
    source = path.name or "label"
    kind = _sniff(path, source, "label")
    if kind != "png":
        raise _fail(
            source, f"label is not a PNG ({_describe(kind)}); expected an 8-bit PNG holding 0 and 1"
        )
    check = _mask_meta_check(source, get_settings().max_pixels, None, "label")
    label = _read_png(path, source, "label", check)
    if label.ndim == 3:
        label = label[..., 0]
    if label.dtype == np.uint8:  # bincount is much faster than np.unique on big masks
        present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    else:
        present = np.unique(label)
    values = {int(v) for v in present}
    if values <= {0, 1}:
        return np.ascontiguousarray(label, dtype=np.uint8)
    if values <= {0, 255}:
        logger.warning("%s: label holds 0/255; converting to 0/1", source)
        return (label == 255).astype(np.uint8)
    shown = ", ".join(str(v) for v in sorted(values)[:6]) + (", ..." if len(values) > 6 else "")
    raise _fail(
        source,
        f"label holds values {shown}; expected 0 (background) and 1 (anomaly), or 0/255",
    )


def _as_corridor(
    corridor: str | Path | np.ndarray, shape: tuple[int, int], source: str
) -> np.ndarray:
    if isinstance(corridor, np.ndarray):
        return _mask_to_bool(corridor, f"{source} corridor", shape)
    if isinstance(corridor, (str, os.PathLike)):
        return read_corridor(corridor, shape)
    raise _fail(
        source,
        f"corridor must be a mask file path or a numpy array, got {type(corridor).__name__}",
    )
