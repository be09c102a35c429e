"""The TASeg frame: :class:`Frame`, :class:`GeoInfo`, composition and the limits a frame must meet.

A TASeg frame is an ``H x W x 3`` float32 array of temperatures in degC, channels
``(T_m, T_m, T_u)``: ``T_u`` the full image, ``T_m`` the same image inside the pipeline
corridor and ``min(T_u) - 10`` outside it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError

#: Degrees below min(T_u) that fill T_m outside the corridor (as in the published data).
FILL_OFFSET_DEGC = 10.0

#: Suffixes of frame files, longest first so ``x.npy.lz4`` is not taken for ``x.npy``.
FRAME_SUFFIXES: tuple[str, ...] = (".npy.lz4", ".npy", ".tif", ".tiff")

#: Smallest accepted side of a frame in pixels (a model needs some context).
MIN_SIDE_PX = 16
#: Largest accepted ratio of the longer to the shorter side.
MAX_ASPECT = 64
#: Plausible range of T_u in degC; values outside are raw counts, Kelvin x 100 or garbage.
T_MIN_DEGC = -100.0
T_MAX_DEGC = 1000.0
#: A scene whose coldest pixel is warmer than this holds Kelvin, not degC (ground is in view).
KELVIN_HINT_DEGC = 150.0
#: Tolerance of ``T_m == T_u`` when the corridor is recovered from a composed frame.
CORRIDOR_ATOL = 1e-4
CORRIDOR_RTOL = 1e-4

_STEM_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_STEM_MAX = 100


@dataclass(frozen=True)
class GeoInfo:
    """Georeference of a frame: a GDAL-style affine transform and the CRS it maps into.

    ``x = c + col * a + row * b`` and ``y = f + col * d + row * e`` for pixel corner
    coordinates ``(col, row)``.
    """

    transform: tuple[float, float, float, float, float, float]  # (a, b, c, d, e, f)
    crs: str | None = None  # e.g. "EPSG:25832"
    #: True when the CRS unit is metres, so pixel areas convert to square metres.
    metric: bool = True

    def pixel_to_crs(
        self, col: np.ndarray | float, row: np.ndarray | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Map pixel corner coordinates to CRS coordinates ``(x, y)``."""
        a, b, c, d, e, f = self.transform
        col, row = np.asarray(col), np.asarray(row)
        return c + col * a + row * b, f + col * d + row * e

    @property
    def pixel_area(self) -> float:
        """Area of one pixel in CRS units squared."""
        a, b, _, d, e, _ = self.transform
        return abs(a * e - b * d)

    @property
    def gsd_m(self) -> float | None:
        """Ground sampling distance (m/px, the side of a square pixel of the same area)
        when the CRS is metric, else ``None``."""
        area = self.pixel_area
        return math.sqrt(area) if self.metric and area > 0 else None


@dataclass
class Frame:
    """One validated frame ready for inference."""

    data: np.ndarray  # H x W x 3 float32, (T_m, T_m, T_u)
    corridor: np.ndarray  # H x W bool
    name: str  # stem used for output names (never a path)
    geo: GeoInfo | None = None

    @property
    def t_u(self) -> np.ndarray:
        return self.data[..., 2]

    @property
    def t_m(self) -> np.ndarray:
        return self.data[..., 0]

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape[0], self.data.shape[1]


