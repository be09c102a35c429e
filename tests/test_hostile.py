"""Hostile uploads and path confinement, over HTTP against a real ``deepaas-run``.

Every kind of bad upload is POSTed as multipart ``input_file`` to one server (classical
model: fast, the model does not matter here). Each must answer 4xx with a JSON reason naming
the problem (or 200 where the docs promise a conversion); after each one the server is still
up, the next sample-frame predict gives the same mask as before the barrage, DEEPaaS's temp
upload is gone and nothing changed outside ``<model_dir>/predictions/``. Then paths: model_dir
and dataset_path leaving MODELS_PATH / DATA_PATH / REMOTE_PATH (``..``, symlinks) are refused,
concurrent uploads of one file name keep distinct outputs, and a second server with a low
``TASEG_MAX_UPLOAD_MB`` answers 413 and stays up.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from deepaas_server import (
    SAMPLE,
    leftover_uploads,
    make_folders,
    post_predict,
    running_server,
    wait_for_outputs,
)

from thermal_anomaly_segmenter.config import DEFAULT_MODEL_NAME
from thermal_anomaly_segmenter.io.frames import compose_frame

requests = pytest.importorskip("requests")
lz4_frame = pytest.importorskip("lz4.frame")

pytestmark = [pytest.mark.http, pytest.mark.xdist_group("hostile")]

CLASSICAL = "classical"


# --------------------------------------------------------------------------- payloads


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype.hasobject)
    return buffer.getvalue()


def _lz4(payload: bytes) -> bytes:
    return lz4_frame.compress(payload, store_size=True)


def _frame(dtype=np.float32, h: int = 64, w: int = 80) -> np.ndarray:
    """A valid composed frame: 2..8 degC with a warm spot, corridor = the middle rows."""
    rng = np.random.default_rng(0)
    t_u = 2 + 2 * rng.random((h, w))
    t_u[h // 2 - 3 : h // 2 + 3, w // 3 : w // 3 + 6] += 4
    corridor = np.zeros((h, w), bool)
    corridor[h // 4 : 3 * h // 4] = True
    frame = compose_frame(t_u, corridor)
    if np.dtype(dtype).kind in "iu":
        frame = np.round(frame)
    return frame.astype(dtype)


def _npy_header_only(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """A .npy v1 header declaring ``shape`` followed by a few bytes of data (a lying header)."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * (63 - (len(text) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode() + bytes(64)


def _xxh32(data: bytes, seed: int = 0) -> int:
    """XXH32 of a short input (< 16 bytes: all an LZ4 frame descriptor needs)."""
    p1, p2, p3, p4, p5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
    mask = 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    assert len(data) < 16
    h = (seed + p5 + len(data)) & mask
    i = 0
    while i + 4 <= len(data):
        h = rotl((h + int.from_bytes(data[i:i + 4], "little") * p3) & mask, 17) * p4 & mask
        i += 4
    for byte in data[i:]:
        h = rotl((h + byte * p5) & mask, 11) * p1 & mask
    h = ((h ^ (h >> 15)) * p2) & mask
    h = ((h ^ (h >> 13)) * p3) & mask
    return h ^ (h >> 16)


def _lz4_forged_size(payload: bytes, declared: int) -> bytes:
    """An LZ4 frame of ``payload`` whose header claims ``declared`` decompressed bytes."""
    frame = bytearray(_lz4(payload))
    # magic (4), FLG, BD, content size (8, FLG bit 3), header checksum: 2nd byte of XXH32.
    assert frame[4] & 0x08 and frame[14] == (_xxh32(bytes(frame[4:14])) >> 8) & 0xFF
    frame[6:14] = declared.to_bytes(8, "little")
    frame[14] = (_xxh32(bytes(frame[4:14])) >> 8) & 0xFF
    assert lz4_frame.get_frame_info(bytes(frame))["content_size"] == declared
    return bytes(frame)


