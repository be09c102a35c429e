"""Check of the heat loss estimate against an independent model of a leak in soil.

A steady-state, axisymmetric (r, z) finite-volume model of heat conduction in soil: a leak
of power P at depth d (heat spread over a 0.1 m ball), deep ground at a fixed temperature,
an insulated far side, and a surface that loses heat by longwave radiation to the sky
(``eps * sigma * (T^4 - T_sky^4)``) and convection to the air (McAdams ``h_c``), both with
absolute sky and air temperatures. It is solved by Newton's method with scipy's sparse LU.

From the solution the camera's view is made: the surface temperature resampled on a pixel
grid of a corridor strip, the anomaly the pixels whose excess over the background is at least
10 % of the peak, the background the corridor median. TASeg's estimate
(:func:`thermal_anomaly_segmenter.inference.postprocess.extract_anomalies` with the conditions,
which
know neither sky nor air temperature) is compared with the surface flux of the model over the
same pixels: the heat conducted to the surface (second-order one-sided gradient), minus the
same without the leak.

    python -m benchmarks.heat_loss_physics     # the table of RESULTS.md, "Heat loss physics check"
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SIGMA = 5.670374419e-8
KELVIN = 273.15


@dataclass(frozen=True)
class Soil:
    """The model's ground and night (SI units)."""

    conductivity_w_mk: float = 1.5
    deep_temp_degc: float = 8.0  # at the bottom of the domain
    depth_m: float = 8.0
    radius_m: float = 10.0
    dz_m: float = 0.05
    dr_m: float = 0.1
    air_temp_degc: float = -2.0
    sky_temp_degc: float = -25.0
    emissivity: float = 0.95


def surface_loss(t_k: np.ndarray, soil: Soil, h_c: float) -> tuple[np.ndarray, np.ndarray]:
    """Flux to sky and air, W/m2, and its derivative by T, of surface temperatures (K)."""
    eps = soil.emissivity
    sky, air = soil.sky_temp_degc + KELVIN, soil.air_temp_degc + KELVIN
    q = eps * SIGMA * (t_k**4 - sky**4) + h_c * (t_k - air)
    return q, 4 * eps * SIGMA * t_k**3 + h_c


def _grid(soil: Soil):
    nr = round(soil.radius_m / soil.dr_m) + 1
    nz = round(soil.depth_m / soil.dz_m)  # unknown rows 0..nz-1; row nz is the deep ground
    r = np.arange(nr) * soil.dr_m
    faces = np.concatenate([[0.0], (r[:-1] + r[1:]) / 2, [r[-1]]])
    ring = math.pi * (faces[1:] ** 2 - faces[:-1] ** 2)  # top area of each node's volume
    return nr, nz, r, faces, ring


@lru_cache(maxsize=4)
def _factorised(soil: Soil):
    """The linear conduction operator, its LU factors, and its inverse on the surface nodes.

    Only the surface loss is nonlinear, so it is solved on the surface nodes alone
    (a Schur complement): ``t_top = u + M (area * q(t_top))``.
    """
    from scipy import sparse
    from scipy.sparse.linalg import splu

    k, dz, dr = soil.conductivity_w_mk, soil.dz_m, soil.dr_m
    nr, nz, r, faces, ring = _grid(soil)
    n = nr * nz
    idx = np.arange(n).reshape(nz, nr)
    height = np.full(nz, dz)
    height[0] = dz / 2  # the surface node's volume is half a layer
    rows, cols, vals = [], [], []

    def couple(a: np.ndarray, c: np.ndarray, g: np.ndarray) -> None:
        rows.extend([a, c, a, c])
        cols.extend([c, a, a, c])
        vals.extend([g, g, -g, -g])

    g_r = k * 2 * math.pi * faces[1:-1][None, :] * height[:, None] / dr
    couple(idx[:, :-1].ravel(), idx[:, 1:].ravel(), g_r.ravel())
    g_z = np.broadcast_to(k * ring / dz, (nz - 1, nr))
    couple(idx[:-1].ravel(), idx[1:].ravel(), g_z.ravel())
    deep = k * ring / dz  # the last row couples to the fixed deep ground
    rows.append(idx[-1])
    cols.append(idx[-1])
    vals.append(-deep)
    lap = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(n, n))
    lu = splu(lap)
    unit = np.zeros((n, nr))
    unit[idx[0], np.arange(nr)] = 1.0
    surface_inverse = lu.solve(unit)[idx[0]]
    volume = ring[None, :] * height[:, None]
    return lu, surface_inverse, idx, volume, deep


