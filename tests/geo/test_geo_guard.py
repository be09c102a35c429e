"""Hostile GIS inputs (issue 27): what once crashed GEOS/PROJ, made GDAL follow references
or took unbounded work is refused with one line, exit 2, before the libraries act on it.

The inputs that used to kill the process (SIGSEGV inside GEOS) run in a subprocess, so a
regression fails the test instead of the test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
import pyogrio  # noqa: E402
import shapely  # noqa: E402
from affine import Affine  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402
from test_geo import GSD, ORIGIN, ROOT, W, predict, write_ortho, write_pipes  # noqa: E402

from thermal_anomaly_segmenter.geo.network import PipeNetwork, chunk_lines  # noqa: E402
from thermal_anomaly_segmenter.io import gis_guard as guard  # noqa: E402

MODEL = ROOT / "models" / "unet_mobilenetv2_synthetic"
ROW_Y = ORIGIN[1] - 300 * GSD


def geojson(path: Path, coords, crs: str = "EPSG:25832") -> Path:
    path.write_text(json.dumps({
        "type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": crs}},
        "features": [{"type": "Feature", "properties": {"id": 1},
                      "geometry": {"type": "LineString", "coordinates": coords}}]}))
    return path


def gpkg_line(path: Path, coords) -> Path:
    with np.errstate(invalid="ignore"):
        line = shapely.LineString(coords)
    pyogrio.raw.write(path, shapely.to_wkb(np.array([line], object)),
                      field_data=[np.array([1])], fields=["id"], crs="EPSG:25832",
                      geometry_type="LineString", driver="GPKG")
    return path


def raster(path: Path, crs, transform, size=(64, 80), **profile) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=size[1], height=size[0], count=1,
                       dtype="float32", crs=crs, transform=transform, **profile) as ds:
        ds.write(np.full(size, -3.0, np.float32), 1)
    return path


def cli(*args) -> subprocess.CompletedProcess:
    code = "import sys; from thermal_anomaly_segmenter.cli.parser import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize(("case", "message"), [
    ("1e308", "beyond 1e+09"),
    ("inf", "infinite or NaN"),
    ("nan", "infinite or NaN"),
    ("vertical", "not a horizontal"),
])
def test_layers_that_crashed_geos_exit_2_in_a_subprocess(tmp_path, case, message) -> None:
    ortho = write_ortho(tmp_path / "ortho.tif", 25832)
    if case == "1e308":
        pipes = geojson(tmp_path / "p.geojson", [[1e308, 1e308], [-1e308, 1e308]])
    elif case == "inf":
        pipes = gpkg_line(tmp_path / "p.gpkg", [[np.inf, np.inf], [-np.inf, np.inf]])
    elif case == "nan":
        pipes = gpkg_line(tmp_path / "p.gpkg", [[np.nan, 1.0], [2.0, np.nan]])
    else:
        pipes = geojson(tmp_path / "p.geojson", [[ORIGIN[0], ROW_Y], [ORIGIN[0] + 100, ROW_Y]],
                        "EPSG:5703")
    run = cli("predict", ortho, "--pipes", pipes, "--out", tmp_path / "out",
              "--model-dir", MODEL, "-q")
    lines = (run.stdout + run.stderr).strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and message in lines[0], run
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(("case", "message"), [
    ("lon5e8", "outside the area"),
    ("sheared", "sheared"),
    ("local_cs", "not a horizontal"),
    ("vertical", "not a horizontal"),
    ("nan", "no georeference"),
    ("strip", "TIFF blocks"),
    ("huge", "above the limit"),
])
def test_rasters_refused_from_their_header(tmp_path, capsys, case, message) -> None:
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832)
    grid = from_origin(*ORIGIN, GSD, GSD)
    path = tmp_path / "r.tif"
    if case == "lon5e8":
        raster(path, "EPSG:4326", from_origin(5e8, 49.0, 1e-5, 1e-5))
    elif case == "sheared":
        raster(path, "EPSG:25832", grid @ Affine.shear(30, 10))
    elif case == "local_cs":
        raster(path, 'LOCAL_CS["x",UNIT["metre",1]]', grid)
    elif case == "vertical":
        raster(path, "EPSG:5703", grid)
    elif case == "nan":
        raster(path, "EPSG:25832", Affine(float("nan"), 0, ORIGIN[0], 0, -GSD, ORIGIN[1]))
    elif case == "strip":  # one compressed strip of 4100^2 float32 (64 MiB) for any read
        raster(path, "EPSG:25832", grid, size=(4100, 4100), blockysize=4100, compress="deflate")
    else:  # a sparse BigTIFF declaring 200000^2 pixels of 1 um: 1.8 MB on disk
        with rasterio.open(path, "w", driver="GTiff", width=200_000, height=200_000, count=1,
                           dtype="float32", crs="EPSG:25832", tiled=True, sparse_ok=True,
                           bigtiff="yes", transform=from_origin(*ORIGIN, 1e-6, 1e-6)) as ds:
            ds.write(np.full((16, 16), -3.0, np.float32), 1,
                     window=rasterio.windows.Window(0, 0, 16, 16))
    started = time.perf_counter()
    code, text = predict(capsys, path, "--pipes", pipes, "--out", tmp_path / "out")
    assert code == 2 and message in text and "Traceback" not in text, text
    assert time.perf_counter() - started < 10
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"")

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_server():
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


def hostile_vrts(tmp_path: Path, url: str) -> dict[str, Path]:
    """VRT rasters and OGR VRT layers that point at the HTTP server and at a server file."""
    secret = write_ortho(tmp_path / "server_secret.tif", 25832)
    layer = write_pipes(tmp_path / "server_pipes.gpkg", 25832)
    files = {}
    for name, source in (("http", f"/vsicurl/{url}/x.tif"), ("file", str(secret))):
        files[f"raster_{name}"] = tmp_path / f"raster_{name}.tif"  # any name: content counts
        files[f"raster_{name}"].write_text(
            '<VRTDataset rasterXSize="800" rasterYSize="600"><SRS>EPSG:25832</SRS>'
            f"<GeoTransform>{ORIGIN[0]},{GSD},0,{ORIGIN[1]},0,-{GSD}</GeoTransform>"
            '<VRTRasterBand dataType="Float32" band="1"><SimpleSource><SourceFilename>'
            f"{source}</SourceFilename><SourceBand>1</SourceBand></SimpleSource>"
            "</VRTRasterBand></VRTDataset>")
    for name, source in (("http", f"/vsicurl/{url}/p.geojson"), ("file", str(layer))):
        files[f"layer_{name}"] = tmp_path / f"layer_{name}.geojson"
        files[f"layer_{name}"].write_text(
            f'<OGRVRTDataSource><OGRVRTLayer name="pipes"><SrcDataSource>{source}'
            "</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>")
    zipped = tmp_path / "layer_zip.zip"  # a zip's single member opens as itself in GDAL
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(files["layer_http"], "pipes.vrt")
    files["layer_zip"] = zipped
    return files


def test_vrt_rasters_and_layers_are_refused_and_never_fetched(tmp_path, capsys,
                                                              http_server) -> None:
    url, seen = http_server
    files = hostile_vrts(tmp_path, url)
    ortho = write_ortho(tmp_path / "ortho.tif", 25832)
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832)
    for name, path in files.items():
        args = (path, "--pipes", pipes) if name.startswith("raster") else (ortho, "--pipes",
                                                                           path)
        code, text = predict(capsys, *args, "--out", tmp_path / name)
        lines = text.strip().splitlines()
        assert code == 2 and "Traceback" not in text, (name, text)
        assert len([x for x in lines if "taseg: 1 input(s) failed" not in x]) == 1, text
        assert str(tmp_path) not in text.replace(str(path), path.name), text
    assert seen == []  # the HTTP server received no request
    for target in (f"/vsicurl/{url}/x.tif", f"{url}/x.tif"):
        code, text = predict(capsys, ortho, "--pipes", target, "--out", tmp_path / "url")
        assert code == 2 and "local file" in text, text
    assert seen == []


def test_zigzag_line_buffers_in_linear_time(tmp_path) -> None:
    """A 20,000-vertex zig-zag folding on itself: GEOS buffered it in superlinear time and
    memory (3,000 vertices: 1.2 GB); in pieces it is a second's work."""
    coords = [[ORIGIN[0] + (i % 2) * 50, ROW_Y - i * 0.005] for i in range(20_000)]
    network = PipeNetwork.read(geojson(tmp_path / "zig.geojson", coords))
    bounds = (ORIGIN[0], ORIGIN[1] - 600 * GSD, ORIGIN[0] + W * GSD, ORIGIN[1])
    started = time.perf_counter()
    corridor = network.corridor_for("EPSG:25832", bounds, 8.0, "o")
    mask = corridor.mask(from_origin(*ORIGIN, GSD, GSD), (600, W))
    assert time.perf_counter() - started < 15
    assert mask[300:, 0:200].all()  # the zig-zag sweeps x = 0..50 m over rows 300..700


