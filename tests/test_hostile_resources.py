"""Requests that try to make the server (or the CLI) spend unbounded memory, time or processes.

One ``deepaas-run`` with ``TASEG_MAX_UPLOAD_MB=4`` serves every test here (issue 12): each
hostile request must be answered with a JSON 4xx naming the limit, cheaply, and the server
must keep serving. Payloads are crafted in the test (a TIFF whose one strip inflates far past
its declared size is a few kilobytes).
"""

from __future__ import annotations

import io
import json
import lzma
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from deepaas_server import (
    BIN,
    ROOT,
    SAMPLE,
    TINY_TRAIN,
    environment,
    eventually,
    leftover_uploads,
    make_folders,
    post_predict,
    running_server,
    wait_for_outputs,
)

from thermal_anomaly_segmenter.io.frames import compose_frame
from thermal_anomaly_segmenter.outputs.write import OUTPUT_NAMES

requests = pytest.importorskip("requests")
tifffile = pytest.importorskip("tifffile")
lz4_frame = pytest.importorskip("lz4.frame")

pytestmark = [pytest.mark.http, pytest.mark.xdist_group("hostile_resources")]

CLASSICAL = "classical"
LIMIT_MB = 4
KEEP = 5


# --------------------------------------------------------------------------- payloads


def _frame(h: int = 64, w: int = 80) -> np.ndarray:
    t_u = np.full((h, w), 4.0, np.float32)
    t_u[h // 2 - 3 : h // 2 + 3, w // 3 : w // 3 + 6] += 4
    corridor = np.zeros((h, w), bool)
    corridor[h // 4 : 3 * h // 4] = True
    return compose_frame(t_u, corridor).astype(np.float32)


def _lz4_frame(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, frame)
    return lz4_frame.compress(buffer.getvalue(), store_size=True)


def tiff_bomb(codec: str = "lzma", inflated: int = 64 * 2**20, tiled: bool = False) -> bytes:
    """A 64 x 80 x 3 float32 TIFF whose single strip (or tile) inflates to ``inflated`` bytes."""
    buffer = io.BytesIO()
    layout = {"tile": (64, 80)} if tiled else {"rowsperstrip": 64}
    tifffile.imwrite(buffer, _frame(), compression=codec, photometric="rgb", **layout)
    raw = bytearray(buffer.getvalue())
    if codec == "lzma":
        payload = lzma.compress(bytes(inflated), format=lzma.FORMAT_ALONE, preset=0)
    else:
        payload = zlib.compress(bytes(inflated), 9)
    with tifffile.TiffFile(io.BytesIO(bytes(raw))) as tif:
        tags = tif.pages.first.tags
        offsets = tags["TileOffsets" if tiled else "StripOffsets"]
        counts = tags["TileByteCounts" if tiled else "StripByteCounts"]
    for tag, value in ((offsets, len(raw)), (counts, len(payload))):
        struct.pack_into({3: "<H", 4: "<I", 16: "<Q"}[tag.dtype], raw, tag.valueoffset, value)
    return bytes(raw) + payload


def png_bomb(height: int = 12000, width: int = 12000) -> bytes:
    """A valid grey 8-bit PNG of ``height x width`` zeros (about 140 KB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = zlib.compress(bytes((width + 1) * height), 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows)
            + chunk(b"IEND", b""))


def _multipart(filename: str, payload: bytes, boundary: str = "b0undary") -> bytes:
    return (f'--{boundary}\r\nContent-Disposition: form-data; name="input_file"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode() + payload + f"\r\n--{boundary}--\r\n".encode()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    return make_folders(tmp_path_factory.mktemp("resources"))


@pytest.fixture(scope="module")
def server(folders):
    with running_server(folders, "--nowarm", TASEG_MAX_UPLOAD_MB=str(LIMIT_MB),
                        TASEG_KEEP_PREDICTIONS=str(KEEP)) as running:
        yield running


def _assert_json_error(r, status: int, *words: str) -> dict:
    assert r.status_code == status, r.text[:400]
    body = r.json()
    assert body["code"] == status
    for word in words:
        assert word in body["message"], body["message"]
    return body


def _assert_serving(server) -> None:
    r = post_predict(server.model_url, data=_lz4_frame(_frame()), filename="ok.npy.lz4",
                     model_dir=CLASSICAL)
    assert r.status_code == 200, r.text[:400]
    assert server.alive


# --------------------------------------------------------------------------- 1 decode bombs


@pytest.mark.parametrize(("codec", "tiled"), [("lzma", False), ("zlib", True)],
                         ids=["lzma-strip", "deflate-tile"])
def test_tiff_bomb_is_refused_before_decoding(server, folders, codec, tiled):
    bomb = tiff_bomb(codec, tiled=tiled)
    assert len(bomb) < 300_000
    r = post_predict(server.model_url, data=bomb, filename="bomb.tif", model_dir=CLASSICAL)
    _assert_json_error(r, 400, "inflates beyond", "declared size")
    assert leftover_uploads(folders) == []
    _assert_serving(server)


def test_corridor_png_dimensions_are_checked_before_decoding(server):
    r = requests.post(f"{server.model_url}/predict/", params={"model_dir": CLASSICAL},
                      files={"input_file": ("f.npy.lz4", _lz4_frame(_frame())),
                             "corridor_file": ("mask.png", png_bomb())}, timeout=60)
    _assert_json_error(r, 400, "12000 x 12000")
    _assert_serving(server)


def test_label_png_bomb_is_refused_by_the_cli_before_decoding(folders, tmp_path):
    """``taseg evaluate`` on a dataset whose test label declares 12000 x 12000 px."""
    dataset = tmp_path / "bombset"
    subprocess.run(["cp", "-r", str(folders / "data" / "synth"), str(dataset)], check=True)
    info = json.loads((dataset / "manual_set" / "dataset_info.json").read_text())
    subset = info["default_splits"]["test"][0]
    label = sorted((dataset / "manual_set" / "label" / subset).glob("*.png"))[0]
    label.write_bytes(png_bomb())
    # The peak RSS of taseg alone: a small launcher process runs it and reads its rusage.
    # (RUSAGE_CHILDREN of this test process holds the largest of every earlier child, and a
    # child forked straight from this large process starts with its resident pages.)
    launcher = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], "
                "stdout=subprocess.DEVNULL); _, status, usage = os.wait4(p.pid, 0); "
                "print(usage.ru_maxrss); sys.exit(os.waitstatus_to_exitcode(status))")
    proc = subprocess.run(
        [sys.executable, "-c", launcher, str(BIN / "taseg"), "evaluate", "--model-dir",
         str(folders / "models" / CLASSICAL), "--dataset-path", str(dataset)],
        capture_output=True, text=True, timeout=120, env=environment(folders))
    stderr = proc.stderr
    peak_mb = int(proc.stdout.split()[-1]) / 1024
    assert proc.returncode == 2, stderr[-2000:]
    assert "TASEG_MAX_PIXELS" in stderr and "Traceback" not in stderr
    assert peak_mb < 1500, peak_mb  # decoding would allocate 12000 * 12000 * 1 B and more


def test_huge_but_finite_georeference_is_ignored_not_500(server):
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, _frame(), photometric="rgb", extratags=[
        (33550, "d", 3, (1e306, 1e306, 0.0), False),
        (33922, "d", 6, (0.0, 0.0, 0.0, 5e5, 5e6, 0.0), False),
    ])
    r = post_predict(server.model_url, data=buffer.getvalue(), filename="geo.tif",
                     model_dir=CLASSICAL)
    assert r.status_code == 200, r.text[:400]
    assert r.json()["predictions"]["summary"]["count"] >= 1


# --------------------------------------------------------------------------- 3 upload size


def _raw_request(server, head: str, body: bytes, wait_s: float = 10) -> tuple[int, dict]:
    """Send ``head`` and ``body`` on a raw socket; the status and JSON body of the answer."""
    host, port = server.url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < 20:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    status_line, _, rest = data.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(payload[: payload.rfind(b"}") + 1])


def test_declared_oversize_body_is_refused_before_it_is_read(server):
    """Content-Length of 1 GiB: answered 413 after the first 64 KiB, nothing buffered."""
    head = (f"POST /v2/models/thermal_anomaly_segmenter/predict/ HTTP/1.1\r\n"
            f"Host: x\r\nContent-Type: multipart/form-data; boundary=b0undary\r\n"
            f"Content-Length: {2**30}\r\n\r\n")
    start = time.monotonic()
    status, body = _raw_request(server, head, _multipart("big.npy", bytes(65536))[:65536])
    assert status == 413 and "TASEG_MAX_UPLOAD_MB" in body["message"], body
    assert time.monotonic() - start < 10
    _assert_serving(server)


def test_streamed_oversize_upload_is_refused_while_streaming(server, folders):
    """A chunked upload (no Content-Length) is counted while it streams in."""
    def chunks():
        yield _multipart("big.npy", b"")[:-len("\r\n--b0undary--\r\n")]
        for _ in range(LIMIT_MB + 2):
            yield bytes(2**20)
        yield b"\r\n--b0undary--\r\n"

    r = requests.post(f"{server.model_url}/predict/", data=chunks(), timeout=60,
                      headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    _assert_json_error(r, 413, "input_file", "TASEG_MAX_UPLOAD_MB")
    assert leftover_uploads(folders) == []
    _assert_serving(server)


def test_streamed_oversize_urlencoded_body_is_a_json_413(server):
    def chunks():
        for _ in range(3 * LIMIT_MB + 2):
            yield b"threshold=" + b"0" * (2**20)

    r = requests.post(f"{server.model_url}/predict/", data=chunks(), timeout=60,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    _assert_json_error(r, 413, "TASEG_MAX_UPLOAD_MB")
    _assert_serving(server)


def test_big_non_file_form_field_is_refused_while_streaming(server):
    r = requests.post(f"{server.model_url}/predict/", timeout=60,
                      files={"input_file": ("f.npy.lz4", _lz4_frame(_frame()))},
                      data={"threshold": "0" * (2 * 2**20)})
    _assert_json_error(r, 413, "threshold", "KiB")
    _assert_serving(server)


@pytest.mark.parametrize("headers", [{"Accept": "a" * 9000},
                                     {f"X-H{i}": "1" for i in range(200)}],
                         ids=["9000-byte-accept", "200-headers"])
def test_oversized_request_headers_get_a_json_reason(server, headers):
    """aiohttp's HTTP parser refuses these (max_field_size 8190, max_headers 128) before any
    middleware: the answer is still JSON, and the headers are still capped."""
    r = requests.get(f"{server.url}/v2/models/", headers=headers, timeout=30)
    assert r.headers["Content-Type"].startswith("application/json"), r.text[:300]
    if "Accept" in headers:
        _assert_json_error(r, 431, "header", "8190 bytes")
    else:
        _assert_json_error(r, 400, "Too many headers")
    _assert_serving(server)


@pytest.mark.parametrize("filename", ["", "/", "\\\\"], ids=["empty", "slash", "backslash"])
def test_upload_names_that_name_nothing_get_json(server, folders, filename):
    r = requests.post(f"{server.model_url}/predict/", params={"model_dir": CLASSICAL},
                      data=_multipart(filename, _lz4_frame(_frame())), timeout=60,
                      headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert r.headers["Content-Type"].startswith("application/json"), r.text[:300]
    assert r.status_code == 200, r.text[:300]
    assert Path(r.json()["predictions"]["result"]).name.startswith("upload")
    assert leftover_uploads(folders) == []


# --------------------------------------------------------------------------- 4 output names


def test_output_names_never_run_out_and_old_outputs_are_pruned(server, folders):
    out = folders / "models" / CLASSICAL / "predictions"
    out.mkdir(exist_ok=True)

    def stems() -> set[str]:
        return {p.name.removesuffix(suffix) for p in out.iterdir()
                for suffix in OUTPUT_NAMES.values() if p.name.endswith(suffix)}

    # The retention of earlier requests runs after their answers: let it finish first, or
    # it would prune the old names below before this request sees them taken.
    assert eventually(lambda: len(stems()) <= KEEP), sorted(stems())[:10]
    old = time.time() - 86400
    for n in range(1, 10_000):  # every numbered name of the stem "many" is taken
        path = out / (f"many-{n}_mask.png" if n > 1 else "many_mask.png")
        path.touch()
        os.utime(path, (old, old))
    (out / "notes.txt").write_text("not an output")
    r = post_predict(server.model_url, data=_lz4_frame(_frame()), filename="many.npy.lz4",
                     model_dir=CLASSICAL)
    assert r.status_code == 200, r.text[:400]
    outputs = r.json()["predictions"]["outputs"]
    wait_for_outputs(r.json()["predictions"])
    # "many-<random hex>" when every numbered name is still taken; a retention job queued by
    # an earlier request may run during the loop above and free some of them ("many-N").
    assert all(Path(p).is_file() and Path(p).name.startswith("many") for p in outputs.values())
    # Old outputs are pruned after the answer's own files are written.
    assert eventually(lambda: len(stems()) <= KEEP), sorted(stems())[:10]
    assert (out / "notes.txt").read_text() == "not an output"


# --------------------------------------------------------------------------- 2 train args


@pytest.mark.parametrize(("name", "value"), [
    ("worker_count", 1000), ("batch_size", "1e30"), ("batch_size", 10**6), ("seed", 2**64),
    ("epochs", 10**9), ("max_time", 1e308),
], ids=lambda v: str(v)[:12])
def test_numeric_train_arguments_are_bounded(server, name, value):
    r = requests.post(f"{server.model_url}/train/", params={**TINY_TRAIN, name: value},
                      timeout=60)
    assert r.status_code == 422, r.text[:400]
    assert name in r.text
    assert requests.get(f"{server.model_url}/train/", timeout=30).json() == []


def _children(pid: int) -> set[int]:
    kids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    kids.add(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return kids


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        kids = _children(todo.pop())
        found |= kids
        todo.extend(kids)
    return found


@pytest.mark.slow
def test_delete_ends_the_whole_training_process_tree(server):
    before = _descendants(server.proc.pid)
    params = {**TINY_TRAIN, "worker_count": min(2, os.cpu_count() or 1), "epochs": 500}
    r = requests.post(f"{server.model_url}/train/", params=params, timeout=60)
    assert r.status_code == 200, r.text[:400]
    uuid = r.json()["uuid"]
    deadline = time.monotonic() + 120
    loaders: set[int] = set()
    while time.monotonic() < deadline and not loaders:
        # Data-loader workers: grandchildren of the server (children of its pool worker).
        workers = _children(server.proc.pid)
        loaders = {p for w in workers for p in _descendants(w)} - before
        loaders = {p for p in loaders if "multiprocessing" in
                   Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")} \
            if loaders else set()
        time.sleep(0.5)
    assert loaders, "the training never started its data-loader workers"
    r = requests.delete(f"{server.model_url}/train/{uuid}", timeout=60)
    assert r.status_code == 200, r.text[:400]
    assert r.json()["status"] == "cancelled"
    time.sleep(1)
    alive = {p for p in loaders if Path(f"/proc/{p}").exists()
             and "Z" not in (Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()[0])}
    assert not alive, [Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p in alive]
    _assert_serving(server)


@pytest.mark.slow
def test_a_client_that_disconnects_cancels_its_predict(server, folders):
    """A slow predict (the default U-Net on a 4096 x 5120 frame: about 100 tiles, far over the
    client's 3 s even on a quiet machine) whose client goes away."""
    big = _lz4_frame(_frame(4096, 5120))
    assert len(big) < LIMIT_MB * 2**20
    with pytest.raises(requests.exceptions.ReadTimeout):
        post_predict(server.model_url, data=big, filename="big.npy.lz4", timeout=(10, 3))
    deadline = time.monotonic() + 10
    while "client disconnected; predict cancelled" not in server.log_tail(20000):
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.2)
    start = time.monotonic()
    _assert_serving(server)
    assert time.monotonic() - start < 30
    assert leftover_uploads(folders) == []


@pytest.mark.slow
def test_a_predict_over_its_time_budget_is_cancelled(tmp_path):
    """TASEG_PREDICT_TIMEOUT_S: a genuine but slow frame is cancelled with a JSON 503 naming
    the limit, its worker is replaced and the next request is served."""
    budget = 5
    big = _lz4_frame(_frame(4096, 5120))  # the default U-Net needs far longer than 5 s
    folders = make_folders(tmp_path, synth=False)
    with running_server(folders, "--nowarm", TASEG_PREDICT_TIMEOUT_S=str(budget)) as server:
        start = time.monotonic()
        r = post_predict(server.model_url, data=big, filename="big.npy.lz4", timeout=120)
        took = time.monotonic() - start
        _assert_json_error(r, 503, "TASEG_PREDICT_TIMEOUT_S", f"{budget} s")
        assert budget <= took < budget + 10, took
        assert "predict did not finish within" in server.log_tail(20000)
        assert leftover_uploads(folders) == []  # the killed worker's copy is removed too
        _assert_serving(server)


# --------------------------------------------------------------------------- 5, 6, 8 datasets


def _train(server, timeout: float = 240, **params) -> dict:
    """POST a tiny training and wait for its end; the final status document."""
    r = requests.post(f"{server.model_url}/train/", params={**TINY_TRAIN, **params}, timeout=60)
    assert r.status_code == 200, r.text[:400]
    uuid = r.json()["uuid"]
    deadline = time.monotonic() + timeout
    while True:
        doc = requests.get(f"{server.model_url}/train/{uuid}", timeout=30).json()
        if doc["status"] != "running":
            return doc
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.5)


def _dataset_with_info(folders: Path, name: str, info_text: str) -> Path:
    dataset = folders / "data" / name
    subprocess.run(["cp", "-r", str(folders / "data" / "synth"), str(dataset)], check=True)
    (dataset / "manual_set" / "dataset_info.json").write_text(info_text)
    return dataset


@pytest.mark.slow
def test_a_dataset_folder_without_sets_is_refused_when_training_starts(server, folders):
    # As published, any existing folder is taken when the request is read (issue 27 item 7);
    # its content is checked when the training starts: the reason, and no model written.
    frames = folders / "data" / "frames_only" / "train"
    frames.mkdir(parents=True)
    shutil.copyfile(SAMPLE, frames / SAMPLE.name)
    models = sorted(p.name for p in (folders / "models").iterdir())
    doc = _train(server, dataset_path=str(frames.parent))
    assert doc["status"] == "error", doc
    assert "neither generated_set nor manual_set" in doc["message"], doc
    assert sorted(p.name for p in (folders / "models").iterdir()) == models


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["/etc", "../../../../outside_secret", "a/../../x"],
                         ids=["absolute", "dotdot", "inner-dotdot"])
