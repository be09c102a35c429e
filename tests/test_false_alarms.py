"""The false-alarm stage: features, a classifier stored as JSON trees, and its verdicts."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.false_alarms.classifier import (
    FEATURES,
    FalseAlarmClassifier,
    component_features,
    filter_mask,
    synthetic_training_set,
    train_classifier,
)
from thermal_anomaly_segmenter.scenes.synthetic import make_scene

SIZE = (128, 160)


@pytest.fixture(scope="module")
def trained():
    x, y = synthetic_training_set(["karlsruhe_winter", "city_wet", "campus_mixed"], 8, seed=3,
                                  height=SIZE[0], width=SIZE[1])
    return x, y, train_classifier(x, y, n_estimators=40)


def test_classifier_is_plain_json_and_matches_scikit_learn(trained, tmp_path):
    from sklearn.ensemble import GradientBoostingClassifier

    x, y, clf = trained
    path = clf.save(tmp_path / "fa.json")
    data = json.loads(path.read_text())  # plain JSON, no pickle anywhere
    assert data["features"] == list(FEATURES) and "leak" in data["classes"]
    loaded = FalseAlarmClassifier.load(path)
    np.testing.assert_allclose(loaded.predict_proba(x), clf.predict_proba(x))
    assert 0.1 <= loaded.keep_threshold <= 0.5
    # The stored trees are scikit-learn's own: same probabilities on the data they saw.
    held = np.random.default_rng(0).random(len(y)) < 0.25
    ref = GradientBoostingClassifier(n_estimators=40, max_depth=3, learning_rate=0.1,
                                     init="zero", random_state=0, subsample=0.8)
    ref.fit(x[~held].astype(np.float64), np.asarray(y)[~held])
    np.testing.assert_allclose(ref.predict_proba(x.astype(np.float64)), clf.predict_proba(x),
                               atol=1e-9)
    with pytest.raises(InvalidInputError):
        FalseAlarmClassifier.from_dict({"format": "pickle"})


def test_rejects_a_lamp_and_a_pipe_trace_fragment_and_keeps_a_leak(trained):
    *_, clf = trained
    scene = make_scene(77, *SIZE, n_leaks=1, family="karlsruhe_winter")
    classes = np.array(("",) + scene.instance_classes)
    inst_class = classes[scene.instances]
    leak = scene.leak_mask.astype(bool)
    grow = cv2.dilate(leak.view(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    lamp_ids = [k for k in np.unique(scene.instances[scene.corridor & (inst_class == "lamp")])
                if not (grow & (scene.instances == k)).any()]
    lamp = scene.instances == lamp_ids[0]
    # A fragment of the trace away from the leak and the lamp: one 20 px tile of it.
    trace = (inst_class == "pipe_trace") & scene.corridor & ~grow
    trace &= ~cv2.dilate(lamp.view(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    ys, xs = np.nonzero(trace)
    y0, x0 = ys[len(ys) // 2] - 10, xs[len(xs) // 2] - 10
    tile = np.zeros_like(trace)
    tile[max(y0, 0) : y0 + 20, max(x0, 0) : x0 + 20] = True
    fragment = trace & tile
    mask = leak | lamp | fragment
    n, labels = cv2.connectedComponents(mask.view(np.uint8) if mask.dtype == np.uint8
                                        else mask.astype(np.uint8), connectivity=8)
    assert n == 4  # three separate components
    verdicts = clf.judge(component_features(scene.t_u, scene.corridor, labels, n))
    by_part = {}
    for name, part in (("leak", leak), ("lamp", lamp), ("trace", fragment)):
        k = int(np.bincount(labels[part]).argmax())
        by_part[name] = verdicts[k - 1]
    assert by_part["leak"]["keep"], by_part
    assert not by_part["lamp"]["keep"] and by_part["lamp"]["cause"] == "lamp", by_part
    assert not by_part["trace"]["keep"], by_part
    kept, _ = filter_mask(scene.t_u, scene.corridor, mask, clf)
    assert (kept == leak).all()
