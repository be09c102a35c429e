"""Rebuild TASeg objects in a spawned process, with torchvision repaired before anything else.

A spawned process (DEEPaaS runs model code in one; data-loader workers started from there
are spawned too) gets its work as a pickle. Unpickling imports the modules of the pickled
objects in stream order, and Lightning's worker init function pulls in lightning ->
torchmetrics -> torchvision: on a machine whose torchvision does not fit torch the worker died
("DataLoader worker exited unexpectedly") before any TASeg code ran. Objects that travel to
such processes (:class:`~.datasets.ThermalDataset`) pickle as a call of :func:`rebuild` from
this module, so importing this module, the first thing the unpickler does for them, repairs
torchvision (see :mod:`._compat`) before the rest of the stream is read.
"""

from __future__ import annotations

from typing import Any

from thermal_anomaly_segmenter._compat import ensure_torchvision

ensure_torchvision()


def rebuild(cls: type, state: dict[str, Any]) -> Any:
    """An instance of ``cls`` with ``state`` as its attributes (no ``__init__`` run)."""
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj
