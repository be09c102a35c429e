"""``read_frame``: one file (and an optional corridor mask) to a validated :class:`Frame`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from thermal_anomaly_segmenter.config import get_settings
from thermal_anomaly_segmenter.io.formats import (
    _FRAME_HINT,
    _describe,
    _read_lz4_file,
    _read_npy_file,
    _read_tiff,
    _sniff,
)
from thermal_anomaly_segmenter.io.frames import (
    Frame,
    _fail,
    _reason,
    _safe_stem,
    _strip_frame_suffix,
    frame_stem,
)
from thermal_anomaly_segmenter.io.masks import _as_corridor
from thermal_anomaly_segmenter.io.validate import _finish, _frame_meta_check


def read_frame(
    path: str | Path,
    corridor: str | Path | np.ndarray | None = None,
    *,
    name: str | None = None,
    max_pixels: int | None = None,
) -> Frame:
    """Read and validate one frame from ``.npy.lz4``, ``.npy`` or (Geo)TIFF.

    The format is recognised by content. An ``H x W x 3`` array is a composed frame
    ``(T_m, T_m, T_u)``; a 2-D array (or single-band TIFF) is ``T_u`` and needs ``corridor``.
    A given ``corridor`` always wins: the frame is recomposed from its ``T_u``.

    Args:
        path: Frame file.
        corridor: Corridor mask (file path or ``H x W`` array, nonzero = corridor).
        name: Output stem; default :func:`frame_stem` of ``path`` (sanitised either way).
        max_pixels: Largest ``H * W`` accepted; default ``get_settings().max_pixels``.

    Returns:
        The frame: float32 C-contiguous data, bool corridor, GeoInfo from a GeoTIFF.

    Raises:
        InvalidInputError: Any unreadable, corrupt, unsafe or implausible input.
    """
    path = Path(path)
    source = path.name or "frame"
    limit = max_pixels if max_pixels is not None else get_settings().max_pixels
    check = _frame_meta_check(source, limit, allow_2d=corridor is not None)
    kind = _sniff(path, source, "frame")
    geo = None
    try:
        if kind == "lz4":
            array = _read_lz4_file(path, source, check)
        elif kind == "npy":
            array = _read_npy_file(path, source, check)
        elif kind == "tiff":
            array, geo = _read_tiff(path, source, check)
        else:
            raise _fail(source, f"file is not a TASeg frame ({_describe(kind)}): {_FRAME_HINT}")
    except OSError as exc:
        raise _fail(source, f"frame file cannot be read ({_reason(exc)})") from None
    mask = None if corridor is None else _as_corridor(corridor, array.shape[:2], source)
    data, mask = _finish(array, mask, source)
    if name is None:
        stem = frame_stem(path)
    else:  # a caller's name keeps its dots ("site.v2"); only a frame suffix goes
        name = re.split(r"[\\/]", name)[-1]
        stem = _safe_stem(_strip_frame_suffix(name) or name)
    return Frame(data=data, corridor=mask, name=stem, geo=geo)
