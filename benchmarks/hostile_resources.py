"""Benchmark: what hostile requests cost the server and the CLI (issue 12), per source tree.

For each source tree given (default: this checkout; pass an older checkout too to compare,
both measured in the same run) a ``deepaas-run`` with ``TASEG_MAX_UPLOAD_MB=1`` and private
folders gets: a TIFF whose one LZMA strip inflates to 1 GiB (declared 64 x 80), a 1 GiB
upload with its Content-Length, a 256 MiB non-file form field; the CLI gets a dataset whose
label PNG declares 12000 x 12000 px (``taseg evaluate``), a 2 GiB zip bomb dataset and a
one-epoch training (``taseg train``). Printed: status, wall time, peak RSS (the largest
VmHWM of the server's processes, or of the CLI process) and disk left behind.

Usage (CPU, a few minutes; the old tree's bombs need ~3 GB of memory)::

    python benchmarks/hostile_resources.py [--source OLD_CHECKOUT] [--source .]
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import requests  # noqa: E402
from deepaas_server import BIN, environment, make_folders, running_server  # noqa: E402
from test_hostile_resources import _frame, _lz4_frame, png_bomb, tiff_bomb  # noqa: E402


def _peak_rss_mib(pgid: int) -> float:
    """Largest VmHWM (peak RSS) of the live processes of process group ``pgid``, in MiB."""
    peak = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rpartition(")")[2].split()[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            continue
    return peak / 1024


def _du_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20 \
        if path.exists() else 0.0


def _stream(url: str, head: bytes, total: int, chunk: bytes,
            tail: bytes = b"") -> tuple[str, float]:
    """Send ``head``, then ``chunk`` until ``total`` bytes or an answer, then ``tail``."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        sent = 0
        try:
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)
                sent += len(chunk)
            if sent >= total:
                sock.sendall(tail)
        except OSError:  # the server stopped reading or closed: read its answer
            pass
        sock.settimeout(300)
        answer = b""
        try:
            while b"\r\n" not in answer:
                piece = sock.recv(65536)
                if not piece:
                    break
                answer += piece
        except OSError:
            pass
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "closed"
    return status, time.monotonic() - start


def _server_cases(source: Path, base: Path) -> list[tuple[str, str, float, float]]:
    folders = make_folders(base, synth=False)
    rows = []
    env = {"PYTHONPATH": str(source), "TASEG_MAX_UPLOAD_MB": "1"}
    url_path = "/v2/models/thermal_anomaly_segmenter/predict/"
    with running_server(folders, "--nowarm", **env) as server:
        predict = f"{server.model_url}/predict/"
        requests.post(predict, params={"model_dir": "classical"}, timeout=120,
                      files={"input_file": ("ok.npy.lz4", _lz4_frame(_frame()))})
        bomb = tiff_bomb("lzma", inflated=2**30)
        start = time.monotonic()
        r = requests.post(predict, params={"model_dir": "classical"}, timeout=600,
                          files={"input_file": ("bomb.tif", bomb)})
        rows.append((f"TIFF, one LZMA strip -> 1 GiB ({len(bomb) // 1024} KB)",
                     str(r.status_code), time.monotonic() - start,
                     _peak_rss_mib(server.proc.pid)))
    for name, head, total in (
        ("1 GiB upload, Content-Length given", "file", 2**30),
        ("256 MiB non-file form field (chunked)", "field", 2**28),
    ):
        with running_server(folders, "--nowarm", **env) as server:
            boundary = "b0undary"
            if head == "file":
                part = (f'--{boundary}\r\nContent-Disposition: form-data; name="input_file"; '
                        f'filename="big.npy"\r\n\r\n')
                headers = f"Content-Length: {total + len(part) + len(boundary) + 6}\r\n"
            else:
                part = f'--{boundary}\r\nContent-Disposition: form-data; name="threshold"\r\n\r\n'
                headers = "Transfer-Encoding: chunked\r\n"
            request = (f"POST {url_path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data;"
                       f" boundary={boundary}\r\n{headers}\r\n").encode()
            end = f"\r\n--{boundary}--\r\n".encode()
            if head == "file":
                status, wall = _stream(server.url, request + part.encode(), total,
                                       bytes(2**20), end)
            else:
                first = part.encode()
                chunk = b"%x\r\n" % 2**20 + b"0" * 2**20 + b"\r\n"
                status, wall = _stream(server.url, request + b"%x\r\n" % len(first) + first
                                       + b"\r\n", total, chunk,
                                       b"%x\r\n" % len(end) + end + b"\r\n0\r\n\r\n")
            rows.append((name, status, wall, _peak_rss_mib(server.proc.pid)))
    return rows


