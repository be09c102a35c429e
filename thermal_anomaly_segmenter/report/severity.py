"""Severity classes of anomalies: A = dig now, B = inspect, C = watch.

An anomaly gets the first class (A, then B) whose every minimum it meets, else C:

- ``mean_dt_degc``: mean T_u of the region minus the corridor median;
- area: ``min_area_m2`` where the ground sampling distance is known, else ``min_area_px``;
- ``peak_dt_degc``: hottest pixel minus the corridor median;
- ``mean_probability``: the model's mean confidence over the region;
- ``min_heat_loss_w`` (unset by default): the estimated heat loss, W (:mod:`..heat_loss`);
  where an anomaly has no estimate (no pixel size) this minimum is not applied.

Thresholds come from :data:`DEFAULTS` or a TOML/JSON file with a table per class
(``[A]``, ``[B]``) giving any of these keys; ``docs/report.rst`` gives the rationale.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from thermal_anomaly_segmenter.errors import InvalidInputError

#: Classes from the most to the least urgent, with what the operator should do.
CLASSES: dict[str, str] = {"A": "dig now", "B": "inspect", "C": "watch"}


@dataclass(frozen=True)
class ClassRule:
    """Minimums an anomaly must all meet to get a class."""

    min_mean_dt_degc: float
    min_peak_dt_degc: float
    min_area_m2: float
    min_area_px: int
    min_probability: float
    min_heat_loss_w: float | None = None

    def admits(self, record: dict[str, Any], corridor_median: float | None) -> bool:
        dt = number(record.get("mean_dt_degc"))
        peak = number(record.get("max_t_degc"))
        peak_dt = peak - corridor_median if corridor_median is not None else dt
        area_m2 = record.get("area_m2")
        if area_m2 is not None:
            big = float(area_m2) >= self.min_area_m2
        else:
            big = int(record.get("area_px") or 0) >= self.min_area_px
        prob = number(record.get("mean_probability"))
        loss = record.get("heat_loss_w")
        lossy = (self.min_heat_loss_w is None or loss is None
                 or number(loss) >= self.min_heat_loss_w)
        return (dt >= self.min_mean_dt_degc and peak_dt >= self.min_peak_dt_degc and big
                and prob >= self.min_probability and lossy)

    def text(self) -> str:
        return (f"mean dT >= {self.min_mean_dt_degc:g} degC, peak dT >= "
                f"{self.min_peak_dt_degc:g} degC, area >= {self.min_area_m2:g} m2 "
                f"(>= {self.min_area_px} px without a GSD), confidence >= "
                f"{self.min_probability:g}"
                + ("" if self.min_heat_loss_w is None else
                   f", heat loss >= {self.min_heat_loss_w:g} W (where estimated)"))


def number(value: Any) -> float:
    """``value`` as a float; missing, text or non-finite values sort last (-inf)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return -math.inf
    return f if math.isfinite(f) else -math.inf


@dataclass(frozen=True)
class SeverityRules:
    """The rules of classes A and B (C is everything else)."""

    A: ClassRule
    B: ClassRule
    source: str = "defaults"

    def classify(self, record: dict[str, Any], corridor_median: float | None = None) -> str:
        for name in ("A", "B"):
            if getattr(self, name).admits(record, corridor_median):
                return name
        return "C"

    def describe(self, previous: bool = False) -> list[str]:
        """One line per class, as shown in the report; with ``previous`` also the rule that
        ranks anomalies found in the earlier survey too (:data:`SINCE_RULE`)."""
        lines = [f"A ({CLASSES['A']}): {self.A.text()}",
                 f"B ({CLASSES['B']}): {self.B.text()}",
                 f"C ({CLASSES['C']}): every other anomaly"]
        return [*lines, SINCE_RULE] if previous else lines

    def to_dict(self) -> dict[str, Any]:
        return {"A": asdict(self.A), "B": asdict(self.B), "source": self.source}


#: Rank within a class by status since the previous survey (``taseg report --previous``):
#: a leak that persists is stronger evidence than a new warm spot, a growing one the most.
SINCE_ORDER: dict[str | None, int] = {"grown": 0, "stable": 1, "shrunk": 1, "new": 2, None: 2}
SINCE_RULE = ("Since the last survey: within a class, an anomaly that was there before ranks "
              "above an otherwise equal new one (grown first, then stable or shrunk, then "
              "new), then by mean dT")


def severity_order(severity: str | None) -> int:
    """Sort key of a class: A first."""
    return {"A": 0, "B": 1}.get(severity or "C", 2)


#: Defaults (rationale in docs/report.rst): A is a clear, sizeable, confident hot spot; B a
#: plain one worth a walk-over; anything smaller or fainter is watched in the next survey.
DEFAULTS = SeverityRules(
    A=ClassRule(min_mean_dt_degc=2.0, min_peak_dt_degc=3.0, min_area_m2=1.0, min_area_px=100,
                min_probability=0.8),
    B=ClassRule(min_mean_dt_degc=1.0, min_peak_dt_degc=1.5, min_area_m2=0.25, min_area_px=25,
                min_probability=0.5),
)
_KEYS = {f.name for f in fields(ClassRule)}


def load_rules(path: str | os.PathLike[str] | None) -> SeverityRules:
    """:data:`DEFAULTS`, with the values of a TOML (``.toml``) or JSON file over them."""
    if path is None:
        return DEFAULTS
    from thermal_anomaly_segmenter.io.json_input import check_depth, parse_json, read_text

    path = Path(path)
    text = read_text(path, "severity config")
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            data = check_depth(tomllib.loads(text), f"severity config {path.name}")
        except RecursionError:
            raise InvalidInputError(f"severity config {path.name} nests too deep") from None
        except ValueError as exc:
            raise InvalidInputError(f"severity config {path.name} is not valid TOML: "
                                    f"{' '.join(str(exc).split())}") from None
    else:
        data = parse_json(text, f"severity config {path.name}")
    if not isinstance(data, dict) or set(data) - {"A", "B"}:
        raise InvalidInputError(f"severity config {path} must hold tables A and/or B only")
    rules = {}
    for name in ("A", "B"):
        table = data.get(name, {})
        if not isinstance(table, dict) or set(table) - _KEYS:
            raise InvalidInputError(f"severity config {path}: [{name}] may set only "
                                    f"{', '.join(sorted(_KEYS))}")
        for key, value in table.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value):
                raise InvalidInputError(f"severity config {path}: {name}.{key} must be a "
                                        "number")
        rules[name] = replace(getattr(DEFAULTS, name), **table)
    return SeverityRules(A=rules["A"], B=rules["B"], source=str(path))
