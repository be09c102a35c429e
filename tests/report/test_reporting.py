"""Tests of the per-frame output files (the outputs wing) on small synthetic predictions."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from thermal_anomaly_segmenter.errors import OutputError
from thermal_anomaly_segmenter.inference.postprocess import Anomaly, Prediction
from thermal_anomaly_segmenter.io.frames import Frame, GeoInfo, compose_frame
from thermal_anomaly_segmenter.outputs.document import SCHEMA, anomalies_document
from thermal_anomaly_segmenter.outputs.geojson import anomalies_geojson
from thermal_anomaly_segmenter.outputs.overlay import ANOMALY_RGB, CORRIDOR_RGB, render_overlay
from thermal_anomaly_segmenter.outputs.write import (
    encode_png,
    mask_png,
    probability_png,
    write_outputs,
)

H, W = 96, 128
CORRIDOR_ROWS = (30, 70)  # rows of the corridor band, end exclusive
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4"


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def _anomalies(labels: np.ndarray, t_u: np.ndarray, prob: np.ndarray, median: float, gsd=None):
    """Relabel components by descending area and build their records, numpy scalars and all."""
    ids = [i for i in np.unique(labels) if i != 0]
    ids.sort(key=lambda i: -int((labels == i).sum()))
    relabelled = np.zeros_like(labels, dtype=np.int32)
    records = []
    for new_id, old in enumerate(ids, start=1):
        sel = labels == old
        relabelled[sel] = new_id
        rows, cols = np.nonzero(sel)
        area = int(sel.sum())
        records.append(
            Anomaly(
                id=new_id,
                area_px=area,
                area_m2=None if gsd is None else area * gsd * gsd,
                bbox=(int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1),
                centroid=(cols.mean(), rows.mean()),  # numpy float64 on purpose
                max_t_degc=t_u[sel].max(),  # numpy float32 on purpose
                mean_t_degc=t_u[sel].mean(),
                mean_dt_degc=t_u[sel].mean() - median,
                mean_probability=prob[sel].mean(),
            )
        )
    return relabelled, records


def _prediction(
    blobs: bool = True, *, geo: GeoInfo | None = None, gsd=None, labels=None, shape=(H, W)
) -> Prediction:
    """A frame with a corridor band, a solid warm disc and a warm ring (a component with a hole)."""
    h, w = shape
    rng = np.random.default_rng(0)
    t_u = rng.normal(-1.0, 0.2, (h, w)).astype(np.float32)
    corridor = np.zeros((h, w), dtype=bool)
    corridor[CORRIDOR_ROWS[0] : CORRIDOR_ROWS[1]] = True
    t_u[corridor] += 2.0
    mask = np.zeros((h, w), np.uint8)
    if blobs and labels is None:
        cv2.circle(mask, (40, 50), 6, 1, -1)
        cv2.circle(mask, (90, 50), 9, 1, -1)
        cv2.circle(mask, (90, 50), 4, 0, -1)  # the hole
        mask &= corridor
    if labels is not None:
        mask = (labels > 0).astype(np.uint8)
    else:
        _, labels = cv2.connectedComponents(mask, connectivity=8)
    t_u[mask > 0] += 6.0
    prob = np.where(mask > 0, 0.9, 0.05).astype(np.float32)
    median = float(np.median(t_u[corridor])) if corridor.any() else float("nan")
    labels, records = _anomalies(labels, t_u, prob, median, gsd)
    frame = Frame(data=compose_frame(t_u, corridor), corridor=corridor, name="synthetic", geo=geo)
    return Prediction(
        frame=frame,
        probability=prob,
        mask=mask,
        labels=labels,
        anomalies=records,
        corridor_median_degc=median,
        threshold=0.5,
        model_name="classical",
        gsd_m=gsd,
    )


def _colour_mask(image: np.ndarray, rgb) -> np.ndarray:
    return np.all(image == np.asarray(rgb, np.uint8), axis=-1)


def _image_area(overlay: np.ndarray, h: int = H, w: int = W) -> np.ndarray:
    """The frame part of an unscaled overlay: below the title strip, left of the colour bar."""
    top = overlay.shape[0] - h
    return overlay[top:, :w]


def _shoelace(ring) -> float:
    xy = np.asarray(ring, dtype=np.float64)
    xy -= xy[0]  # large CRS coordinates would cancel catastrophically
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def _assert_plain_json(value) -> None:
    """Only builtin JSON types, recursively (no numpy scalars, tuples or NaN)."""
    if isinstance(value, dict):
        assert all(isinstance(k, str) for k in value)
        for v in value.values():
            _assert_plain_json(v)
    elif isinstance(value, list):
        for v in value:
            _assert_plain_json(v)
    else:
        assert value is None or type(value) in (str, int, float, bool), type(value)


# --------------------------------------------------------------------------------------------
# Overlay
# --------------------------------------------------------------------------------------------


def test_overlay_is_rgb_uint8_with_decorations():
    overlay = render_overlay(_prediction())
    assert overlay.dtype == np.uint8 and overlay.ndim == 3 and overlay.shape[2] == 3
    # Title strip above and colour bar panel to the right of the 96 x 128 frame.
    assert overlay.shape[0] > H and overlay.shape[1] > W


def test_overlay_outlines_each_anomaly_outside_its_pixels():
    pred = _prediction()
    area = _image_area(render_overlay(pred))
    green = _colour_mask(area, ANOMALY_RGB)
    for a in pred.anomalies:
        x0, y0, x1, y1 = a.bbox
        around = green[y0 - 4 : y1 + 4, x0 - 4 : x1 + 4]
        assert around.sum() > 2 * ((x1 - x0) + (y1 - y0)), a.id  # a closed ring of outline
        assert not green[pred.labels == a.id].any()  # drawn around, not over, the warm pixels


def test_overlay_without_anomalies_has_no_anomaly_colour():
    overlay = render_overlay(_prediction(blobs=False))
    assert not _colour_mask(overlay, ANOMALY_RGB).any()


def test_overlay_draws_corridor_border_but_not_the_frame_edge():
    area = _image_area(render_overlay(_prediction(blobs=False)))
    cyan = _colour_mask(area, CORRIDOR_RGB)
    top, bottom = CORRIDOR_ROWS
    assert cyan[top, 5:-5].all() and cyan[bottom - 1, 5:-5].all()
    assert not cyan[: top - 1].any() and not cyan[bottom + 1 :].any()
    # The band leaves the picture at both sides: no line along the frame edge there.
    assert not cyan[top + 3 : bottom - 3, 0].any()


def test_overlay_of_large_frame_is_bounded_and_keeps_tiny_anomalies():
    h, w = 6000, 5000
    t_u = np.broadcast_to(np.linspace(-5, 5, w, dtype=np.float32), (h, w))
    corridor = np.zeros((h, w), dtype=bool)
    corridor[2000:4000] = True
    labels = np.zeros((h, w), np.int32)
    labels[3000, 2500] = 1  # one pixel: far below one output pixel after downscaling
    anomaly = Anomaly(1, 1, None, (2500, 3000, 2501, 3001), (2500.5, 3000.5), 5.0, 5.0, 4.0, 0.9)
    pred = Prediction(
        frame=Frame(data=compose_frame(t_u, corridor), corridor=corridor, name="big"),
        probability=np.zeros((h, w), np.float32),
        mask=(labels > 0).astype(np.uint8),
        labels=labels,
        anomalies=[anomaly],
        corridor_median_degc=0.0,
        threshold=0.5,
        model_name="classical",
    )
    overlay = render_overlay(pred)
    assert max(overlay.shape[:2]) <= 4096
    assert _colour_mask(overlay, ANOMALY_RGB).any()
    assert max(render_overlay(pred, max_side=800).shape[:2]) <= 800


def test_overlay_is_fast_for_a_typical_frame():
    pred = _prediction(shape=(512, 640))
    render_overlay(pred)  # warm up OpenCV
    best = min(_timed(lambda: render_overlay(pred)) for _ in range(3))
    assert best < 0.1 * 2.5, best  # 100 ms budget, margin for loaded CI machines


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_overlay_handles_tiny_frames_and_rejects_tiny_max_side():
    overlay = render_overlay(_prediction(blobs=False, shape=(8, 8)))
    assert overlay.dtype == np.uint8 and overlay.shape[0] >= 8
    with pytest.raises(ValueError, match="max_side"):
        render_overlay(_prediction(blobs=False), max_side=10)


def test_overlay_of_sample_frame():
    if not SAMPLE.exists():
        pytest.skip("sample frame not present")
    lz4_frame = pytest.importorskip("lz4.frame")
    data = np.load(io.BytesIO(lz4_frame.decompress(SAMPLE.read_bytes())), allow_pickle=False)
    corridor = data[..., 0] == data[..., 2]
    labels = np.zeros(data.shape[:2], np.int32)
    labels[150:160, 300:312] = 1
    pred = _prediction(labels=labels, shape=data.shape[:2])
    pred.frame = Frame(data=data, corridor=corridor, name=SAMPLE.name)
    overlay = render_overlay(pred)
    assert overlay.shape[0] > 512 and overlay.shape[1] > 640
    assert _colour_mask(overlay, CORRIDOR_RGB).any() and _colour_mask(overlay, ANOMALY_RGB).any()


# --------------------------------------------------------------------------------------------
# PNG
# --------------------------------------------------------------------------------------------


def _decode(payload: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)


def test_encode_png_writes_rgb_as_rgb():
    image = np.zeros((4, 5, 3), np.uint8)
    image[..., 0] = 255  # red
    decoded = _decode(encode_png(image))  # OpenCV decodes to BGR
    assert decoded.shape == (4, 5, 3) and (decoded[..., 2] == 255).all()
    assert (decoded[..., :2] == 0).all()
    with pytest.raises(ValueError):
        encode_png(image.astype(np.float32))


def test_mask_png_holds_zero_and_one_like_labels():
    pred = _prediction()
    decoded = _decode(mask_png(pred))
    assert decoded.dtype == np.uint8 and decoded.shape == (H, W)
    np.testing.assert_array_equal(decoded, pred.mask)
    assert set(np.unique(decoded)) == {0, 1}


def test_probability_png_round_trips_within_one_level():
    pred = _prediction()
    pred.probability = np.random.default_rng(1).random((H, W)).astype(np.float32)
    decoded = _decode(probability_png(pred))
    assert decoded.dtype == np.uint8 and decoded.shape == (H, W)
    assert np.abs(decoded / 255.0 - pred.probability).max() <= 0.5 / 255 + 1e-6


# --------------------------------------------------------------------------------------------
# JSON report
# --------------------------------------------------------------------------------------------


def test_document_is_plain_json_and_summary_matches():
    pred = _prediction()
    doc = anomalies_document(pred, model_dir="/models/x", extra={"request": {"n": np.int64(3)}})
    text = json.dumps(doc, allow_nan=False)
    _assert_plain_json(json.loads(text))
    _assert_plain_json(doc)
    assert doc["schema"] == SCHEMA
    assert doc["frame"]["height"] == H and doc["frame"]["width"] == W
    assert doc["frame"]["corridor_px"] == int(pred.frame.corridor.sum())
    assert doc["frame"]["corridor_fraction"] == pytest.approx(pred.frame.corridor.mean())
    assert doc["model"] == {"type": "classical", "dir": "/models/x"}
    assert doc["request"] == {"n": 3}
    summary = doc["summary"]
    assert summary["count"] == len(pred.anomalies) == 2
    assert summary["total_area_px"] == int(pred.mask.sum())
    assert summary["total_area_m2"] is None  # no gsd
    assert summary["max_t_degc"] == round(float(pred.frame.t_u[pred.mask > 0].max()), 3)
    assert summary["max_dt_degc"] == max(a["mean_dt_degc"] for a in doc["anomalies"])
    first = doc["anomalies"][0]
    assert first["id"] == 1 and first["max_t_degc"] == round(first["max_t_degc"], 3)
    assert first["mean_probability"] == round(float(pred.anomalies[0].mean_probability), 4)
    assert isinstance(first["bbox"], list)


def test_document_areas_in_square_metres_and_empty_frames():
    doc = anomalies_document(_prediction(gsd=0.1))
    assert doc["summary"]["total_area_m2"] == pytest.approx(doc["summary"]["total_area_px"] * 0.01)
    empty = anomalies_document(_prediction(blobs=False, gsd=0.1))["summary"]
    assert empty == {
        "count": 0,
        "total_area_px": 0,
        "total_area_m2": 0.0,
        "max_dt_degc": None,
        "max_t_degc": None,
    }
    assert anomalies_document(_prediction(blobs=False))["summary"]["total_area_m2"] is None


def test_document_maps_nan_to_null_and_protects_its_keys():
    pred = _prediction(blobs=False)
    pred.corridor_median_degc = float("nan")
    doc = anomalies_document(pred)
    json.dumps(doc, allow_nan=False)
    assert doc["frame"]["corridor_median_degc"] is None
    with pytest.raises(ValueError, match="summary"):
        anomalies_document(pred, extra={"summary": {}})


# --------------------------------------------------------------------------------------------
# GeoJSON
# --------------------------------------------------------------------------------------------


def _polygons(feature) -> list:
    geometry = feature["geometry"]
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    assert geometry["type"] == "MultiPolygon"
    return geometry["coordinates"]


def _check_rings(feature) -> float:
    """Assert closed, correctly oriented rings; return the footprint area."""
    total = 0.0
    for rings in _polygons(feature):
        for i, ring in enumerate(rings):
            assert len(ring) >= 4 and ring[0] == ring[-1]
            area = _shoelace(ring)
            assert (area > 0) if i == 0 else (area < 0)  # exterior CCW, holes CW
            total += area
    return total


def test_geojson_pixel_polygons_match_components():
    pred = _prediction()
    fc = anomalies_geojson(pred)
    json.dumps(fc, allow_nan=False)
    _assert_plain_json(fc)
    assert fc["type"] == "FeatureCollection" and "crs" not in fc
    assert [f["id"] for f in fc["features"]] == [a.id for a in pred.anomalies]
    for feature, a in zip(fc["features"], pred.anomalies, strict=True):
        assert feature["type"] == "Feature"
        assert feature["properties"]["coordinate_space"] == "pixel"
        assert feature["properties"]["area_px"] == a.area_px
        # Pixel footprints are exact, well within any centre-tracing tolerance.
        assert _check_rings(feature) == pytest.approx(a.area_px)
        x0, y0, x1, y1 = a.bbox
        xs = [p[0] for p in feature["geometry"]["coordinates"][0]]
        ys = [p[1] for p in feature["geometry"]["coordinates"][0]]
        assert (min(xs), min(ys), max(xs), max(ys)) == (x0, y0, x1, y1)


def test_geojson_ring_component_has_a_hole():
    pred = _prediction()
    ring_anomaly = max(pred.anomalies, key=lambda a: a.bbox[2] - a.bbox[0])
    feature = anomalies_geojson(pred)["features"][ring_anomaly.id - 1]
    rings = feature["geometry"]["coordinates"]
    assert feature["geometry"]["type"] == "Polygon" and len(rings) == 2
    x0, y0, x1, y1 = ring_anomaly.bbox
    crop = np.pad(pred.labels[y0:y1, x0:x1] == ring_anomaly.id, 1)
    _, background = cv2.connectedComponents((~crop).astype(np.uint8), connectivity=4)
    enclosed = ~crop & (background != background[0, 0])  # background cut off from outside
    assert -_shoelace(rings[1]) == pytest.approx(enclosed.sum())


def test_geojson_single_pixels_lines_and_split_components():
    labels = np.zeros((H, W), np.int32)
    labels[40, 10] = 1  # single pixel
    labels[35, 20:30] = 2  # one-pixel-wide line
    labels[50, 50:53] = 3  # one id in two separate parts
    labels[60:62, 70:72] = 3
    pred = _prediction(labels=labels)
    by_area = {a.area_px: f for a, f in zip(pred.anomalies, anomalies_geojson(pred)["features"])}
    pixel = by_area[1]["geometry"]
    assert pixel["type"] == "Polygon"
    corners = sorted(map(tuple, pixel["coordinates"][0][:-1]))
    assert corners == [(10, 40), (10, 41), (11, 40), (11, 41)]  # the pixel's own square
    assert _check_rings(by_area[10]) == pytest.approx(10)
    split = by_area[7]
    assert split["geometry"]["type"] == "MultiPolygon"
    assert len(split["geometry"]["coordinates"]) == 2
    assert _check_rings(split) == pytest.approx(7)


def test_geojson_maps_pixel_corners_through_the_geotransform():
    gsd, x_origin, y_origin = 0.1, 456000.0, 5430000.0
    geo = GeoInfo(transform=(gsd, 0.0, x_origin, 0.0, -gsd, y_origin), crs="EPSG:25832")
    labels = np.zeros((H, W), np.int32)
    labels[7, 5] = 1
    labels[40:44, 60:66] = 2
    pred = _prediction(labels=labels, geo=geo, gsd=gsd)
    fc = anomalies_geojson(pred)
    assert fc["crs"] == {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::25832"}}
    features = {f["properties"]["area_px"]: f for f in fc["features"]}
    square = features[1]["geometry"]["coordinates"][0]
    expected = {
        (round(x_origin + c * gsd, 3), round(y_origin - r * gsd, 3)) for c in (5, 6) for r in (7, 8)
    }
    assert {tuple(p) for p in square} == expected
    for area_px, feature in features.items():
        assert feature["properties"]["coordinate_space"] == "crs"
        # North-up flips y, so orientation had to be fixed after mapping.
        assert _check_rings(feature) == pytest.approx(area_px * gsd * gsd)


def _pixel_union(sel: np.ndarray, geo: GeoInfo | None = None):
    """The exact footprint of a pixel set: the union of its pixel squares (shapely)."""
    import shapely

    rows, cols = np.nonzero(sel)
    squares = shapely.union_all(shapely.box(cols, rows, cols + 1, rows + 1))
    if geo is None:
        return squares
    a, b, c, d, e, f = geo.transform
    return shapely.affinity.affine_transform(squares, [a, b, d, e, c, f])


@pytest.mark.parametrize("rotated", [False, True])
def test_geojson_polygons_equal_the_union_of_their_pixels(rotated):
    """Random blobs (holes, corner contacts, several parts per id): every feature's geometry
    equals the union of its pixel squares, mapped through the georeference when there is one.
    """
    import shapely
    from shapely.geometry import shape

    rng = np.random.default_rng(7)
    labels = np.zeros((H, W), np.int32)
    for k in range(1, 9):
        y, x = rng.integers(0, H - 12), rng.integers(0, W - 12)
        blob = rng.random((12, 12)) < 0.55
        labels[y : y + 12, x : x + 12][blob & (labels[y : y + 12, x : x + 12] == 0)] = k
    geo = None
    if rotated:
        cos, sin = np.cos(np.radians(20)), np.sin(np.radians(20))
        geo = GeoInfo(transform=(0.1 * cos, 0.1 * sin, 456000.0, 0.1 * sin, -0.1 * cos,
                                 5430000.0), crs="EPSG:25832")
    pred = _prediction(labels=labels, geo=geo, gsd=0.1 if geo else None)
    fc = anomalies_geojson(pred)
    assert len(fc["features"]) == len(pred.anomalies) > 1
    for feature, a in zip(fc["features"], pred.anomalies, strict=True):
        # A ring touching itself where pixels meet at a corner is not OGC-valid: compare
        # the point sets, which make_valid keeps.
        got = shapely.make_valid(shape(feature["geometry"]))
        want = _pixel_union(pred.labels == a.id, geo)
        if geo is None:
            assert got.equals(want)
        else:  # CRS coordinates are rounded to 3 decimals (a millimetre)
            assert got.hausdorff_distance(want) < 1e-3
            assert got.area == pytest.approx(a.area_px * 0.01, rel=1e-3)
        assert _check_rings(feature) == pytest.approx(got.area)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def test_write_outputs_writes_every_file(tmp_path: Path):
    pred = _prediction()
    neighbour = tmp_path / "other_mask.png"
    neighbour.write_bytes(b"keep")
    stale = tmp_path / "frame1.json"
    stale.write_text("old")
    paths = write_outputs(pred, tmp_path, "frame1", model_dir="/m")
    assert paths == {
        "mask": tmp_path / "frame1_mask.png",
        "probability": tmp_path / "frame1_prob.png",
        "overlay": tmp_path / "frame1_overlay.png",
        "json": tmp_path / "frame1.json",
        "geojson": tmp_path / "frame1.geojson",
    }
    np.testing.assert_array_equal(_decode(paths["mask"].read_bytes()), pred.mask)
    assert _decode(paths["overlay"].read_bytes()).shape[2] == 3
    doc = json.loads(paths["json"].read_text())
    assert doc["summary"]["count"] == 2 and doc["model"]["dir"] == "/m"
    assert "  " in paths["json"].read_text()  # indented for people
    assert json.loads(paths["geojson"].read_text())["type"] == "FeatureCollection"
    assert neighbour.read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [neighbour.name, *(p.name for p in paths.values())]
    )  # no temp files left behind


def test_write_outputs_subset_and_argument_checks(tmp_path: Path):
    pred = _prediction()
    paths = write_outputs(pred, tmp_path / "new", "f", outputs=("json", "mask"))
    assert list(paths) == ["json", "mask"]
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["f.json", "f_mask.png"]
    with pytest.raises(ValueError, match="unknown output"):
        write_outputs(pred, tmp_path, "f", outputs=("pdf",))
    with pytest.raises(ValueError, match="stem"):
        write_outputs(pred, tmp_path, "../escape")


def test_write_outputs_reports_unwritable_folder(tmp_path: Path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError) as info:
        write_outputs(_prediction(), blocker / "out", "f", outputs=("mask",))
    message = str(info.value)
    assert message.startswith(f"cannot write outputs to {blocker / 'out'}: ")
    assert "\n" not in message
    assert isinstance(info.value, OSError)
