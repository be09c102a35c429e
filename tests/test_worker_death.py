"""A predict whose model worker dies (a native crash, an OOM kill) over HTTP.

The test finds the process that serves the predict by what it does: DEEPaaS's temp copy of
the upload is held open by the worker running that predict (api.uploads.hold_temp_copies),
so the process with that file among its open descriptors is the one to crash with SIGSEGV.
The answer must be a JSON 5xx naming the signal, the temp upload must be gone, and the
server must go on answering every route, a fresh predict included.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from deepaas_server import (
    eventually,
    leftover_uploads,
    make_folders,
    post_predict,
    running_server,
    wait_for_outputs,
)

requests = pytest.importorskip("requests")

pytestmark = [pytest.mark.http, pytest.mark.slow]


def _holder_of(tmp: Path, server_pid: int) -> int | None:
    """The pid of a process other than the server's holding a file of ``tmp`` open (the
    worker serving the upload: the server itself holds it only while writing it)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == server_pid:
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if Path(os.readlink(fd)).parent == tmp:
                    return int(entry.name)
        except OSError:
            continue
    return None


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL])
def test_worker_killed_mid_predict(tmp_path, sig):
    folders = make_folders(tmp_path, synth=False)
    tmp = (folders / "tmp").resolve()
    with running_server(folders, "--model-name", "thermal_anomaly_segmenter") as server:
        answer: dict = {}
        sender = threading.Thread(target=lambda: answer.update(
            response=post_predict(server.model_url, accept="text/html", timeout=120)))
        sender.start()
        holder: dict = {}
        assert eventually(lambda: holder.update(pid=_holder_of(tmp, server.proc.pid))
                          or holder["pid"], 60), server.log_tail()
        os.kill(holder["pid"], sig)
        sender.join(120)
        response = answer["response"]
        assert response.status_code == (503 if sig == signal.SIGKILL else 500), response.text
        body = response.json()
        assert body["status"] == "error" and sig.name in body["message"], body
        assert eventually(lambda: not leftover_uploads(folders), 10), leftover_uploads(folders)
        # Every route answers at once; a new predict runs in the replacement worker.
        assert requests.get(f"{server.url}/v2/models/", timeout=10).status_code == 200
        assert requests.get(f"{server.model_url}/", timeout=10).status_code == 200
        again = post_predict(server.model_url, timeout=120)
        assert again.status_code == 200, again.text
        wait_for_outputs(again.json()["predictions"])
        assert server.alive
        assert eventually(lambda: not leftover_uploads(folders), 10), leftover_uploads(folders)


def test_workers_end_with_a_killed_server(tmp_path):
    """SIGKILL of the server alone (not its group): its model workers must not live on as
    orphans holding a model in memory."""
    from thermal_anomaly_segmenter.processes import process_trees

    folders = make_folders(tmp_path, synth=False)
    with running_server(folders, "--model-name", "thermal_anomaly_segmenter") as server:
        workers = [pid for pid in process_trees(server.proc.pid) if pid != server.proc.pid]
        assert workers, "no worker process found"
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)

        def gone() -> bool:  # ended (a zombie nobody reaps counts as ended)
            return all(_state(pid) in (None, "Z", "X") for pid in workers)

        assert eventually(gone, 15), workers
