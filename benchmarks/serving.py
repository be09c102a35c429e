"""CPU serving: warm HTTP predict against the bare ONNX Runtime forward it runs (issue 18).

``python -m benchmarks api`` runs :func:`bench_api`: on a copy of the shipped default model
folder (its ``model.onnx``) and the sample frame, it alternates blocks of

- warm HTTP predict (``deepaas-run`` on 127.0.0.1, JSON answer),
- the bare ONNX Runtime forward: an ``InferenceSession`` of the same ``model.onnx`` with the
  same intra-op thread count, run on the same normalised frame (nothing else),
- the eager PyTorch forward of the same weights,
- ``api.predict`` called in this process (what the worker runs, without HTTP),
- a model reload per request and a fresh ``taseg predict`` process per request,

and then profiles where a request's time goes beyond the forward (stages timed one by one in
this process), compares ONNX Runtime session settings on the bare forward, and times the
cold start of a server (process start to the first answer). Ratios, not absolute figures,
are the result: the machine is shared.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4"
BIN = Path(sys.executable).parent
_FOLDER_FILES = ("train_config.json", "model.safetensors", "model.onnx", "model.onnx.json")


def default_model_copy(dest: Path) -> Path:
    """A copy of the shipped default model folder (exported to ONNX if it has no fresh one)."""
    from thermal_anomaly_segmenter.config import DEFAULT_MODEL_NAME
    from thermal_anomaly_segmenter.models.onnx_export import export_onnx, fresh_onnx

    source = ROOT / "models" / DEFAULT_MODEL_NAME
    dest.mkdir(parents=True, exist_ok=True)
    for name in _FOLDER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, dest / name)
    if fresh_onnx(dest) is None:
        export_onnx(dest)
    return dest


def bare_session(path: Path, *, spinning: bool = True, level: str = "all", arena: bool = True):
    """A plain ONNX Runtime CPU session: intra-op threads as PyTorch's, nothing else set."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    }[level]
    options.enable_cpu_mem_arena = arena
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def normalised_input(seg, batch: int = 1) -> np.ndarray:
    """The sample frame as the network sees it: normalised, ``B x 3 x H x W`` float32."""
    from thermal_anomaly_segmenter.io.read import read_frame
    from thermal_anomaly_segmenter.models.normalization import corridor_median

    frame = read_frame(SAMPLE)
    x = seg.norm.apply(frame.data, corridor_median(frame.t_u, frame.corridor))
    return np.ascontiguousarray(np.stack([x] * batch).transpose(0, 3, 1, 2))


def _ms(values: list[float], q: float = 50) -> float:
    return 1000 * float(np.percentile(values, q))


def _wait_up(port: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"deepaas-run exited with {proc.returncode}")
        try:
            requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("deepaas-run did not start")


def _start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [str(BIN / "deepaas-run"), "--listen-ip", "127.0.0.1", "--listen-port", str(port)],
            env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    import signal

    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue


def _post(url: str, payload: bytes):
    import requests

    r = requests.post(url, files={"input_file": (SAMPLE.name, payload)},
                      headers={"accept": "application/json"}, timeout=120)
    r.raise_for_status()
    return r


def cold_start(env: dict[str, str], port: int, log: Path) -> tuple[float, float]:
    """Seconds from ``deepaas-run``'s start to its first predict answer, and to its API
    answering at all (the worker is spawned and warmed before the server listens)."""
    payload = SAMPLE.read_bytes()
    t0 = time.perf_counter()
    proc = _start_server(env, port, log)
    try:
        _wait_up(port, proc)
        up = time.perf_counter() - t0
        _post(f"http://127.0.0.1:{port}/v2/models/thermal_anomaly_segmenter/predict/", payload)
        return time.perf_counter() - t0, up
    finally:
        _stop(proc)


class _Upload:
    """What DEEPaaS hands ``predict`` for an upload (a file of the caller's: never removed)."""

    def __init__(self, path: Path) -> None:
        self.name, self.filename = "input_file", str(path)
        self.content_type, self.original_filename = "application/octet-stream", path.name


