"""api.predict in-process with real DEEPaaS UploadedFile objects and real models."""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import save_tiny_model
from deepaas.model.v2.wrapper import UploadedFile

import api
from api.responses import ApiError
from thermal_anomaly_segmenter.config import DEFAULT_MODEL_NAME

STEM = "KA1_DJI_0_0095_R"
OUTPUT_SUFFIXES = ("_mask.png", "_prob.png", "_overlay.png", ".json", ".geojson")


def upload(source: Path | bytes, original: str | None = f"{STEM}.npy.lz4",
           name: str = "input_file") -> UploadedFile:
    """A temp copy of ``source`` as DEEPaaS hands it over (a nameless file in the temp dir)."""
    fd, tmp = tempfile.mkstemp()
    with os.fdopen(fd, "wb") as fh:
        fh.write(source if isinstance(source, bytes) else Path(source).read_bytes())
    return UploadedFile(name=name, filename=tmp, content_type="application/octet-stream",
                        original_filename=original)


def predict(input_file: UploadedFile, **kwargs):
    return api.predict(input_file=input_file, **kwargs)


@pytest.fixture()
def predictions(models_root) -> Path:
    return models_root / DEFAULT_MODEL_NAME / "predictions"


def test_json_answer_reports_this_requests_files(sample_path, predictions):
    up = upload(sample_path)
    doc = predict(up, accept="application/json")
    assert not Path(up.filename).exists()  # DEEPaaS's temp upload is gone
    assert doc["schema"] == "taseg.anomalies/1"
    assert doc["summary"]["count"] == len(doc["anomalies"]) >= 1
    assert doc["frame"]["name"] == STEM and doc["model"]["type"] == "smp_unet"
    stored = json.loads((predictions.parent / "train_config.json").read_text())["threshold"]
    assert doc["threshold"] == stored  # the folder's validation-chosen threshold
    assert doc["result"] == str(predictions / f"{STEM}_overlay.png")
    assert set(doc["outputs"]) == {"mask", "probability", "overlay", "json", "geojson"}
    for path in doc["outputs"].values():
        assert Path(path).parent == predictions and Path(path).stat().st_size > 0
    json.dumps(doc, allow_nan=False)  # plain JSON for DEEPaaS


def test_star_accept_is_json(sample_path, predictions):
    doc = predict(upload(sample_path), accept="*/*")
    assert doc["result"].endswith("_overlay.png") and "anomalies" in doc