class _Trap:
    """Unpickling this creates the marker file: proof that a pickle was executed."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_npy(marker: Path) -> bytes:
    _Trap.marker = str(marker)
    array = np.empty((64, 80, 3), dtype=object)
    array[...] = 0.0
    array[0, 0, 0] = _Trap()
    data = _npy(array)
    assert b"PWNED" in data  # the pickle is really in the file
    return data


def _tiff(array: np.ndarray) -> bytes:
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, photometric="rgb" if array.ndim == 3 else "minisblack")
    return buffer.getvalue()


def _png() -> bytes:
    import cv2

    ok, encoded = cv2.imencode(".png", np.zeros((64, 80), np.uint8))
    assert ok
    return encoded.tobytes()


def _corrupt_lz4() -> bytes:
    data = bytearray(_lz4(_npy(_frame())))
    for k in range(40, len(data) - 8, 97):  # flip bytes all through the compressed blocks
        data[k] ^= 0x5A
    return bytes(data)


def _nan_frame() -> np.ndarray:
    frame = _frame()
    frame[5, 5, 2] = np.nan
    return frame


def _inf_frame() -> np.ndarray:
    frame = _frame()
    frame[7, 9, :] = np.inf
    return frame


def _no_corridor() -> np.ndarray:
    frame = _frame()
    frame[..., :2] = frame[..., 2:].min() - 10  # T_m never equals T_u
    return frame


#: (id, payload builder taking a tmp folder, client file name, status, words of the reason).
#: A status of 200 is a documented conversion (docs/data_format.rst: float16, float64 and
#: 16/32/64-bit integers become float32, big-endian and Fortran order become native C order).
CASES = [
    ("empty", lambda t: b"", "x.npy.lz4", 400, ["empty"]),
    ("png-named-npy-lz4", lambda t: _png(), "x.npy.lz4", 400, ["PNG"]),
    ("text-named-npy-lz4", lambda t: b"hello, I am not a frame\n" * 20, "x.npy.lz4", 400,
     ["not a TASeg frame"]),
    ("jpeg-bytes", lambda t: b"\xff\xd8\xff\xe0" + bytes(200), "x.npy.lz4", 400, ["JPEG"]),
    ("npz-zip", lambda t: b"PK\x03\x04" + bytes(200), "x.npy", 400, ["ZIP"]),
    ("gzip", lambda t: b"\x1f\x8b\x08\x00" + bytes(200), "x.npy.lz4", 400, ["gzip"]),
    ("lz4-truncated", lambda t: _lz4(_npy(_frame()))[:5000], "x.npy.lz4", 400,
     ["truncated"]),
    ("lz4-corrupt", lambda t: _corrupt_lz4(), "x.npy.lz4", 400, ["LZ4"]),
    ("lz4-magic-then-garbage", lambda t: b'\x04"M\x18' + bytes(range(256)) * 4, "x.npy.lz4",
     400, ["LZ4"]),
    ("lz4-of-text", lambda t: _lz4(b"just some text, no array here" * 50), "x.npy.lz4", 400,
     ["does not hold a .npy array"]),
    ("lz4-trailing-garbage", lambda t: _lz4(_npy(_frame())) + b"extra", "x.npy.lz4", 400,
     ["after the end"]),
    ("npy-object-pickle", lambda t: _pickle_npy(t / "PWNED"), "x.npy", 400, ["Python object"]),
    ("lz4-object-pickle", lambda t: _lz4(_pickle_npy(t / "PWNED")), "x.npy.lz4", 400,
     ["Python object"]),
    ("npy-header-100000x100000x3", lambda t: _npy_header_only((100000, 100000, 3)), "x.npy",
     400, ["TASEG_MAX_PIXELS"]),
    ("lz4-header-100000x100000x3-forged-size",
     lambda t: _lz4_forged_size(_npy_header_only((100000, 100000, 3)), 120_000_000_128),
     "x.npy.lz4", 400, ["TASEG_MAX_PIXELS"]),
    ("lz4-header-9000x9000x3-forged-size",
     lambda t: _lz4_forged_size(_npy_header_only((9000, 9000, 3)), 972_000_128), "x.npy.lz4",
     400, ["cannot hold"]),
    ("npy-truncated", lambda t: _npy(_frame())[:-1000], "x.npy", 400, ["truncated"]),
    ("npy-extra-bytes", lambda t: _npy(_frame()) + bytes(100), "x.npy", 400, ["more than"]),
    ("npy-garbage-header", lambda t: b"\x93NUMPY\x01\x00\x20\x00{'descr': <<<garbage>>>}  \n",
     "x.npy", 400, [".npy header is invalid"]),
    ("npy-structured", lambda t: _npy(np.zeros((64, 80), [("a", "<f4"), ("b", "<f4")])),
     "x.npy", 400, ["structured"]),
    ("2d-no-corridor", lambda t: _npy(_frame()[..., 2].copy()), "x.npy", 400,
     ["2-D", "corridor"]),
    ("4-channels", lambda t: _npy(np.concatenate([_frame(), _frame()[..., :1]], -1)), "x.npy",
     400, ["4 channels"]),
    ("channels-first", lambda t: _npy(np.moveaxis(_frame(), -1, 0).copy()), "x.npy", 400,
     ["channels first"]),
    ("4-d", lambda t: _npy(_frame()[None]), "x.npy", 400, ["shape"]),
    ("1-pixel", lambda t: _npy(np.full((1, 1, 3), 5, np.float32)), "x.npy", 400,
     ["too small"]),
    ("1x50000x3", lambda t: _lz4(_npy(np.full((1, 50000, 3), 5, np.float32))), "x.npy.lz4",
     400, ["too small"]),
    ("16x5000x3-aspect", lambda t: _lz4(_npy(np.full((16, 5000, 3), 5, np.float32))),
     "x.npy.lz4", 400, ["aspect ratio"]),
    ("uint8", lambda t: _npy(_frame(np.uint8)), "x.npy", 400, ["8-bit"]),
    ("bool", lambda t: _npy(_frame() > 4), "x.npy", 400, ["boolean"]),
    ("complex64", lambda t: _npy(_frame().astype(np.complex64)), "x.npy", 400, ["complex"]),
    ("nan", lambda t: _lz4(_npy(_nan_frame())), "x.npy.lz4", 400, ["NaN"]),
    ("inf", lambda t: _lz4(_npy(_inf_frame())), "x.npy.lz4", 400, ["infinity"]),
    ("kelvin", lambda t: _npy(_frame() + 273.15), "x.npy", 400, ["Kelvin"]),
    ("raw-counts", lambda t: _npy(_frame() * 1000 + 20000), "x.npy", 400, ["raw sensor"]),
    ("tm-no-corridor", lambda t: _lz4(_npy(_no_corridor())), "x.npy.lz4", 400,
     ["no pipeline corridor"]),
    ("tiff-corrupt", lambda t: b"II*\x00" + bytes([0xFF]) * 300, "x.tif", 400, ["TIFF"]),
    ("tiff-truncated", lambda t: _tiff(_frame())[:2000], "x.tif", 400, ["TIFF"]),
    ("tiff-1-band-no-corridor", lambda t: _tiff(_frame()[..., 2].copy()), "x.tif", 400,
     ["corridor"]),
    ("int16", lambda t: _npy(_frame(np.int16)), "x.npy", 200, []),
    ("int32", lambda t: _lz4(_npy(_frame(np.int32))), "x.npy.lz4", 200, []),
    ("float16", lambda t: _npy(_frame(np.float16)), "x.npy", 200, []),
    ("float64", lambda t: _lz4(_npy(_frame(np.float64))), "x.npy.lz4", 200, []),
    ("big-endian", lambda t: _npy(_frame().astype(">f4")), "x.npy", 200, []),
    ("fortran-order", lambda t: _npy(np.asfortranarray(_frame())), "x.npy", 200, []),
    ("tiff-3-band-float32", lambda t: _tiff(_frame()), "x.tif", 200, []),
]

#: Client file names: never a path, only (sanitised) the stem of this request's outputs.
NAMES = [
    ("dotdot-passwd", "../../etc/passwd"),
    ("absolute", "/etc/cron.d/x.npy.lz4"),
    ("windows-dotdot", "..\\..\\windows\\system32\\evil.npy.lz4"),
    ("nul-bytes", "a\x00b\x00.npy.lz4"),
    ("unicode", "Wärmebild 热像 ☃ frame.npy.lz4"),
    ("5000-chars", "a" * 5000 + ".npy.lz4"),
    ("only-dots", "...."),
    ("crlf-header-injection", "x\r\nContent-Type: text/html\r\n\r\n.npy.lz4"),
    ("quote-and-semicolon", 'x"; name="model_dir.npy.lz4'),
    ("hidden", ".bashrc"),
]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    base = make_folders(tmp_path_factory.mktemp("hostile"))
    # Valid model and dataset folders outside every root, reachable only through links.
    shutil.copytree(base / "models" / CLASSICAL, base / "outside" / "model")
    shutil.copytree(base / "data" / "synth", base / "outside" / "dataset")
    (base / "models" / "link_out").symlink_to(base / "outside" / "model")
    (base / "models" / "link_etc").symlink_to("/etc")
    (base / "models" / "link_in").symlink_to(base / "models" / CLASSICAL)  # stays inside
    (base / "remote" / "link_out").symlink_to(base / "outside" / "model")
    (base / "data" / "link_out").symlink_to(base / "outside" / "dataset")
    for root in ("models", "data"):  # a symlink loop: loop -> loop2 -> loop
        (base / root / "loop").symlink_to(base / root / "loop2")
        (base / root / "loop2").symlink_to(base / root / "loop")
    return base


@pytest.fixture(scope="module")
def server(folders):
    with running_server(folders) as running:
        yield running


@pytest.fixture(scope="module")
def classical_dir(folders) -> str:
    return str(folders / "models" / CLASSICAL)


def _mask(doc: dict) -> np.ndarray:
    import cv2

    mask = cv2.imread(doc["outputs"]["mask"], cv2.IMREAD_UNCHANGED)
    assert mask is not None and mask.ndim == 2
    return mask


@pytest.fixture(scope="module")
def reference(server, classical_dir) -> dict:
    """The classical model's answer on the sample frame before any hostile request."""
    r = post_predict(server.model_url, model_dir=classical_dir)
    assert r.status_code == 200, r.text
    doc = r.json()["predictions"]
    assert doc["summary"]["count"] >= 1
    return {"count": doc["summary"]["count"], "mask": _mask(doc)}


