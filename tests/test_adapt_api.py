"""``taseg adapt`` through api.train (a review plus its frames under DATA_PATH): bad input is
HTTP 400/422 with nothing written; a tiny real adaptation gives a model folder under
MODELS_PATH."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import api
from api.responses import ApiError

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "unet_mobilenetv2_synthetic"


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory) -> dict:
    """Frames under a DATA_PATH, their report and a review deciding every anomaly."""
    from thermal_anomaly_segmenter.io.formats import write_frame
    from thermal_anomaly_segmenter.report.inspector import make_report
    from thermal_anomaly_segmenter.scenes.synthetic import make_scene

    base = tmp_path_factory.mktemp("adapt_api")
    frames = base / "data" / "survey"
    frames.mkdir(parents=True)
    for i in range(2):
        write_frame(frames / f"g{i}.npy.lz4", make_scene(31 + i, 192, 256).data)
    make_report([frames], base / "report", model_dir=MODEL)
    html = (base / "report" / "report.html").read_text()
    data = json.loads(re.search(r'id="taseg-data">(.*?)</script>', html, re.S).group(1)
                      .replace("<\\/", "</"))
    decisions = [{"frame": a["frame"], "id": a["id"],
                  "decision": "leak" if k % 2 == 0 else "false_alarm",
                  "cause": "leak" if k % 2 == 0 else "manhole", "bbox": a["bbox"],
                  "polygon": a["polygon"], "severity": a["severity"]}
                 for k, a in enumerate(data["anomalies"])]
    assert decisions
    review = {"schema": data["review_schema"], "report_id": data["report_id"],
              "frames": data["frames"], "decisions": decisions}
    (base / "data" / "review.json").write_text(json.dumps(review))
    (base / "data" / "empty.json").write_text(json.dumps({**review, "decisions": []}))
    return {"base": base, "frames": frames, "data": base / "data"}


@pytest.fixture()
def env(reviewed, tmp_path, monkeypatch):
    from thermal_anomaly_segmenter.config import reload_settings

    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("DATA_PATH", str(reviewed["data"]))
    monkeypatch.setenv("MODELS_PATH", str(models))
    monkeypatch.setenv("REMOTE_PATH", str(tmp_path / "remote"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    reload_settings()
    yield {**reviewed, "models": models}
    reload_settings()


def test_bad_review_is_400_or_422_and_writes_nothing(env, tmp_path):
    outside = tmp_path / "review.json"
    outside.write_text("{}")
    common = {"review_frames": [str(env["frames"])], "review_model_dir": None, "gpu": False}
    with pytest.raises(ApiError) as info:  # not under DATA_PATH / REMOTE_PATH
        api.train(**common, review=str(outside))
    assert info.value.status == 422 and "review" in info.value.message
    with pytest.raises(ApiError) as info:
        api.train(**common, review=str(env["data"] / "empty.json"))
    assert info.value.status == 400 and "no leak or false-alarm" in info.value.message
    with pytest.raises(ApiError) as info:
        api.train(**common, review=str(env["data"] / "review.json"), max_time=0.01)
    assert info.value.status == 400 and "too small" in info.value.message
    for field, value, named in (("review_min_leaks", 0, "--min-leaks"),
                                ("review_extent_band", -1.0, "--extent-band")):
        with pytest.raises(ApiError) as info:
            api.train(**common, review=str(env["data"] / "review.json"), **{field: value})
        assert info.value.status == 400 and named in info.value.message
    assert not any(env["models"].iterdir())


@pytest.mark.slow
def test_train_with_a_review_adapts_a_model(env):
    import shutil

    start = env["models"] / "start"
    shutil.copytree(MODEL, start)
    result = api.train(review=str(env["data"] / "review.json"),
                       review_frames=[str(env["frames"])], review_model_dir=str(start),
                       max_time=0.3, gpu=False)
    folder = Path(result["model_dir"])
    assert folder.parent == env["models"] and folder.name.startswith("adapted_")
    for name in ("model.safetensors", "model.onnx", "adapt.json", "train_config.json"):
        assert (folder / name).is_file(), name
    assert result["adapt"]["decisions"]["leak"] >= 1
    assert result["adapt"]["start_model"] == str(start.resolve())