def test_pieces_cover_the_line_exactly() -> None:
    lines = np.array([shapely.LineString([(i, i % 3) for i in range(70)]),
                      shapely.MultiLineString([[(0, 0), (1, 1)], [(5, 5), (6, 6), (7, 7)]])],
                     object)
    pieces, owner = chunk_lines(lines, 32)
    assert shapely.get_num_coordinates(pieces).max() <= 32
    assert list(owner) == [0, 0, 0, 1, 1]
    for i, line in enumerate(lines):
        assert shapely.union_all(pieces[owner == i]).equals(line)


def test_layer_limits_and_content_recognition(tmp_path, monkeypatch) -> None:
    coords = [[ORIGIN[0] + i, ROW_Y] for i in range(50)]
    monkeypatch.setattr(guard, "MAX_VERTICES", 40)
    with pytest.raises(guard.InvalidInputError, match="50 vertices, above the limit of 40"):
        PipeNetwork.read(geojson(tmp_path / "long.geojson", coords))
    sqlite = tmp_path / "plain.sqlite"
    sqlite.write_bytes(b"SQLite format 3\x00" + bytes(200))
    with pytest.raises(guard.InvalidInputError, match="not a GeoPackage"):
        PipeNetwork.read(sqlite)
    monkeypatch.setattr(guard, "MAX_LAYER_BYTES", 100)
    with pytest.raises(guard.InvalidInputError, match="above the limit of 0 MiB"):
        PipeNetwork.read(geojson(tmp_path / "big.geojson", coords))
    monkeypatch.undo()
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.shp", b"")
        zf.writestr("../evil.dbf", b"")
    with pytest.raises(guard.InvalidInputError, match="exactly one Shapefile"):
        PipeNetwork.read(archive)


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()
                  if p.name.startswith(".") or p.stat().st_size == 0) if out.exists() else []


