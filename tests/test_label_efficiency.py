"""The label-efficiency benchmark end to end on tiny settings: a report of a held-out family's
pool, the simulated inspector's decisions from the ground truth, one adapt round and the
full-mask comparison, scored on the family's test frames."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_label_efficiency_runs_end_to_end_on_tiny_settings(tmp_path):
    from benchmarks import label_efficiency as le

    # the inspector also outlines its confirmed leaks and adds the ones the report missed
    rows = le.run(tmp_path, ["indep_oldtown"], [4], pool_n=4, test_n=2, size=(128, 160),
                  how=le.Rounds(minutes=0.4, outline=True, add_missed=True))
    assert [r["decisions"] for r in rows] == [0, 4]
    start, adapted = rows
    for scores in (start["adapted"], adapted["adapted"], adapted["painted"]):
        assert set(scores) == set(le.COLUMNS)
        assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert adapted["frames"] >= 1 and adapted["leaks"] <= 4 + adapted["added"]
    for key in ("stage_alone", "adapted_with_stage"):  # where both classes were decided
        assert set(adapted.get(key, le.COLUMNS)) == set(le.COLUMNS)
    # the inspector's decisions follow the ground truth: leaks touch a labelled leak
    review = json.loads((tmp_path / "indep_oldtown" / "n4" / "review.json").read_text())
    assert len(review["decisions"]) == 4 + adapted["added"]
    assert sum(d["decision"] == "leak" for d in review["decisions"]) == adapted["leaks"]
    listed = review["decisions"][:4]
    assert adapted["outlined"] == sum("outline" in d for d in listed)
    assert all(d["decision"] == "leak" for d in listed if "outline" in d)
    assert all(d["added"] is True and d["outline"] for d in review["decisions"][4:])
    fp = adapted["footprints"]
    assert 0 <= fp["recall"] <= 1 and 0 <= fp["precision"] <= 1
    assert "| indep_oldtown | 4 |" in le.table(rows)
    assert json.loads((tmp_path / "label_efficiency.json").read_text()) == rows
