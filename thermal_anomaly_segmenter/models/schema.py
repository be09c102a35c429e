"""The schema of a model folder's ``train_config.json``, checked before anything is built.

A model folder may come from anywhere (a download, a shared drive). Its whole config is
checked here first: the types and ranges of every field that shapes the network, the
normalisation or the output, so a hostile or broken file is one clear error, never a model
of a million channels, an infinite scale, a silent NaN or a network access. Architecture
values are plain JSON scalars or short lists of them, within :data:`ARCH_INT_MAX`; a string
naming a hub or a path (``tu-hf-hub:...``, ``org/model``) is refused: a model folder builds
offline from its own weights.
"""

from __future__ import annotations

import math
from typing import Any

from thermal_anomaly_segmenter.config import GSD_MAX_M
from thermal_anomaly_segmenter.errors import InvalidInputError

#: Largest integer an architecture option may hold (channels, bins, sizes).
ARCH_INT_MAX = 8192
#: Longest list an architecture option may hold (decoder channels, stage sizes).
ARCH_LIST_MAX = 16
#: Largest training side a config may declare, in pixels.
SIDE_MAX = 16384
#: Largest magnitude of a normalisation statistic, in degC.
NORM_MAX = 1e4
_HUB_MARKS = (":", "/", "\\")


def _fail(where: str, text: str) -> InvalidInputError:
    return InvalidInputError(f"train_config.json: {where} {text}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_scalar(where: str, value: Any) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if len(value) > 200 or any(mark in value for mark in _HUB_MARKS):
            raise _fail(where, "names a hub model or a path; a model folder builds offline "
                        "(pass hub weights to training with --weights instead)")
        return
    if not _is_number(value):
        raise _fail(where, f"must be a finite number, text or true/false, got {value!r:.40}")
    if abs(value) > ARCH_INT_MAX:
        raise _fail(where, f"is {value:g}, above the limit of {ARCH_INT_MAX}")


def _check_architecture(arch: Any) -> None:
    if not isinstance(arch, dict):
        raise _fail("architecture", "must be an object")
    for key, value in arch.items():
        where = f"architecture.{key}"
        if isinstance(value, list):
            if len(value) > ARCH_LIST_MAX:
                raise _fail(where, f"has {len(value)} entries, above {ARCH_LIST_MAX}")
            for i, item in enumerate(value):
                if isinstance(item, (list, dict)):
                    raise _fail(f"{where}[{i}]", "must be a number or text")
                _check_scalar(f"{where}[{i}]", item)
        elif isinstance(value, dict):
            raise _fail(where, "must be a number, text or a list of them")
        else:
            _check_scalar(where, value)


def _check_normalization(norm: Any) -> None:
    if not isinstance(norm, dict):
        raise _fail("normalization", "must be an object")
    if "mode" in norm and not isinstance(norm["mode"], str):
        raise _fail("normalization.mode", "must be text")
    if "scale_degc" in norm and not (_is_number(norm["scale_degc"]) and
                                     0 < norm["scale_degc"] <= NORM_MAX):
        raise _fail("normalization.scale_degc", f"must be a number in (0, {NORM_MAX:g}], "
                    f"got {norm['scale_degc']!r:.40}")
    for key in ("mean", "std"):
        values = norm.get(key)
        if values is None:
            continue
        if (not isinstance(values, list) or len(values) != 3
                or not all(_is_number(v) and abs(v) <= NORM_MAX for v in values)):
            raise _fail(f"normalization.{key}", f"must be 3 finite numbers within "
                        f"+-{NORM_MAX:g}")


def validate_model_config(data: Any, format_version: int) -> None:
    """Check a parsed ``train_config.json`` against the schema.

    Raises:
        InvalidInputError: Naming the first field that does not fit.
    """
    if not isinstance(data, dict):
        raise _fail("the file", "must hold a JSON object")
    if "model_type" not in data and "model" in data:  # the published format, another kind
        raise _fail(f"\"model\" {data['model']!r:.40}", "is not a kind the published TASeg "
                    "wrote (segformer or smp), and there is no model_type of a TASeg folder")
    if not isinstance(data.get("model_type"), str):
        raise _fail("model_type", "is missing or not text")
    version = data.get("format_version", format_version)
    if not _is_int(version) or version < 1:
        raise _fail("format_version", f"must be a whole number >= 1, got {version!r:.40}")
    if version > format_version:
        raise _fail("format_version", f"{version} is newer than this TASeg understands "
                    f"({format_version}); upgrade thermal-anomaly-segmenter")
    if "input_size" in data:
        size = data["input_size"]
        if (not isinstance(size, list) or len(size) != 2
                or not all(_is_int(v) and 32 <= v <= SIDE_MAX for v in size)):
            raise _fail("input_size", f"must be [height, width], whole numbers within "
                        f"32..{SIDE_MAX}, got {size!r:.60}")
    if "threshold" in data and not (_is_number(data["threshold"])
                                    and 0 <= data["threshold"] <= 1):
        raise _fail("threshold", f"must be a number within 0..1, got {data['threshold']!r:.40}")
    gsd = data.get("gsd_m")
    if gsd is not None and not (_is_number(gsd) and 0 < gsd <= GSD_MAX_M):
        raise _fail("gsd_m", f"must be null or metres per pixel within 0..{GSD_MAX_M:g}, "
                    f"got {gsd!r:.40}")
    _check_architecture(data.get("architecture", {}))
    _check_normalization(data.get("normalization", {}))
    for key in ("train_args", "metrics"):
        if not isinstance(data.get(key, {}), dict):
            raise _fail(key, "must be an object")
    if not isinstance(data.get("taseg_version", ""), str):
        raise _fail("taseg_version", "must be text")