def solve(soil: Soil, h_c: float, power_w: float, leak_depth_m: float) -> np.ndarray:
    """Temperatures, degC, ``(nz + 1, nr)``: rows are depths ``j * dz``, columns ``i * dr``."""
    lu, m, idx, volume, deep = _factorised(soil)
    nr, nz, r, _, ring = _grid(soil)
    b = np.zeros(idx.size)
    b[idx[-1]] -= deep * soil.deep_temp_degc
    # the leak: its power over the nodes within 0.1 m of (0, d), by their volume
    z = np.arange(nz) * soil.dz_m
    near = (r[None, :] ** 2 + (z[:, None] - leak_depth_m) ** 2) <= 0.1**2 + 1e-12
    if power_w:
        b[idx[near]] -= power_w * volume[near] / volume[near].sum()
    u = lu.solve(b)[idx[0]]
    top = np.full(nr, soil.deep_temp_degc)
    for _ in range(50):  # Newton on the surface nodes
        q, dq = surface_loss(top + KELVIN, soil, h_c)
        residual = top - u - m @ (ring * q)
        step = np.linalg.solve(np.eye(nr) - m * (ring * dq)[None, :], -residual)
        top += step
        if np.abs(step).max() < 1e-10:
            break
    rhs = b.copy()
    rhs[idx[0]] += ring * surface_loss(top + KELVIN, soil, h_c)[0]
    t = lu.solve(rhs)
    return np.vstack([t.reshape(nz, nr), np.full((1, nr), soil.deep_temp_degc)])


def conducted_flux(t: np.ndarray, soil: Soil) -> np.ndarray:
    """Heat conducted up to the surface, W/m2, per radius: ``-k dT/dz`` at z = 0."""
    return soil.conductivity_w_mk * (-3 * t[0] + 4 * t[1] - t[2]) / (2 * soil.dz_m)


def case(depth_m: float, wind_m_s: float, peak_dt_k: float, soil: Soil = Soil(),
         gsd_m: float = 0.1) -> dict[str, float]:
    """One leak: TASeg's estimate against the model's surface flux over the anomaly."""
    from thermal_anomaly_segmenter.heat_loss import Conditions, convective_coefficient
    from thermal_anomaly_segmenter.inference.postprocess import extract_anomalies
    from thermal_anomaly_segmenter.io.frames import Frame

    h_c = convective_coefficient(wind_m_s)
    background = solve(soil, h_c, 0.0, depth_m)
    trial = solve(soil, h_c, 100.0, depth_m)  # nearly linear: scale P to the wanted peak dT
    power = 100.0 * peak_dt_k / (trial[0, 0] - background[0, 0])
    leak = solve(soil, h_c, power, depth_m)
    r = np.arange(leak.shape[1]) * soil.dr_m
    # the camera: a 8 m x 40 m corridor strip at gsd_m, the leak in its middle
    ys = (np.arange(round(8 / gsd_m)) + 0.5) * gsd_m - 4
    xs = (np.arange(round(40 / gsd_m)) + 0.5) * gsd_m - 20
    dist = np.hypot(ys[:, None], xs[None, :])
    surface = np.interp(dist, r, leak[0]).astype(np.float32)
    excess = surface - background[0, 0]
    probability = np.clip(excess / excess.max(), 0, 1).astype(np.float32)
    frame = Frame(np.repeat(surface[..., None], 3, axis=2), np.ones(surface.shape, bool), "sim")
    median = float(np.median(surface))
    _, labels, anomalies = extract_anomalies(
        frame, probability, 0.1, corridor_median=median, gsd_m=gsd_m,
        conditions=Conditions(wind_speed_m_s=wind_m_s, emissivity=soil.emissivity))
    inside = labels == anomalies[0].id
    flux = np.interp(dist, r, conducted_flux(leak, soil) - conducted_flux(background, soil))
    simulated = float(flux[inside].sum() * gsd_m**2)
    _, _, _, _, ring = _grid(soil)
    total = float((ring * (conducted_flux(leak, soil) - conducted_flux(background, soil))).sum())
    # into the fixed deep ground: the rest of P, so the two shares sum to 1 (energy kept)
    deep = float((soil.conductivity_w_mk * ring / soil.dz_m * (leak[-2] - background[-2])).sum())
    return {"depth_m": depth_m, "wind_m_s": wind_m_s, "peak_dt_k": peak_dt_k,
            "power_w": power, "estimate_w": anomalies[0].heat_loss_w,
            "simulated_w": simulated, "ratio": anomalies[0].heat_loss_w / simulated,
            "footprint_share": simulated / total, "surface_share": total / power,
            "deep_share": deep / power,
            "area_m2": anomalies[0].area_m2}


DEPTHS = (0.5, 1.0, 2.0)
WINDS = (0.0, 3.0, 6.0)
PEAK_DTS = (1.0, 5.0, 10.0)


def main() -> int:
    print("| depth (m) | wind (m/s) | peak dT (K) | leak P (W) | anomaly (m2) | estimate (W) "
          "| simulated (W) | ratio | footprint share of surface excess | surface share of P |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for depth, wind, dt in itertools.product(DEPTHS, WINDS, PEAK_DTS):
        c = case(depth, wind, dt)
        print(f"| {depth:g} | {wind:g} | {dt:g} | {c['power_w']:.0f} | {c['area_m2']:.2f} | "
              f"{c['estimate_w']:.1f} | {c['simulated_w']:.1f} | {c['ratio']:.3f} | "
              f"{c['footprint_share']:.2f} | {c['surface_share']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
