"""Benchmark: a model worker killed mid-predict (issue 27), over HTTP on this checkout.

Starts ``deepaas-run`` on private folders (``TASEG_PREDICT_TIMEOUT_S=15``), posts the sample
frame with ``Accept: text/html``, finds the worker serving it (the process other than the
server holding DEEPaaS's temp upload open) and sends it SIGSEGV (or the signal given), then
asks ``GET /v2/models/``. Printed: the predict's status and time, the GET's status and time,
the temp uploads left and the server group's peak RSS.

Usage (CPU, under a minute)::

    python benchmarks/worker_crash.py [--signal SIGKILL]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import requests  # noqa: E402
from deepaas_server import (  # noqa: E402
    eventually,
    group_rss_bytes,
    leftover_uploads,
    make_folders,
    post_predict,
    running_server,
)
from test_worker_death import _holder_of  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", default="SIGSEGV", choices=("SIGSEGV", "SIGKILL", "SIGBUS"))
    sig = signal.Signals[parser.parse_args().signal]
    with tempfile.TemporaryDirectory() as base:
        folders = make_folders(Path(base), synth=False)
        with running_server(folders, TASEG_PREDICT_TIMEOUT_S="15") as server:
            answer: dict = {}
            start = time.monotonic()
            sender = threading.Thread(target=lambda: answer.update(response=post_predict(
                server.model_url, accept="text/html", timeout=60)))
            sender.start()
            holder: dict = {}
            eventually(lambda: holder.update(pid=_holder_of((folders / "tmp").resolve(),
                                                            server.proc.pid)) or holder["pid"])
            os.kill(holder["pid"], sig)
            peak = group_rss_bytes(server.proc.pid)
            sender.join(70)
            r = answer.get("response")
            print(f"predict: {r.status_code if r is not None else 'no answer'} in "
                  f"{time.monotonic() - start:.1f} s {r.text[:160] if r is not None else ''}")
            try:
                t = time.monotonic()
                code = requests.get(f"{server.url}/v2/models/", timeout=20).status_code
                print(f"GET /v2/models/: {code} in {time.monotonic() - t:.2f} s")
            except requests.RequestException as exc:
                print(f"GET /v2/models/: {type(exc).__name__}")
            print(f"temp uploads left: {len(leftover_uploads(folders))}; server group RSS "
                  f"{peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
