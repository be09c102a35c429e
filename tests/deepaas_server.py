"""Shared machinery of the tests that speak HTTP to a real ``deepaas-run`` on 127.0.0.1.

A test module builds private folders (:func:`make_folders`: MODELS_PATH with a copy of the
shipped models, DATA_PATH with a tiny synthetic dataset, REMOTE_PATH, TMPDIR) and starts a
server on them (:func:`running_server`); the server runs in its own process group, which is
killed when the ``with`` block ends, whatever happens. Not a test module: imported by them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SHIPPED_ONLY

requests = pytest.importorskip("requests")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4"
BIN = Path(sys.executable).parent
MODEL = "thermal_anomaly_segmenter"
START_TIMEOUT_S = 90
#: Small enough for two CPU cores: 64 x 80 frames, one epoch, fine_tune only.
TINY_TRAIN = {"model_type": "segformer_b0", "train_phases": "fine_tune", "epochs": 1,
              "batch_size": 2, "worker_count": 0, "gpu": "false", "mlflow": "false",
              "data_augmentation": "false"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(base: Path, **extra: str) -> dict[str, str]:
    """The server's environment: private folders, offline, no inherited MLFLOW_/TASEG_."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TASEG_"))}
    env.update({
        "MODELS_PATH": str(base / "models"),
        "DATA_PATH": str(base / "data"),
        "REMOTE_PATH": str(base / "remote"),
        "TMPDIR": str(base / "tmp"),
        "HF_HUB_OFFLINE": "1",
        "NO_ALBUMENTATIONS_UPDATE": "1",
    })
    env.update(extra)
    return env


def make_folders(base: Path, *, synth: bool = True) -> Path:
    """Fill ``base`` with models/ (shipped models), data/ (a tiny dataset), remote/, tmp/."""
    shutil.copytree(ROOT / "models", base / "models", ignore=SHIPPED_ONLY)
    for name in ("data", "remote", "tmp"):
        (base / name).mkdir()
    if synth:
        proc = subprocess.run(
            [sys.executable, "-m", "thermal_anomaly_segmenter", "synth",
             str(base / "data" / "synth"), "--frames", "6", "--height", "64", "--width", "80",
             "--seed", "3"],
            capture_output=True, text=True, timeout=120, env=environment(base))
        assert proc.returncode == 0, proc.stderr
    return base


def stop(proc: subprocess.Popen) -> None:
    """Stop a process started with ``start_new_session=True`` and its whole group."""
    # SIGTERM first; DEEPaaS's non-daemon worker processes keep the server from exiting, so
    # the whole group gets SIGKILL after a short grace period.
    for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    proc.wait(timeout=10)


class Server:
    """A running ``deepaas-run``: its base ``url``, process and log file."""

    def __init__(self, proc: subprocess.Popen, url: str, log_path: Path) -> None:
        self.proc, self.url, self.log_path = proc, url, log_path
        self.model_url = f"{url}/v2/models/{MODEL}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@contextlib.contextmanager
def running_server(folders: Path, *args: str, **env: str) -> Iterator[Server]:
    """Start ``deepaas-run`` on a free loopback port with ``folders``; stop its group after."""
    port = free_port()
    log_path = folders / f"server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "deepaas-run"), "--listen-ip", "127.0.0.1", "--listen-port", str(port),
             *args],
            stdout=log, stderr=subprocess.STDOUT, env=environment(folders, **env), cwd=folders,
            start_new_session=True,  # its own group: the spawned workers die with it
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"deepaas-run exited ({proc.returncode}):\n{server.log_tail()}")
            try:
                if requests.get(f"{server.url}/v2/models/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"deepaas-run not up after {START_TIMEOUT_S} s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        stop(proc)


def post_predict(model_url: str, accept: str | None = "application/json", *,
                 data: bytes | None = None, filename: str = SAMPLE.name, timeout: float = 120,
                 **params):
    """POST one frame (the sample by default) to predict as multipart ``input_file``."""
    payload = SAMPLE.read_bytes() if data is None else data
    headers = {"Accept": accept} if accept else {}
    return requests.post(f"{model_url}/predict/", params=params, headers=headers,
                         files={"input_file": (filename, payload)}, timeout=timeout)


def eventually(check, timeout: float = 30) -> bool:
    """Whether ``check()`` becomes true within ``timeout`` s (polled every 50 ms)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def wait_for_outputs(doc: dict, timeout: float = 30) -> None:
    """Wait for the files of a JSON predict answer: all but the mask PNG are written after
    the answer, the JSON report last (thermal_anomaly_segmenter.outputs.deferred)."""
    assert eventually(Path(doc["outputs"]["json"]).is_file, timeout), doc["outputs"]


def poll_training(model_url: str, uuid: str, timeout: float) -> dict:
    """GET the training ``uuid`` until it is no longer running (or ``timeout`` s passed)."""
    deadline = time.monotonic() + timeout
    while True:
        status = requests.get(f"{model_url}/train/{uuid}", timeout=10).json()
        if status["status"] != "running" or time.monotonic() > deadline:
            return status
        time.sleep(1)


def leftover_uploads(folders: Path) -> list[str]:
    """Files left in the server's TMPDIR (DEEPaaS's temp uploads must all be removed)."""
    return sorted(p.name for p in (folders / "tmp").iterdir() if p.is_file())


def group_rss_bytes(pgid: int) -> int:
    """Resident memory (VmRSS) summed over every live process of the process group ``pgid``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Fields after the ") " that ends the command name: state ppid pgrp ...
            if int(stat.rpartition(")")[2].split()[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            continue  # the process ended meanwhile
    return total