def test_dataset_paths_are_resolved_inside_their_set(server, folders, entry):
    outside = folders / "outside_secret"
    (outside / "frame_9999.npy").parent.mkdir(exist_ok=True)
    info = {"default_splits": {"train": [entry], "val": ["synthetic_val"],
                               "test": ["synthetic_test"]}}
    dataset = _dataset_with_info(folders, f"paths_{len(entry)}", json.dumps(info))
    doc = _train(server, dataset_path=str(dataset))
    assert doc["status"] == "error", doc
    assert "not a subset folder name inside the set" in doc["message"]
    assert "outside_secret" not in doc["message"] and "/etc" not in doc["message"]


@pytest.mark.slow
@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  '{"default_splits": {"train": [' + "9" * 5000 + "]}}"],
                         ids=["deep", "digits"])
def test_hostile_dataset_info_is_a_reason_not_an_internal_error(server, folders, text):
    dataset = _dataset_with_info(folders, f"info_{len(text)}", text)
    doc = _train(server, dataset_path=str(dataset))
    assert doc["status"] == "error", doc
    assert "internal error" not in doc["message"] and "dataset_info.json" in doc["message"]


@pytest.mark.slow
def test_zip_bomb_dataset_is_refused_before_extraction(server, folders):
    dataset = folders / "data" / "zipbomb"
    dataset.mkdir()
    with zipfile.ZipFile(dataset / "manual_set.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manual_set/dataset_info.json", "{}")
        with archive.open("manual_set/zeros.bin", "w") as member:
            for _ in range(256):
                member.write(bytes(2**20))
    assert (dataset / "manual_set.zip").stat().st_size < 2**20
    doc = _train(server, dataset_path=str(dataset))
    assert doc["status"] == "error", doc
    assert "zip bomb" in doc["message"]
    cache = folders / "models" / ".runs" / ".datasets"
    used = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) if cache.exists() else 0
    assert used < 2**20


