"""Frame I/O: reading, validating, composing and writing TASeg frames.

A TASeg frame is an ``H x W x 3`` float32 array of temperatures in degC, channels
``(T_m, T_m, T_u)``: ``T_u`` the full image, ``T_m`` the same image inside the pipeline
corridor and ``min(T_u) - 10`` outside it.

Readers accept ``.npy.lz4`` (the published format), ``.npy`` and TIFF/GeoTIFF, recognised by
their content, never by their extension (the API hands over temp files without one). Every
problem with an input ends in one :class:`~thermal_anomaly_segmenter.errors.InvalidInputError`
whose one-line message names the problem and the fix. Sizes are checked from the file header
before any pixel buffer is allocated, so a lying header or a decompression bomb costs at most
the declared (and accepted) frame size.

Conversions: float16/float64 and 16/32/64-bit integer pixels become float32 (integer values
are taken as degC); 8-bit images are refused (they hold colours or grey levels, not
temperatures); big-endian and Fortran-ordered ``.npy`` data become native C order.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tokenize import TokenError
from typing import BinaryIO

import numpy as np

from . import limits
from .config import get_settings
from .errors import InvalidInputError

logger = logging.getLogger(__name__)

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

_LZ4_MAGIC = b'\x04"M\x18'
_NPY_MAGIC = b"\x93NUMPY"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Formats users send by mistake, named in the error message.
_OTHER_MAGICS = {
    _PNG_MAGIC: "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"PK\x03\x04": "a ZIP archive (an .npz?)",
    b"\x1f\x8b": "a gzip file",
    b"%PDF": "a PDF document",
    b"\x89HDF": "an HDF5 file",
}
_FRAME_HINT = "expected .npy.lz4, .npy or a float TIFF"

#: Read size of compressed input, and the largest piece decompressed per call.
_IN_CHUNK = 1 << 20
_OUT_CHUNK = 8 << 20
#: LZ4 cannot expand data by more than ~255x; a header that needs more lies or is truncated.
_LZ4_MAX_RATIO = 256
_NPY_MAX_HEADER = 10_000

_STEM_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_STEM_MAX = 100

MetaCheck = Callable[[tuple[int, ...], np.dtype], None]


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


# --------------------------------------------------------------------------- composing


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


# --------------------------------------------------------------------------- validation


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
        limits.check_decoded_bytes(int(np.prod(shape)) * dtype.itemsize, source, "frame")

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


# --------------------------------------------------------------------------- sniffing


def _describe(kind: str) -> str:
    """Words for a :func:`_sniff` result, for error messages."""
    names = {"lz4": "an LZ4 file", "npy": "a .npy array", "tiff": "a TIFF", "png": "a PNG image"}
    return f"it looks like {names[kind]}" if kind in names else kind


def _sniff(path: Path, source: str, what: str) -> str:
    """Format of a file from its first bytes: 'lz4', 'npy', 'tiff', 'png' or a description."""
    try:
        if path.is_dir():
            raise _fail(source, f"{what} path is a folder, not a file")
        with path.open("rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise _fail(source, f"{what} file does not exist") from None
    except PermissionError:
        raise _fail(source, f"{what} file is not readable (permission denied)") from None
    except OSError as exc:
        raise _fail(source, f"{what} file cannot be read ({_reason(exc)})") from None
    if not head:
        raise _fail(source, f"{what} file is empty (0 bytes); upload or copy it again")
    if head.startswith(_LZ4_MAGIC):
        return "lz4"
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head[:4] in _TIFF_MAGICS:
        return "tiff"
    if head.startswith(_PNG_MAGIC):
        return "png"
    for magic, name in _OTHER_MAGICS.items():
        if head.startswith(magic):
            return f"it looks like {name}"
    return "unknown content"


# --------------------------------------------------------------------------- npy and lz4


class _Lz4Reader:
    """Read-only stream over one LZ4 frame that never decompresses more than asked for."""

    def __init__(self, fh: BinaryIO, source: str) -> None:
        import lz4.frame

        self._fh = fh
        self._source = source
        self._dec = lz4.frame.LZ4FrameDecompressor()
        self._pos = 0
        self._input_done = False

    def tell(self) -> int:
        return self._pos

    def _corrupt(self, exc: BaseException) -> InvalidInputError:
        return _fail(self._source, f"LZ4 data is corrupt ({_reason(exc)}); copy the file again")

    def _truncated(self) -> InvalidInputError:
        return _fail(
            self._source,
            "LZ4 file is truncated (the compressed stream ends early); copy the file again",
        )

    def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` decompressed bytes; b'' only at the end of the frame."""
        size = _OUT_CHUNK if size is None or size < 0 else min(size, _OUT_CHUNK)
        if size == 0:
            return b""
        idle = 0
        while not self._dec.eof:
            chunk = b""
            if self._dec.needs_input and not self._input_done:
                chunk = self._fh.read(_IN_CHUNK)
                self._input_done = not chunk
            try:
                out = self._dec.decompress(chunk, max_length=size)
            except RuntimeError as exc:  # lz4 reports every decoding failure this way
                raise self._corrupt(exc) from None
            if out:
                self._pos += len(out)
                return out
            if self._dec.eof:
                break
            # Nothing fed and nothing produced: the input is used up (or the decoder stuck).
            idle = 0 if chunk else idle + 1
            if idle and (self._input_done or idle > 2):
                raise self._truncated()
        return b""

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` completely; returns the bytes written (less only at the frame end)."""
        filled = 0
        while filled < len(buffer):
            out = self.read(len(buffer) - filled)
            if not out:
                break
            buffer[filled : filled + len(out)] = out
            filled += len(out)
        return filled

    def check_end(self) -> None:
        """Refuse data after the declared array and frames without a proper end mark."""
        if self.read(1):
            raise _fail(
                self._source,
                "LZ4 content is longer than its .npy header declares (corrupt or tampered "
                "file); write the frame again",
            )
        if self._dec.unused_data or self._fh.read(1):
            raise _fail(self._source, "file holds data after the end of its LZ4 frame")


@dataclass(frozen=True)
class _NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # bytes before the array data

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


def _read_npy_header(stream: BinaryIO | _Lz4Reader, source: str, container: str) -> _NpyHeader:
    """Parse a .npy header from ``stream`` (never unpickles; the data are left unread)."""
    head = stream.read(8)
    while 0 < len(head) < 8:  # an LZ4 reader may hand out the first bytes in pieces
        more = stream.read(8 - len(head))
        if not more:
            break
        head += more
    if not head.startswith(_NPY_MAGIC):
        raise _fail(
            source,
            f"{container} does not hold a .npy array; {_FRAME_HINT} (e.g. written by write_frame)",
        )
    try:
        version = np.lib.format.read_magic(io.BytesIO(head))
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream, _NPY_MAX_HEADER)
        elif version in ((2, 0), (3, 0)):
            # v3 differs from v2 only by a UTF-8 header, which matters for structured field
            # names alone (refused anyway); read as latin-1, ASCII headers parse the same.
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream, _NPY_MAX_HEADER)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except InvalidInputError:
        raise
    except (ValueError, TypeError, SyntaxError, KeyError, OverflowError, TokenError) as exc:
        raise _fail(source, f".npy header is invalid ({_reason(exc)})") from None
    return _NpyHeader(tuple(int(n) for n in shape), np.dtype(dtype), bool(fortran), stream.tell())


def _array_buffer(header: _NpyHeader) -> tuple[np.ndarray, np.ndarray]:
    """Allocate the array of ``header`` and the flat byte view to read its data into."""
    raw = np.empty(header.nbytes, dtype=np.uint8)
    shape = header.shape[::-1] if header.fortran else header.shape
    array = raw.view(header.dtype).reshape(shape)
    return (array.T if header.fortran else array), raw


def _read_npy_file(path: Path, source: str, check: MetaCheck) -> np.ndarray:
    with path.open("rb") as fh:
        header = _read_npy_header(fh, source, "file")
        check(header.shape, header.dtype)
        available = os.fstat(fh.fileno()).st_size - header.offset
        if available < header.nbytes:
            raise _fail(
                source,
                f".npy file is truncated: its header declares {_fmt_shape(header.shape)} "
                f"{header.dtype} ({header.nbytes:,} bytes) but only {available:,} bytes follow",
            )
        if available > header.nbytes:
            raise _fail(
                source,
                f".npy file holds {available - header.nbytes:,} bytes more than its header "
                f"declares ({_fmt_shape(header.shape)} {header.dtype}); write the frame again",
            )
        array, raw = _array_buffer(header)
        if fh.readinto(memoryview(raw)) != header.nbytes:  # pragma: no cover - size checked
            raise _fail(source, ".npy file changed while it was read")
    return array


def _read_lz4_file(path: Path, source: str, check: MetaCheck) -> np.ndarray:
    import lz4.frame

    compressed_size = path.stat().st_size
    with path.open("rb") as fh:
        try:
            info = lz4.frame.get_frame_info(fh.read(32))
        except (RuntimeError, ValueError) as exc:
            raise _fail(source, f"LZ4 frame header is corrupt ({_reason(exc)})") from None
        fh.seek(0)
        reader = _Lz4Reader(fh, source)
        header = _read_npy_header(reader, source, "LZ4 content")
        check(header.shape, header.dtype)
        expected = header.offset + header.nbytes
        content_size = info.get("content_size") or None
        if content_size is not None and content_size != expected:
            raise _fail(
                source,
                f"LZ4 frame declares {content_size:,} bytes but its .npy header needs "
                f"{expected:,} ({_fmt_shape(header.shape)} {header.dtype}): corrupt or tampered "
                "file",
            )
        # Checked before allocating: a header that lies about the size would otherwise make
        # us reserve the full declared buffer for a tiny file.
        if header.nbytes > _LZ4_MAX_RATIO * compressed_size + (1 << 16):
            raise _fail(
                source,
                f"LZ4 file of {compressed_size:,} bytes cannot hold the "
                f"{_fmt_shape(header.shape)} {header.dtype} array its header declares: "
                "truncated or tampered file",
            )
        array, raw = _array_buffer(header)
        if reader.readinto(memoryview(raw)) != header.nbytes:
            raise _fail(
                source,
                f"LZ4 content is shorter than its .npy header declares "
                f"({_fmt_shape(header.shape)} {header.dtype}): truncated or corrupt file",
            )
        reader.check_end()
    return array


# --------------------------------------------------------------------------- TIFF


def _georef(path: Path, source: str) -> GeoInfo | None:
    """The GeoTIFF georeference read by rasterio (GDAL); None when there is none."""
    from .geo.raster import read_georef

    try:
        return read_georef(path)
    except Exception as exc:  # GDAL may refuse a TIFF that tifffile decodes: keep the pixels
        logger.warning("%s: georeference cannot be read (%s); ignoring it", source, _reason(exc))
        return None


def _read_tiff(path: Path, source: str, check: MetaCheck) -> tuple[np.ndarray, GeoInfo | None]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.pages:
                raise _fail(source, "TIFF holds no image")
            page = tif.pages.first
            axes, shape, dtype = page.axes, tuple(page.shape), page.dtype
            if dtype is None:
                raise _fail(source, "TIFF has an unsupported sample format; save it as float32")
            if axes == "SYX":  # planar-separate bands: read as bands first, then move them last
                shape = (*shape[1:], shape[0])
            elif axes not in ("YX", "YXS"):
                raise _fail(
                    source,
                    f"TIFF layout {axes} {_fmt_shape(shape)} is not supported; "
                    "save one band (T_u) or three bands (T_m, T_m, T_u) as H x W (x 3)",
                )
            check(shape, np.dtype(dtype))
            size = path.stat().st_size
            extents = list(zip(page.dataoffsets, page.databytecounts, strict=True))
            if any(offset + count > size for offset, count in extents):
                raise _fail(source, "TIFF is truncated (pixel data end past the end of the file)")
            limits.check_tiff_segments(tif.filehandle, page, source, extents)
            array = page.asarray()
    except InvalidInputError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # tifffile raises many types on corrupt input
        raise _fail(
            source,
            f"TIFF is corrupt or cannot be decoded ({_reason(exc)}); save it again as an "
            "uncompressed or deflate-compressed float32 TIFF",
        ) from None
    if axes == "SYX":
        array = np.moveaxis(array, 0, -1)
    return array, _georef(path, source)


# --------------------------------------------------------------------------- masks


def _read_png(path: Path, source: str, what: str, check: MetaCheck) -> np.ndarray:
    import cv2

    size = limits.png_size(path)
    if size is None:
        raise _fail(source, f"{what} PNG is corrupt (no IHDR header); save it again")
    check(size, np.dtype(np.uint8))
    limits.check_decoded_bytes(size[0] * size[1] * 8, source, what)  # 16-bit RGBA at most
    # imdecode instead of imread: works with any path encoding and never prints a path.
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise _fail(source, f"{what} PNG is corrupt or truncated; save it again")
    return image


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
        limits.check_decoded_bytes(int(np.prod(got)) * dtype.itemsize, source, what)

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


# --------------------------------------------------------------------------- frames


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


# --------------------------------------------------------------------------- writing


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    # os.umask can only be read by setting it; do it once, before worker threads write.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write ``path`` through a temp file and a rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the mode a plain open() would have.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def write_frame(path: str | Path, data: np.ndarray) -> Path:
    """Write a frame as ``.npy.lz4`` (LZ4 frame with content size) or plain ``.npy``."""
    path = Path(path)
    payload = _npy_bytes(np.asarray(data, dtype=np.float32))
    if path.name.endswith(".lz4"):
        import lz4.frame

        payload = lz4.frame.compress(payload, store_size=True)
    _atomic_write(path, payload)
    return path


def write_label(path: str | Path, mask: np.ndarray) -> Path:
    """Write a binary label as an 8-bit PNG holding 0 (background) and 1 (anomaly)."""
    import cv2

    path = Path(path)
    ok, buf = cv2.imencode(".png", (np.asarray(mask) > 0).astype(np.uint8))
    if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
        raise ValueError(f"cannot encode label {path.name}")
    _atomic_write(path, buf.tobytes())
    return path
