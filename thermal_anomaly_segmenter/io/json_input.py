"""JSON a user hands over (classifier, review, severity config, earlier predict outputs),
read as untrusted input: UTF-8 only, no NaN/Infinity tokens, bounded nesting, and typed
field checks whose failure is one :class:`~thermal_anomaly_segmenter.errors.InvalidInputError`
line naming the file and the field, never an "internal error".
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from thermal_anomaly_segmenter.errors import InvalidInputError

#: Deepest nesting any TASeg file has (a review polygon: 5 levels) with a wide margin.
MAX_DEPTH = 32


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a number JSON allows")


def _depth(value: Any) -> int:
    """Nesting depth of a parsed document, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """The file's text; a file that cannot be read or is not UTF-8 is one clear error."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {what} {path.name}: "
                                f"{exc.strerror or type(exc).__name__}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{what} {path.name} is not UTF-8 text (byte {exc.start}): "
                                "save it as UTF-8") from None


def check_depth(value: Any, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` if it nests at most ``max_depth`` levels."""
    if _depth(value) > max_depth:
        raise InvalidInputError(f"{what} nests deeper than {max_depth} levels")
    return value


def parse_json(text: str, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text``: NaN/Infinity tokens, deep nesting and syntax errors refused."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidInputError(f"{what} nests deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise InvalidInputError(f"{what} is not valid JSON: {' '.join(str(exc).split())}"
                                ) from None
    return check_depth(value, what, max_depth)


def load_json(path: str | os.PathLike[str], what: str, max_depth: int = MAX_DEPTH) -> Any:
    """Read and parse a JSON file given by a user (see :func:`parse_json`)."""
    return parse_json(read_text(path, what), f"{what} {Path(path).name}", max_depth)


def number(value: Any, what: str, *, low: float = -math.inf, high: float = math.inf,
           integer: bool = False) -> float:
    """``value`` as a finite number within ``[low, high]`` (an int when ``integer``)."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value) or \
            not low <= value <= high:
        kind = "an integer" if integer else "a finite number"
        if math.isfinite(low) or math.isfinite(high):
            kind += f" in [{low:g}, {high:g}]"
        raise InvalidInputError(f"{what} must be {kind}, got {str(value)[:40]!r}")
    return value


def of_type(value: Any, kinds: type | tuple[type, ...], what: str) -> Any:
    """``value`` if it is one of ``kinds`` (bool is never a number here)."""
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in (
            kinds if isinstance(kinds, tuple) else (kinds,))):
        names = "/".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        raise InvalidInputError(f"{what} must be {names}, got {type(value).__name__}")
    return value
