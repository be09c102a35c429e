"""GIS wing: pipe network -> corridor, streamed orthomosaic predict, COG/GeoPackage outputs.

Each test builds a small georeferenced orthomosaic with a planted leak on a pipe, runs the
real default model through ``taseg predict --pipes`` and checks the files with rasterio and
pyogrio, and with GDAL's own ``gdalinfo``/``ogrinfo`` where Debian's gdal-bin is installed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
import pyogrio  # noqa: E402
import shapely  # noqa: E402
from affine import Affine  # noqa: E402
from pyproj import Transformer  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402

from thermal_anomaly_segmenter.cli.parser import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "unet_mobilenetv2_synthetic"
H, W = 600, 800  # larger than one 512 px COG tile, so the COG has overviews
LEAK = (300, 450)  # planted leak centre (row, col), on the pipe
PIPE_ROW = 300.0  # pipe axis along the top edge of row 300
GSD = 0.25
ORIGIN = (456000.0, 5430000.0)  # EPSG:25832


def grid(epsg: int, rotation: float = 0.0):
    if epsg == 25832:
        return from_origin(*ORIGIN, GSD, GSD) @ Affine.rotation(rotation)
    lon, lat = Transformer.from_crs(25832, 4326, always_xy=True).transform(*ORIGIN)
    return from_origin(lon, lat, 3.4e-6, 2.25e-6)  # about 0.25 m at 49 degN


def write_ortho(path: Path, epsg: int, seed: int = 0, rotation: float = 0.0) -> Path:
    rng = np.random.default_rng(seed)
    t_u = rng.normal(-3.0, 0.25, (H, W)).astype(np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    t_u += (6.0 * np.exp(-((yy - LEAK[0]) ** 2 + (xx - LEAK[1]) ** 2) / 50.0)).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=W, height=H, count=1, dtype="float32",
                       crs=f"EPSG:{epsg}", transform=grid(epsg, rotation)) as ds:
        ds.write(t_u, 1)
    return path


def write_pipes(path: Path, epsg: int, lines=None, driver: str = "GPKG", crs=True,
                rotation: float = 0.0) -> Path:
    transform = grid(epsg, rotation)
    if lines is None:
        lines = [shapely.LineString([transform @ (0, PIPE_ROW), transform @ (W, PIPE_ROW)]),
                 shapely.LineString([transform @ (100, 0), transform @ (100, 50)])]
    ids = np.array([f"P-{17 + i}" for i in range(len(lines))], dtype=object)
    pyogrio.raw.write(path, shapely.to_wkb(np.array(lines, dtype=object)), field_data=[ids],
                      fields=["pipe_id"], crs=f"EPSG:{epsg}" if crs else None,
                      geometry_type=lines[0].geom_type, driver=driver)
    return path


def predict(capsys, *args) -> tuple[int, str]:
    code = main(["predict", *map(str, args), "--model-dir", str(MODEL), "-q"])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("epsg", [25832, 4326])
def test_predict_ortho_writes_valid_gis_outputs(tmp_path, capsys, epsg) -> None:
    ortho = write_ortho(tmp_path / "ortho.tif", epsg)
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832)  # reprojected for the 4326 raster
    code, text = predict(capsys, ortho, "--pipes", pipes, "--out", tmp_path / "out")
    assert code == 0, text
    out = tmp_path / "out"
    for name in ("ortho.gpkg", "ortho.geojson", "ortho_prob.tif", "ortho_mask.tif",
                 "ortho_overlay.png", "ortho.json"):
        assert (out / name).is_file(), name

    with rasterio.open(ortho) as src:
        crs, transform = src.crs, src.transform
    for name in ("ortho_prob.tif", "ortho_mask.tif"):
        with rasterio.open(out / name) as ds:
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert ds.block_shapes == [(512, 512)] and ds.overviews(1)
            assert ds.crs == crs and ds.transform.almost_equals(transform, 1e-12)
            assert (ds.height, ds.width) == (H, W)
    with rasterio.open(out / "ortho_mask.tif") as ds:
        mask = ds.read(1)
    assert mask[LEAK] == 1 and mask[:, :60].max() == 0  # nothing outside the corridor

    info = pyogrio.read_info(out / "ortho.gpkg", layer="anomalies")
    assert info["crs"] == f"EPSG:{epsg}"
    assert {"id", "area_m2", "max_t_degc", "mean_t_degc", "mean_dt_degc", "mean_probability",
            "pipe_id", "chainage_m", "offset_m"} <= set(info["fields"])
    meta, _, wkb, columns = pyogrio.raw.read(out / "ortho.gpkg", layer="anomalies")
    rows = [dict(zip(meta["fields"], values, strict=True)) for values in zip(*columns,
                                                                              strict=True)]
    polygons = shapely.from_wkb(wkb)
    leak_xy = shapely.Point(transform @ (LEAK[1] + 0.5, LEAK[0] + 0.5))
    hit = [i for i, p in enumerate(polygons) if p.contains(leak_xy)]
    assert len(hit) == 1
    leak, poly = rows[hit[0]], polygons[hit[0]]
    pixel = max(abs(transform.a), abs(transform.e))
    assert poly.centroid.distance(leak_xy) <= pixel  # where it was planted, within a pixel
    assert leak["pipe_id"] == "P-17" and leak["offset_m"] == pytest.approx(0.0, abs=1e-6)
    # chainage runs from the pipe's first vertex (column 0) to the leak's nearest point
    assert 0.0 < leak["chainage_m"] <= (LEAK[1] + 1) * GSD * 1.01
    assert leak["mean_dt_degc"] > 1.0 and leak["area_m2"] == pytest.approx(
        leak["area_px"] * GSD * GSD, rel=0.05)
    # heat loss on each polygon: at least what the mean dT alone gives by convection and
    # linearised radiation (eps 0.95, wind 1 m/s), at most the peak dT over the whole area
    per_k = 0.95 * 4 * 5.670374419e-8 * (273.15 - 3.0) ** 3 + 5.7 + 3.8
    assert leak["heat_loss_w_low"] < leak["heat_loss_w"] < leak["heat_loss_w_high"]
    assert 0.9 * per_k * leak["mean_dt_degc"] * leak["area_m2"] < leak["heat_loss_w"] < (
        1.1 * per_k * (leak["max_t_degc"] + 3.0) * leak["area_m2"])
    assert leak["heat_loss_mwh_per_year"] == pytest.approx(leak["heat_loss_w"] * 5e-3, rel=1e-3)
    stated = json.loads(pyogrio.read_info(out / "ortho.gpkg", layer="anomalies")[
        "layer_metadata"]["taseg_heat_loss"])
    assert stated["conditions"]["wind_speed_m_s"] == 1.0 and "McAdams" in stated["method"]

    report = json.loads((out / "ortho.json").read_text())
    assert report["frame"]["crs"] == f"EPSG:{epsg}"
    assert report["heat_loss"]["total_heat_loss_w"] == pytest.approx(
        sum(a["heat_loss_w"] for a in report["anomalies"]), abs=0.01)
    assert [a["pipe_id"] for a in report["anomalies"]] == [r["pipe_id"] for r in rows]
    geojson = json.loads((out / "ortho.geojson").read_text())
    lon, lat = geojson["features"][hit[0]]["geometry"]["coordinates"][0][0]
    assert 8.0 < lon < 9.0 and 48.5 < lat < 49.5  # RFC 7946: WGS 84 longitude, latitude
    assert "crs" not in geojson
    assert json.loads(geojson["description"])["conditions"] == stated["conditions"]

    if shutil.which("gdalinfo") and shutil.which("ogrinfo"):
        text = subprocess.run(["gdalinfo", str(out / "ortho_prob.tif")], check=True,
                              capture_output=True, text=True).stdout
        assert "LAYOUT=COG" in text and "Overviews:" in text and "Block=512x512" in text
        layer = subprocess.run(["ogrinfo", "-so", str(out / "ortho.gpkg"), "anomalies"],
                               check=True, capture_output=True, text=True).stdout
        assert "chainage_m: Real" in layer and "pipe_id: String" in layer


def test_corridor_width_and_zipped_shapefile(tmp_path, capsys) -> None:
    from thermal_anomaly_segmenter.geo.network import PipeNetwork

    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    write_pipes(shp_dir / "pipes.shp", 25832, driver="ESRI Shapefile")
    archive = tmp_path / "pipes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in shp_dir.iterdir():
            zf.write(part, part.name)
    network = PipeNetwork.read(archive)
    assert network.ids == ["P-17", "P-18"] and network.id_field == "pipe_id"
    transform = grid(25832)
    corridor = network.corridor_for("EPSG:25832", (ORIGIN[0], ORIGIN[1] - H * GSD,
                                                   ORIGIN[0] + W * GSD, ORIGIN[1]), 8.0, "o")
    mask = corridor.mask(transform, (H, W))
    column = mask[:, 400]
    assert column.sum() == 32  # 8 m full width at 0.25 m: 32 pixel centres
    assert column[284:316].all()  # centred on the axis


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty", "no line features"),
        ("points", "Point geometries"),
        ("no_crs", "has no CRS"),
        ("far", "does not overlap"),
        ("plain_tif", "has no georeference"),
        ("npy", "not a raster GDAL can read"),
    ],
)
def test_bad_pipes_and_rasters_get_clear_errors(tmp_path, capsys, case, message) -> None:
    ortho = write_ortho(tmp_path / "ortho.tif", 25832)
    pipes = tmp_path / "pipes.gpkg"
    if case == "empty":
        pyogrio.raw.write(pipes, np.empty(0, object), field_data=[], fields=[],
                          crs="EPSG:25832", geometry_type="LineString", driver="GPKG")
    elif case == "points":
        write_pipes(pipes, 25832, lines=[shapely.Point(ORIGIN)])
    elif case == "no_crs":
        pipes = write_pipes(tmp_path / "pipes.shp", 25832, driver="ESRI Shapefile", crs=False)
    elif case == "far":
        # 100 km away, inside the CRS's area of use (outside it is refused before)
        write_pipes(pipes, 25832, lines=[shapely.LineString([(456000, 5330000),
                                                             (456010, 5330010)])])
    else:
        write_pipes(pipes, 25832)
    if case == "plain_tif":
        ortho = tmp_path / "plain.tif"
        with rasterio.open(ortho, "w", driver="GTiff", width=64, height=64, count=1,
                           dtype="float32") as ds:
            ds.write(np.zeros((64, 64), np.float32), 1)
    elif case == "npy":
        ortho = ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4"
    code, text = predict(capsys, ortho, "--pipes", pipes, "--out", tmp_path / "out")
    assert code == 2 and message in text and "Traceback" not in text, text
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_outputs_selection_is_honoured_with_pipes(tmp_path, capsys) -> None:
    ortho = write_ortho(tmp_path / "ortho.tif", 25832)
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832)
    code, text = predict(capsys, ortho, "--pipes", pipes, "--out", tmp_path / "out",
                         "--outputs", "gpkg,mask")
    assert code == 0, text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ortho.gpkg",
                                                                     "ortho_mask.tif"]
    with rasterio.open(tmp_path / "out" / "ortho_mask.tif") as ds:
        assert ds.read(1)[LEAK] == 1
    # an input with overviews gives the overlay its background from them
    from rasterio.enums import Resampling

    with rasterio.open(ortho, "r+") as ds:
        ds.build_overviews([2, 4], Resampling.average)
    code, text = predict(capsys, ortho, "--pipes", pipes, "--out", tmp_path / "ov",
                         "--outputs", "overlay,json")
    assert code == 0, text
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == ["ortho.json",
                                                                    "ortho_overlay.png"]
    assert json.loads((tmp_path / "ov" / "ortho.json").read_text())["summary"]["count"] >= 1
    # an unknown kind, or gpkg without --pipes, is refused before any work
    code, text = predict(capsys, ortho, "--pipes", pipes, "--out", tmp_path / "o2",
                         "--outputs", "json,pdf")
    assert code == 2 and "gpkg" in text and "pdf" in text and "Traceback" not in text, text
    code, text = predict(capsys, ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4",
                         "--out", tmp_path / "o3", "--outputs", "gpkg")
    assert code == 2 and "outputs must be" in text, text
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_pipe_on_a_tile_seam_runs_in_one_row_of_tiles(tmp_path) -> None:
    """A pipe whose corridor straddles the seam of a fixed tile grid (rows 464-496 of 512 x
    640 tiles stepping 448 rows: the seam at row 480) runs in one row of tiles, each tile
    once, and its leak is one anomaly."""
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.geo.network import PipeNetwork
    from thermal_anomaly_segmenter.geo.ortho import OrthoOptions, predict_ortho
    from thermal_anomaly_segmenter.inference.segmenter import get_segmenter

    h, w, row = 1000, 1600, 480
    transform = grid(25832)
    rng = np.random.default_rng(3)
    t_u = rng.normal(-3.0, 0.25, (h, w)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    t_u += (6.0 * np.exp(-((yy - row) ** 2 + (xx - 800) ** 2) / 50.0)).astype(np.float32)
    ortho = tmp_path / "seam.tif"
    with rasterio.open(ortho, "w", driver="GTiff", width=w, height=h, count=1,
                       dtype="float32", crs="EPSG:25832", transform=transform) as ds:
        ds.write(t_u, 1)
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832,
                        lines=[shapely.LineString([transform @ (0, row), transform @ (w, row)])])
    segmenter = get_segmenter(MODEL, "cpu")
    seen: list[str] = []
    shapes: list[tuple[int, ...]] = []
    forward = segmenter._forward

    def counted(batch):
        seen.extend(hashlib.sha256(x.tobytes()).hexdigest() for x in batch)
        shapes.extend(x.shape[:2] for x in batch)
        return forward(batch)

    segmenter._forward = counted
    try:
        result = predict_ortho(ortho, PipeNetwork.read(pipes), segmenter,
                               PredictOptions(device="cpu"), tmp_path / "out", "seam",
                               OrthoOptions(corridor_width_m=8.0))
    finally:
        del segmenter._forward
    # one tile of 512 rows runs along the whole pipe (1600 columns, within the 4 x 640
    # columns a forward pass may hold); a row of 640-column tiles needed 3, and a fixed
    # grid put the corridor in two rows of tiles (6)
    assert len(seen) == 1 and shapes == [(512, 1600)]
    assert len(result.records) == 1 and result.records[0]["mean_dt_degc"] > 1.0


def test_overlay_canvas_samples_every_kth_pixel_across_blocks() -> None:
    from thermal_anomaly_segmenter.geo.ortho_overlay import OverlayCanvas

    rng = np.random.default_rng(5)
    t_u = rng.normal(-3.0, 1.0, (4500, 700)).astype(np.float32)
    valid = rng.random(t_u.shape) > 0.01
    canvas = OverlayCanvas(*t_u.shape)
    assert canvas.k == 3 and canvas.shape == (1500, 234)
    for r0, r1 in ((0, 1001), (1001, 2950), (2950, 4500)):  # blocks off the k-grid
        for c0, c1 in ((0, 350), (350, 700)):
            canvas.add(r0, c0, t_u[r0:r1, c0:c1], valid[r0:r1, c0:c1])
    want = np.where(valid[::3, ::3], t_u[::3, ::3], np.float32(-3.5))
    np.testing.assert_array_equal(canvas.t_u(-3.5), want)


def test_cli_and_api_import_no_gis_library() -> None:
    code = (
        "import sys, api, thermal_anomaly_segmenter.cli.parser\n"
        "bad = [m for m in ('rasterio', 'pyogrio', 'shapely', 'pyproj') if m in sys.modules]\n"
        "sys.exit(str(bad) if bad else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def _leak_loss(result, leak_px: int) -> float:
    [loss] = [r["heat_loss_w"] for r in result.records if r["area_px"] == leak_px]
    return loss


def _leak_of(result) -> tuple[int, shapely.Point, int]:
    """(pixels of the mask component holding the planted leak, its record's polygon
    centroid, how many records have exactly that area)."""
    from scipy import ndimage

    with rasterio.open(result.outputs["mask"]) as ds:
        mask = ds.read(1)
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    leak_px = int((labels == labels[LEAK]).sum()) if labels[LEAK] else 0
    same = [r for r in result.records if r["area_px"] == leak_px]
    return leak_px, shapely.Point(same[0]["centroid_crs"]) if same else None, len(same)


@pytest.mark.parametrize("block", [4096, 1])
def test_leak_across_tile_seams_is_one_anomaly_of_the_right_area(tmp_path, block) -> None:
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.geo.network import PipeNetwork
    from thermal_anomaly_segmenter.geo.ortho import OrthoOptions, predict_ortho
    from thermal_anomaly_segmenter.geo.ortho_tiling import block_geometry, stream_overlap
    from thermal_anomaly_segmenter.inference.segmenter import get_segmenter

    ortho = write_ortho(tmp_path / "ortho.tif", 25832)
    network = PipeNetwork.read(write_pipes(tmp_path / "pipes.gpkg", 25832))
    segmenter = get_segmenter(MODEL, "cpu")
    run = lambda name, options, block: predict_ortho(  # noqa: E731
        ortho, network, segmenter, options, tmp_path / name, "ortho",
        OrthoOptions(corridor_width_m=8.0, block=block))
    # reference: the 600 x 800 raster runs whole through the default tile, no seam at all
    ref = run("ref", PredictOptions(device="cpu"), 2048)
    ref_px, ref_centroid, _ = _leak_of(ref)
    # 320 x 248 tiles (steps 280 x 217 at the streamed overlap) weigh the same at row 300
    # and column 449, through the leak: one block blends four tiles over it; blocks of one
    # tile step put block borders there, cutting the leak into four traced parts
    tile = (320, 248)
    sides, halos = block_geometry(tile, stream_overlap(0.25), block)
    steps = [int(t * (1 - stream_overlap(0.25))) for t in tile]
    assert (steps[0] + halos[0][0], 2 * steps[1] + halos[1][0]) == (300, 449)  # the seams
    if block == 1:  # blocks are one step, the first longer by the leading halo
        assert list(sides) == steps
    result = run("cut", PredictOptions(device="cpu", tile_size=tile), block)
    leak_px, centroid, count = _leak_of(result)
    assert result.blocks == (8 if block == 1 else 1)
    assert count == 1 and ref_px > 100
    assert leak_px == pytest.approx(ref_px, rel=0.1)
    assert centroid.distance(ref_centroid) <= GSD  # within one pixel of the seamless run
    # the heat loss of the parts cut by block borders adds up to the seamless run's
    assert _leak_loss(result, leak_px) == pytest.approx(_leak_loss(ref, ref_px), rel=0.1)


@pytest.mark.parametrize("seed, long", [(s, s % 2 == 1) for s in range(6)])
def test_block_tiles_give_every_corridor_pixel_its_context(seed, long) -> None:
    """Random corridors (lines at any angle, blobs, the array's edges): every corridor pixel
    of the core lies in a chosen tile with at least the margins of context on each side,
    or the array's edge; tiles lie inside the array, none repeats, and a long tile (along
    the corridor) has the tile's side across it and at most ``max_len`` along it."""
    import cv2

    from thermal_anomaly_segmenter.geo.ortho_tiling import Block

    rng = np.random.default_rng(seed)
    height, width = rng.integers(300, 1400, 2)
    tile, margins = (256, 320), ((16, 16), (20, 20))
    corr = np.zeros((height, width), np.uint8)
    for _ in range(rng.integers(1, 6)):
        p0, p1 = rng.integers(0, [width, height], (2, 2))
        cv2.line(corr, tuple(map(int, p0)), tuple(map(int, p1)), 1, int(rng.integers(1, 40)))
    corr = corr.view(bool)
    core = (16, height - int(rng.integers(0, 17)), 0, width - 20)  # halos on three sides
    corr[:, :1] = rng.random() < 0.5  # sometimes a corridor on the array's edge
    if not corr[core[0]:core[1], core[2]:core[3]].any():
        corr[core[0] + 5, core[2]:core[3]] = True
    block = Block(np.zeros(corr.shape, np.float32), np.ones(corr.shape, bool), corr, core, 0.0)
    max_len = (3 * tile[0], 3 * tile[1]) if long else None
    tiles = block.tiles(tile, margins, max_len)
    assert len(set(tiles)) == len(tiles)
    served = np.zeros(corr.shape, bool)
    for r, c, h, w in tiles:
        assert 0 <= r <= height - h and 0 <= c <= width - w
        assert (h, w) == tile if not long else (
            (h == tile[0] and tile[1] <= w <= 3 * tile[1])
            or (w == tile[1] and tile[0] <= h <= 3 * tile[0]))
        y0 = r + (margins[0][0] if r > 0 else 0)
        y1 = r + h - (margins[0][1] if r + h < height else 0)
        x0 = c + (margins[1][0] if c > 0 else 0)
        x1 = c + w - (margins[1][1] if c + w < width else 0)
        served[y0:y1, x0:x1] = True
    need = np.zeros_like(corr)
    need[core[0]:core[1], core[2]:core[3]] = corr[core[0]:core[1], core[2]:core[3]]
    assert served[need].all(), np.argwhere(need & ~served)[:5]


