"""Child processes that cannot outlive the process that started them.

DEEPaaS cancels a training by SIGKILLing its worker process; a signal that cannot be caught
leaves no chance to stop the data-loader workers, which then live on as orphans holding
memory. On Linux a child asks the kernel to kill it when its parent dies instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import signal
import sys

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