@pytest.mark.slow
def test_a_finished_training_keeps_no_checkpoints(server, folders):
    doc = _train(server, dataset_path=str(folders / "data" / "synth"))
    assert doc["status"] == "done", doc
    run_dir = Path(doc["result"]["output"]["run_dir"])
    assert (run_dir / "fine_tune" / "best.safetensors").is_file()
    assert not list(run_dir.rglob("*.ckpt"))


# --------------------------------------------------------------------------- 9, 11 model configs

_CLASSICAL_CONFIG = {
    "architecture": {"bins": 256, "min_area_px": 20, "softness_degc": 0.5},
    "format_version": 1, "input_size": [512, 640], "metrics": {}, "model_type": "classical",
    "normalization": {"mean": None, "mode": "none", "scale_degc": 5.0, "std": None},
    "taseg_version": "0.1.0", "threshold": 0.5, "train_args": {},
}
#: (id, config changes or raw text, a word the refusal must name)
HOSTILE_CONFIGS = [
    ("version-text", {"format_version": "abc"}, "format_version"),
    ("size-text", {"input_size": ["a", "b"]}, "input_size"),
    ("size-inf", '"input_size": [1e999, 64]', "input_size"),
    ("arch-list", {"architecture": [1]}, "architecture"),
    ("scale-text", {"normalization": {"mode": "relative", "scale_degc": "x"}}, "scale_degc"),
    ("scale-nan", '"normalization": {"mode": "relative", "scale_degc": NaN}', "scale_degc"),
    ("deep", '"train_args": ' + "[" * 100_000 + "]" * 100_000, "nests too deep"),
    ("bins-1e12", {"architecture": {"bins": 10**12}}, "bins"),
    ("segformer-1e6", {"model_type": "segformer_b0",
                       "architecture": {"hidden_sizes": [10**6, 64, 160, 256]}}, "hidden_sizes"),
    ("hub-encoder", {"model_type": "smp_unet",
                     "architecture": {"encoder_name": "tu-hf-hub:org/evil"}}, "hub"),
]


