"""The anomalies JSON report of one prediction (schema ``taseg.anomalies/1``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.inference.postprocess import Anomaly, Prediction

#: Schema identifier written into every JSON report.
SCHEMA = "taseg.anomalies/1"

# Decimals in reports: temperatures to mK, probabilities to 1e-4, pixel positions to 1/100 px.
_TEMP_DECIMALS = 3
_PROB_DECIMALS = 4
_AREA_M2_DECIMALS = 4
_PIXEL_DECIMALS = 2
_METRIC_CRS_DECIMALS = 3  # millimetres
_ANGULAR_CRS_DECIMALS = 9  # about 0.1 mm at the equator
_ROUNDING = {
    "max_t_degc": _TEMP_DECIMALS,
    "mean_t_degc": _TEMP_DECIMALS,
    "mean_dt_degc": _TEMP_DECIMALS,
    "mean_probability": _PROB_DECIMALS,
    "area_m2": _AREA_M2_DECIMALS,
    "centroid": _PIXEL_DECIMALS,
    "heat_loss_w": 2,
    "heat_loss_w_low": 2,
    "heat_loss_w_high": 2,
    "heat_loss_mwh_per_year": 6,
    "cost_per_year": 2,
    "co2_t_per_year": 6,
}


# JSON report


def _plain(value: Any, decimals: int | None = None) -> Any:
    """Convert numpy values and tuples into JSON-ready Python values; NaN/inf become None."""
    if isinstance(value, dict):
        return {str(k): _plain(v, decimals) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, decimals) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), decimals)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            return None
        return round(f, decimals) if decimals is not None else f
    if isinstance(value, Path):
        return str(value)
    return value


def _crs_decimals(pred: Prediction) -> int:
    geo = pred.frame.geo
    return _METRIC_CRS_DECIMALS if geo is None or geo.metric else _ANGULAR_CRS_DECIMALS


def _anomaly_dict(a: Anomaly, crs_decimals: int) -> dict:
    rounding = {**_ROUNDING, "centroid_crs": crs_decimals}
    return {k: _plain(v, rounding.get(k)) for k, v in a.to_dict().items()}


def _verdict(anomaly_id: int, pred: Prediction) -> dict:
    v = pred.verdicts.get(anomaly_id, {})
    return {"id": int(anomaly_id), "cause": v.get("cause"),
            "leak_score": _plain(v.get("leak_score"), _PROB_DECIMALS)}


def anomalies_document(
    pred: Prediction, *, model_dir: str | None = None, extra: dict | None = None
) -> dict:
    """Build the JSON report of one prediction (schema ``taseg.anomalies/1``).

    ``summary.max_dt_degc`` is the largest ``mean_dt_degc`` of the anomalies and
    ``summary.max_t_degc`` the hottest anomaly pixel; both are None without anomalies.
    ``summary.total_area_m2`` is None when any anomaly lacks ``area_m2`` (no ground sampling
    distance), and 0.0 for a frame without anomalies whose pixel size is known.
    With the false-alarm stage (:mod:`~thermal_anomaly_segmenter.false_alarms.apply`) two
    members are added, the rest unchanged: ``false_alarm_stage`` (classifier, keep threshold,
    rejected count, and ``verdicts``: id, cause, leak_score of each accepted anomaly) and
    ``rejected`` (the rejected components: the anomaly fields plus cause and leak_score).
    With the night's conditions (every prediction of predict has them) a ``heat_loss`` member
    states the method, the conditions used (and which were defaults) and the totals of the
    anomalies' ``heat_loss_*`` fields; ``unavailable`` says why they are null.

    Args:
        pred: The prediction to report.
        model_dir: Folder of the model that produced it, recorded as ``model.dir``.
        extra: Further top-level members (e.g. request metadata); must not replace report keys.

    Returns:
        A dict of plain Python values that ``json.dumps(..., allow_nan=False)`` accepts.

    Raises:
        ValueError: If ``extra`` names a key of the report.
    """
    crs_decimals = _crs_decimals(pred)
    anomalies = [_anomaly_dict(a, crs_decimals) for a in pred.anomalies]
    doc = {
        "schema": SCHEMA,
        "frame": _frame_member(pred),
        "model": {
            "type": str(pred.model_name),
            "dir": None if model_dir is None else str(model_dir),
        },
        "threshold": _plain(pred.threshold, _PROB_DECIMALS),
        "summary": _summary_member(pred, anomalies),
        "anomalies": anomalies,
    }
    if pred.screening is not None:
        doc["false_alarm_stage"] = {
            **_plain(pred.screening),
            "rejected_count": len(pred.rejected),
            "verdicts": [_verdict(a.id, pred) for a in pred.anomalies],
        }
        doc["rejected"] = [{**_anomaly_dict(a, crs_decimals), **_verdict(a.id, pred)}
                           for a in pred.rejected]
    if pred.conditions is not None:
        from thermal_anomaly_segmenter.heat_loss import heat_loss_summary

        doc["heat_loss"] = heat_loss_summary(anomalies, pred.conditions, _area_known(pred))
    for key, value in (extra or {}).items():
        if key in doc:
            raise ValueError(f"extra key {key!r} would replace a field of the report")
        doc[str(key)] = _plain(value)
    return doc


def _area_known(pred: Prediction) -> bool:
    """Whether a pixel's ground size is known (a GSD, or a metric CRS)."""
    geo = pred.frame.geo
    return pred.gsd_m is not None or (geo is not None and geo.metric)


def _frame_member(pred: Prediction) -> dict:
    """The report's ``frame``: size, corridor, ground sampling and CRS."""
    frame = pred.frame
    height, width = frame.data.shape[:2]
    corridor_px = int(np.count_nonzero(frame.corridor))
    return {
        "name": str(frame.name),
        "height": int(height),
        "width": int(width),
        "corridor_px": corridor_px,
        "corridor_fraction": round(corridor_px / max(1, height * width), 6),
        "corridor_median_degc": _plain(pred.corridor_median_degc, _TEMP_DECIMALS),
        "gsd_m": _plain(pred.gsd_m, 6),
        "network_gsd_m": _plain(pred.network_gsd_m, 6),
        "crs": frame.geo.crs if frame.geo is not None else None,
    }


def _summary_member(pred: Prediction, anomalies: list[dict]) -> dict:
    """The report's ``summary`` of the anomaly records ``anomalies``."""
    areas_m2 = [a["area_m2"] for a in anomalies]
    if anomalies:
        total_m2 = None if None in areas_m2 else round(sum(areas_m2), _AREA_M2_DECIMALS)
    else:
        total_m2 = 0.0 if _area_known(pred) else None
    dts = [a["mean_dt_degc"] for a in anomalies if a["mean_dt_degc"] is not None]
    temps = [a["max_t_degc"] for a in anomalies if a["max_t_degc"] is not None]
    return {
        "count": len(anomalies),
        "total_area_px": sum(int(a["area_px"]) for a in anomalies),
        "total_area_m2": total_m2,
        "max_dt_degc": max(dts) if dts else None,
        "max_t_degc": max(temps) if temps else None,
    }
