"""Make smp, timm and transformers importable next to a torchvision built for another torch.

On machines with a CPU-only torch, pip may install a CUDA torchvision whose import fails with
``RuntimeError: operator torchvision::nms does not exist``. smp, timm and the SegFormer classes
import torchvision, so they would fail too. :func:`ensure_torchvision` registers the two missing
operator schemas and imports torchvision again; the models then work (``torchvision.ops`` stays
unusable, and TASeg does not use it). Where torchvision imports normally this does nothing.
It runs in every process that builds models (DEEPaaS spawns workers), through
:mod:`~thermal_anomaly_segmenter.models.registry`.
"""

from __future__ import annotations

import contextlib
import logging
import sys

log = logging.getLogger(__name__)

_MISSING_OPS = ("nms", "qnms")
_state: dict[str, object] = {}


def ensure_torchvision() -> None:
    """Import torchvision, repairing the missing-operator failure once per process."""
    if "done" in _state:
        return
    try:
        import torchvision  # noqa: F401
    except ModuleNotFoundError:
        pass  # Not installed: SegFormer works without it.
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        _register_missing_ops()
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        import torchvision  # noqa: F401

        log.debug("torchvision imported after registering %s", _MISSING_OPS)
    _state["done"] = True


def _register_missing_ops() -> None:
    import torch

    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op in _MISSING_OPS:
        # RuntimeError: already defined by a partial import.
        with contextlib.suppress(RuntimeError):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _state["lib"] = lib  # the Library object must outlive this call
