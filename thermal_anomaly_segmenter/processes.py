"""Child processes that cannot outlive the process that started them.

DEEPaaS cancels a training by SIGKILLing its worker process; a signal that cannot be caught
leaves no chance to stop the data-loader workers, which then live on as orphans holding
memory. On Linux a child asks the kernel to kill it when its parent dies instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(_worker_id: int | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent ends (Linux; elsewhere a no-op).

    Usable as a DataLoader ``worker_init_fn``.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    except OSError as exc:  # no libc to load: leave the default behaviour
        log.warning("cannot ask to die with the parent process: %s", exc)
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)  # the parent died before the request above: nothing to work for


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of ``pid`` from /proc, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[1]), fields[19]
    except (OSError, ValueError, IndexError):
        return None


def process_trees(pid: int) -> dict[int, dict[int, str]]:
    """Each child of ``pid`` -> its descendants (pid -> start time), read from /proc."""
    parents: dict[int, int] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)], started[int(entry.name)] = stat
    trees: dict[int, dict[int, str]] = {}
    for child in (p for p, pp in parents.items() if pp == pid):
        found, todo = {}, [child]
        while todo:
            parent = todo.pop()
            kids = [p for p, pp in parents.items() if pp == parent]
            found.update({k: started[k] for k in kids})
            todo.extend(kids)
        trees[child] = found
    return trees


def kill_orphans(trees: dict[int, dict[int, str]]) -> int:
    """SIGKILL the descendants (from :func:`process_trees`) of children that have died.

    A descendant is killed only while it is still the process that was seen (same start
    time), so a reused pid is never hit. Returns how many were killed.
    """
    killed = 0
    for child, descendants in trees.items():
        if _stat(child) is not None:
            continue
        for pid, start in descendants.items():
            stat = _stat(pid)
            if stat is not None and stat[1] == start:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
    return killed
