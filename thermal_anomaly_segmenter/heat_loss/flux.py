"""Excess heat flux of a warm surface region over its background (numpy only).

Per pixel the region loses, beyond what the background ground around it loses,
``q = eps * sigma * (Ts^4 - Tb^4) + h_c * (Ts - Tb)`` W/m2: the longwave radiation and the
convection to the night air. Sky and air temperature cancel in the difference (to first
order: the background loses to the same sky and air). ``h_c`` is McAdams' forced-convection
correlation for a flat surface, ``h_c = 5.7 + 3.8 v`` W/m2K (v: wind speed, m/s).

A region is summarised by the moments ``M_k = sum (Ts - Tb)^k``, k = 0..4, of its pixels
about the background; the flux for any emissivity, wind and shifted background follows
exactly from them, so ranges cost nothing and regions cut by block borders just add up.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import comb

import numpy as np

from thermal_anomaly_segmenter.heat_loss.conditions import Conditions

#: Stefan-Boltzmann constant, W/m2K4 (CODATA 2018).
SIGMA = 5.670374419e-8
KELVIN = 273.15
#: Number of moments kept per region: M_0 (pixel count) .. M_4.
N_MOMENTS = 5
#: Hours per MWh conversion: W * h / 1e6 = MWh.
_WH_PER_MWH = 1e6


def convective_coefficient(wind_speed_m_s: float) -> float:
    """McAdams (1954) forced convection over a flat plate, W/m2K: ``5.7 + 3.8 v``."""
    return 5.7 + 3.8 * max(0.0, float(wind_speed_m_s))


def component_moments(dt: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """``(n, 5)`` moments ``sum dt^k`` per id (``ids`` in ``0..n-1``), k = 0..4."""
    dt = np.asarray(dt, np.float64)
    out = np.empty((n, N_MOMENTS), np.float64)
    power = np.ones_like(dt)
    for k in range(N_MOMENTS):
        out[:, k] = np.bincount(ids, weights=power, minlength=n)[:n]
        power = power * dt
    return out


def _shifted(moments: np.ndarray, shift: float) -> np.ndarray:
    """Moments about ``Tb + shift`` from moments about ``Tb``: sum (d - s)^k, binomially."""
    out = np.zeros_like(moments)
    for k in range(N_MOMENTS):
        for j in range(k + 1):
            out[..., k] += comb(k, j) * (-shift) ** (k - j) * moments[..., j]
    return out


def excess_flux_w(moments: np.ndarray, background_degc: float, pixel_area_m2: float | np.ndarray,
                  emissivity: float, wind_speed_m_s: float, background_shift_k: float = 0.0
                  ) -> np.ndarray:
    """Excess loss in W of regions with these moments about ``background_degc``.

    ``Ts^4 - Tb^4 = 4 Tb^3 d + 6 Tb^2 d^2 + 4 Tb d^3 + d^4`` (d = Ts - Tb), summed through the
    moments: no large powers are subtracted, so small excesses keep their precision.
    """
    m = _shifted(np.asarray(moments, np.float64), background_shift_k)
    tb = background_degc + background_shift_k + KELVIN
    radiation = 4 * tb**3 * m[..., 1] + 6 * tb**2 * m[..., 2] + 4 * tb * m[..., 3] + m[..., 4]
    flux = emissivity * SIGMA * radiation + convective_coefficient(wind_speed_m_s) * m[..., 1]
    return np.asarray(pixel_area_m2, np.float64) * flux


@dataclass(frozen=True)
class HeatLoss:
    """Per region: the estimate and its range (W), and the yearly figures where configured."""

    w: np.ndarray
    w_low: np.ndarray
    w_high: np.ndarray
    mwh_per_year: np.ndarray
    cost_per_year: np.ndarray | None
    co2_t_per_year: np.ndarray | None

    def record(self, i: int) -> dict[str, float | None]:
        """The output fields of region ``i`` (units in the names), rounded for reports."""
        def r(values: np.ndarray | None, decimals: int) -> float | None:
            return None if values is None else round(float(values[i]), decimals)

        return {"heat_loss_w": r(self.w, 2), "heat_loss_w_low": r(self.w_low, 2),
                "heat_loss_w_high": r(self.w_high, 2),
                "heat_loss_mwh_per_year": r(self.mwh_per_year, 6),
                "cost_per_year": r(self.cost_per_year, 2),
                "co2_t_per_year": r(self.co2_t_per_year, 6)}


#: The output fields, all ``None`` where no estimate can be made.
FIELDS: tuple[str, ...] = ("heat_loss_w", "heat_loss_w_low", "heat_loss_w_high",
                           "heat_loss_mwh_per_year", "cost_per_year", "co2_t_per_year")


def estimate(moments: np.ndarray, background_degc: float, pixel_area_m2: float | np.ndarray,
             conditions: Conditions) -> HeatLoss:
    """The heat loss of regions, with the range over the corners of the input uncertainties.

    The range is the smallest and largest of the eight corners (wind +- its uncertainty,
    floored at 0; emissivity low/high; background +- its uncertainty) and the nominal value.
    """
    c = conditions
    args = (np.asarray(moments, np.float64), background_degc, pixel_area_m2)
    nominal = excess_flux_w(*args, c.emissivity, c.wind_speed_m_s)
    winds = (max(0.0, c.wind_speed_m_s - c.wind_uncertainty_m_s),
             c.wind_speed_m_s + c.wind_uncertainty_m_s)
    shifts = (-c.background_uncertainty_k, c.background_uncertainty_k)
    corners = [excess_flux_w(*args, eps, wind, shift) for eps, wind, shift in itertools.product(
        (c.emissivity_low, c.emissivity_high), winds, shifts)]
    stack = np.stack([nominal, *corners])
    mwh = nominal * c.season_hours / _WH_PER_MWH
    return HeatLoss(
        w=nominal, w_low=stack.min(axis=0), w_high=stack.max(axis=0), mwh_per_year=mwh,
        cost_per_year=None if c.price_per_mwh is None else mwh * c.price_per_mwh,
        co2_t_per_year=None if c.co2_t_per_mwh is None else mwh * c.co2_t_per_mwh)


def no_estimate() -> dict[str, None]:
    """The output fields where no estimate can be made (no pixel size)."""
    return dict.fromkeys(FIELDS)