@pytest.mark.slow
def test_interrupted_or_killed_ortho_predict_leaves_nothing(tmp_path) -> None:
    """SIGINT: the predict removes its partial files itself; SIGKILL (a server's cancelled
    worker) leaves them, and the next predict into that folder removes them."""
    import signal

    ortho = tmp_path / "big.tif"
    size = (2400, 2400)
    rng = np.random.default_rng(0)
    with rasterio.open(ortho, "w", driver="GTiff", width=size[1], height=size[0], count=1,
                       dtype="float32", crs="EPSG:25832", tiled=True,
                       transform=from_origin(*ORIGIN, GSD, GSD)) as ds:
        ds.write(rng.normal(-3.0, 0.25, size).astype(np.float32), 1)
    rows = [ORIGIN[1] - r * GSD for r in range(100, 2400, 200)]
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832, lines=[
        shapely.LineString([(ORIGIN[0], y), (ORIGIN[0] + 2400 * GSD, y)]) for y in rows])
    code = "import sys; from thermal_anomaly_segmenter.cli.parser import main; sys.exit(main())"
    for sig in (signal.SIGINT, signal.SIGKILL):
        out = tmp_path / f"out_{sig.name}"
        proc = subprocess.Popen([sys.executable, "-c", code, "predict", str(ortho), "--pipes",
                                 str(pipes), "--out", str(out), "--model-dir", str(MODEL),
                                 "-q"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not any(".part.tif" in n for n in _leftovers(out)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        if sig == signal.SIGINT:
            assert _leftovers(out) == [], _leftovers(out)
            assert "Traceback" not in proc.stdout.read().decode()
        else:
            left = _leftovers(out)
            assert any(n.endswith(".claim") for n in left) and "big_prob.tif" in left, left
    from thermal_anomaly_segmenter.geo.leftovers import sweep_outputs
    from thermal_anomaly_segmenter.outputs.names import ORTHO_NAMES

    out = tmp_path / "out_SIGKILL"
    assert sweep_outputs(out, ORTHO_NAMES.values()) and _leftovers(out) == []
    assert not any(out.iterdir())


def test_corridor_share_is_bounded(tmp_path, capsys, monkeypatch) -> None:
    """A raster within the declared-size limit whose blocks along the corridor hold too
    many pixels is refused before any block is read."""
    from thermal_anomaly_segmenter.config import reload_settings

    ortho = write_ortho(tmp_path / "ortho.tif", 25832)  # 600 x 800: one block of 480,000 px
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832)
    monkeypatch.setenv("TASEG_MAX_ORTHO_PIXELS", "1000000")  # corridor share: 250,000
    reload_settings()
    try:
        code, text = predict(capsys, ortho, "--pipes", pipes, "--out", tmp_path / "out")
    finally:
        monkeypatch.delenv("TASEG_MAX_ORTHO_PIXELS")
        reload_settings()
    assert code == 2 and "corridor covers 480,000 pixels" in text, text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_gsd_overflow_and_plain_frames_in_the_report(tmp_path, capsys) -> None:
    """gsd=1e308 overflowed the report's scale bar (exit 1); a report of plain TIFF frames
    prints no library warning (rasterio's NotGeoreferencedWarning)."""
    import tifffile

    from thermal_anomaly_segmenter.cli.parser import main
    from thermal_anomaly_segmenter.io.read import read_frame

    sample = ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4"
    code = main(["report", str(sample), "--gsd", "1e308", "--out", str(tmp_path / "r1"),
                 "--model-dir", str(MODEL)])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 2 and "at most 100 m" in text and len(text.strip().splitlines()) == 1, text
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, read_frame(sample).data)
    with _no_warnings():
        code = main(["report", str(plain), "--out", str(tmp_path / "r2"),
                     "--model-dir", str(MODEL)])
    out = capsys.readouterr()
    assert code == 0 and "Warning" not in out.err and "warning" not in out.err, out.err


class _no_warnings:  # noqa: N801 - a context manager named for what it checks
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings(record=True)
        self._seen = self._ctx.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        names = [type(w.message).__name__ for w in self._seen
                 if "rasterio" in (w.filename or "") or "Georeferenced" in str(w.category)]
        assert names == [], names
        return False


@pytest.mark.parametrize(("crs", "transform"), [
    ("EPSG:4326", from_origin(5e8, 49.0, 1e-5, 1e-5)),  # longitude 5e8
    ("EPSG:5703", from_origin(*ORIGIN, GSD, GSD)),  # vertical-only
])
def test_frame_geotiff_that_proj_cannot_place_keeps_its_pixels(tmp_path, capsys, crs,
                                                               transform) -> None:
    """A frame (no --pipes) whose georeference PROJ cannot place is predicted without it
    (its anomalies in pixel coordinates), as a degenerate one was, never a 500 / exit 1."""
    from thermal_anomaly_segmenter.cli.parser import main
    from thermal_anomaly_segmenter.io.read import read_frame

    data = read_frame(ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4").data
    frame = tmp_path / "frame.tif"
    with rasterio.open(frame, "w", driver="GTiff", width=data.shape[1], height=data.shape[0],
                       count=3, dtype="float32", crs=crs, transform=transform) as ds:
        ds.write(np.moveaxis(data, -1, 0))
    code = main(["predict", str(frame), "--out", str(tmp_path / "out"), "--model-dir",
                 str(MODEL), "-q"])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    doc = json.loads((tmp_path / "out" / "frame.json").read_text())
    assert "crs" in doc["frame"] and doc["frame"]["crs"] is None, doc["frame"]
