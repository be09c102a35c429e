"""API-level glue: project metadata, logging and path confinement of the DEEPaaS adapter.

The environment itself is read once by :func:`thermal_anomaly_segmenter.config.get_settings`;
this module only derives what the API needs from it, always at call time, so that folders
created after the server started are seen and nothing is scanned at import.

The published module's constants are here too, for code written against it: ``DATA_PATH``,
``MODELS_PATH``, ``REMOTE_PATH`` (``pathlib.Path``), ``MODEL_VARIANTS``, ``TRAIN_PHASES``,
``LOSS_FUNCTIONS``, ``MLFLOW_URI``, ``MLFLOW_USERNAME``, ``MLFLOW_PASSWORD``, ``API_NAME``,
``PROJECT_METADATA`` and ``LOG_LEVEL``. Those that depend on the environment are computed on
access from the current settings.
"""

from __future__ import annotations

import logging
import os
import re
from importlib import metadata
from pathlib import Path

from thermal_anomaly_segmenter import config as _core
from thermal_anomaly_segmenter.config import (  # noqa: F401  (published names)
    BASE_DIR,
    LOSS_FUNCTIONS,
    MODEL_VARIANTS,
    TRAIN_PHASES,
    Settings,
    get_settings,
)
from thermal_anomaly_segmenter.errors import InvalidInputError

#: Model name under which DEEPaaS serves TASeg (``/v2/models/<API_NAME>/``).
API_NAME = "thermal_anomaly_segmenter"
#: Distribution name of the package, the source of the project metadata.
PACKAGE_NAME = "thermal-anomaly-segmenter"

log = logging.getLogger("api")


class PathNotAllowedError(InvalidInputError):
    """A path given by a client points outside the folders the API may use (HTTP 403)."""


def configure_logging(settings: Settings | None = None) -> None:
    """Apply ``API_LOG_LEVEL`` to the ``api`` logger and ``LOG_LEVEL`` to the core's.

    DEEPaaS runs the model in spawned workers whose logging is not set up; there a stderr
    handler is added once, so predict and train are logged next to the server's own lines.
    """
    settings = settings or get_settings()
    core = logging.getLogger("thermal_anomaly_segmenter")
    log.setLevel(getattr(logging, settings.api_log_level, logging.INFO))
    core.setLevel(getattr(logging, settings.log_level, logging.INFO))
    if not logging.getLogger().handlers and not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
        for logger in (log, core):
            logger.addHandler(handler)


def _read_version() -> str:
    try:
        return (BASE_DIR / "VERSION").read_text(encoding="utf-8").strip()
    except OSError:  # installed without the source tree: the packaged version is the same
        return metadata.version(PACKAGE_NAME)


def _authors(meta: metadata.PackageMetadata) -> dict[str, str]:
    """``{name: email}`` from the core metadata fields ``Author`` and ``Author-email``."""
    people: dict[str, str] = {}
    for entry in (meta.get("Author-email") or "").split(","):
        match = re.match(r'\s*"?([^"<]*?)"?\s*<([^>]+)>', entry)
        if match:
            people[match.group(1).strip() or match.group(2)] = match.group(2).strip()
    for name in (meta.get("Author") or "").split(","):
        if name.strip():
            people.setdefault(name.strip(), "")
    return people


def _homepage(meta: metadata.PackageMetadata) -> str:
    urls = meta.get_all("Project-URL") or []
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "homepage":
            return url.strip()
    return urls[0].partition(",")[2].strip() if urls else (meta.get("Home-page") or "")


def project_metadata() -> dict[str, object]:
    """The published static metadata keys: name, description, license, version, url, authors."""
    meta = metadata.metadata(PACKAGE_NAME)
    authors = _authors(meta)
    return {
        "name": meta["Name"],
        "description": meta.get("Summary") or "",
        "license": meta.get("License") or meta.get("License-Expression") or "",
        "version": _read_version(),
        "url": _homepage(meta),
        "author": ", ".join(authors),
        "author-email": authors,
    }


def _from_cwd(given: Path | None) -> tuple[Path, ...]:
    """A relative published path as code written against the published module resolves it
    now (from the current folder, after its ``chdir``); nothing for an absolute one."""
    if given is None or given.is_absolute():
        return ()
    try:
        return (Path.cwd() / given,)
    except OSError:  # the current folder was deleted
        return ()


def model_roots(settings: Settings) -> tuple[Path, ...]:
    """Folders a model_dir may lie in (published: MODELS_PATH, then REMOTE_PATH); a relative
    MODELS_PATH also as seen from the current folder."""
    return (settings.models_path, *_from_cwd(settings.models_path_given),
            settings.remote_path)


#: Published names re-exported from ``thermal_anomaly_segmenter.config``, read on access.
_CORE_CONSTANTS = ("DATA_PATH", "MODELS_PATH", "REMOTE_PATH", "MLFLOW_URI", "MLFLOW_USERNAME",
                   "MLFLOW_PASSWORD")


def __getattr__(name: str) -> object:
    if name in _CORE_CONSTANTS:
        return getattr(_core, name)
    if name == "PROJECT_METADATA":
        return project_metadata()
    if name == "LOG_LEVEL":  # published: the API_LOG_LEVEL as a logging level
        return getattr(logging, get_settings().api_log_level, logging.INFO)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dataset_roots(settings: Settings) -> tuple[Path, ...]:
    """Folders a dataset_path may lie in (published order: REMOTE_PATH, then DATA_PATH); a
    relative DATA_PATH also as seen from the current folder."""
    return settings.remote_path, settings.data_path, *_from_cwd(settings.data_path_given)


def confine(value: str | os.PathLike[str], roots: tuple[Path, ...], what: str) -> Path:
    """Resolve a client-given path and make sure it lies under one of ``roots``.

    A relative path is looked up under each root in turn, then from the current folder and
    the folder the process started in (where a relative ``MODELS_PATH`` points). Symbolic
    links are resolved before the check, so a link inside a root that points elsewhere is
    refused too.

    Raises:
        PathNotAllowedError: The path leaves every root.
        InvalidInputError: The value is not a usable path (empty, NUL bytes, ``~unknown``,
            a symlink loop, a name too long).
    """
    text = os.fspath(value).strip()
    if not text or "\x00" in text:
        raise InvalidInputError(f"{what} must be a folder path, got {text!r}")
    try:
        path = Path(text).expanduser()
        real_roots = [root.resolve() for root in roots]
        # A relative path is under a root, or spelled from the current folder as the
        # published tests do (f"{MODELS_PATH}/name" with a relative MODELS_PATH, after a
        # chdir into a copy), or from the folder the process started in.
        candidates = ([path] if path.is_absolute()
                      else [*(root / path for root in real_roots), *_from_cwd(path),
                            _core.START_DIR / path])
        inside = [
            resolved
            for resolved in (candidate.resolve() for candidate in candidates)
            if any(resolved == root or resolved.is_relative_to(root) for root in real_roots)
        ]
        # Prefer a folder that exists, so "name" finds REMOTE_PATH/name too.
        found = next((p for p in inside if p.exists()), inside[0]) if inside else None
    except (OSError, RuntimeError) as exc:
        # "~name" of an unknown user, a symlink loop, a name too long for the file system
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise InvalidInputError(f"{what} {text[:200]!r} is not a usable path ({reason})") from None
    if found is not None:
        return found
    allowed = " or ".join(str(root) for root in roots)
    raise PathNotAllowedError(f"{what} {text!r} is not inside {allowed}")
