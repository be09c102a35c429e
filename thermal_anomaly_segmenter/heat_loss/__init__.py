"""Heat loss of each anomaly: excess radiation and convection over the local background.

Pure numpy, no GIS or model code: :mod:`.conditions` (the night's conditions, from defaults,
files, flags or API fields, validated) and :mod:`.flux` (the per-region estimate and its
range). docs/heat_loss.rst describes the method and its limits.
"""

from __future__ import annotations

from thermal_anomaly_segmenter.heat_loss.conditions import (
    SURVEY_FILE_NAMES,
    Conditions,
    resolve_conditions,
)
from thermal_anomaly_segmenter.heat_loss.flux import (
    FIELDS,
    HeatLoss,
    component_moments,
    convective_coefficient,
    estimate,
)

#: Why the heat loss fields are null when the pixel size is unknown.
NO_PIXEL_SIZE = ("no pixel size: give the ground sampling distance (--gsd, API gsd) or a "
                 "metric georeference to estimate the heat loss")
METHOD = ("excess flux over the corridor background: sum over the anomaly's pixels of "
          "eps*sigma*(Ts^4 - Tb^4) + h_c*(Ts - Tb) times the pixel area; h_c = 5.7 + 3.8 v "
          "W/m2K (McAdams); range over the corners of the stated uncertainties")


def heat_loss_summary(records: list[dict], conditions: Conditions, available: bool) -> dict:
    """The ``heat_loss`` member of a JSON report: method, conditions, survey totals."""
    totals: dict[str, float | None] = {}
    for name in FIELDS:
        values = [r.get(name) for r in records]
        known = available and all(v is not None for v in values)
        decimals = 6 if name in ("heat_loss_mwh_per_year", "co2_t_per_year") else 2
        totals[f"total_{name}"] = round(sum(values), decimals) if known else None
    return {"method": METHOD, "conditions": conditions.to_dict(), **totals,
            "unavailable": None if available else NO_PIXEL_SIZE}


__all__ = ["FIELDS", "METHOD", "NO_PIXEL_SIZE", "SURVEY_FILE_NAMES", "Conditions", "HeatLoss",
           "component_moments", "convective_coefficient", "estimate", "heat_loss_summary",
           "resolve_conditions"]