def test_png_answer_is_the_overlay(sample_path, predictions):
    data = predict(upload(sample_path), accept="image/png")
    assert isinstance(data, io.BytesIO)
    image = cv2.imdecode(np.frombuffer(data.getvalue(), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[0] >= 512 and image.shape[1] >= 640
    assert data.getvalue() == (predictions / f"{STEM}_overlay.png").read_bytes()


def test_zip_answer_holds_every_output(sample_path, predictions):
    data = predict(upload(sample_path), accept="application/zip")
    with zipfile.ZipFile(data) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(f"{STEM}{s}" for s in OUTPUT_SUFFIXES)
        report = json.loads(archive.read(f"{STEM}.json"))
        assert archive.read(f"{STEM}_mask.png") == (predictions / f"{STEM}_mask.png").read_bytes()
    assert report["summary"]["count"] >= 1


def test_geojson_answer(sample_path, predictions):
    data = predict(upload(sample_path), accept="application/geo+json")
    doc = json.loads(data.getvalue())
    assert doc["type"] == "FeatureCollection" and doc["features"]
    assert {f["geometry"]["type"] for f in doc["features"]} <= {"Polygon", "MultiPolygon"}


def test_threshold_changes_the_answer(sample_path, predictions):
    low = predict(upload(sample_path), threshold=0.2)
    high = predict(upload(sample_path), threshold=0.95)
    assert low["threshold"] == 0.2 and high["threshold"] == 0.95
    assert low["summary"]["total_area_px"] > high["summary"]["total_area_px"]


def test_requests_never_overwrite_each_other(sample_path, predictions):
    first = predict(upload(sample_path))
    before = Path(first["outputs"]["json"]).read_bytes()
    second = predict(upload(sample_path), threshold=0.9)
    assert second["result"] == str(predictions / f"{STEM}-2_overlay.png")
    assert set(first["outputs"].values()).isdisjoint(second["outputs"].values())
    assert Path(first["outputs"]["json"]).read_bytes() == before
    assert len(list(predictions.iterdir())) == 2 * len(OUTPUT_SUFFIXES)


@pytest.mark.parametrize(("original", "stem"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\evil.npy.lz4", "evil"),
    ("/abs/path/frame.npy.lz4", "frame"),
    ("bad\x00name.npy.lz4", "bad_name"),
    ("..", "frame"),
    (None, "frame"),
])
def test_client_filename_is_only_a_sanitised_stem(sample_path, models_root, original, stem):
    doc = predict(upload(sample_path, original))
    predictions = models_root / DEFAULT_MODEL_NAME / "predictions"
    assert doc["result"] == str(predictions / f"{stem}_overlay.png")
    assert all(Path(p).parent == predictions for p in doc["outputs"].values())


@pytest.mark.parametrize("payload", [
    b"", os.urandom(3000), b"\x04\x22\x4d\x18" + os.urandom(200), b"\x93NUMPY" + os.urandom(99),
])
def test_bad_upload_is_400_with_a_reason(models_root, payload):
    up = upload(payload, "bad.npy.lz4")
    with pytest.raises(ApiError) as info:
        predict(up)
    err = info.value
    assert err.status == 400
    body = json.loads(err.text)
    assert body["code"] == 400 and body["message"]
    assert "bad.npy.lz4" in body["message"]  # the client's name, not the temp file's
    assert Path(up.filename).name not in body["message"]
    assert not Path(up.filename).exists()
    assert not (models_root / DEFAULT_MODEL_NAME / "predictions").exists() or not any(
        (models_root / DEFAULT_MODEL_NAME / "predictions").iterdir())


def test_input_must_be_an_upload(models_root):
    with pytest.raises(ApiError) as info:
        api.predict(input_file="just a string")
    assert info.value.status == 400


def test_model_dir_outside_the_roots_is_4xx(sample_path, models_root):
    for value in ("/etc", "../", tempfile.gettempdir()):
        up = upload(sample_path)
        with pytest.raises(ApiError) as info:
            predict(up, model_dir=value)
        assert 400 <= info.value.status < 500 and "not inside" in info.value.message
        assert not Path(up.filename).exists()


def test_no_model_at_all_is_404(sample_path, tmp_path, monkeypatch):
    from thermal_anomaly_segmenter.config import reload_settings

    monkeypatch.setenv("MODELS_PATH", str(tmp_path / "none"))
    monkeypatch.setenv("REMOTE_PATH", str(tmp_path / "none"))
    reload_settings()
    try:
        with pytest.raises(ApiError) as info:
            predict(upload(sample_path))
        assert info.value.status == 404
    finally:
        monkeypatch.undo()
        reload_settings()


def test_upload_size_limit(sample_path, models_root, monkeypatch):
    from thermal_anomaly_segmenter.config import reload_settings

    monkeypatch.setenv("TASEG_MAX_UPLOAD_MB", "2")  # the sample has 1.7 MB
    reload_settings()
    up = upload(os.urandom(2 * 1024 * 1024 + 1))
    with pytest.raises(ApiError) as info:
        predict(up)
    assert info.value.status == 413 and "TASEG_MAX_UPLOAD_MB" in info.value.message
    assert not Path(up.filename).exists()
    assert predict(upload(sample_path))["summary"]["count"] >= 1  # the sample still fits


def test_unwritable_predictions_folder_is_a_clear_5xx(sample_path, models_root):
    (models_root / DEFAULT_MODEL_NAME / "predictions").write_text("a file where a folder belongs")
    with pytest.raises(ApiError) as info:
        predict(upload(sample_path))
    assert info.value.status in (500, 507) and "predictions" in info.value.message


def test_unknown_accept_is_406(sample_path, models_root):
    with pytest.raises(ApiError) as info:
        predict(upload(sample_path), accept="text/csv")  # text/html is the report now
    assert info.value.status == 406


def test_api_error_survives_pickling_with_its_status():
    err = pickle.loads(pickle.dumps(ApiError(400, "bad frame: caf\u00e9\nline two")))
    assert err.status == 400 and err.content_type == "application/json"
    assert err.reason.isascii() and "\n" not in err.reason
    assert json.loads(err.text)["message"] == "bad frame: caf\u00e9\nline two"


def test_tiff_with_corridor_upload_and_gsd(sample_path, models_root, tmp_path, sample_frame):
    import tifffile

    tiff = tmp_path / "t_u.tif"
    tifffile.imwrite(tiff, sample_frame.t_u.astype(np.float32))
    corridor = tmp_path / "corridor.png"
    cv2.imwrite(str(corridor), sample_frame.corridor.astype(np.uint8) * 255)

    with pytest.raises(ApiError) as info:  # a single-band TIFF needs a corridor
        predict(upload(tiff, "site.tif"))
    assert info.value.status == 400

    corridor_up = upload(corridor, "corridor.png", name="corridor_file")
    doc = predict(upload(tiff, "site.tif"), corridor_file=corridor_up, gsd=0.05, tile_size=256)
    assert not Path(corridor_up.filename).exists()
    assert doc["frame"]["name"] == "site" and doc["frame"]["gsd_m"] == 0.05
    assert doc["summary"]["count"] >= 1 and doc["summary"]["total_area_m2"] > 0
    # 5 cm/px is finer than the default's 10: the network saw the frame at 10 cm/px
    assert doc["frame"]["network_gsd_m"] == 0.1
    native = predict(upload(tiff, "site.tif"), corridor_file=upload(
        corridor, "corridor.png", name="corridor_file"), gsd=0.05, native_scale=True)
    assert native["frame"]["network_gsd_m"] is None


def test_neural_model_predicts(sample_path, models_root):
    save_tiny_model(models_root / "segformer_b0_tiny")
    doc = predict(upload(sample_path), model_dir="segformer_b0_tiny", threshold=0.5)
    assert doc["model"]["type"] == "segformer_b0"
    assert Path(doc["result"]).parent == models_root / "segformer_b0_tiny" / "predictions"
    assert doc["summary"]["count"] == len(doc["anomalies"])


def test_warm_loads_the_default_model_and_never_fails(models_root, tmp_path, monkeypatch):
    from thermal_anomaly_segmenter.config import reload_settings

    api.warm()
    monkeypatch.setenv("MODELS_PATH", str(tmp_path / "none"))
    reload_settings()
    try:
        api.warm()  # no model: a warning, the server still starts
    finally:
        monkeypatch.undo()
        reload_settings()


def test_in_process_callers_file_outside_the_temp_dir_is_kept(sample_path, models_root):
    # Only DEEPaaS's temp copies are removed; the repository's sample must survive.
    up = UploadedFile(name="input_file", filename=str(sample_path),
                      content_type="application/octet-stream", original_filename="s.npy.lz4")
    if Path(sample_path).resolve().is_relative_to(Path(tempfile.gettempdir()).resolve()):
        pytest.skip("checkout lies in the temp dir")
    predict(up)
    assert Path(sample_path).is_file()

