"""File formats: recognising a file by its content, and the decoders and encoders.

Readers accept ``.npy.lz4`` (the published format), ``.npy``, TIFF/GeoTIFF and PNG (masks),
recognised by their first bytes, never by their extension (the API hands over temp files
without one). Every problem ends in one :class:`~thermal_anomaly_segmenter.errors.InvalidInputError`
whose one-line message names the problem and the fix; big-endian and Fortran-ordered ``.npy``
data become native C order.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from tokenize import TokenError
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from thermal_anomaly_segmenter import limits
from thermal_anomaly_segmenter.config import get_settings
from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.io.atomic import atomic_write
from thermal_anomaly_segmenter.io.frames import _fail, _fmt_shape, _reason

if TYPE_CHECKING:
    from thermal_anomaly_segmenter.io.frames import GeoInfo
    from thermal_anomaly_segmenter.io.validate import MetaCheck

logger = logging.getLogger(__name__)


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


def _georef(path: Path, source: str) -> GeoInfo | None:
    """The GeoTIFF georeference read by rasterio (GDAL); None when there is none."""
    from thermal_anomaly_segmenter.io.georef import read_georef

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


def _read_png(path: Path, source: str, what: str, check: MetaCheck) -> np.ndarray:
    import cv2

    size = limits.png_size(path)
    if size is None:
        raise _fail(source, f"{what} PNG is corrupt (no IHDR header); save it again")
    check(size, np.dtype(np.uint8))
    limits.check_decoded_bytes(size[0] * size[1] * 8, source, what,
        limit=get_settings().max_decoded_bytes)  # 16-bit RGBA at most
    # imdecode instead of imread: works with any path encoding and never prints a path.
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise _fail(source, f"{what} PNG is corrupt or truncated; save it again")
    return image


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
    atomic_write(path, payload)
    return path


def write_label(path: str | Path, mask: np.ndarray) -> Path:
    """Write a binary label as an 8-bit PNG holding 0 (background) and 1 (anomaly)."""
    import cv2

    path = Path(path)
    ok, buf = cv2.imencode(".png", (np.asarray(mask) > 0).astype(np.uint8))
    if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
        raise ValueError(f"cannot encode label {path.name}")
    atomic_write(path, buf.tobytes())
    return path