def _blocks(paths: list[tuple[str, Callable[[], object], int]], repeats: int,
            block: int) -> dict[str, list[float]]:
    """Run each path in turn, ``block`` calls at a time (``n`` of ``block`` for each), with a
    pause before each block, until every path has ``repeats`` (scaled by n/block) samples."""
    times: dict[str, list[float]] = {name: [] for name, _, _ in paths}
    for _ in range(0, repeats, block):
        for name, fn, count in paths:
            time.sleep(0.3)
            for _ in range(count):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return times


def profile_stages(seg, folder: Path, out_dir: Path, repeats: int) -> dict[str, float]:
    """Median ms of each stage of one request, timed one by one in this process."""
    from api import responses
    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.io.atomic import atomic_write
    from thermal_anomaly_segmenter.io.read import read_frame
    from thermal_anomaly_segmenter.models.normalization import corridor_median
    from thermal_anomaly_segmenter.outputs.document import anomalies_document
    from thermal_anomaly_segmenter.outputs.geojson import anomalies_geojson
    from thermal_anomaly_segmenter.outputs.overlay import render_overlay
    from thermal_anomaly_segmenter.outputs.retention import prune_outputs
    from thermal_anomaly_segmenter.outputs.write import (
        _json_bytes,
        encode_png,
        mask_png,
        probability_png,
    )
    from thermal_anomaly_segmenter.predict.files import FrameResult

    options = PredictOptions(device="cpu")
    out_dir.mkdir(parents=True, exist_ok=True)
    t: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def timed(name: str):
        t0 = time.perf_counter()
        yield
        t.setdefault(name, []).append(time.perf_counter() - t0)

    for i in range(repeats):
        with timed("read + validate (lz4, checks)"):
            frame = read_frame(SAMPLE)
        with timed("corridor median"):
            median = corridor_median(frame.t_u, frame.corridor)
        with timed("normalise"):
            x = seg.norm.apply(frame.data, median)[None]
        with timed("forward (Segmenter: ORT + sigmoid)"):
            prob = seg._forward(x)[0]
        with timed("post-process (threshold, components, records)"):
            pred = seg.finish(frame, prob, median, options)
        with timed("JSON report (in memory)"):
            doc = anomalies_document(pred, model_dir=str(folder))
        with timed("file: mask PNG"):
            mask_png(pred)
        with timed("file: probability PNG"):
            probability_png(pred)
        with timed("file: overlay render"):
            overlay = render_overlay(pred)
        with timed("file: overlay PNG encode"):
            encode_png(overlay)
        with timed("file: geojson"):
            _json_bytes(anomalies_geojson(pred), None)
        with timed("file: json"):
            _json_bytes(doc, 2)
        with timed("5 atomic writes of 50 kB (temp + rename)"):
            for suffix in ("_mask.png", "_prob.png", "_overlay.png", ".json", ".geojson"):
                atomic_write(out_dir / f"p{i}{suffix}", b"x" * 50_000)
        with timed("retention scan (prune_outputs, keep 1000)"):
            prune_outputs(out_dir, 1000)
        result = FrameResult(source=str(SAMPLE), name=frame.name, report=doc,
                             outputs={"overlay": out_dir / "a", "json": out_dir / "b"})
        with timed("JSON answer (format + dumps)"):
            json.dumps({"status": "OK", "predictions": responses.json_response(result)})
    return {name: 1000 * statistics.median(v[1:] or v) for name, v in t.items()}


