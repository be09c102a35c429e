"""Benchmark: a genuine but slow frame with and without a predict time budget (issue 12).

For each ``TASEG_PREDICT_TIMEOUT_S`` given (default: 0 = no limit, and 5) a ``deepaas-run``
(one worker, private folders, this checkout) gets a 4096 x 5120 frame for the default model,
then the 64 x 80 sample-sized frame for the classical model, and a request with a 9,000-byte
Accept header. Printed: each answer, its wall time and the server's peak RSS (the largest
VmHWM of its processes).

Usage (CPU; the unlimited case runs the whole frame, a minute or more on 2 cores)::

    python benchmarks/predict_budget.py [--budget 0] [--budget 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import requests  # noqa: E402
from deepaas_server import make_folders, post_predict, running_server  # noqa: E402
from hostile_resources import _peak_rss_mib  # noqa: E402
from test_hostile_resources import _frame, _lz4_frame  # noqa: E402


def _timed(call):
    start = time.monotonic()
    r = call()
    kind = r.headers.get("Content-Type", "").split(";")[0]
    return f"{r.status_code} {kind}", time.monotonic() - start


def _cases(budget: int, base: Path) -> list[tuple[str, str, float, float]]:
    folders = make_folders(base, synth=False)
    big = _lz4_frame(_frame(4096, 5120))
    small = _lz4_frame(_frame())
    rows = []
    with running_server(folders, "--nowarm", TASEG_PREDICT_TIMEOUT_S=str(budget)) as server:
        answer, wall = _timed(lambda: post_predict(server.model_url, data=big,
                                                   filename="big.npy.lz4", timeout=1800))
        rows.append(("4096 x 5120 frame, default model", answer, wall,
                     _peak_rss_mib(server.proc.pid)))
        answer, wall = _timed(lambda: post_predict(server.model_url, data=small,
                                                   filename="ok.npy.lz4", model_dir="classical"))
        rows.append(("next request: 64 x 80 frame, classical", answer, wall,
                     _peak_rss_mib(server.proc.pid)))
        answer, wall = _timed(lambda: requests.get(f"{server.url}/v2/models/", timeout=30,
                                                   headers={"Accept": "a" * 9000}))
        rows.append(("9,000-byte Accept header", answer, wall, _peak_rss_mib(server.proc.pid)))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", action="append", type=int,
                        help="TASEG_PREDICT_TIMEOUT_S to measure (repeatable; default 0 and 5)")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print("| TASEG_PREDICT_TIMEOUT_S | request | answer | wall s | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for budget in args.budget or [0, 5]:
        with tempfile.TemporaryDirectory(prefix="taseg-budget-") as tmp:
            for name, answer, wall, peak in _cases(budget, Path(tmp)):
                print(f"| {budget} | {name} | {answer} | {wall:.1f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
