"""What a killed predict leaves beside its outputs, and its removal by the next one.

A predict's scratch and temp files carry its process id (:func:`..io.atomic.owned_name`);
while it runs it also keeps a claim marker naming its output stem. An interrupt removes
them in ``finally``; a SIGKILL (an API worker cancelled at ``TASEG_PREDICT_TIMEOUT_S``)
runs nothing, so the next predict into the folder sweeps what ended processes left.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from thermal_anomaly_segmenter.io.atomic import owned_name, sweep_stale


def claim_name(stem: str) -> str:
    """The hidden marker a running predict keeps beside its outputs named ``stem``."""
    return f"{owned_name(stem)}claim"


def sweep_outputs(out_dir: Path, suffixes: Iterable[str]) -> list[Path]:
    """Remove what ended predicts left in ``out_dir``: their marked scratch files and, for
    each of their claims, the empty ``<stem><suffix>`` files that reserved the name.
    Returns the removed paths."""
    suffixes = tuple(suffixes)
    removed = sweep_stale(out_dir)
    for claim in [p for p in removed if p.name.endswith(".claim")]:
        stem = claim.name[1:claim.name.rindex(".taseg")]
        for suffix in suffixes:
            output = out_dir / f"{stem}{suffix}"
            with contextlib.suppress(OSError):
                if output.is_file() and not output.is_symlink() and output.stat().st_size == 0:
                    output.unlink()
                    removed.append(output)
    return removed
