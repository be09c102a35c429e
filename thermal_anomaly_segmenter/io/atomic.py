"""Atomic file writes: a file appears whole under its name or not at all.

Everything TASeg writes (predictions, frames, labels, checkpoints, CSV, JSON, plots, ONNX)
goes through :func:`atomic_path` or :func:`atomic_write`: the content is written to a hidden
temp file beside the target and renamed onto it, so a reader, a crash or a full disk never
leaves half a file, and a failed write leaves no temp file behind.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    # os.umask can only be read by setting it; do it once, before worker threads write.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Mark of the temp and scratch files of a process that :func:`sweep_stale` may remove once
#: that process is gone (a SIGKILLed worker runs no ``finally``).
_OWNED = re.compile(r"^\..*\.taseg(\d+)\.")


def owned_name(name: str) -> str:
    """A hidden scratch name for ``name`` marked with this process's id (see
    :func:`sweep_stale`)."""
    return f".{name}.taseg{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def sweep_stale(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the marked temp files (:func:`owned_name`) in ``folder`` whose process has
    ended; returns them. Files of running processes, and unmarked files, are left alone."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _OWNED.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            try:
                os.unlink(entry.path)
            except OSError:
                continue
            removed.append(Path(entry.path))
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike[str], mode: int | None = None, *,
                swept: bool = False) -> Iterator[Path]:
    """Yield a temp path beside ``path`` to write to; rename it onto ``path`` on success.

    The temp name ends with ``path``'s suffix, so writers that infer the format from it
    (matplotlib, OpenCV) work. On an exception the temp file is removed and ``path`` is left
    as it was.

    Args:
        path: The file to (re)place.
        mode: Permission bits of the result; default what a plain ``open()`` would give.
        swept: mark the temp name with this process's id, so that :func:`sweep_stale`
            removes it should the process be killed (writers that run long, in a server).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = owned_name(path.name) if swept else f".{path.name}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=f".tmp{path.suffix}", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the mode a plain open() would have.
        os.fchmod(fd, mode if mode is not None else 0o666 & ~_umask())
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike[str], payload: bytes | str) -> None:
    """Write ``payload`` (bytes, or text as UTF-8) to ``path`` atomically."""
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def publish_dir(finished: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Rename a finished folder (written beside ``dest``) to ``dest`` in one step; an
    existing ``dest`` is never replaced (FileExistsError)."""
    dest = Path(dest)
    if dest.exists() or dest.is_symlink():
        raise FileExistsError(f"{dest} exists")
    os.rename(finished, dest)  # same file system: one step, no half folder under dest
    return dest


def move_into_place(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Rename a finished file or folder (written beside ``target``) onto ``target`` in one
    step: readers see the old content or the new, never a part. The caller removes
    ``source`` if this fails."""
    os.replace(source, target)
