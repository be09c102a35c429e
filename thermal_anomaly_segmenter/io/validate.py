"""Validation of frames: dtype, layout, size and plausible temperatures.

Sizes are checked from the file header (through a :data:`MetaCheck`) before any pixel buffer
is allocated, so a lying header or a decompression bomb costs at most the declared (and
accepted) frame size. Conversions: float16/float64 and 16/32/64-bit integer pixels become
float32 (integer values are taken as degC); 8-bit images are refused (they hold colours or grey
levels, not temperatures).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from thermal_anomaly_segmenter import limits
from thermal_anomaly_segmenter.config import get_settings
from thermal_anomaly_segmenter.io.frames import (
    FILL_OFFSET_DEGC,
    KELVIN_HINT_DEGC,
    MAX_ASPECT,
    MIN_SIDE_PX,
    T_MAX_DEGC,
    T_MIN_DEGC,
    _block_rows,
    _fail,
    _fmt_shape,
    compose_frame,
    corridor_from_frame,
)

MetaCheck = Callable[[tuple[int, ...], np.dtype], None]


def _check_frame_dtype(dtype: np.dtype, source: str) -> None:
    """Refuse pixel types that cannot hold temperatures."""
    if dtype.names is not None or dtype.subdtype is not None:
        raise _fail(source, f"frame has a structured dtype {dtype}; expected float32 degC")
    if dtype.kind in "iu" and dtype.itemsize == 1:
        raise _fail(
            source,
            f"frame has 8-bit pixels ({dtype}): that is a colour or grey-level picture, not "
            "temperatures; export radiometric temperatures in degC (float32)",
        )
    if dtype.kind not in "fiu":
        kinds = {
            "b": "boolean",
            "c": "complex",
            "O": "Python object",
            "V": "raw bytes",
            "S": "byte string",
            "U": "text",
            "M": "datetime",
            "m": "timedelta",
        }
        raise _fail(
            source,
            f"frame has {kinds.get(dtype.kind, 'non-numeric')} pixels ({dtype}); "
            "expected float32 temperatures in degC",
        )


def _check_frame_shape(
    shape: tuple[int, ...], source: str, max_pixels: int, *, allow_2d: bool
) -> None:
    """Check the layout and size of a frame from its shape alone (before any pixel is read)."""
    layout = "H x W x 3 (T_m, T_m, T_u)"
    if len(shape) == 3 and shape[2] == 1 and allow_2d:
        shape = shape[:2]
    if len(shape) == 2:
        if not allow_2d:
            raise _fail(
                source,
                f"frame is a 2-D image ({_fmt_shape(shape)}) and no corridor mask was given: pass "
                f"a corridor mask (PNG/TIFF/npy, nonzero = pipeline corridor) or an {layout} frame",
            )
    elif len(shape) == 3:
        if shape[2] != 3:
            if shape[0] == 3:
                raise _fail(
                    source,
                    f"frame has shape {_fmt_shape(shape)} (channels first); expected layout "
                    f"{layout}: use np.moveaxis(data, 0, -1)",
                )
            raise _fail(
                source, f"frame has {shape[2]} channels ({_fmt_shape(shape)}); expected {layout}"
            )
    else:
        raise _fail(source, f"frame has shape {_fmt_shape(shape)}; expected {layout}")
    h, w = int(shape[0]), int(shape[1])
    if h * w > max_pixels:
        raise _fail(
            source,
            f"frame is {h} x {w} = {h * w:,} pixels, above the limit of {max_pixels:,} "
            "(TASEG_MAX_PIXELS): split it into tiles or raise the limit",
        )
    if min(h, w) < MIN_SIDE_PX:
        raise _fail(
            source,
            f"frame is too small ({h} x {w} px): both sides must be at least {MIN_SIDE_PX} px",
        )
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise _fail(
            source,
            f"frame is {h} x {w} px, an aspect ratio of {max(h, w) / min(h, w):.0f}:1 above "
            f"{MAX_ASPECT}:1: crop it into tiles",
        )


def _frame_meta_check(source: str, max_pixels: int, allow_2d: bool) -> MetaCheck:
    def check(shape: tuple[int, ...], dtype: np.dtype) -> None:
        _check_frame_dtype(dtype, source)
        _check_frame_shape(shape, source, max_pixels, allow_2d=allow_2d)
        limits.check_decoded_bytes(int(np.prod(shape)) * dtype.itemsize, source, "frame",
            limit=get_settings().max_decoded_bytes)

    return check


def _count_nonfinite(data: np.ndarray) -> tuple[int, int]:
    """Pixels holding NaN and pixels holding +-inf in any channel, counted in row blocks."""
    data = data if data.ndim == 3 else data[..., None]
    n_nan = n_inf = 0
    step = _block_rows(data.shape[1])
    for r0 in range(0, data.shape[0], step):
        block = data[r0 : r0 + step]
        n_nan += int(np.count_nonzero(np.isnan(block).any(axis=-1)))
        n_inf += int(np.count_nonzero(np.isinf(block).any(axis=-1)))
    return n_nan, n_inf


def _check_temperatures(data: np.ndarray, source: str) -> None:
    """Refuse non-finite values and temperatures that cannot be degC.

    ``data`` is ``H x W`` (T_u alone) or ``H x W x 3``; it must be C-contiguous float32.
    """
    # Per-channel reductions of strided views: no copy, and ~15x faster than reducing
    # data.reshape(-1, 3) along axis 0. NaN and inf propagate into these.
    channels = [data[..., k] for k in range(data.shape[2])] if data.ndim == 3 else [data]
    lo = np.array([c.min() for c in channels])
    hi = np.array([c.max() for c in channels])
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        n_nan, n_inf = _count_nonfinite(data)
        parts = [
            f"{n:,} {'pixel holds' if n == 1 else 'pixels hold'} {what}"
            for n, what in ((n_nan, "NaN"), (n_inf, "infinity"))
            if n
        ]
        raise _fail(
            source,
            f"frame has non-finite temperatures: {' and '.join(parts)}; fill or crop them "
            "(e.g. np.nan_to_num with the scene minimum) before segmentation",
        )
    u_lo, u_hi = float(lo[-1]), float(hi[-1])
    if u_hi > T_MAX_DEGC:
        raise _fail(
            source,
            f"T_u (channel 2) ranges from {u_lo:.6g} to {u_hi:.6g}, above the plausible "
            f"{T_MIN_DEGC:g}..{T_MAX_DEGC:g} degC: the data look like raw sensor counts or "
            "Kelvin x 100; convert them to degC",
        )
    if u_lo < T_MIN_DEGC:
        raise _fail(
            source,
            f"T_u (channel 2) ranges from {u_lo:.6g} to {u_hi:.6g}, below the plausible "
            f"{T_MIN_DEGC:g}..{T_MAX_DEGC:g} degC: a no-data fill value or another unit; "
            "set fill values to a real temperature and convert to degC",
        )
    if u_lo > KELVIN_HINT_DEGC:
        raise _fail(
            source,
            f"T_u (channel 2) is at least {u_lo:.6g} everywhere, too warm for a scene with "
            "ground in view: the data look like Kelvin; subtract 273.15",
        )
    if data.ndim == 3:
        m_lo, m_hi = float(lo[:2].min()), float(hi[:2].max())
        # T_m outside the corridor is min(T_u) - 10, so it may go 10 degC below T_u's bound.
        if m_lo < T_MIN_DEGC - FILL_OFFSET_DEGC or m_hi > T_MAX_DEGC:
            raise _fail(
                source,
                f"T_m (channels 0-1) ranges from {m_lo:.6g} to {m_hi:.6g} degC, outside the "
                f"plausible range: outside the corridor T_m must be min(T_u) - "
                f"{FILL_OFFSET_DEGC:g}; rebuild the frame with compose_frame",
            )


def _finish(
    array: np.ndarray, corridor: np.ndarray | None, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Turn a shape-checked array into a validated frame and its corridor.

    With a corridor the frame is (re)composed from T_u, so an explicit corridor wins over the
    one held by a composed frame.
    """
    if corridor is not None:
        if array.ndim == 3:
            array = array[..., 2] if array.shape[2] == 3 else array[..., 0]
        t_u = np.ascontiguousarray(array, dtype=np.float32)
        _check_temperatures(t_u, source)
        return compose_frame(t_u, corridor), corridor
    data = np.ascontiguousarray(array, dtype=np.float32)  # no copy for float32 C order
    _check_temperatures(data, source)
    corridor = corridor_from_frame(data)
    if not corridor.any():
        raise _fail(
            source,
            "frame has no pipeline corridor: T_m (channels 0-1) never equals T_u (channel 2); "
            "pass a corridor mask or build the frame with compose_frame",
        )
    return data, corridor


def validate_frame(
    data: np.ndarray, *, max_pixels: int | None = None, source: str = "frame"
) -> np.ndarray:
    """Check an in-memory frame and return it as float32, C-contiguous ``H x W x 3``.

    Args:
        data: ``H x W x 3`` array ``(T_m, T_m, T_u)`` in degC; integer and other float types
            are converted to float32 (a float32 C-ordered input is returned as is).
        max_pixels: Largest ``H * W`` accepted; default ``get_settings().max_pixels``.
        source: Name used in error messages (a file name, never a full path).

    Returns:
        The validated frame.

    Raises:
        InvalidInputError: Wrong type, dtype or layout, too small, too large, extreme aspect,
            NaN/inf, implausible temperatures, or no pipeline corridor.
    """
    if not isinstance(data, np.ndarray):
        raise _fail(source, f"frame must be a numpy array, got {type(data).__name__}")
    limit = max_pixels if max_pixels is not None else get_settings().max_pixels
    _frame_meta_check(source, limit, allow_2d=False)(data.shape, data.dtype)
    return _finish(data, None, source)[0]