def _snapshot(base: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``base`` except predictions and server logs: (size, mtime)."""
    files = {}
    for path in base.rglob("*"):
        rel = path.relative_to(base)
        if "predictions" in rel.parts or path.name.startswith("server-") or path.is_dir():
            continue
        stat = path.lstat()
        files[str(rel)] = (stat.st_size, stat.st_mtime_ns)
    return files


def _assert_still_serving(server, folders, classical_dir, reference) -> None:
    assert server.alive, server.log_tail()
    again = post_predict(server.model_url, model_dir=classical_dir)
    assert again.status_code == 200, again.text
    doc = again.json()["predictions"]
    assert doc["summary"]["count"] == reference["count"]
    assert np.array_equal(_mask(doc), reference["mask"])
    assert leftover_uploads(folders) == []


# --------------------------------------------------------------------------- uploads


@pytest.mark.parametrize(("kind", "build", "filename", "status", "words"), CASES,
                         ids=[c[0] for c in CASES])
def test_hostile_upload(server, folders, classical_dir, reference, tmp_path,
                        kind, build, filename, status, words):
    payload = build(tmp_path)
    before = _snapshot(folders)
    r = post_predict(server.model_url, data=payload, filename=filename, model_dir=classical_dir,
                     timeout=60)
    assert r.status_code == status, (kind, r.status_code, r.text[:500])
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    body = r.json()
    if status == 200:
        doc = body["predictions"]
        assert Path(doc["result"]).parent == folders / "models" / CLASSICAL / "predictions"
        assert doc["summary"]["count"] >= 1  # the warm spot is found after conversion
    else:
        assert body["code"] == status and body["status"] == "error"
        for word in words:
            assert word.lower() in body["message"].lower(), (kind, body["message"])
        assert "Traceback" not in r.text and str(folders / "tmp") not in r.text
    assert not (tmp_path / "PWNED").exists(), "a pickle in an upload was executed"
    assert _snapshot(folders) == before
    _assert_still_serving(server, folders, classical_dir, reference)


@pytest.mark.parametrize(("kind", "filename"), NAMES, ids=[n[0] for n in NAMES])
def test_odd_client_filenames_never_become_paths(server, folders, classical_dir, reference,
                                                 kind, filename):
    predictions = folders / "models" / CLASSICAL / "predictions"
    before = _snapshot(folders)
    r = post_predict(server.model_url, filename=filename, model_dir=classical_dir)
    # A name the multipart parser cannot take (NUL bytes) is a 400 with a JSON reason.
    assert r.status_code in (200, 400, 422), (kind, r.status_code, r.text[:300])
    if r.status_code == 200:
        doc = r.json()["predictions"]
        wait_for_outputs(doc)
        for path in map(Path, doc["outputs"].values()):
            assert path.parent == predictions and path.is_file(), path
            assert len(path.name) < 150 and not path.name.startswith(".")
            assert "\x00" not in path.name and "\n" not in path.name
    else:
        assert r.json()["code"] == r.status_code and r.json()["message"]
    assert _snapshot(folders) == before
    assert not Path("/etc/cron.d/x_overlay.png").exists()
    _assert_still_serving(server, folders, classical_dir, reference)


def test_upload_without_a_file_name_is_4xx(server, folders, classical_dir, reference):
    r = requests.post(f"{server.model_url}/predict/", params={"model_dir": classical_dir},
                      data={"input_file": SAMPLE.read_bytes()[:1000]}, timeout=60)
    assert 400 <= r.status_code < 500 and isinstance(r.json(), dict)
    _assert_still_serving(server, folders, classical_dir, reference)


@pytest.mark.parametrize("body", [
    b"--xyz\r\nNone--xyz--\r\n",  # a part without headers (found by test_fuzz.py)
    b"--xyz\r\nContent-Disposition: form-data; name=\"input_file\"; filename=\"a\x00.npy\""
    b"\r\n\r\nabc\r\n--xyz--\r\n",
], ids=["part-without-headers", "nul-in-part-header"])
def test_malformed_multipart_body_is_400_json(server, folders, classical_dir, reference, body):
    r = requests.post(f"{server.model_url}/predict/", params={"model_dir": classical_dir},
                      data=body, timeout=60,
                      headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 400, r.text[:300]
    assert r.json()["code"] == 400 and "malformed request" in r.json()["message"]
    _assert_still_serving(server, folders, classical_dir, reference)


def test_default_segformer_model_still_predicts_after_the_barrage(server, folders):
    r = post_predict(server.model_url)  # no model_dir: the default (SegFormer) model
    assert r.status_code == 200, r.text
    doc = r.json()["predictions"]
    assert Path(doc["result"]).parent == folders / "models" / DEFAULT_MODEL_NAME / "predictions"
    assert doc["summary"]["count"] >= 1
    assert leftover_uploads(folders) == []


# --------------------------------------------------------------------------- confinement


@pytest.mark.parametrize("model_dir", [
    "link_out", "link_etc", "link_etc/ssl", "../outside/model", "classical/../../outside/model",
    "{base}/outside/model", "{base}/models/link_out", "{base}/remote/link_out",
    "/etc", "/", "~", "~no_such_user_\u00cf/x", "classical/\x00/x", "loop", "loop/x",
    "x" * 5000, "/".join(["y" * 200] * 30)])
def test_model_dir_outside_the_roots_is_refused(server, folders, model_dir):
    value = model_dir.format(base=folders)
    before = _snapshot(folders)
    r = post_predict(server.model_url, model_dir=value, timeout=60)
    assert 400 <= r.status_code < 500, (value, r.status_code, r.text[:300])
    assert "model_dir" in json.dumps(r.json())
    assert not (folders / "outside" / "model" / "predictions").exists()
    assert _snapshot(folders) == before
    assert leftover_uploads(folders) == []


def test_a_link_that_stays_inside_models_path_is_allowed(server, folders):
    r = post_predict(server.model_url, model_dir="link_in")
    assert r.status_code == 200, r.text
    result = Path(r.json()["predictions"]["result"])
    assert result.resolve().parent == (folders / "models" / CLASSICAL / "predictions").resolve()


@pytest.mark.parametrize("dataset_path", [
    "link_out", "../outside/dataset", "synth/../../outside/dataset", "{base}/outside/dataset",
    "{base}/data/link_out", "/etc", "/", "~no_such_user_\u00cf", "loop", "x" * 5000])
def test_dataset_path_outside_the_roots_is_refused(server, folders, dataset_path):
    from deepaas_server import TINY_TRAIN

    value = dataset_path.format(base=folders)
    r = requests.post(f"{server.model_url}/train/",
                      params={**TINY_TRAIN, "dataset_path": value}, timeout=60)
    assert r.status_code == 422, (value, r.status_code, r.text[:300])
    assert "dataset_path" in r.text
    assert requests.get(f"{server.model_url}/train/", timeout=10).json() == []  # none started


def test_concurrent_uploads_with_one_name_keep_distinct_outputs(server, folders, classical_dir):
    thresholds = [round(0.05 + 0.09 * k, 2) for k in range(10)]
    with ThreadPoolExecutor(len(thresholds)) as pool:
        answers = list(pool.map(
            lambda t: post_predict(server.model_url, filename="same.npy.lz4",
                                   model_dir=classical_dir, threshold=t, timeout=180),
            thresholds))
    assert [a.status_code for a in answers] == [200] * len(thresholds)
    docs = [a.json()["predictions"] for a in answers]
    results = {d["result"] for d in docs}
    assert len(results) == len(thresholds)
    files = [p for d in docs for p in d["outputs"].values()]
    assert len(set(files)) == len(files)  # no two requests share any output file
    for threshold, doc in zip(thresholds, docs, strict=True):
        assert Path(doc["result"]).name.startswith("same")
        wait_for_outputs(doc)
        report = json.loads(Path(doc["outputs"]["json"]).read_text())
        assert report["threshold"] == threshold  # each file set is its own request's
    assert leftover_uploads(folders) == []


@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory):
    folders = make_folders(tmp_path_factory.mktemp("limit"), synth=False)
    with running_server(folders, "--nowarm", TASEG_MAX_UPLOAD_MB="1") as running:
        yield running, folders


def test_upload_over_the_size_limit_is_413_and_the_server_survives(small_limit_server):
    server, folders = small_limit_server
    assert SAMPLE.stat().st_size > 2**20  # the sample itself is over 1 MiB
    big = post_predict(server.model_url, model_dir=CLASSICAL)
    assert big.status_code == 413, big.text[:300]
    assert "TASEG_MAX_UPLOAD_MB" in big.json()["message"]
    assert leftover_uploads(folders) == []
    assert not (folders / "models" / CLASSICAL / "predictions").exists()
    small = post_predict(server.model_url, data=_lz4(_npy(_frame())), model_dir=CLASSICAL)
    assert small.status_code == 200, small.text
    assert server.alive


# --------------------------------------------------------------------------- faults


@pytest.fixture()
def unwritable_model(folders):
    """A copy of the classical model whose predictions folder cannot be written."""
    import os

    folder = folders / "models" / "unwritable"
    shutil.copytree(folders / "models" / CLASSICAL, folder,
                    ignore=shutil.ignore_patterns("predictions"))
    if os.geteuid() == 0:  # root ignores permissions: a file where the folder belongs
        (folder / "predictions").write_text("a file where the predictions folder belongs")
    else:
        (folder / "predictions").mkdir(mode=0o555)
    yield folder
    if (folder / "predictions").is_dir():
        (folder / "predictions").chmod(0o755)
    shutil.rmtree(folder)


def test_unwritable_predictions_folder_is_a_json_error(server, folders, unwritable_model,
                                                       classical_dir, reference):
    r = post_predict(server.model_url, model_dir=str(unwritable_model))
    assert 400 <= r.status_code < 600 and r.status_code != 200, r.text[:300]
    body = r.json()
    assert body["code"] == r.status_code and "Traceback" not in r.text
    print(f"\nunwritable predictions folder: HTTP {r.status_code} {body['message']}")
    assert "predictions" in body["message"] and "cannot" in body["message"], body
    assert leftover_uploads(folders) == []
    _assert_still_serving(server, folders, classical_dir, reference)