def _hostile_config_text(change) -> str:
    if isinstance(change, dict):
        return json.dumps({**_CLASSICAL_CONFIG, **change})
    text = json.dumps({k: v for k, v in _CLASSICAL_CONFIG.items()
                       if k != change.split('"')[1]})
    return text[:-1] + ", " + change + "}"


@pytest.fixture(scope="module")
def hostile_models(folders) -> dict[str, Path]:
    made = {}
    for name, change, _ in HOSTILE_CONFIGS:
        folder = folders / "models" / f"hostile_{name}"
        folder.mkdir()
        (folder / "train_config.json").write_text(_hostile_config_text(change))
        made[name] = folder
    return made


@pytest.mark.parametrize(("name", "word"), [(n, w) for n, _, w in HOSTILE_CONFIGS],
                         ids=[n for n, _, _ in HOSTILE_CONFIGS])
def test_hostile_model_config_is_refused_before_building(server, hostile_models, name, word):
    r = post_predict(server.model_url, data=_lz4_frame(_frame()), filename="f.npy.lz4",
                     model_dir=str(hostile_models[name]))
    _assert_json_error(r, 400, word)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "word"), [("bins-1e12", "bins"), ("arch-list", "architecture"),
                                            ("hub-encoder", "hub")])
def test_cli_reports_a_hostile_model_in_one_line_with_exit_2(folders, hostile_models, tmp_path,
                                                             name, word):
    """Before: a 7 TiB allocation's traceback and exit 1, an AttributeError and exit 1."""
    frame = tmp_path / "f.npy.lz4"
    frame.write_bytes(_lz4_frame(_frame()))
    proc = subprocess.run(
        [str(BIN / "taseg"), "predict", "--model-dir", str(hostile_models[name]),
         "--out", str(tmp_path / "out"), str(frame)],
        capture_output=True, text=True, timeout=120, env=environment(folders))
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and word in lines[0], proc.stderr[-2000:]


# --------------------------------------------------------------------------- 10 stale ONNX


@pytest.mark.slow
def test_an_onnx_file_from_another_model_is_not_run(server, folders):
    """model.onnx copied in from another model (its sidecar kept): PyTorch runs, with a warning."""
    import shutil

    mixed = folders / "models" / "mixed_onnx"
    shutil.copytree(folders / "models" / "unet_mobilenetv2_synthetic", mixed)
    shutil.copy(ROOT / "models" / "segformer_b0_synthetic" / "model.onnx", mixed)
    r = post_predict(server.model_url, data=_lz4_frame(_frame()), filename="f.npy.lz4",
                     model_dir=str(mixed))
    assert r.status_code == 200, r.text[:400]
    assert "was not exported from this folder's weights" in server.log_tail(200_000)
