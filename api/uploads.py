"""Uploaded files as DEEPaaS hands them over, and the removal of DEEPaaS's own temp copies.

DEEPaaS 2.6.0 copies an HTTP upload with ``tempfile.mkstemp()`` (and ``deepaas-cli`` a file
argument with ``tempfile.NamedTemporaryFile()``) into the temp folder, under tempfile's own
name pattern (``tmp`` + 8 random characters, no suffix), passes that path as
``UploadedFile.filename`` with the client's name in ``original_filename``, and never deletes
it. An in-process caller (the published tests, ``deepaas-execute``) passes its own file in
``filename``. Only a file that is positively one of DEEPaaS's copies is removed; a caller's
file is never touched, wherever it lies. A predict holds DEEPaaS's copies open while it
runs, so that when it is cancelled (its worker killed, nothing left to delete them) the
server finds them in ``/proc/<worker>/fd`` and removes them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from thermal_anomaly_segmenter.errors import InvalidInputError

log = logging.getLogger(__name__)

#: ``tempfile``'s random names: "tmp" + 8 characters of ``tempfile._RandomNameSequence``.
_TEMP_NAME = re.compile(r"tmp[a-z0-9_]{8}")


def upload_path(upload: Any, name: str) -> Path:
    """The file behind an ``UploadedFile`` (its ``filename``: a string or a path)."""
    filename = getattr(upload, "filename", None)
    if not isinstance(filename, (str, os.PathLike)) or not os.fspath(filename):
        raise InvalidInputError(f"{name} must be an uploaded file")
    return Path(filename)


def is_deepaas_temp_copy(upload: Any) -> bool:
    """Whether ``upload.filename`` is a temp copy DEEPaaS made of another file.

    All of: the upload names a different original file (``original_filename``), and the
    file lies directly in the temp folder under tempfile's random name, a plain file (not a
    link) with one name, owned by this user.
    """
    filename = getattr(upload, "filename", None)
    original = getattr(upload, "original_filename", None)
    if not isinstance(filename, (str, os.PathLike)) or not original:
        return False
    path = Path(filename)
    if re.split(r"[\\/]", str(original))[-1] == path.name:
        return False  # the caller uploads a file of exactly this name: it is theirs
    return _is_temp_copy_path(path)


def _is_temp_copy_path(path: Path) -> bool:
    """Whether ``path`` could be a temp copy of DEEPaaS's: see :func:`is_deepaas_temp_copy`."""
    if not _TEMP_NAME.fullmatch(path.name):
        return False
    try:
        if path.parent.resolve() != Path(tempfile.gettempdir()).resolve():
            return False
        info = path.lstat()
    except OSError:
        return False
    import stat

    return (stat.S_ISREG(info.st_mode) and info.st_nlink == 1
            and info.st_uid == os.geteuid())


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot remove temp upload %s: %s", path, exc)


def remove_temp_copy(upload: Any) -> None:
    """Delete ``upload``'s file if it is a temp copy made by DEEPaaS; otherwise do nothing."""
    if upload is not None and is_deepaas_temp_copy(upload):
        _remove(Path(upload.filename))


def hold_temp_copies(uploads: Any) -> contextlib.ExitStack:
    """Open (read-only) each of ``uploads`` that is a DEEPaaS temp copy, until closed."""
    held = contextlib.ExitStack()
    for upload in uploads:
        if upload is not None and is_deepaas_temp_copy(upload):
            with contextlib.suppress(OSError):
                held.enter_context(open(upload.filename, "rb"))  # noqa: SIM115
    return held


def temp_copies_held_by_children() -> dict[int, set[Path]]:
    """Each child of this process (a worker) -> the DEEPaaS temp copies it holds open."""
    from thermal_anomaly_segmenter.processes import process_trees

    found: dict[int, set[Path]] = {}
    for pid in process_trees(os.getpid()):
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = Path(os.readlink(fd))  # "... (deleted)" once removed
                    if _TEMP_NAME.fullmatch(target.name):
                        found.setdefault(pid, set()).add(target)
    return found


def remove_temp_copies_of_ended(held: dict[int, set[Path]]) -> int:
    """Remove the copies ``held`` by children that have ended since (a killed worker cannot
    remove its own). Returns how many were removed."""
    from thermal_anomaly_segmenter.processes import process_trees

    alive = set(process_trees(os.getpid()))
    ended = {p for pid, paths in held.items() if pid not in alive for p in paths
             if _is_temp_copy_path(p)}
    for path in ended:
        _remove(path)
    return len(ended)


def remove_temp_copy_of_call(call: Any) -> int:
    """Remove DEEPaaS's temp copies among the arguments of ``call`` (a ``functools.partial``
    DEEPaaS sends to a worker) once that worker is gone. Returns how many were removed."""
    values = [*getattr(call, "args", ()), *(getattr(call, "keywords", None) or {}).values()]
    removed = 0
    for value in values:
        if is_deepaas_temp_copy(value) and Path(value.filename).exists():
            remove_temp_copy(value)
            removed += 1
    return removed
