"""MLflow tracking of training runs, with a local store that always works.

* Default: an embedded sqlite store ``sqlite:///<MODELS_PATH>/mlflow.db`` (artifacts in
  ``<MODELS_PATH>/mlartifacts``), so ``mlflow ui --backend-store-uri sqlite:///...`` shows
  runs with no server.
* ``MLFLOW_TRACKING_URI`` (with ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``) sends runs to a
  remote server. If it cannot be reached or refuses the credentials, that is logged as an
  ERROR (the published module switched tracking off silently), the run goes to the local
  store, and training goes on. Failures while logging are warned about, never fatal.

The experiment is named after the repository folder, as published (``MLFLOW_EXPERIMENT_NAME``
overrides it).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from thermal_anomaly_segmenter.config import BASE_DIR, Settings, get_settings, local_tracking_uri

log = logging.getLogger(__name__)

#: Seconds to wait for a remote tracking server before falling back to the local store.
PROBE_TIMEOUT_S = 5.0


def experiment_name() -> str:
    return get_settings().mlflow_experiment_name or BASE_DIR.name


def probe_server(uri: str, username: str | None, password: str | None) -> str | None:
    """``None`` when an http(s) tracking server answers with our credentials, else why not."""
    import requests

    auth = (username, password) if username and password else None
    base = uri.rstrip("/")
    try:
        health = requests.get(f"{base}/health", timeout=PROBE_TIMEOUT_S, auth=auth)
        # /health answers without auth on some servers: also check an authenticated endpoint.
        check = requests.get(
            f"{base}/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            timeout=PROBE_TIMEOUT_S,
            auth=auth,
        )
    except requests.RequestException as exc:
        return f"cannot reach {base} ({type(exc).__name__}: {exc})"
    if check.status_code in (401, 403):
        return f"{base} refused the credentials (HTTP {check.status_code})"
    if not health.ok and not check.ok:
        return f"{base} answered HTTP {health.status_code} / {check.status_code}"
    return None


class Tracker:
    """One MLflow run; every method is a no-op when tracking is off or has failed."""

    def __init__(self, settings: Settings, enabled: bool = True) -> None:
        self.settings = settings
        self.enabled = enabled
        self.run_id: str | None = None
        self.uri: str | None = None
        self.fell_back = False
        self._client: Any = None
        self._warned = False

    # -- set-up ------------------------------------------------------------------------------

    def _choose_uri(self) -> str:
        local = local_tracking_uri(self.settings.models_path)
        remote = self.settings.mlflow_tracking_uri
        if not remote:
            return local
        if remote.startswith(("http://", "https://")):
            problem = probe_server(remote, self.settings.mlflow_username,
                                   self.settings.mlflow_password)
            if problem is not None:
                log.error(
                    "MLflow tracking server unusable: %s; logging this run to the LOCAL store "
                    "%s instead (view it with `mlflow ui --backend-store-uri %s`)",
                    problem, local, local,
                )
                self.fell_back = True
                return local
        return remote

    def start(
        self,
        run_name: str,
        params: dict[str, Any],
        tags: dict[str, str] | None = None,
        resume: tuple[str, str] | None = None,
    ) -> None:
        """Open the run and log ``params``; falls back to the local store on failure.

        ``resume`` = ``(tracking_uri, run_id)`` of an interrupted run: logging continues in
        that run when it is in the store chosen now.
        """
        if not self.enabled:
            return
        # Fail fast instead of MLflow's default of minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        uri = self._choose_uri()
        if resume is not None and resume[0] == uri and self._reopen(uri, resume[1]):
            return
        try:
            self._open(uri, run_name, params, tags)
        except Exception as exc:  # any MLflow/HTTP/sqlite failure
            local = local_tracking_uri(self.settings.models_path)
            if uri == local:
                log.error("MLflow tracking disabled: cannot open local store %s: %s", uri, exc)
                self.enabled = False
                return
            log.error("MLflow run could not start on %s (%s); using the LOCAL store %s",
                      uri, exc, local)
            self.fell_back = True
            try:
                self._open(local, run_name, params, tags)
            except Exception as exc2:
                log.error("MLflow tracking disabled: local store %s failed too: %s", local, exc2)
                self.enabled = False

    def _reopen(self, uri: str, run_id: str) -> bool:
        from mlflow.tracking import MlflowClient

        try:
            client = MlflowClient(tracking_uri=uri)
            client.get_run(run_id)
            client.update_run(run_id, status="RUNNING")
        except Exception as exc:
            log.warning("cannot continue MLflow run %s at %s (%s); starting a new run",
                        run_id, uri, exc)
            return False
        self._client, self.run_id, self.uri = client, run_id, uri
        log.info("MLflow: continuing run %s at %s", run_id, uri)
        return True

    def _open(self, uri: str, run_name: str, params: dict[str, Any],
              tags: dict[str, str] | None) -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        name = experiment_name()
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = None
            if uri.startswith("sqlite:"):
                artifacts = Path(self.settings.models_path).resolve() / "mlartifacts"
                artifacts.mkdir(parents=True, exist_ok=True)
                location = artifacts.as_uri()
            experiment_id = client.create_experiment(name, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        run = client.create_run(experiment_id, run_name=run_name, tags=tags or {})
        self._client, self.run_id, self.uri = client, run.info.run_id, uri
        flat = {k: _param(v) for k, v in params.items()}
        from mlflow.entities import Param

        client.log_batch(self.run_id, params=[Param(k, v) for k, v in flat.items()])
        log.info("MLflow run %s in experiment %r at %s", self.run_id, name, uri)

    # -- logging -----------------------------------------------------------------------------

    def _guard(self, what: str, func, *args, **kwargs) -> None:
        if not self.enabled or self._client is None:
            return
        try:
            func(*args, **kwargs)
        except Exception as exc:
            if not self._warned:
                log.error("MLflow %s failed at %s: %s (training goes on; further MLflow errors "
                          "of this run are not repeated)", what, self.uri, exc)
                self._warned = True

    def log_metrics(self, rows: Iterable[tuple[int, dict[str, float]]]) -> None:
        """Log ``(step, {name: value})`` rows; NaN values are skipped."""

        def send() -> None:
            import time

            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            batch = [
                Metric(k, float(v), now, int(step))
                for step, values in rows
                for k, v in values.items()
                if isinstance(v, (int, float)) and math.isfinite(v)
            ]
            for i in range(0, len(batch), 900):  # MLflow accepts at most 1000 per batch
                self._client.log_batch(self.run_id, metrics=batch[i : i + 900])

        self._guard("metric logging", send)

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        self._guard("artifact upload", lambda: self._client.log_artifacts(
            self.run_id, str(folder), artifact_path))

    def set_tags(self, tags: dict[str, str]) -> None:
        def send() -> None:
            for k, v in tags.items():
                self._client.set_tag(self.run_id, k, v)

        self._guard("tagging", send)

    def end(self, status: str = "FINISHED") -> None:
        self._guard("run end", lambda: self._client.set_terminated(self.run_id, status))


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."
