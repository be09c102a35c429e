"""Benchmark: what hostile GIS inputs cost ``taseg predict --pipes`` (issue 27), per source tree.

For each source tree given (default: this checkout; pass an older checkout too to compare,
both measured in the same run) the CLI predicts a 300 x 400 EPSG:25832 orthomosaic (or a
hostile raster) with a pipe layer (or a hostile layer), one probe per class of issue 27:
coordinates of 1e308, infinite and NaN lines (GEOS segfaulted), vertical-only and LOCAL_CS
CRSs, a geographic raster at longitude 5e8, a sheared geotransform, VRTs pointing at a
local HTTP server and at a server file, zig-zag lines of 3,000 and 10,000 vertices (GEOS
buffering grew faster than linearly) and a sparse BigTIFF declaring 200000^2 pixels of
1 um. Each run gets an address-space limit (``--memory-gb``, default 4) and a time limit
(``--timeout``, default 120 s) so that the old tree cannot take the machine down. Printed:
exit (or signal / timeout), wall time, peak RSS of the CLI process, requests the HTTP server
received, files left in the output folder.

Usage (CPU, a few minutes)::

    python benchmarks/hostile_gis.py [--source OLD_CHECKOUT] [--source .]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "geo")]

import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from affine import Affine  # noqa: E402
from deepaas_server import BIN  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402
from test_geo_guard import GSD, ORIGIN, ROW_Y, geojson, gpkg_line, raster  # noqa: E402

MODEL = ROOT / "models" / "unet_mobilenetv2_synthetic"


class _Count(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).hits += 1
        self.send_response(404)
        self.end_headers()

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, *args) -> None:
        pass


def _vrt(path: Path, source: str) -> Path:
    path.write_text(
        '<VRTDataset rasterXSize="400" rasterYSize="300"><SRS>EPSG:25832</SRS>'
        f"<GeoTransform>{ORIGIN[0]},{GSD},0,{ORIGIN[1]},0,-{GSD}</GeoTransform>"
        '<VRTRasterBand dataType="Float32" band="1"><SimpleSource><SourceFilename>'
        f"{source}</SourceFilename><SourceBand>1</SourceBand></SimpleSource>"
        "</VRTRasterBand></VRTDataset>")
    return path


def probes(d: Path, url: str) -> dict[str, tuple[Path, Path]]:
    """Probe name -> (raster, pipe layer)."""
    grid = from_origin(*ORIGIN, GSD, GSD)
    good = raster(d / "ortho.tif", "EPSG:25832", grid, size=(300, 400))
    line = [[ORIGIN[0], ROW_Y + 37.5], [ORIGIN[0] + 100, ROW_Y + 37.5]]
    pipes = geojson(d / "pipes.geojson", line)
    zig = {n: geojson(d / f"zig{n}.geojson", [[ORIGIN[0] + (i % 2) * 50,
                                               ORIGIN[1] - 10 - i * 0.01] for i in range(n)])
           for n in (3000, 10000)}
    sparse = {}
    for pixel in (0.25, 1e-6):  # a pipe crosses both near their first (written) tile
        sparse[pixel] = d / f"sparse{pixel:g}.tif"
        with rasterio.open(sparse[pixel], "w", driver="GTiff", width=200_000, height=200_000,
                           count=1, dtype="float32", crs="EPSG:25832", tiled=True,
                           sparse_ok=True, bigtiff="yes",
                           transform=from_origin(*ORIGIN, pixel, pixel)) as ds:
            ds.write(np.full((256, 256), -3.0, np.float32), 1,
                     window=rasterio.windows.Window(0, 0, 256, 256))
    across = geojson(d / "across.geojson", [[ORIGIN[0] - 5, ORIGIN[1] - 1e-4],
                                            [ORIGIN[0] + 60, ORIGIN[1] - 30]])
    layer_vrt = d / "layer.geojson"
    layer_vrt.write_text(f'<OGRVRTDataSource><OGRVRTLayer name="p"><SrcDataSource>{pipes}'
                         "</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>")
    return {
        "valid orthomosaic and layer": (good, pipes),
        "layer at 1e308 (GeoJSON)": (good, geojson(d / "big.geojson",
                                                   [[1e308, 1e308], [-1e308, 1e308]])),
        "all-infinite line (GPKG)": (good, gpkg_line(d / "inf.gpkg",
                                                     [[np.inf, np.inf], [-np.inf, np.inf]])),
        "NaN line (GPKG)": (good, gpkg_line(d / "nan.gpkg", [[np.nan, 1.0], [2.0, np.nan]])),
        "layer in vertical-only CRS": (good, geojson(d / "v.geojson", line, "EPSG:5703")),
        "raster in vertical-only CRS": (raster(d / "v.tif", "EPSG:5703", grid), pipes),
        "raster in LOCAL_CS": (raster(d / "l.tif", 'LOCAL_CS["x",UNIT["metre",1]]', grid),
                               pipes),
        "geographic raster at lon 5e8": (raster(d / "g.tif", "EPSG:4326",
                                                from_origin(5e8, 49, 1e-5, 1e-5)), pipes),
        "sheared geotransform": (raster(d / "s.tif", "EPSG:25832",
                                        grid @ Affine.shear(30, 10)), pipes),
        "VRT raster -> HTTP server": (_vrt(d / "http.tif", f"/vsicurl/{url}/x.tif"), pipes),
        "VRT raster -> server file": (_vrt(d / "file.tif", str(good)), pipes),
        "OGR VRT layer -> server file": (good, layer_vrt),
        "zig-zag line, 3,000 vertices": (good, zig[3000]),
        "zig-zag line, 10,000 vertices": (good, zig[10000]),
        "sparse BigTIFF 200000^2 at 0.25 m": (sparse[0.25], across),
        "sparse BigTIFF 200000^2 at 1 um": (sparse[1e-6], across),
    }


def _run(source: Path, out: Path, raster_path: Path, pipes: Path, memory: int,
         timeout: float) -> tuple[str, float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASEG_")}
    env.update(PYTHONPATH=str(source), HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    start = time.monotonic()
    proc = subprocess.Popen([str(BIN / "taseg"), "predict", str(raster_path), "--pipes",
                             str(pipes), "--out", str(out), "--model-dir", str(MODEL), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            preexec_fn=limit)  # noqa: PLW1509 - only sets a limit
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code == -signal.SIGKILL and wall >= timeout:
        answer = f"killed at {timeout:.0f} s"
    elif code < 0:
        answer = f"signal {signal.Signals(-code).name}"
    else:
        answer = f"exit {code}"
    return answer, wall, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", type=Path,
                        help="source tree to measure (repeatable; default: this checkout)")
    parser.add_argument("--memory-gb", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--only", help="run the probes whose name holds this text")
    args = parser.parse_args(argv)
    sources = [p.resolve() for p in (args.source or [ROOT])]
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, "
          f"limits {args.memory_gb:g} GB address space, {args.timeout:g} s")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Count)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory(prefix="taseg-gis-") as tmp:
        cases = probes(Path(tmp), url)
        for source in sources:
            print(f"\n{source}")
            print("| probe | answer | wall s | peak RSS MiB | HTTP requests | files left |")
            print("|---|---|---|---|---|---|")
            for i, (name, (raster_path, pipes)) in enumerate(cases.items()):
                if args.only and args.only not in name:
                    continue
                out = Path(tmp) / f"out-{source.name}-{i}"
                before = _Count.hits
                answer, wall, peak = _run(source, out, raster_path, pipes,
                                          int(args.memory_gb * 2**30), args.timeout)
                left = sorted(p.name for p in out.iterdir()) if out.exists() else []
                partial = [n for n in left if n.startswith(".") or
                           (out / n).stat().st_size == 0]
                print(f"| {name} | {answer} | {wall:.1f} | {peak:.0f} | "
                      f"{_Count.hits - before} | {len(left)} ({len(partial)} partial) |",
                      flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()