def bench_api(tmp: Path, repeats: int) -> None:
    """HTTP predict (warm) against the bare ORT forward, eager torch and the rest; profile."""
    import torch

    from thermal_anomaly_segmenter.config import PredictOptions, reload_settings
    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.io.read import read_frame

    models = tmp / "api_models"
    folder = default_model_copy(models / "default")
    port, cold_port = _free_port(), _free_port()
    env = {**os.environ, "MODELS_PATH": str(models), "TASEG_DEFAULT_MODEL": str(folder),
           "DATA_PATH": str(tmp), "REMOTE_PATH": str(tmp / "remote")}
    # api.predict in this process reads the same settings as the server's worker
    os.environ.update({k: env[k] for k in ("MODELS_PATH", "TASEG_DEFAULT_MODEL", "DATA_PATH",
                                           "REMOTE_PATH")}, LOG_LEVEL="WARNING")
    reload_settings()
    log = tmp / "server.log"
    server = _start_server(env, port, log)
    url = f"http://127.0.0.1:{port}/v2/models/thermal_anomaly_segmenter/predict/"
    try:
        _wait_up(port, server)
        payload = SAMPLE.read_bytes()
        onnx_seg = Segmenter.from_folder(folder, "cpu", backend="onnx")
        torch_seg = Segmenter.from_folder(folder, "cpu", backend="torch")
        session = bare_session(folder / "model.onnx")
        quiet = bare_session(folder / "model.onnx", spinning=False)
        x = normalised_input(onnx_seg)
        x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        import api

        upload_copy = tmp / SAMPLE.name
        shutil.copy(SAMPLE, upload_copy)

        def in_process() -> None:
            api.predict(input_file=_Upload(upload_copy), accept="application/json")

        def reload() -> None:  # what the published system does on every request
            Segmenter.from_folder(folder, "cpu").predict(read_frame(SAMPLE), PredictOptions())

        def cold() -> None:  # a fresh process per request: imports, model load, predict
            subprocess.run([str(BIN / "taseg"), "predict", str(SAMPLE), "--model-dir",
                            str(folder), "--out", str(tmp / "cold"), "-q"], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def http() -> None:
            _post(url, payload)

        def bare() -> None:
            session.run(None, {"input": x})

        def bare_quiet() -> None:
            quiet.run(None, {"input": x})

        def eager() -> None:
            torch_seg._forward(x_nhwc)

        for fn in (http, bare, bare_quiet, in_process, reload, eager):
            fn()
        # Alternate short blocks rather than single calls: on 2 cores, a forward in one
        # process right after a forward in the other runs while the first one's idle
        # threads still spin, which taxes whichever path comes second. The pause lets them
        # sleep; blocks keep all paths under the same machine load.
        block = max(3, repeats // 4)
        n = block
        times = _blocks([("http", http, n), ("bare", bare, n), ("bare_quiet", bare_quiet, n),
                         ("in_process", in_process, n),
                         ("torch", eager, max(1, n // 3)),
                         ("reload", reload, 1), ("cold", cold, 1)], repeats, block)
        h, h95 = _ms(times["http"]), _ms(times["http"], 95)
        # The fastest bare forward: ONNX Runtime's defaults, or with idle threads sleeping
        # (TASeg's setting), whichever is faster in this run.
        fastest = min(("bare", "bare_quiet"), key=lambda k: _ms(times[k]))
        b, b95 = _ms(times[fastest]), _ms(times[fastest], 95)
        ip, tt = _ms(times["in_process"]), _ms(times["torch"])
        r, c = _ms(times["reload"]), _ms(times["cold"])
        threads = torch.get_num_threads()
        print(f"api   {len(times['http'])} requests, blocks of {block}; bare ORT sessions "
              f"{threads} intra-op threads, model {folder.name} ({onnx_seg.model_type}), "
              f"1 x 512 x 640")
        print(f"api   bare ORT forward p50 / p95: defaults {_ms(times['bare']):6.1f} / "
              f"{_ms(times['bare'], 95):6.1f} ms, idle threads sleeping "
              f"{_ms(times['bare_quiet']):6.1f} / {_ms(times['bare_quiet'], 95):6.1f} ms")
        print(f"api   HTTP predict p50 {h:6.1f} ms, p95 {h95:6.1f} ms; against the fastest bare "
              f"({fastest}): p50 ratio {h / b:4.2f}, p95 ratio {h95 / b95:4.2f}; against "
              f"ORT defaults: {h / _ms(times['bare']):4.2f}, "
              f"{h95 / _ms(times['bare'], 95):4.2f}")
        print(f"api   api.predict in process (all 5 files before answering) p50 {ip:6.1f} ms "
              f"({ip / b:4.2f}x bare); eager "
              f"torch forward p50 {tt:6.1f} ms ({tt / b:4.2f}x bare, HTTP {h / tt:4.2f}x it)")
        print(f"api   reload per request (in process, n={len(times['reload'])}) {r:6.1f} ms "
              f"({r / h:4.1f}x warm HTTP); fresh taseg process per request "
              f"(n={len(times['cold'])}) {c:6.1f} ms ({c / h:4.1f}x warm HTTP)")
        worker = _worker_ms(log)
        if worker:
            w = statistics.median(worker)
            print(f"api   inside the worker (its log, n={len(worker)}) p50 {w:6.1f} ms: "
                  f"HTTP + DEEPaaS hop {h - w:6.1f} ms")
        print(f"api   settled after the blocks (background writes done): "
              f"{_settled(folder)}")
        stages = profile_stages(onnx_seg, folder, tmp / "profile_out", max(8, repeats // 2))
        total = sum(v for k, v in stages.items() if not k.startswith("forward"))
        print(f"api   stages of one request in this process (median ms; {total:5.1f} ms "
              f"beside the forward):")
        for name, value in stages.items():
            print(f"api     {name:48s} {value:7.1f}")
        session_settings(folder, repeats)
    finally:
        _stop(server)
    total, up = cold_start(env, cold_port, tmp / "cold_server.log")
    print(f"api   cold start of a server: process start to first predict answer {total:5.1f} s "
          f"(API answering after {up:5.1f} s, spawned worker warmed)")


def _settled(folder: Path) -> str:
    """How many complete output sets the server left (every file present, none empty)."""
    from thermal_anomaly_segmenter.outputs.write import OUTPUT_NAMES

    out = folder / "predictions"
    stems = {p.name[: -len(".json")] for p in out.glob("*.json")}
    complete = sum(all((out / f"{s}{suffix}").is_file() and (out / f"{s}{suffix}").stat().st_size
                       for suffix in OUTPUT_NAMES.values()) for s in stems)
    hidden = len(list(out.glob(".*")))
    return f"{complete} of {len(stems)} output sets complete, {hidden} temp files"


def _worker_ms(log: Path) -> list[float]:
    text = log.read_text(errors="replace") if log.is_file() else ""
    return [float(m) for m in re.findall(r"answered in ([0-9.]+) ms", text)]


def session_settings(folder: Path, repeats: int) -> None:
    """The bare forward under ONNX Runtime session settings, interleaved."""
    import onnxruntime as ort

    from thermal_anomaly_segmenter.inference.segmenter import Segmenter
    from thermal_anomaly_segmenter.models.onnx_export import open_session

    seg = Segmenter.from_folder(folder, "cpu", backend="onnx")
    x = normalised_input(seg)
    variants = {
        "bare (ENABLE_ALL, spinning, arena)": bare_session(folder / "model.onnx"),
        "TASeg's open_session": open_session(folder / "model.onnx"),
        "no spinning": bare_session(folder / "model.onnx", spinning=False),
        "ENABLE_EXTENDED": bare_session(folder / "model.onnx", level="extended"),
        "ENABLE_BASIC": bare_session(folder / "model.onnx", level="basic"),
        "no memory arena": bare_session(folder / "model.onnx", arena=False),
    }
    times = _blocks([(k, lambda s=s: s.run(None, {"input": x}), 3) for k, s in variants.items()],
                    max(6, repeats // 2), 3)
    base = _ms(times["bare (ENABLE_ALL, spinning, arena)"])
    print(f"api   ORT session settings, bare forward p50 (onnxruntime {ort.__version__}):")
    for name, values in times.items():
        print(f"api     {name:36s} {_ms(values):7.1f} ms ({_ms(values) / base:4.2f}x)")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
