"""Files a user hands over that steer a result: a false-alarm classifier, a review, a
severity config. A malformed or non-finite one is refused with one line (exit 2), never
applied: before, a NaN leaf rejected every anomaly with exit 0 and a NaN polygon made a
"leak" frame's label all zero."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.false_alarms.classifier import (
    FalseAlarmClassifier,
    synthetic_training_set,
    train_classifier,
)
from thermal_anomaly_segmenter.false_alarms.review import SCHEMA, Review
from thermal_anomaly_segmenter.report.severity import load_rules

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4"


def taseg(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([sys.executable, "-m", "thermal_anomaly_segmenter", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


def assert_one_line_exit_2(proc: subprocess.CompletedProcess, *words: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and "internal error" not in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def classifier() -> dict:
    x, y = synthetic_training_set(["karlsruhe_winter", "campus_mixed"], 2, seed=1,
                                  height=96, width=120)
    return train_classifier(x, y, n_estimators=4).to_dict()


def _tree(doc: dict) -> dict:
    return doc["trees"][0][0]


# Each edit makes a classifier that would be applied wrongly (or crash) if it were loaded.
CLASSIFIER_EDITS = {
    "nan leaf": lambda d: _tree(d)["value"].__setitem__(0, float("nan")),
    "infinite leaf (1e999)": lambda d: _tree(d)["value"].__setitem__(0, float("inf")),
    "nan keep threshold": lambda d: d.__setitem__("keep_threshold", float("nan")),
    "keep threshold 7": lambda d: d.__setitem__("keep_threshold", 7),
    "learning rate 1e308": lambda d: d.__setitem__("learning_rate", 1e308),
    "node index out of range": lambda d: _tree(d)["left"].__setitem__(0, 10**6),
    "feature index out of range": lambda d: _tree(d)["feature"].__setitem__(0, 99),
    "text threshold": lambda d: _tree(d)["threshold"].__setitem__(0, "0.5"),
    "boolean leaf": lambda d: _tree(d)["value"].__setitem__(0, True),
    "trees not a list": lambda d: d.__setitem__("trees", {"a": 1}),
    "ragged node lists": lambda d: _tree(d)["right"].pop(),
    "classes wrong": lambda d: d.__setitem__("classes", [1, 2]),
}


@pytest.mark.parametrize("edit", sorted(CLASSIFIER_EDITS))
def test_malformed_classifier_is_refused(classifier, tmp_path, edit):
    doc = copy.deepcopy(classifier)
    CLASSIFIER_EDITS[edit](doc)
    path = tmp_path / "fa.json"
    path.write_text(json.dumps(doc))  # json writes NaN/Infinity tokens as Python does
    with pytest.raises(InvalidInputError):
        FalseAlarmClassifier.load(path)


def test_classifier_round_trip_still_loads(classifier, tmp_path):
    path = tmp_path / "fa.json"
    path.write_text(json.dumps(classifier))
    assert FalseAlarmClassifier.load(path).to_dict() == classifier


def test_cli_refuses_a_nan_classifier_in_one_line(classifier, tmp_path):
    doc = copy.deepcopy(classifier)
    _tree(doc)["value"][0] = float("nan")
    path = tmp_path / "fa.json"
    path.write_text(json.dumps(doc))
    out = tmp_path / "out"
    proc = taseg("predict", SAMPLE, "--out", out, "--outputs", "json", "--false-alarms", path)
    assert_one_line_exit_2(proc, "fa.json")
    assert not list(out.glob("*.json")) if out.exists() else True  # nothing applied


def _review(polygon: object = None, **decision: object) -> dict:
    ring = [[1, 1], [5, 1], [5, 5], [1, 5]]
    return {"schema": SCHEMA, "frames": {"f0": {"anomalies": 1, "height": 64, "width": 80}},
            "decisions": [{"frame": "f0", "id": 1, "decision": "leak",
                           "polygon": [[ring]] if polygon is None else polygon, **decision}]}


REVIEW_EDITS = {
    "polygon text": _review("[[[1, 1], [5, 1], [5, 5]]]"),
    "polygon NaN": _review([[[[1, 1], [float("nan"), 1], [5, 5]]]]),
    "polygon +1e308": _review([[[[1, 1], [1e308, 1], [5, 5]]]]),
    "polygon -1e308": _review([[[[1, 1], [-1e308, 1], [5, 5]]]]),
    "point of three numbers": _review([[[[1, 1, 1], [5, 1], [5, 5]]]]),
    "ring of two points": _review([[[[1, 1], [5, 1]]]]),
    "id a list": _review(None, id=[1]),
    "frames a list": {**_review(), "frames": ["f0"]},
    "anomalies text": {**_review(), "frames": {"f0": {"anomalies": "1"}}},
    "decisions an object": {**_review(), "decisions": {"f0": "leak"}},
    "outline text": _review(None, outline="[[[1, 1], [5, 1], [5, 5]]]"),
    "outline NaN": _review(None, outline=[[[[1, 1], [float("nan"), 1], [5, 5]]]]),
    "outline on a false alarm": _review(None, decision="false_alarm", cause="lamp",
                                        outline=[[[[1, 1], [5, 1], [5, 5], [1, 1]]]]),
    "outline on unsure": _review(None, decision="unsure", outline=[[[[1, 1], [5, 1], [5, 5]]]]),
    "outline empty": _review(None, outline=[]),
    "added on a false alarm": _review(None, id="added-1", decision="false_alarm", cause="lamp",
                                      added=True, outline=[[[[1, 1], [5, 1], [5, 5]]]]),
    "added without outline": _review(None, id="added-1", added=True),
    "added with a listed id": _review(None, added=True, outline=[[[[1, 1], [5, 1], [5, 5]]]]),
    "added not true": _review(None, id="added-1", added="true",
                              outline=[[[[1, 1], [5, 1], [5, 5]]]]),
    "added outline NaN": _review(None, id="added-1", added=True,
                                 outline=[[[[1, 1], [float("nan"), 1], [5, 5]]]]),
    "added twice": {**_review(), "decisions": 2 * [
        {"frame": "f0", "id": "added-1", "decision": "leak", "added": True,
         "outline": [[[[1, 1], [5, 1], [5, 5]]]]}]},
    "listed id like an added one": _review(None, id="added-1"),
}


@pytest.mark.parametrize("edit", sorted(REVIEW_EDITS))
def test_malformed_review_is_refused(tmp_path, edit):
    path = tmp_path / "review.json"
    path.write_text(json.dumps(REVIEW_EDITS[edit]))
    with pytest.raises(InvalidInputError):
        Review.read(path)


def test_deep_and_latin1_files_are_one_line_errors(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    latin = tmp_path / "latin.toml"
    latin.write_bytes("[A]\n# Schwellenwert f\xfcr Klasse A\nmin_dt_degc = 3\n".encode("latin-1"))
    nested = tmp_path / "nested.json"
    nested.write_text('{"A": {"x": ' + "[" * 500 + "1" + "]" * 500 + "}}")
    for path in (deep, latin, nested):
        with pytest.raises(InvalidInputError):
            load_rules(path)
    with pytest.raises(InvalidInputError):
        Review.read(deep)
    assert Review.read(_write(tmp_path / "ok.json", _review())).complete("f0")


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("kind", ["deep", "latin-1"])
def test_cli_severity_config_deep_or_latin1(tmp_path, kind):
    config = tmp_path / ("sev.json" if kind == "deep" else "sev.toml")
    if kind == "deep":
        config.write_text("[" * 100_000 + "]" * 100_000)
    else:
        config.write_bytes("[A]\n# f\xfcr A\n".encode("latin-1"))
    proc = taseg("report", SAMPLE, "--out", tmp_path / "rep", "--severity-config", config)
    assert_one_line_exit_2(proc, config.name)


@pytest.mark.parametrize("edit, words", [
    ("polygon +1e308", ("review.json",)),
    ("outline text", ("review.json", "f0/1", "outline")),
    ("outline on a false alarm", ("review.json", "f0/1", "outline on a false_alarm")),
    ("added on a false alarm", ("review.json", "f0/added-1", "added false_alarm")),
    ("added with a listed id", ("review.json", "f0/1", "added-"))])
def test_cli_review_with_bad_polygon_or_outline(tmp_path, edit, words):
    for name in ("tiffs", "corridors"):
        (tmp_path / name).mkdir()
    review = _write(tmp_path / "review.json", REVIEW_EDITS[edit])
    proc = taseg("build-dataset", tmp_path / "tiffs", tmp_path / "corridors", tmp_path / "ds",
                 "--review", review)
    assert_one_line_exit_2(proc, *words)
    assert not (tmp_path / "ds").exists()
