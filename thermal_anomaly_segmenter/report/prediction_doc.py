"""Earlier predict outputs read back for a report, typed on the way in.

A folder of ``<stem>.json`` prediction reports (schema ``taseg.anomalies/1``) may come from
anyone. Every field the report uses is checked for its type and range here, so what reaches
``report.html``, ``anomalies.csv`` and the GeoPackage is a number, a short text or null as
predict writes it; a file with anything else is refused in one line naming the file and the
field (exit 2 / HTTP 4xx), never rendered.
"""

from __future__ import annotations

from typing import Any

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.io.json_input import number

#: Most records (anomalies + rejected) one prediction report may hold.
MAX_RECORDS = 100_000
#: Longest text field (frame name, pipe id, cause, CRS) taken from a prediction report.
MAX_TEXT = 2000
#: Numeric record fields and whether they may be null.
_NUMBERS = ("area_m2", "max_t_degc", "mean_t_degc", "mean_dt_degc", "mean_probability",
            "chainage_m", "offset_m", "leak_score")
_FRAME_NUMBERS = ("corridor_median_degc", "gsd_m", "network_gsd_m", "corridor_fraction")


def _text(value: Any, what: str, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise InvalidInputError(f"{what} must be text of at most {MAX_TEXT} characters")


def _maybe_number(value: Any, what: str, **bounds: Any) -> None:
    if value is not None:
        number(value, what, **bounds)


def _pair(value: Any, what: str, size: int = 2) -> None:
    if value is None:
        return
    if not isinstance(value, list) or len(value) != size:
        raise InvalidInputError(f"{what} must be a list of {size} numbers")
    for v in value:
        number(v, what)


def _record(rec: Any, where: str) -> None:
    if not isinstance(rec, dict):
        raise InvalidInputError(f"{where} must be an object")
    number(rec.get("id"), f"{where}.id", low=0, high=2**53, integer=True)
    number(rec.get("area_px", 0), f"{where}.area_px", low=0, high=2**53, integer=True)
    for key in _NUMBERS:
        _maybe_number(rec.get(key), f"{where}.{key}")
    _pair(rec.get("bbox"), f"{where}.bbox", 4)
    _pair(rec.get("centroid"), f"{where}.centroid")
    _pair(rec.get("centroid_crs"), f"{where}.centroid_crs")
    _text(rec.get("cause"), f"{where}.cause")
    pipe = rec.get("pipe_id")
    if isinstance(pipe, int) and not isinstance(pipe, bool):
        number(pipe, f"{where}.pipe_id", low=-2**63, high=2**63, integer=True)
    else:
        _text(pipe, f"{where}.pipe_id")


def _frame(frame: Any, name: str) -> None:
    if not isinstance(frame, dict):
        raise InvalidInputError(f"prediction report {name}: frame must be an object")
    _text(frame.get("name"), f"prediction report {name}: frame.name")
    _text(frame.get("crs"), f"prediction report {name}: frame.crs")
    for key in ("height", "width"):
        if key in frame:
            number(frame[key], f"prediction report {name}: frame.{key}", low=1, high=10**7,
                   integer=True)
    for key in _FRAME_NUMBERS:
        _maybe_number(frame.get(key), f"prediction report {name}: frame.{key}")
    if "transform" in frame:
        _pair(frame["transform"], f"prediction report {name}: frame.transform", 6)


def check_prediction(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """``doc`` (a parsed prediction report) if every field a report reads is well typed."""
    _frame(doc.get("frame", {}), name)
    total = 0
    for key in ("anomalies", "rejected"):
        records = doc.get(key, [])
        if not isinstance(records, list):
            raise InvalidInputError(f"prediction report {name}: {key} must be a list")
        total += len(records)
        if total > MAX_RECORDS:
            raise InvalidInputError(f"prediction report {name} holds more than {MAX_RECORDS} "
                                    "anomalies")
        for i, rec in enumerate(records):
            _record(rec, f"prediction report {name}: {key}[{i}]")
    stage = doc.get("false_alarm_stage")
    if stage is not None:
        if not isinstance(stage, dict) or not isinstance(stage.get("verdicts", []), list):
            raise InvalidInputError(f"prediction report {name}: false_alarm_stage must be an "
                                    "object with a list of verdicts")
        for i, verdict in enumerate(stage.get("verdicts", [])):
            where = f"prediction report {name}: false_alarm_stage.verdicts[{i}]"
            if not isinstance(verdict, dict):
                raise InvalidInputError(f"{where} must be an object")
            number(verdict.get("id"), f"{where}.id", low=0, high=2**53, integer=True)
            _text(verdict.get("cause"), f"{where}.cause")
            _maybe_number(verdict.get("leak_score"), f"{where}.leak_score", low=0, high=1)
    return doc
