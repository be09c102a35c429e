"""Load over HTTP: 200 predictions, 20 in flight, against ``deepaas-run --workers 2``.

The classical model keeps the run within CI time on two cores (the server is configured as
the Dockerfile runs it: two workers, so a prediction never queues behind a training). Every
request must succeed; the resident memory of the whole server process group is sampled
during the run and bounded; p50/p95 latencies and the peak are printed (``-s`` shows them)
and kept in ``benchmarks/RESULTS.md``. Then a prediction sent while a training runs must be
answered within a timeout, not hang behind it.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from deepaas_server import (
    SAMPLE,
    TINY_TRAIN,
    eventually,
    group_rss_bytes,
    leftover_uploads,
    make_folders,
    post_predict,
    running_server,
)

requests = pytest.importorskip("requests")

pytestmark = [pytest.mark.http, pytest.mark.slow, pytest.mark.xdist_group("load")]

REQUESTS = 200
IN_FLIGHT = 20
WORKERS = "2"
RSS_LIMIT = 3 * 2**30
#: A prediction of the classical model takes well under a second; one sent during a training
#: must come back within this (with a single worker it would wait for the whole training).
DURING_TRAINING_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    return make_folders(tmp_path_factory.mktemp("load"))


@pytest.fixture(scope="module")
def server(folders):
    with running_server(folders, "--workers", WORKERS, TASEG_DEFAULT_MODEL="classical") as srv:
        yield srv


class _RssSampler(threading.Thread):
    """Samples the server group's summed VmRSS every ``period`` seconds until stopped."""

    def __init__(self, pgid: int, period: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pgid, self.period = pgid, period
        self.peak = self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, group_rss_bytes(self.pgid))
            self.samples += 1
            self._stop_event.wait(self.period)

    def stop(self) -> int:
        self._stop_event.set()
        self.join(timeout=10)
        return self.peak


def _timed_predict(model_url: str, k: int) -> tuple[int, float, str]:
    t0 = time.perf_counter()
    try:
        r = post_predict(model_url, filename=f"load-{k % 7}.npy.lz4", timeout=300)
    except requests.RequestException as exc:
        return -1, time.perf_counter() - t0, repr(exc)
    ok = r.status_code == 200 and r.json()["predictions"]["summary"]["count"] >= 1
    return r.status_code, time.perf_counter() - t0, "" if ok else r.text[:300]


def test_200_predictions_20_in_flight(server, folders):
    idle_rss = group_rss_bytes(server.proc.pid)
    sampler = _RssSampler(server.proc.pid)
    sampler.start()
    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            answers = list(pool.map(lambda k: _timed_predict(server.model_url, k),
                                    range(REQUESTS)))
    finally:
        peak = sampler.stop()
    wall = time.perf_counter() - t0
    failures = [(code, text) for code, _, text in answers if code != 200 or text]
    latencies = sorted(seconds for _, seconds, _ in answers)
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"\nload: {REQUESTS} predictions, {IN_FLIGHT} in flight, --workers {WORKERS}, "
          f"classical model, sample frame {SAMPLE.stat().st_size / 2**20:.2f} MiB: "
          f"{len(failures)} failures, wall {wall:.1f} s ({REQUESTS / wall:.1f} req/s), "
          f"latency p50 {p50:.2f} s p95 {p95:.2f} s max {latencies[-1]:.2f} s, "
          f"server RSS idle {idle_rss / 2**20:.0f} MiB peak {peak / 2**20:.0f} MiB "
          f"({sampler.samples} samples)")
    assert failures == []
    assert server.alive
    assert sampler.samples >= 10 and peak > 0
    assert peak < RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"
    predictions = folders / "models" / "classical" / "predictions"
    # every request kept its own outputs (the overlays follow the answers)
    assert eventually(lambda: len(list(predictions.glob("*.json"))) == REQUESTS)
    assert len(list(predictions.glob("*_overlay.png"))) == REQUESTS
    assert leftover_uploads(folders) == []


def test_prediction_during_a_training_is_answered(server, folders):
    started = requests.post(f"{server.model_url}/train/", params=TINY_TRAIN, timeout=30)
    assert started.status_code == 200, started.text
    uuid = started.json()["uuid"]
    try:
        time.sleep(1)
        status = requests.get(f"{server.model_url}/train/{uuid}", timeout=10).json()
        assert status["status"] == "running", status
        t0 = time.perf_counter()
        r = post_predict(server.model_url, timeout=DURING_TRAINING_TIMEOUT_S)
        seconds = time.perf_counter() - t0
        still = requests.get(f"{server.model_url}/train/{uuid}", timeout=10).json()["status"]
        print(f"\npredict during training: HTTP {r.status_code} in {seconds:.2f} s "
              f"(training {still} when it came back)")
        assert r.status_code == 200, r.text
        assert r.json()["predictions"]["summary"]["count"] >= 1
        assert still == "running"  # it really overlapped the training
    finally:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            status = requests.get(f"{server.model_url}/train/{uuid}", timeout=10).json()
            if status["status"] != "running":
                break
            time.sleep(1)
    assert status["status"] == "done", status
    assert server.alive
