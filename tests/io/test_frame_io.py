"""Tests of frame_io: every format round trip, GeoTIFF georeference, and every bad-input class.

All files are real files in ``tmp_path``; frames are small (64 x 80) so the module runs in
seconds. Each bad input must end in one InvalidInputError with a one-line, meaningful message.
"""

from __future__ import annotations

import logging
import pickle
import struct
import time
import tracemalloc
from pathlib import Path

import cv2
import lz4.frame
import numpy as np
import pytest
import tifffile

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.io.formats import write_frame, write_label
from thermal_anomaly_segmenter.io.frames import (
    FILL_OFFSET_DEGC,
    FRAME_SUFFIXES,
    GeoInfo,
    compose_frame,
    corridor_from_frame,
    frame_stem,
)
from thermal_anomaly_segmenter.io.masks import read_corridor, read_label
from thermal_anomaly_segmenter.io.read import read_frame
from thermal_anomaly_segmenter.io.validate import validate_frame

H, W = 64, 80


def make_t_u(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(0.0, 2.0, (h, w)) + 5.0).astype(np.float32)


def make_corridor(h: int = H, w: int = W) -> np.ndarray:
    corridor = np.zeros((h, w), dtype=bool)
    corridor[h // 4 : h // 2, w // 8 :] = True
    return corridor


def make_frame(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    return compose_frame(make_t_u(h, w, seed), make_corridor(h, w))


def npy_header(shape: tuple[int, ...], descr: str = "<f4", version: int = 1) -> bytes:
    """A hand-written .npy header (the data are whatever the caller appends)."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    length_size = 2 if version == 1 else 4
    pad = (-(6 + 2 + length_size + len(text) + 1)) % 64
    text = text + " " * pad + "\n"
    fmt = "<H" if version == 1 else "<I"
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack(fmt, len(text)) + text.encode()


def assert_refused(exc_info: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(exc_info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def write_geotiff(path: Path, data: np.ndarray, extratags: list) -> Path:
    photometric = "rgb" if data.ndim == 3 else "minisblack"
    tifffile.imwrite(path, data, extratags=extratags, photometric=photometric)
    return path


def geokeys(*entries: tuple[int, int]) -> tuple:
    """GeoKeyDirectoryTag values holding short keys ``(key, value)``."""
    values = [1, 1, 0, len(entries)]
    for key, value in entries:
        values += [key, 0, 1, value]
    return (34735, "H", len(values), tuple(values), False)


SCALE = (33550, "d", 3, (0.25, 0.5, 0.0), False)
TIEPOINT = (33922, "d", 6, (0.0, 0.0, 0.0, 456000.0, 5430000.0, 0.0), False)


# --------------------------------------------------------------------------- good inputs


def test_sample_frame(sample_path: Path) -> None:
    frame = read_frame(sample_path)
    assert frame.shape == (512, 640)
    assert frame.data.dtype == np.float32 and frame.data.flags.c_contiguous
    assert frame.corridor.dtype == bool
    assert int(frame.corridor.sum()) == 51_854
    rows, cols = np.nonzero(frame.corridor)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (47, 317, 84, 639)
    assert frame.name == "KA1_DJI_0_0095_R"
    assert frame.geo is None
    np.testing.assert_array_equal(frame.data[..., 0], frame.data[..., 1])


@pytest.mark.parametrize("filename", ["f.npy", "f.npy.lz4", "upload_without_suffix", "f.tif"])
def test_round_trip_npy_and_lz4(tmp_path: Path, filename: str) -> None:
    data = make_frame()
    # Content decides the format: a suffix-less temp file holds lz4, a '.tif' holds npy.
    payload_path = tmp_path / ("x.npy" if filename.endswith(".npy") else "x.npy.lz4")
    write_frame(payload_path, data)
    path = payload_path.rename(tmp_path / filename)
    frame = read_frame(path)
    np.testing.assert_array_equal(frame.data, data)
    np.testing.assert_array_equal(frame.corridor, make_corridor())
    assert frame.name == frame_stem(filename)


def test_npy_version_3_header_is_read(tmp_path: Path) -> None:
    data = make_frame()
    path = tmp_path / "v3.npy"
    with path.open("wb") as fh:
        np.lib.format.write_array(fh, data, version=(3, 0))
    np.testing.assert_array_equal(read_frame(path).data, data)


@pytest.mark.parametrize("dtype", ["<i2", "<u2", "<i4", "<f2", "<f8", ">f4", ">f8"])
def test_other_numeric_dtypes_become_float32(tmp_path: Path, dtype: str) -> None:
    # Positive integers survive every listed type exactly.
    t_u = np.round(make_t_u() + 20.0).astype(dtype)
    data = compose_frame(t_u, make_corridor()).astype(dtype)
    path = tmp_path / "f.npy"
    np.save(path, data)
    frame = read_frame(path)
    assert frame.data.dtype == np.float32 and frame.data.flags.c_contiguous
    np.testing.assert_array_equal(frame.data, data.astype(np.float32))


def test_fortran_order_becomes_c_order(tmp_path: Path) -> None:
    data = make_frame()
    path = tmp_path / "f.npy"
    np.save(path, np.asfortranarray(data))
    frame = read_frame(path)
    assert frame.data.flags.c_contiguous
    np.testing.assert_array_equal(frame.data, data)


def test_single_band_tiff_with_png_corridor(tmp_path: Path) -> None:
    t_u = make_t_u()
    tif = tmp_path / "scene.tif"
    tifffile.imwrite(tif, t_u)
    mask = tmp_path / "corridor.png"
    cv2.imwrite(str(mask), make_corridor().astype(np.uint8) * 255)
    frame = read_frame(tif, corridor=mask)
    np.testing.assert_array_equal(frame.data, compose_frame(t_u, make_corridor()))
    np.testing.assert_array_equal(frame.corridor, make_corridor())
    outside = frame.data[~make_corridor(), 0]
    assert np.allclose(outside, t_u.min() - FILL_OFFSET_DEGC)
    assert frame.name == "scene"


def test_single_band_tiff_with_array_corridor_and_int16(tmp_path: Path) -> None:
    t_u = np.round(make_t_u()).astype(np.int16)
    tif = tmp_path / "scene.tiff"
    tifffile.imwrite(tif, t_u, compression="zlib")
    frame = read_frame(tif, corridor=make_corridor().astype(np.uint8))
    np.testing.assert_array_equal(frame.data[..., 2], t_u.astype(np.float32))


@pytest.mark.parametrize("planar", ["contig", "separate"])
def test_three_band_tiff_is_a_composed_frame(tmp_path: Path, planar: str) -> None:
    data = make_frame()
    tif = tmp_path / "frame.tif"
    stored = data if planar == "contig" else np.moveaxis(data, -1, 0)
    tifffile.imwrite(tif, stored, planarconfig=planar, photometric="rgb")
    frame = read_frame(tif)
    np.testing.assert_array_equal(frame.data, data)
    np.testing.assert_array_equal(frame.corridor, make_corridor())


@pytest.mark.parametrize(
    ("tags", "transform", "crs", "metric"),
    [
        (
            [SCALE, TIEPOINT, geokeys((1024, 1), (1025, 1), (3072, 25832))],
            (0.25, 0.0, 456000.0, 0.0, -0.5, 5430000.0),
            "EPSG:25832",
            True,
        ),
        (  # PixelIsPoint: the tiepoint is a pixel centre, GDAL's corner is half a pixel off
            [SCALE, TIEPOINT, geokeys((1024, 1), (1025, 2), (3072, 25832))],
            (0.25, 0.0, 456000.0 - 0.125, 0.0, -0.5, 5430000.0 + 0.25),
            "EPSG:25832",
            True,
        ),
        (  # a tiepoint at pixel (10, 20) rather than the corner
            [
                SCALE,
                (33922, "d", 6, (10.0, 20.0, 0.0, 456000.0, 5430000.0, 0.0), False),
                geokeys((3072, 32632)),
            ],
            (0.25, 0.0, 456000.0 - 2.5, 0.0, -0.5, 5430000.0 + 10.0),
            "EPSG:32632",
            True,
        ),
        (
            [
                (
                    34264,
                    "d",
                    16,
                    (0.1, 0.02, 0, 500.0, 0.03, -0.1, 0, 900.0) + (0,) * 7 + (1,),
                    False,
                ),
                geokeys((3072, 2056), (3076, 9002)),
            ],  # 9002 = foot: GDAL keeps LV95 with foot units, no longer EPSG:2056 itself
            (0.1, 0.02, 500.0, 0.03, -0.1, 900.0),
            'PROJCRS["CH1903+ / LV95"',
            False,
        ),
        (
            [
                (33550, "d", 3, (1e-5, 1e-5, 0.0), False),
                (33922, "d", 6, (0.0, 0.0, 0.0, 8.4, 49.0, 0.0), False),
                geokeys((1024, 2), (2048, 4326)),
            ],
            (1e-5, 0.0, 8.4, 0.0, -1e-5, 49.0),
            "EPSG:4326",
            False,
        ),
    ],
)
def test_geotiff_georeference(tmp_path, tags, transform, crs, metric) -> None:
    tif = write_geotiff(tmp_path / "geo.tif", make_frame(), tags)
    frame = read_frame(tif)
    assert isinstance(frame.geo, GeoInfo)
    np.testing.assert_allclose(frame.geo.transform, transform, rtol=0, atol=1e-9)
    assert frame.geo.crs == crs or (crs.startswith("PROJCRS") and frame.geo.crs.startswith(crs))
    assert frame.geo.metric is metric


def test_single_band_geotiff_with_corridor_keeps_geo(tmp_path: Path) -> None:
    tags = [SCALE, TIEPOINT, geokeys((3072, 25832))]
    tif = write_geotiff(tmp_path / "geo.tif", make_t_u(), tags)
    frame = read_frame(tif, corridor=make_corridor())
    assert frame.geo is not None and frame.geo.crs == "EPSG:25832"
    assert frame.geo.pixel_area == pytest.approx(0.125)
    x, y = frame.geo.pixel_to_crs(4, 2)
    assert (float(x), float(y)) == pytest.approx((456001.0, 5429999.0))


def test_explicit_corridor_wins_over_composed_frame(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "f.npy.lz4", make_frame())
    other = np.zeros((H, W), dtype=bool)
    other[:, :10] = True
    frame = read_frame(path, corridor=other)
    np.testing.assert_array_equal(frame.corridor, other)
    np.testing.assert_array_equal(corridor_from_frame(frame.data), other)
    np.testing.assert_array_equal(frame.data[..., 2], make_t_u())


def test_name_argument_is_sanitised(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "f.npy", make_frame())
    assert read_frame(path, name="../site 7.v2").name == "site_7.v2"
    assert read_frame(path, name="orig.npy.lz4").name == "orig"


def test_validate_frame_returns_float32_without_copy() -> None:
    data = make_frame()
    assert validate_frame(data) is data
    converted = validate_frame(data.astype(np.float64))
    assert converted.dtype == np.float32
    np.testing.assert_array_equal(converted, data)


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("x.npy.lz4", "x"),
        ("a.tif", "a"),
        ("B.TIFF", "B"),
        ("dir/sub/frame_01.npy", "frame_01"),
        ("C:\\uploads\\evil.npy", "evil"),
        ("../../etc/passwd", "passwd"),
        ("..", "frame"),
        (".", "frame"),
        ("", "frame"),
        (".npy", "npy"),
        ("weird name;rm -rf.npy", "weird_name_rm_-rf"),
        ("tmpk3j4h5", "tmpk3j4h5"),
    ],
)
def test_frame_stem(name: str, stem: str) -> None:
    assert frame_stem(name) == stem


def test_frame_stem_is_bounded() -> None:
    stem = frame_stem("x" * 300 + ".npy.lz4")
    assert len(stem) == 100
    assert FRAME_SUFFIXES[0] == ".npy.lz4"  # longest first, or 'x.npy.lz4' would keep '.npy'


# --------------------------------------------------------------------------- corridors, labels


@pytest.mark.parametrize("kind", ["png", "rgb_png", "tif", "npy", "bool_npy"])
def test_read_corridor_formats(tmp_path: Path, kind: str) -> None:
    mask = make_corridor()
    written = tmp_path / ("mask.tif" if kind == "tif" else "mask.npy" if "npy" in kind else "m.png")
    if kind == "png":
        cv2.imwrite(str(written), mask.astype(np.uint8))
    elif kind == "rgb_png":
        cv2.imwrite(str(written), np.dstack([mask.astype(np.uint8) * 255] * 3))
    elif kind == "tif":
        tifffile.imwrite(written, mask.astype(np.float32))
    else:
        np.save(written, mask if kind == "bool_npy" else mask.astype(np.uint8))
    path = written.rename(tmp_path / "mask")  # no suffix: the format is sniffed
    np.testing.assert_array_equal(read_corridor(path, (H, W)), mask)


def test_read_label_values(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mask = make_corridor()
    ones = write_label(tmp_path / "ones.png", mask)
    label = read_label(ones)
    assert label.dtype == np.uint8
    np.testing.assert_array_equal(label, mask.astype(np.uint8))

    scaled = tmp_path / "scaled.png"
    cv2.imwrite(str(scaled), mask.astype(np.uint8) * 255)
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(read_label(scaled), mask.astype(np.uint8))
    assert "0/255" in caplog.text

    bad = tmp_path / "bad.png"
    cv2.imwrite(str(bad), (np.arange(H * W) % 3).reshape(H, W).astype(np.uint8))
    with pytest.raises(InvalidInputError) as exc:
        read_label(bad)
    assert_refused(exc, "bad.png", "0, 1, 2", "expected 0 (background) and 1")


def test_read_label_refuses_non_png(tmp_path: Path) -> None:
    path = tmp_path / "label.png"
    np.save(tmp_path / "label.npy", make_corridor())
    (tmp_path / "label.npy").rename(path)
    with pytest.raises(InvalidInputError) as exc:
        read_label(path)
    assert_refused(exc, "label is not a PNG", ".npy array")


# --------------------------------------------------------------------------- bad files


def write_bytes(tmp_path: Path, payload: bytes, name: str = "bad.npy.lz4") -> Path:
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def _npy(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def lz4_payload(data: bytes, **kwargs) -> bytes:
    return lz4.frame.compress(data, **kwargs)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as exc:
        read_frame(tmp_path / "nope.npy")
    assert_refused(exc, "nope.npy", "does not exist")
    with pytest.raises(InvalidInputError) as exc:
        read_frame(tmp_path)
    assert_refused(exc, "folder")


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as exc:
        read_frame(write_bytes(tmp_path, b""))
    assert_refused(exc, "bad.npy.lz4", "empty")


def test_random_bytes(tmp_path: Path) -> None:
    payload = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(InvalidInputError) as exc:
        read_frame(write_bytes(tmp_path, b"\x00junk" + payload, "f.npy"))
    assert_refused(exc, "is not a TASeg frame", "expected .npy.lz4, .npy or a float TIFF")


def test_png_renamed_npy(tmp_path: Path) -> None:
    png = tmp_path / "image.png"
    cv2.imwrite(str(png), np.zeros((H, W), np.uint8))
    with pytest.raises(InvalidInputError) as exc:
        read_frame(png.rename(tmp_path / "image.npy"))
    assert_refused(exc, "image.npy", "not a TASeg frame", "PNG image")


def test_truncated_lz4(tmp_path: Path) -> None:
    payload = lz4_payload(_npy(make_frame()), store_size=True)
    with pytest.raises(InvalidInputError) as exc:
        read_frame(write_bytes(tmp_path, payload[: len(payload) // 2]))
    assert_refused(exc, "truncated")
    # cut inside the last block end mark: all pixels present, the frame end missing
    with pytest.raises(InvalidInputError) as exc:
        read_frame(write_bytes(tmp_path, payload[:-2]))
    assert_refused(exc, "truncated")


def test_corrupt_lz4(tmp_path: Path) -> None:
    payload = bytearray(lz4_payload(_npy(make_frame()), content_checksum=True))
    payload[len(payload) // 2] ^= 0xFF
    with pytest.raises(InvalidInputError) as exc:
        read_frame(write_bytes(tmp_path, bytes(payload)))
    assert_refused(exc, "LZ4", "corrupt")
    # a broken frame header (its checksum byte) is caught before decompression
    header_broken = bytearray(lz4_payload(_npy(make_frame()), store_size=True))
    header_broken[14] ^= 0xFF
    with pytest.raises(InvalidInputError) as exc:
        read_frame(write_bytes(tmp_path, bytes(header_broken)))
    assert_refused(exc, "LZ4", "corrupt")


def test_lz4_of_non_npy_bytes(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as exc:
        read_frame(write_bytes(tmp_path, lz4_payload(b"hello world, not an array" * 100)))
    assert_refused(exc, "LZ4 content does not hold a .npy array")


def test_pickled_object_array_is_never_unpickled(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}, None, "x"], dtype=object), allow_pickle=True)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("frame_io tried to unpickle")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    with pytest.raises(InvalidInputError) as exc:
        read_frame(path)
    assert_refused(exc, "obj.npy", "Python object")


@pytest.mark.parametrize(
    ("descr", "fragment"),
    [("|b1", "boolean"), ("<c8", "complex"), ("|u1", "8-bit"), ("<U4", "text"), ("|V12", "raw")],
)
def test_non_temperature_dtypes(tmp_path: Path, descr: str, fragment: str) -> None:
    path = write_bytes(tmp_path, npy_header((H, W, 3), descr) + b"\x00" * 64, "f.npy")
    with pytest.raises(InvalidInputError) as exc:
        read_frame(path)
    assert_refused(exc, fragment)


@pytest.mark.parametrize("container", ["npy", "lz4"])
def test_huge_header_refused_before_allocation(tmp_path: Path, container: str) -> None:
    payload = npy_header((100_000, 100_000, 3)) + b"\x00" * 256
    if container == "lz4":
        payload = lz4_payload(payload)
    path = write_bytes(tmp_path, payload, "huge")
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(InvalidInputError) as exc:
            read_frame(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 50 * 2**20
    assert_refused(exc, "100000 x 100000", "above the limit", "TASEG_MAX_PIXELS")


def test_lz4_header_claiming_more_than_the_file_can_hold(tmp_path: Path) -> None:
    # 4096 x 4096 x 3 float32 is 201 MB: allowed by max_pixels, impossible from a few bytes.
    # No content size in the LZ4 frame, so only the compression-ratio bound can catch it.
    payload = lz4_payload(npy_header((4096, 4096, 3)) + b"\x00" * 1024, store_size=False)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInputError) as exc:
            read_frame(write_bytes(tmp_path, payload))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
    assert_refused(exc, "cannot hold", "4096 x 4096 x 3")


def test_lz4_bomb_with_small_header_stops_at_declared_size(tmp_path: Path) -> None:
    # Header says 64 x 80 x 3 float32 (61 KB); the stream holds 128 MB of zeros behind it.
    compressor = lz4.frame.LZ4FrameCompressor()
    parts = [compressor.begin(), compressor.compress(npy_header((H, W, 3)))]
    zeros = bytes(1 << 20)
    parts += [compressor.compress(zeros) for _ in range(128)]
    parts.append(compressor.flush())
    path = write_bytes(tmp_path, b"".join(parts))
    del parts, zeros
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInputError) as exc:
            read_frame(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
    assert_refused(exc, "longer than its .npy header declares")


def test_lz4_content_size_disagreeing_with_npy_header(tmp_path: Path) -> None:
    payload = lz4_payload(npy_header((H, W, 3)) + b"\x00" * (H * W * 12 * 4), store_size=True)
    with pytest.raises(InvalidInputError) as exc:
        read_frame(write_bytes(tmp_path, payload))
    assert_refused(exc, "LZ4 frame declares", "tampered")


def test_truncated_npy(tmp_path: Path) -> None:
    payload = _npy(make_frame())
    with pytest.raises(InvalidInputError) as exc:
        read_frame(write_bytes(tmp_path, payload[:-100], "f.npy"))
    assert_refused(exc, "truncated", "64 x 80 x 3")


def test_broken_npy_header(tmp_path: Path) -> None:
    payload = b"\x93NUMPY\x01\x00" + struct.pack("<H", 30) + b"{'descr': <f4, oops" + b" " * 11
    with pytest.raises(InvalidInputError) as exc:
        read_frame(write_bytes(tmp_path, payload, "f.npy"))
    assert_refused(exc, ".npy header is invalid")


def test_two_d_without_corridor(tmp_path: Path) -> None:
    path = tmp_path / "t_u.npy"
    np.save(path, make_t_u())
    with pytest.raises(InvalidInputError) as exc:
        read_frame(path)
    assert_refused(exc, "2-D image", "pass a corridor mask")
    tif = tmp_path / "t_u.tif"
    tifffile.imwrite(tif, make_t_u())
    with pytest.raises(InvalidInputError) as exc:
        read_frame(tif)
    assert_refused(exc, "t_u.tif", "pass a corridor mask")


@pytest.mark.parametrize(
    ("shape", "fragments"),
    [
        ((H, W, 4), ("4 channels", "H x W x 3")),
        ((3, H, W), ("channels first", "H x W x 3")),
        ((H, W, 3, 1), ("shape 64 x 80 x 3 x 1", "H x W x 3")),
        ((1, 1, 3), ("too small", "16 px")),
        ((8, 80, 3), ("too small",)),
        ((16, 1100, 3), ("aspect ratio", "64:1")),
    ],
)
def test_bad_shapes(tmp_path: Path, shape: tuple[int, ...], fragments: tuple[str, ...]) -> None:
    path = tmp_path / "f.npy"
    np.save(path, np.zeros(shape, np.float32))
    with pytest.raises(InvalidInputError) as exc:
        read_frame(path)
    assert_refused(exc, *fragments)
    with pytest.raises(InvalidInputError) as exc:
        validate_frame(np.zeros(shape, np.float32))
    assert_refused(exc, *fragments)


def test_max_pixels_argument(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "f.npy", make_frame())
    with pytest.raises(InvalidInputError) as exc:
        read_frame(path, max_pixels=1000)
    assert_refused(exc, "64 x 80 = 5,120 pixels", "above the limit of 1,000")


@pytest.mark.parametrize(
    ("value", "count", "fragment"),
    [(np.nan, 7, "7 pixels hold NaN"), (np.inf, 3, "3 pixels hold infinity")],
)
def test_non_finite_values(tmp_path: Path, value: float, count: int, fragment: str) -> None:
    data = make_frame()
    data.reshape(-1, 3)[:count, 2] = value
    path = write_frame(tmp_path / "f.npy.lz4", data)
    with pytest.raises(InvalidInputError) as exc:
        read_frame(path)
    assert_refused(exc, fragment)


def test_non_finite_t_u_with_corridor(tmp_path: Path) -> None:
    t_u = make_t_u()
    t_u[5, 5] = np.nan
    path = tmp_path / "t_u.npy"
    np.save(path, t_u)
    with pytest.raises(InvalidInputError) as exc:
        read_frame(path, corridor=make_corridor())
    assert_refused(exc, "1 pixel holds NaN")


@pytest.mark.parametrize(
    ("scale", "offset", "fragment"),
    [
        (100.0, 27315.0, "Kelvin x 100"),
        (1.0, 273.15, "subtract 273.15"),
        (1.0, -500.0, "no-data fill value"),
    ],
)
def test_implausible_temperatures(tmp_path, scale: float, offset: float, fragment: str) -> None:
    t_u = make_t_u() * scale + offset
    path = write_frame(tmp_path / "f.npy", compose_frame(t_u, make_corridor()))
    with pytest.raises(InvalidInputError) as exc:
        read_frame(path)
    assert_refused(exc, "T_u (channel 2)", fragment)


def test_no_corridor(tmp_path: Path) -> None:
    data = make_frame()
    data[..., 0] = data[..., 1] = data[..., 2] - 20.0
    path = write_frame(tmp_path / "f.npy.lz4", data)
    with pytest.raises(InvalidInputError) as exc:
        read_frame(path)
    assert_refused(
        exc, "frame has no pipeline corridor: T_m (channels 0-1) never equals T_u (channel 2)"
    )


def test_corrupt_and_truncated_tiff(tmp_path: Path) -> None:
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, make_frame(), photometric="rgb")
    payload = good.read_bytes()
    broken = write_bytes(tmp_path, payload[:8] + b"\xff" * 64 + payload[72:], "broken.tif")
    with pytest.raises(InvalidInputError) as exc:
        read_frame(broken)
    assert_refused(exc, "broken.tif", "TIFF")
    garbage_offset = write_bytes(tmp_path, b"II*\x00\xff\xff\xff\x7f" + b"\x00" * 64, "g.tif")
    with pytest.raises(InvalidInputError) as exc:
        read_frame(garbage_offset)
    assert_refused(exc, "TIFF")
    truncated = write_bytes(tmp_path, payload[: len(payload) // 2], "cut.tif")
    with pytest.raises(InvalidInputError) as exc:
        read_frame(truncated)
    assert_refused(exc, "cut.tif", "TIFF")


def test_rgb8_tiff_picture_is_refused(tmp_path: Path) -> None:
    tif = tmp_path / "photo.tif"
    tifffile.imwrite(tif, np.zeros((H, W, 3), np.uint8), photometric="rgb")
    with pytest.raises(InvalidInputError) as exc:
        read_frame(tif)
    assert_refused(exc, "8-bit", "not temperatures")


def test_corridor_shape_mismatch(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "f.npy.lz4", make_frame())
    mask = tmp_path / "corridor.png"
    cv2.imwrite(str(mask), np.ones((H + 1, W), np.uint8))
    with pytest.raises(InvalidInputError) as exc:
        read_frame(path, corridor=mask)
    assert_refused(exc, "corridor.png", "65 x 80", "64 x 80")
    with pytest.raises(InvalidInputError) as exc:
        read_frame(path, corridor=np.ones((W, H), bool))
    assert_refused(exc, "80 x 64", "64 x 80")


def test_bad_corridor_files(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "f.npy", make_frame())
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.zeros((H, W), np.uint8))
    with pytest.raises(InvalidInputError) as exc:
        read_frame(path, corridor=empty)
    assert_refused(exc, "empty.png", "corridor mask is empty")
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.ones((H, W), np.uint8))
    corrupt = write_bytes(tmp_path, good.read_bytes()[:40], "corrupt.png")
    with pytest.raises(InvalidInputError) as exc:
        read_corridor(corrupt, (H, W))
    assert_refused(exc, "corrupt.png", "corrupt")
    with pytest.raises(InvalidInputError) as exc:
        read_corridor(write_bytes(tmp_path, b"GIF89a" + b"\x00" * 40, "mask.gif"))
    assert_refused(exc, "mask.gif", "expected a PNG, TIFF or .npy mask")
    with pytest.raises(InvalidInputError) as exc:
        read_frame(path, corridor=42)  # type: ignore[arg-type]
    assert_refused(exc, "corridor must be a mask file path or a numpy array")