def test_build_dataset_from_pipes(tmp_path, capsys) -> None:
    tiffs = tmp_path / "tiffs"
    tiffs.mkdir()
    for i in range(3):
        write_ortho(tiffs / f"f{i}.tif", 25832, seed=i)
    plain = tiffs / "plain.tif"  # no georeference: skipped with a reason, the rest builds
    with rasterio.open(plain, "w", driver="GTiff", width=64, height=64, count=1,
                       dtype="float32") as ds:
        ds.write(np.zeros((64, 64), np.float32), 1)
    pipes = write_pipes(tmp_path / "pipes.geojson", 25832, driver="GeoJSON")
    out = tmp_path / "dataset"
    code = main(["build-dataset", str(tiffs), str(out), "--pipes", str(pipes),
                 "--corridor-width", "6", "--no-previews"])
    text = capsys.readouterr()
    assert code == 0, text.err
    assert "plain.tif" in text.out + text.err  # skipped, named in the summary
    assert len(list(out.rglob("*.npy.lz4"))) >= 3
    from thermal_anomaly_segmenter.io.read import read_frame

    frame = read_frame(next(out.rglob("f0.npy.lz4")))
    # 6 m full width at 0.25 m: 24 corridor rows in every column crossed only by P-17
    assert frame.corridor[:, 400].sum() == 24 and frame.corridor[288:312, 400].all()
    code = main(["build-dataset", str(tiffs), str(tmp_path / "d2")])
    assert code == 2 and "CORRIDOR_DIR or --pipes" in capsys.readouterr().err


