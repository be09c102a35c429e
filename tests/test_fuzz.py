"""Schema-driven fuzzing of the running server with schemathesis (bounded, ~1 minute).

The Swagger 2.0 spec is read from the real ``deepaas-run``; for the predict and metadata
routes schemathesis generates valid and invalid requests (random uploads, out-of-range and
wrongly typed arguments, odd headers). None may answer 5xx or go unanswered within the
timeout, and the server must still predict the sample afterwards. The train POST route is left
out (a valid example would start a real training) and so is DELETE (it kills a worker, which
DEEPaaS answers with 500 by design); invalid train arguments are tested in test_deepaas.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from deepaas_server import (
    MODEL,
    leftover_uploads,
    make_folders,
    post_predict,
    running_server,
)

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")
requests = pytest.importorskip("requests")

pytestmark = [pytest.mark.http, pytest.mark.slow, pytest.mark.xdist_group("fuzz")]

#: Examples per route and generation mode; the whole test stays around a minute on 2 cores.
MAX_EXAMPLES = {"predict": 150, "other": 10}
CALL_TIMEOUT_S = 30
ROUTES = {
    ("POST", f"/v2/models/{MODEL}/predict/"): "predict",
    ("GET", "/v2/"): "other",
    ("GET", "/v2/models/"): "other",
    ("GET", f"/v2/models/{MODEL}/"): "other",
    ("GET", f"/v2/models/{MODEL}/train/"): "other",
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    return make_folders(tmp_path_factory.mktemp("fuzz"), synth=False)


@pytest.fixture(scope="module")
def server(folders):
    # The classical model as the default keeps the few valid predictions cheap.
    with running_server(folders, "--nowarm", TASEG_DEFAULT_MODEL="classical") as running:
        yield running


def _operations(schema) -> dict[tuple[str, str], object]:
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in ROUTES:
            found[key] = operation
    return found


def test_fuzz_predict_and_metadata_routes(server, folders, capsys):
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{server.url}/swagger.json")
    operations = _operations(schema)
    assert set(operations) == set(ROUTES), sorted(operations)
    counts: dict[str, int] = {}
    statuses: dict[int, int] = {}
    not_sent = 0
    t0 = time.monotonic()
    for key, operation in operations.items():
        # Only predict has parameters to make invalid; the others take none.
        modes = [GenerationMode.POSITIVE]
        if ROUTES[key] == "predict":
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            label = f"{key[0]} {key[1]} {mode.value}"  # read by run() in this iteration

            # derandomize: the same examples on every run, so a CI failure reproduces.
            @settings(max_examples=MAX_EXAMPLES[ROUTES[key]], deadline=None, database=None,
                      derandomize=True,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                nonlocal not_sent
                try:
                    response = case.call(base_url=server.url, timeout=CALL_TIMEOUT_S)
                except (ValueError, requests.exceptions.InvalidHeader):
                    not_sent += 1  # the client library refused it (e.g. NUL in a header)
                    return
                counts[label] = counts.get(label, 0) + 1
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                assert response.status_code < 500, (
                    f"{label}: HTTP {response.status_code} for {case.as_curl_command()}\n"
                    f"{response.text[:500]}")

            run()
    seconds = time.monotonic() - t0
    total = sum(counts.values())
    with capsys.disabled():
        print(f"\nfuzz: {total} requests in {seconds:.0f} s ({not_sent} refused by the client "
              f"library), status counts {dict(sorted(statuses.items()))}")
        for label, n in counts.items():
            print(f"  {n:3d} {label}")
    assert total >= 200
    assert server.alive, server.log_tail()
    r = post_predict(server.model_url)
    assert r.status_code == 200 and r.json()["predictions"]["summary"]["count"] >= 1
    assert leftover_uploads(folders) == []
