"""Outputs written after the answer (report.deferred): the same files, complete, never lost.

Real model (the shipped default), real sample frame; no timing asserted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from thermal_anomaly_segmenter.config import DEFAULT_MODEL_NAME
from thermal_anomaly_segmenter.outputs import deferred
from thermal_anomaly_segmenter.outputs.write import OUTPUT_NAMES
from thermal_anomaly_segmenter.predict.files import OUTPUT_KINDS, PredictRequest, predict_paths

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / DEFAULT_MODEL_NAME


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_deferred_outputs_are_the_same_files(sample_path, tmp_path):
    [now] = predict_paths([sample_path], PredictRequest(model_dir=MODEL, out_dir=tmp_path / "now"))
    [later] = predict_paths([sample_path], PredictRequest(
        model_dir=MODEL, out_dir=tmp_path / "later", deferred_outputs=OUTPUT_KINDS))
    assert later.ok and later.outputs["mask"].stat().st_size > 0  # written before the answer
    assert set(later.outputs) == set(OUTPUT_KINDS)
    assert {p.name for p in later.outputs.values()} == {p.name for p in now.outputs.values()}
    assert later.report == now.report and later.n_anomalies == now.n_anomalies >= 1
    assert deferred.wait(timeout=60)
    assert _files(tmp_path / "later") == _files(tmp_path / "now")  # no temp file left either
    assert json.loads(later.outputs["json"].read_text()) == later.report


def test_one_frame_inline_gives_what_the_threaded_pipeline_gives(sample_path, tmp_path):
    """One input runs in the caller's thread; several run through the reader and writer
    pools: the same mask, probabilities and anomaly records either way."""
    copy = tmp_path / "copy.npy.lz4"
    copy.write_bytes(sample_path.read_bytes())
    [alone] = predict_paths([sample_path], PredictRequest(
        model_dir=MODEL, out_dir=tmp_path / "one", keep_predictions=True))
    both = list(predict_paths([sample_path, copy], PredictRequest(
        model_dir=MODEL, out_dir=tmp_path / "two", keep_predictions=True)))
    for other in both:
        assert (other.prediction.mask == alone.prediction.mask).all()
        assert (other.prediction.probability == alone.prediction.probability).all()
        assert other.prediction.anomalies == alone.prediction.anomalies
    assert both[0].outputs["mask"].read_bytes() == alone.outputs["mask"].read_bytes()


def test_the_claiming_file_is_never_deferred(sample_path, tmp_path):
    kinds = ("overlay", "json")
    [result] = predict_paths([sample_path], PredictRequest(
        model_dir=MODEL, out_dir=tmp_path, outputs=kinds, deferred_outputs=kinds))
    assert result.outputs["overlay"].stat().st_size > 0
    assert deferred.wait(timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{result.name}{OUTPUT_NAMES[k]}" for k in kinds)


_CHILD = textwrap.dedent("""
    import os, signal, sys
    from thermal_anomaly_segmenter.predict.files import OUTPUT_KINDS, PredictRequest, predict_paths
    [r] = predict_paths([sys.argv[1]], PredictRequest(
        model_dir=sys.argv[2], out_dir=sys.argv[3], deferred_outputs=OUTPUT_KINDS))
    print(r.name, flush=True)
    if sys.argv[4] == "term":
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()
""")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["term", "exit"])
def test_pending_outputs_survive_the_process_end(sample_path, tmp_path, how):
    """SIGTERM (how DEEPaaS stops a worker) right after the answer, or a normal exit: the
    pending files are all written, whole, before the process ends."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(sample_path), str(MODEL),
                           str(tmp_path), how], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == (-signal.SIGTERM if how == "term" else 0), proc.stderr
    stem = proc.stdout.split()[0]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"{stem}{suffix}" for suffix in OUTPUT_NAMES.values())
    assert all((tmp_path / n).stat().st_size > 0 for n in names)
    assert json.loads((tmp_path / f"{stem}.json").read_text())["anomalies"]


def test_held_jobs_start_when_the_block_ends_in_order():
    done: list[int] = []
    with deferred.held():
        for i in range(3):
            deferred.submit(done.append, i)
        assert deferred.wait(timeout=0.2) and done == []  # nothing started inside
    assert deferred.wait(timeout=30)
    assert done == [0, 1, 2]


def test_a_failing_job_is_logged_and_the_next_still_runs(caplog):
    done: list[str] = []
    deferred.submit(lambda: 1 / 0, name="a broken job")
    deferred.submit(done.append, "next")
    assert deferred.wait(timeout=30)
    assert done == ["next"]
    assert "a broken job" in caplog.text


def test_pending_files_wait_while_requests_run(monkeypatch):
    """A job waits while a request runs in the process (and QUIET_S after it), then runs."""
    monkeypatch.setattr(deferred, "MAX_DELAY_S", 30.0)
    started = threading.Event()
    with deferred.busy():
        deferred.submit(started.set)
        assert not started.wait(0.3)  # a request is running: the writer yields
    assert started.wait(10)
    assert deferred.wait(timeout=10)


def test_a_job_waits_at_most_max_delay_under_steady_load(monkeypatch):
    monkeypatch.setattr(deferred, "MAX_DELAY_S", 0.2)
    started = threading.Event()
    with deferred.busy():
        deferred.submit(started.set)
        assert started.wait(10)  # still inside the request


def test_a_full_backlog_makes_the_writer_run_without_pausing(monkeypatch):
    """More jobs than the backlog holds, all submitted inside one request: no deadlock, the
    request waits for the writer only as long as it takes to make room."""
    monkeypatch.setattr(deferred, "MAX_DELAY_S", 30.0)
    monkeypatch.setattr(deferred, "MAX_PENDING", 2)
    done: list[int] = []
    with deferred.busy():
        for i in range(6):
            deferred.submit(done.append, i)
        assert len(done) >= 4  # room was made while the request ran
    assert deferred.wait(timeout=10)
    assert done == list(range(6))


def test_the_byte_budget_admits_one_large_job(monkeypatch):
    monkeypatch.setattr(deferred, "MAX_DELAY_S", 30.0)
    monkeypatch.setattr(deferred, "MAX_PENDING_BYTES", 10)
    done: list[int] = []
    with deferred.busy():
        deferred.submit(done.append, 0, cost=100)  # alone: admitted however large
        deferred.submit(done.append, 1, cost=100)  # waits until the first has run
        assert done[:1] == [0]
    assert deferred.wait(timeout=10)
    assert done == [0, 1]