def test_truncated_ortho_is_an_input_error(tmp_path, capsys) -> None:
    ortho = write_ortho(tmp_path / "ortho.tif", 25832)
    data = ortho.read_bytes()
    ortho.write_bytes(data[: len(data) // 2])  # header intact, pixel data cut off
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832)
    code, text = predict(capsys, ortho, "--pipes", pipes, "--out", tmp_path / "out")
    assert code == 2 and "ortho.tif" in text and "Traceback" not in text, text


def test_no_anomaly_gives_empty_valid_layers(tmp_path, capsys) -> None:
    ortho = write_ortho(tmp_path / "ortho.tif", 25832)
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832)
    code, text = predict(capsys, ortho, "--pipes", pipes, "--threshold", "1", "--out",
                         tmp_path / "out")
    assert code == 0 and "0 anomalies" in text, text
    assert pyogrio.read_info(tmp_path / "out" / "ortho.gpkg", layer="anomalies")["features"] == 0
    doc = json.loads((tmp_path / "out" / "ortho.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and doc["features"] == []
    report = json.loads((tmp_path / "out" / "ortho.json").read_text())
    assert report["summary"]["count"] == 0 and report["summary"]["max_dt_degc"] is None


def test_rotated_orthomosaic(tmp_path, capsys) -> None:
    ortho = write_ortho(tmp_path / "rot.tif", 25832, rotation=20.0)
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832, rotation=20.0)
    code, text = predict(capsys, ortho, "--pipes", pipes, "--out", tmp_path / "out")
    assert code == 0, text
    transform = grid(25832, 20.0)
    with rasterio.open(tmp_path / "out" / "rot_prob.tif") as ds:
        assert ds.transform.almost_equals(transform, 1e-9)
    report = json.loads((tmp_path / "out" / "rot.json").read_text())
    leak = shapely.Point(transform @ (LEAK[1] + 0.5, LEAK[0] + 0.5))
    distance = [leak.distance(shapely.Point(a["centroid_crs"])) for a in report["anomalies"]]
    nearest = report["anomalies"][int(np.argmin(distance))]
    assert min(distance) <= GSD  # within one pixel of where it was planted
    assert nearest["pipe_id"] == "P-17" and nearest["offset_m"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("vertical", [False, True])
def test_a_straight_pipe_runs_in_one_long_tile_per_block(vertical) -> None:
    """Across a block or down it, a straight corridor gets one tile as long as the block
    (512 rows or 640 columns across it), not a row of overlapping 512 x 640 tiles."""
    from thermal_anomaly_segmenter.geo.ortho_tiling import Block

    corr = np.zeros((2304, 2320), bool)
    if vertical:
        corr[:, 1000:1032] = True
    else:
        corr[1000:1032, :] = True
    block = Block(np.zeros(corr.shape, np.float32), np.ones(corr.shape, bool), corr,
                   (32, 2272, 40, 2280), 0.0)
    tiles = block.tiles((512, 640), ((32, 32), (40, 40)), (2304, 2560))
    [(r, c, h, w)] = tiles
    if vertical:
        assert (r, h, w) == (0, 2304, 640) and c <= 1000 - 40 and c + w >= 1032 + 40
    else:
        assert (c, h, w) == (0, 512, 2320) and r <= 1000 - 32 and r + h >= 1032 + 32


def test_a_fine_orthomosaic_is_seen_at_the_model_gsd(tmp_path, capsys) -> None:
    """At 5 cm/px (the default model learned 10 cm) the tiles are seen at 10 cm; the
    outputs keep the raster's own pixels."""
    fine = 0.05
    rng = np.random.default_rng(3)
    t_u = rng.normal(-3.0, 0.25, (H, W)).astype(np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    # the 0.25 m test leak's size in metres, so four times as wide in pixels
    t_u += (6.0 * np.exp(-((yy - LEAK[0]) ** 2 + (xx - LEAK[1]) ** 2) / 800.0)).astype(
        np.float32)
    transform = from_origin(*ORIGIN, fine, fine)
    ortho = tmp_path / "fine.tif"
    with rasterio.open(ortho, "w", driver="GTiff", width=W, height=H, count=1,
                       dtype="float32", crs="EPSG:25832", transform=transform) as ds:
        ds.write(t_u, 1)
    pipes = write_pipes(tmp_path / "pipes.gpkg", 25832, lines=[
        shapely.LineString([transform @ (0, PIPE_ROW), transform @ (W, PIPE_ROW)])])
    reports = {}
    for flag in ("", "--native-scale"):
        out = tmp_path / f"out{flag}"
        code, text = predict(capsys, ortho, "--pipes", pipes, "--out", out,
                             *([flag] if flag else []))
        assert code == 0, text
        reports[flag] = json.loads((out / "fine.json").read_text())
        with rasterio.open(out / "fine_mask.tif") as ds:
            mask = ds.read(1)
        assert mask.shape == (H, W) and mask[LEAK] == 1
    assert reports[""]["frame"]["gsd_m"] == pytest.approx(fine)
    assert reports[""]["frame"]["network_gsd_m"] == pytest.approx(0.1)
    assert reports["--native-scale"]["frame"]["network_gsd_m"] is None