def _cli(source: Path, base: Path, *args: str) -> tuple[str, float, float]:
    """Run ``taseg args`` with ``source`` first on the path; exit, wall s, its peak RSS MiB."""
    env = {**environment(base), "PYTHONPATH": str(source)}
    start = time.monotonic()
    proc = subprocess.Popen([str(BIN / "taseg"), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    proc.returncode = os.waitstatus_to_exitcode(status)
    return f"exit {proc.returncode}", time.monotonic() - start, usage.ru_maxrss / 1024


def _cli_cases(source: Path, base: Path) -> list[tuple[str, str, float, float]]:
    folders = make_folders(base)
    rows = []
    synth = folders / "data" / "synth"
    bombset = folders / "bombset"
    shutil.copytree(synth, bombset)
    label = sorted((bombset / "manual_set" / "label" / "synthetic_test").glob("*.png"))[0]
    label.write_bytes(png_bomb())
    status, wall, peak = _cli(source, folders, "evaluate", "--model-dir",
                              str(folders / "models" / "classical"), "--dataset-path",
                              str(bombset))
    rows.append(("label PNG declaring 12000 x 12000 (taseg evaluate)", status, wall, peak))
    zipset = folders / "zipset"
    zipset.mkdir()
    with zipfile.ZipFile(zipset / "manual_set.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manual_set/dataset_info.json", "{}")
        with archive.open("manual_set/zeros.bin", "w", force_zip64=True) as member:
            for _ in range(2048):
                member.write(bytes(2**20))
    size_kb = (zipset / "manual_set.zip").stat().st_size // 1024
    status, wall, peak = _cli(source, folders, "train", "--dataset-path", str(zipset),
                              "--no-mlflow", "--no-gpu", "--epochs", "1")
    rows.append((f"2 GiB zip bomb dataset ({size_kb} KB), disk left: "
                 f"{_du_mib(folders / 'models' / '.runs' / '.datasets'):.0f} MiB",
                 status, wall, peak))
    status, wall, peak = _cli(source, folders, "train", "--dataset-path", str(synth),
                              "--model-type", "segformer_b0", "--train-phases", "fine_tune",
                              "--epochs", "1", "--batch-size", "2", "--worker-count", "0",
                              "--no-mlflow", "--no-gpu", "--no-data-augmentation",
                              "--min-label-px", "0")
    runs = [p for p in (folders / "models" / ".runs").iterdir() if not p.name.startswith(".")]
    rows.append((f"one-epoch SegFormer-B0 training, run folder left: "
                 f"{sum(_du_mib(p) for p in runs):.1f} MiB", status, wall, peak))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", type=Path,
                        help="source tree to measure (repeatable; default: this checkout)")
    args = parser.parse_args(argv)
    sources = [p.resolve() for p in (args.source or [ROOT])]
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    for source in sources:
        with tempfile.TemporaryDirectory(prefix="taseg-hostile-") as tmp:
            rows = _server_cases(source, Path(tmp) / "server")
            rows += _cli_cases(source, Path(tmp) / "cli")
        print(f"\n{source}")
        print("| request | answer | wall s | peak RSS MiB |")
        print("|---|---|---|---|")
        for name, status, wall, peak in rows:
            print(f"| {name} | {status} | {wall:.1f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
