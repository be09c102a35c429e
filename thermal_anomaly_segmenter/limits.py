"""Resource limits every reader checks before it decodes: one place for decode and size bounds.

A file's header declares how much it holds; nothing is decoded before that declaration is
checked against the limits of :class:`~.config.Settings`, and no compressed piece may inflate
beyond what the declaration allows. Decompressors that take no output bound (tifffile's
fallbacks for deflate, LZMA and PackBits) get a streaming pre-check here that stops one
chunk past the declared size, so a bomb costs at most one chunk of memory.
"""

from __future__ import annotations

import lzma
import os
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from thermal_anomaly_segmenter.errors import InvalidInputError

#: Most bytes one streaming pre-check inflates per call (memory of a bomb check).
CHUNK = 4 * 2**20
#: PackBits turns two bytes into at most 128: its worst-case expansion.
PACKBITS_RATIO = 64
#: TIFF compression codes whose decoder (tifffile without imagecodecs) ignores the output
#: size it is given; each gets a streaming pre-check.
_DEFLATE = {8, 32946, 50013}
_LZMA = {34925}
_PACKBITS = {32773}


class LimitError(InvalidInputError):
    """A declared or decoded size exceeds a configured limit."""


def _fail(source: str, text: str) -> LimitError:
    return LimitError(text if source == "frame" else f"{source}: {text}")


def check_decoded_bytes(nbytes: int, source: str, what: str = "image", *, limit: int) -> None:
    """Refuse decoding ``nbytes`` (from a header) above ``limit`` bytes
    (``Settings.max_decoded_bytes``, from ``TASEG_MAX_DECODED_MB``)."""
    if nbytes > limit:
        raise _fail(
            source, f"{what} decodes to {nbytes / 2**20:,.0f} MiB, above the limit of "
            f"{limit // 2**20:,} MiB (TASEG_MAX_DECODED_MB)"
        )


def png_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from a PNG's IHDR chunk, read before decoding anything."""
    with path.open("rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")


def check_png(path: Path, source: str, what: str, max_pixels: int, max_bytes: int
              ) -> tuple[int, int]:
    """The declared (height, width) of a PNG, refused above ``max_pixels`` or the decode limit.

    PNG pixels take at most 8 bytes (16-bit RGBA), which bounds what decoding allocates.
    """
    size = png_size(path)
    if size is None:
        raise _fail(source, f"{what} PNG is corrupt (no IHDR header); save it again")
    h, w = size
    if h * w > max_pixels:
        raise _fail(
            source, f"{what} is {h} x {w} px, above the limit of {max_pixels:,} pixels "
            "(TASEG_MAX_PIXELS)"
        )
    check_decoded_bytes(h * w * 8, source, what, limit=max_bytes)
    return size


def _segment_bytes(page: Any) -> int:
    """Bytes one strip or tile of ``page`` decodes to, from its header."""
    contig = page.planarconfig == 1
    samples = page.samplesperpixel if contig else 1
    bits = page.bitspersample
    if page.is_tiled:
        row = -(-page.tilewidth * samples * bits // 8)
        return row * page.tilelength * max(page.tiledepth, 1)
    row = -(-page.imagewidth * samples * bits // 8)
    return row * min(page.rowsperstrip or page.imagelength, page.imagelength)


def _inflated_size(raw: bytes, compression: int, limit: int) -> int:
    """Bytes ``raw`` inflates to, counted in chunks; stops as soon as ``limit`` is passed."""
    if compression in _PACKBITS:
        return min(len(raw) * PACKBITS_RATIO, limit + 1)
    if compression in _DEFLATE:
        dec: Any = zlib.decompressobj()
        total, data = 0, raw
        while data and total <= limit:
            total += len(dec.decompress(data, CHUNK))
            data = dec.unconsumed_tail
        return total
    dec = lzma.LZMADecompressor()
    total, data = 0, raw
    while total <= limit and not dec.eof:
        out = dec.decompress(data, CHUNK)
        data = b""
        total += len(out)
        if not out and dec.needs_input:
            break
    return total


def check_tiff_segments(
    fh: BinaryIO, page: Any, source: str, extents: Iterable[tuple[int, int]]
) -> None:
    """Refuse a TIFF page whose compressed strips or tiles inflate beyond their declared size.

    Only compressions whose decoder takes no output bound are pre-inflated (in chunks, output
    discarded); the others (imagecodecs' decoders) are given the declared size by tifffile.
    """
    compression = int(page.compression)
    if compression not in _DEFLATE | _LZMA | _PACKBITS:
        return
    expected = _segment_bytes(page)
    for offset, count in extents:
        if not count:
            continue
        fh.seek(offset)
        raw = fh.read(count)
        try:
            inflated = _inflated_size(raw, compression, expected)
        except (zlib.error, lzma.LZMAError):
            continue  # corrupt data: the decoder itself reports it
        if inflated > expected:
            raise _fail(
                source, f"a compressed TIFF strip or tile of {count:,} bytes inflates beyond "
                f"the {expected:,} bytes its declared size allows (decompression bomb?); "
                "refused before decoding"
            )


#: Largest ratio of declared to compressed size of a whole archive. Thermal frames and PNG
#: labels compress a few times at most; a zip bomb inflates a thousandfold.
MAX_ARCHIVE_RATIO = 100


def check_archive_bytes(total: int, source: str, compressed: int | None = None, *,
                        limit: int) -> None:
    """Refuse extracting an archive whose members declare more than ``limit`` bytes
    (``TASEG_MAX_EXTRACT_MB``),
    or more than :data:`MAX_ARCHIVE_RATIO` times their compressed size (a zip bomb)."""
    if compressed is not None and total > MAX_ARCHIVE_RATIO * max(compressed, 2**20):
        raise _fail(
            source, f"members declare {total / 2**20:,.0f} MiB from {compressed / 2**20:,.1f} "
            f"MiB compressed, more than {MAX_ARCHIVE_RATIO} times (a zip bomb?); extract it "
            "yourself if it is genuine"
        )
    if total > limit:
        raise _fail(
            source, f"members declare {total / 2**20:,.0f} MiB, above the extraction limit "
            f"of {limit // 2**20:,} MiB (TASEG_MAX_EXTRACT_MB)"
        )


# --------------------------------------------------------------------------- train arguments

#: numpy's ``default_rng``/``seed`` and Lightning's ``seed_everything`` take 32-bit seeds.
SEED_MAX = 2**32 - 1
#: Largest batch: beyond this no GPU of today holds a TASeg model's activations.
BATCH_MAX = 1024
#: Most epochs of one phase.
EPOCHS_MAX = 10_000
#: Longest wall-time budget of a run, in minutes (one week).
MAX_TIME_MINUTES = 7 * 24 * 60


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def train_bounds() -> dict[str, tuple[float, float]]:
    """(min, max) of every numeric train argument; worker_count is bounded by the cores."""
    return {
        "batch_size": (1, BATCH_MAX),
        "worker_count": (0, cpu_cores()),
        "seed": (1, SEED_MAX),
        "epochs": (1, EPOCHS_MAX),
        "early_stopping": (1, EPOCHS_MAX),
        "max_time": (0, MAX_TIME_MINUTES),
    }


def check_train_value(name: str, value: float | None) -> None:
    """Refuse a train argument outside :func:`train_bounds` (``None`` = default, accepted)."""
    if value is None or name not in train_bounds():
        return
    low, high = train_bounds()[name]
    if not low <= value <= high:
        raise LimitError(f"{name} must be within {low:g}..{high:g}, got {value:g}")