def compose_frame(t_u: np.ndarray, corridor: np.ndarray) -> np.ndarray:
    """Build ``(T_m, T_m, T_u)`` from a temperature image and a corridor mask."""
    t_u = np.asarray(t_u, dtype=np.float32)
    corridor = np.asarray(corridor, dtype=bool)
    fill = np.float32(float(t_u.min()) - FILL_OFFSET_DEGC)
    if t_u.ndim != 2:  # not an image: no speed to gain, keep it simple
        t_m = np.where(corridor, t_u, fill)
        return np.ascontiguousarray(np.stack([t_m, t_m, t_u], axis=-1))
    # Fill one preallocated array in row blocks: np.where + np.stack would hold three extra
    # full copies, and cache-sized blocks interleave the channels ~5x faster on big frames.
    corridor = np.broadcast_to(corridor, t_u.shape)
    out = np.empty((*t_u.shape, 3), dtype=np.float32)
    step = _block_rows(t_u.shape[1])
    for r0 in range(0, t_u.shape[0], step):
        rows = slice(r0, r0 + step)
        t_m = np.where(corridor[rows], t_u[rows], fill)
        block = out[rows]
        block[..., 0] = t_m
        block[..., 1] = t_m
        block[..., 2] = t_u[rows]
    return out


def _block_rows(width: int) -> int:
    """Rows per block so that one block holds about a million pixels."""
    return max(1, (1 << 20) // max(int(width), 1))


def corridor_from_frame(data: np.ndarray) -> np.ndarray:
    """Recover the pipeline corridor of a composed frame: where ``T_m`` equals ``T_u``.

    Args:
        data: ``H x W x 3`` frame, ``T_m`` in channel 0 and ``T_u`` in channel 2.

    Returns:
        ``H x W`` bool mask, True where ``|T_m - T_u| <= 1e-4 + 1e-4 * |T_u|``.

    Raises:
        InvalidInputError: ``data`` is not ``H x W x 3``.
    """
    data = np.asarray(data)
    if data.ndim != 3 or data.shape[2] < 3:
        raise InvalidInputError(
            f"frame has shape {_fmt_shape(data.shape)}; expected H x W x 3 (T_m, T_m, T_u)"
        )
    h, w = data.shape[:2]
    corridor = np.empty((h, w), dtype=bool)
    # Row blocks keep the float temporaries small for 8192 x 8192 frames.
    step = _block_rows(w)
    for r0 in range(0, h, step):
        t_m = data[r0 : r0 + step, :, 0].astype(np.float32, copy=False)
        t_u = data[r0 : r0 + step, :, 2].astype(np.float32, copy=False)
        tolerance = CORRIDOR_ATOL + CORRIDOR_RTOL * np.abs(t_u)
        np.less_equal(np.abs(t_m - t_u), tolerance, out=corridor[r0 : r0 + step])
    return corridor


def _fail(source: str, text: str) -> InvalidInputError:
    """Build the one-line error ``"<source>: <text>"`` (no prefix for the generic 'frame')."""
    text = " ".join(text.split())  # one line, whatever a library put into its message
    return InvalidInputError(text if source == "frame" else f"{source}: {text}")


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return " x ".join(str(int(n)) for n in shape) if shape else "a scalar"


def _reason(exc: BaseException) -> str:
    """Short one-line reason from a library exception."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


def _safe_stem(name: str) -> str:
    """Keep ``[A-Za-z0-9._-]`` (others become ``_``), <= 100 chars, no leading dot or dash."""
    name = _STEM_UNSAFE.sub("_", name).lstrip(".-")[:_STEM_MAX].rstrip(".")
    return name or "frame"


def _strip_frame_suffix(name: str) -> str | None:
    lower = name.lower()
    for suffix in FRAME_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def frame_stem(path: str | Path) -> str:
    """Safe output stem of a frame file: ``'x.npy.lz4'`` -> ``'x'``, ``'a.tif'`` -> ``'a'``.

    Folders are dropped, then a frame suffix (or any last suffix); only ``[A-Za-z0-9._-]``
    survive (others become ``_``), at most 100 characters, never empty, never starting with a
    dot (so never ``.`` or ``..``).
    """
    name = re.split(r"[\\/]", str(path))[-1]  # client file names may use either separator
    stem = _strip_frame_suffix(name)
    if stem is None:
        stem, dot, _ = name.rpartition(".")
        stem = stem if dot and stem else name
    return _safe_stem(stem)
