"""Two surveys of the same network, leak by leak: which anomaly is new, gone, grown, stable
or shrunk.

OLD is reprojected to NEW's CRS (pyproj); matching runs in metres (NEW's CRS when metric,
else its UTM zone). Candidate pairs are the anomalies whose footprints lie within the
tolerance of each other (a shapely STRtree ``dwithin`` query) and, where both surveys name
pipes, on the same pipe. Pairs are then taken greedily, closest first (footprint gap, then
the overlap's share of the union, then centroid distance plus the difference of chainage,
then the surveys' order), each anomaly in at most one pair: one-to-one and deterministic,
in O(P log P) for P candidate pairs.

The georeference error of a flight is nearly the same for neighbouring anomalies (a shift
and a slight rotation), so the matched pairs around an anomaly tell how far the flights
disagree there: the median displacement of its nearest matched pairs (a k-d tree query).
A pair whose centroid moved, beyond that offset, by more than ``residual_m`` plus the
change of its equivalent radius (a leak grows or shrinks around its source), is two
anomalies: a new leak beside a manhole or car of the first night, or
merged with it into one component, is ``new`` and the old one ``gone``, not one grown
anomaly. The pairs are then taken again without such candidates. Where fewer than
``coregister_min_ties`` pairs lie within ``coregister_radius_m``, the offset is unknown and
the footprints' gap alone decides.
A matched pair's status follows :class:`CompareOptions`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.geo.survey_layer import SurveyLayer, finite

#: Statuses, in the order reports list them.
STATUSES: tuple[str, ...] = ("grown", "stable", "shrunk", "new", "gone")
#: Two surveys whose anomalies lie farther apart than this (envelopes, metres) are two
#: different places, not two flights over one network.
OVERLAP_MARGIN_M = 500.0


@dataclass
class Change:
    """One row of the comparison: indices into OLD / NEW (None where absent)."""

    status: str
    old: int | None
    new: int | None
    gap_m: float | None = None


@dataclass
class Comparison:
    """Every anomaly of both surveys with its status; OLD's geometries in NEW's CRS."""

    old: SurveyLayer
    new: SurveyLayer
    old_geoms: np.ndarray  # OLD in NEW's CRS
    changes: list[Change]
    options: CompareOptions
    metric: Any = None
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = {s: sum(c.status == s for c in self.changes) for s in STATUSES}

    def summary(self) -> str:
        return ", ".join(f"{self.counts[s]} {s}" for s in STATUSES)

    def record(self, change: Change) -> dict[str, Any]:
        """Attributes of one change (see :data:`.compare_outputs.FIELDS`)."""
        o, n = change.old, change.new
        old, new = self.old, self.new

        def pick(layer: SurveyLayer, column: str, i: int | None) -> float | None:
            return None if i is None else finite(getattr(layer, column)[i])

        pipe = new.pipe_id[n] if n is not None else None
        if pipe is None and o is not None:
            pipe = old.pipe_id[o]
        chainage = pick(new, "chainage", n) if n is not None else pick(old, "chainage", o)
        return {
            "status": change.status,
            "old_id": None if o is None else old.ids[o],
            "new_id": None if n is None else new.ids[n],
            "area_m2_old": pick(old, "area_m2", o), "area_m2_new": pick(new, "area_m2", n),
            "mean_dt_old": pick(old, "mean_dt", o), "mean_dt_new": pick(new, "mean_dt", n),
            "peak_dt_old": pick(old, "peak_dt", o), "peak_dt_new": pick(new, "peak_dt", n),
            "pipe_id": pipe, "chainage": chainage, "gap_m": change.gap_m,
        }

    def geometry(self, change: Change):
        """The new footprint, or the old one (in NEW's CRS) for ``gone``."""
        return self.new.geoms[change.new] if change.new is not None else \
            self.old_geoms[change.old]

    def status_of_new(self) -> list[str]:
        """The status of each NEW anomaly, in NEW's order."""
        out = ["new"] * len(self.new)
        for c in self.changes:
            if c.new is not None:
                out[c.new] = c.status
        return out


def pair_status(area_old: float, area_new: float, dt_old: float, dt_new: float,
                options: CompareOptions) -> str:
    """``grown`` / ``stable`` / ``shrunk`` of one matched pair (see :class:`CompareOptions`).

    A measure unknown in either survey (NaN) takes no part."""
    ratio = area_new / area_old if area_old > 0 and math.isfinite(area_new) else math.nan
    d_dt = dt_new - dt_old
    grew = ratio >= options.grown_area_ratio or d_dt >= options.grown_dt_degc
    shrank = ratio <= options.shrunk_area_ratio or d_dt <= -options.shrunk_dt_degc
    if grew and shrank:  # one measure each way: the heat lost (area x dT) decides
        heat_old, heat_new = area_old * dt_old, area_new * dt_new
        return "grown" if heat_new >= heat_old else "shrunk"
    return "grown" if grew else "shrunk" if shrank else "stable"


def _metric_of(layer: SurveyLayer, other: SurveyLayer):
    from thermal_anomaly_segmenter.io.georef import is_metric, metric_crs

    if is_metric(layer.crs):
        return layer.crs
    import shapely

    from thermal_anomaly_segmenter.geo.network import reproject

    pool = layer.geoms if len(layer) else other.geoms
    crs = layer.crs if len(layer) else other.crs
    if not len(pool):
        return layer.crs  # nothing to measure
    x0, y0, x1, y1 = shapely.total_bounds(pool)
    centre = reproject(np.array([shapely.Point((x0 + x1) / 2, (y0 + y1) / 2)]), crs,
                       "EPSG:4326")[0]
    return metric_crs(layer.crs, centre.x, centre.y)


def _check_surveys(old: np.ndarray, new: np.ndarray, o: SurveyLayer, n: SurveyLayer) -> None:
    import shapely

    if len(old) and len(new):
        box_old = shapely.box(*shapely.total_bounds(old))
        box_new = shapely.box(*shapely.total_bounds(new))
        gap = shapely.distance(box_old, box_new)
        if not gap <= OVERLAP_MARGIN_M:
            raise InvalidInputError(
                f"the flights do not overlap: OLD {o.source}'s anomalies lie {gap:.0f} m from "
                f"NEW {n.source}'s (more than {OVERLAP_MARGIN_M:.0f} m; check their CRSs)")
    pipes_old = {p for p in o.pipe_id if p is not None}
    pipes_new = {p for p in n.pipe_id if p is not None}
    if pipes_old and pipes_new and not pipes_old & pipes_new:
        sample = ", ".join(sorted(pipes_old)[:3]), ", ".join(sorted(pipes_new)[:3])
        raise InvalidInputError(
            f"mismatched networks: no pipe id of OLD ({sample[0]}, ...) is in NEW "
            f"({sample[1]}, ...); compare surveys of one network with the same --pipes layer")


def _candidates(old_m: np.ndarray, new_m: np.ndarray, old: SurveyLayer, new: SurveyLayer,
                tolerance_m: float):
    """Candidate pairs ``(i, j, gap)`` and their greedy order (see the module doc)."""
    import shapely

    tree = shapely.STRtree(new_m)
    i, j = tree.query(old_m, predicate="dwithin", distance=tolerance_m)
    if i.size:
        pipes_o = np.asarray(old.pipe_id, dtype=object)[i]
        pipes_n = np.asarray(new.pipe_id, dtype=object)[j]
        keep = (pipes_o == None) | (pipes_n == None) | (pipes_o == pipes_n)  # noqa: E711
        i, j = i[keep], j[keep]
    gap = shapely.distance(old_m[i], new_m[j]) if i.size else np.zeros(0)
    # where footprints overlap, the larger share of their union wins (0 for points)
    overlap = np.zeros(i.size)
    touch = gap == 0
    if touch.any():
        a, b = old_m[i[touch]], new_m[j[touch]]
        union = shapely.area(shapely.union(a, b))
        overlap[touch] = np.divide(shapely.area(shapely.intersection(a, b)), union,
                                   out=np.zeros(union.size), where=union > 0)
    spread = shapely.distance(shapely.centroid(old_m[i]), shapely.centroid(new_m[j])) \
        if i.size else np.zeros(0)
    chain = np.abs(old.chainage[i] - new.chainage[j])
    spread = spread + np.where(np.isfinite(chain), chain, 0.0)
    # millimetres: equal gaps compare equal whatever the reprojection's rounding
    order = np.lexsort((j, i, np.round(spread, 3), -np.round(overlap, 4), np.round(gap, 3)))
    return i, j, gap, order


def _greedy(i: np.ndarray, j: np.ndarray, order: np.ndarray, sizes: tuple[int, int]
            ) -> list[int]:
    """Candidates taken in ``order``, each anomaly in at most one: their indices."""
    used_o = np.zeros(sizes[0], bool)
    used_n = np.zeros(sizes[1], bool)
    taken = []
    for k in order.tolist():
        a, b = int(i[k]), int(j[k])
        if not (used_o[a] or used_n[b]):
            used_o[a] = used_n[b] = True
            taken.append(k)
    return taken


def _coregistered(centre_o: np.ndarray, centre_n: np.ndarray, radius: tuple, i: np.ndarray,
                  j: np.ndarray, ties: list[int], options: CompareOptions) -> np.ndarray:
    """Which candidates move as the flights' local georeference offset allows.

    The offset at an old anomaly is the median displacement (new centroid minus old) of the
    ``coregister_ties`` nearest matched pairs within ``coregister_radius_m``; with fewer than
    ``coregister_min_ties`` there, it is unknown and the candidate stays."""
    from scipy.spatial import cKDTree

    ok = np.ones(i.size, bool)
    if len(ties) < max(options.coregister_min_ties, 1):
        return ok
    tie_o, tie_n = i[ties], j[ties]
    moved = centre_n[tie_n] - centre_o[tie_o]
    k = min(options.coregister_ties, len(ties))
    dist, near = cKDTree(centre_o[tie_o]).query(
        centre_o[i], k=k, distance_upper_bound=options.coregister_radius_m)
    dist, near = dist.reshape(i.size, k), near.reshape(i.size, k)
    found = np.isfinite(dist)
    shifts = np.where(found[..., None], moved[np.minimum(near, len(ties) - 1)], np.nan)
    known = found.sum(axis=1) >= options.coregister_min_ties
    if not known.any():
        return ok
    offset = np.nanmedian(shifts[known], axis=1)
    residual = np.hypot(*(centre_n[j[known]] - centre_o[i[known]] - offset).T)
    # a leak grows or shrinks around its source: its centre may move by the change of radius
    growth = np.nan_to_num(np.abs(radius[1][j[known]] - radius[0][i[known]]))
    ok[known] = residual <= options.residual_m + growth
    return ok


def match(old_m: np.ndarray, new_m: np.ndarray, old: SurveyLayer, new: SurveyLayer,
          options: CompareOptions) -> list[tuple[int, int, float]]:
    """One-to-one pairs ``(old, new, gap_m)`` of metric geometries (see the module doc)."""
    import shapely

    if not len(old_m) or not len(new_m):
        return []
    i, j, gap, order = _candidates(old_m, new_m, old, new, options.tolerance_m)
    if not i.size:
        return []
    sizes = (len(old_m), len(new_m))
    taken = _greedy(i, j, order, sizes)
    if options.coregister_min_ties:
        centre_o, centre_n = (np.column_stack([shapely.get_x(c), shapely.get_y(c)])
                              for c in (shapely.centroid(old_m), shapely.centroid(new_m)))
        radius = (np.sqrt(old.area_m2 / math.pi), np.sqrt(new.area_m2 / math.pi))
        ok = _coregistered(centre_o, centre_n, radius, i, j, taken, options)
        if not ok[taken].all():  # a dropped candidate that was not taken changes nothing
            taken = _greedy(i, j, order[ok[order]], sizes)
    return [(int(i[k]), int(j[k]), float(gap[k])) for k in taken]


def compare_surveys(old: SurveyLayer, new: SurveyLayer,
                    options: CompareOptions | None = None) -> Comparison:
    """Match OLD's anomalies to NEW's and name each one's status."""
    from thermal_anomaly_segmenter.geo.network import reproject

    options = options or CompareOptions()
    old_in_new = reproject(old.geoms, old.crs, new.crs) if len(old) else old.geoms
    metric = _metric_of(new, old)
    new_m = reproject(new.geoms, new.crs, metric) if len(new) else new.geoms
    old_m = reproject(old_in_new, new.crs, metric) if len(old) else old_in_new
    _check_surveys(old_m, new_m, old, new)
    pairs = match(old_m, new_m, old, new, options)
    by_new = {b: (a, gap) for a, b, gap in pairs}
    changes = []
    for b in range(len(new)):
        if b not in by_new:
            changes.append(Change("new", None, b))
            continue
        a, gap = by_new[b]
        status = pair_status(old.area_m2[a], new.area_m2[b], old.mean_dt[a], new.mean_dt[b],
                             options)
        changes.append(Change(status, a, b, round(gap, 3)))
    matched_old = {a for a, _, _ in pairs}
    changes.extend(Change("gone", a, None) for a in range(len(old)) if a not in matched_old)
    return Comparison(old, new, old_in_new, changes, options, metric)


@dataclass(frozen=True)
class CompareOptions:
    """How two surveys' anomalies are matched and how a matched pair's change is named.

    Temperatures are compared as mean dT (anomaly minus its own flight's corridor median),
    never as absolute temperatures, since nights differ by several degrees. A matched pair
    is ``grown`` when its area grew by ``grown_area_ratio`` or its mean dT rose by
    ``grown_dt_degc``, ``shrunk`` when its area fell to ``shrunk_area_ratio`` or its mean dT
    fell by ``shrunk_dt_degc``, else ``stable``; where one measure grew and the other shrank,
    the change of ``area_m2 * mean_dt`` (a proxy of the heat lost) decides.
    """

    #: Largest gap between two anomalies' footprints, metres, for them to be one anomaly.
    tolerance_m: float = 2.0
    grown_area_ratio: float = 1.5
    shrunk_area_ratio: float = 0.67
    grown_dt_degc: float = 1.0
    shrunk_dt_degc: float = 1.0
    #: Largest move of a pair's centroid, metres, beyond the flights' local georeference
    #: offset and the change of its equivalent radius (see the module doc).
    residual_m: float = 1.0
    #: The local offset is the median displacement of at most this many nearest pairs ...
    coregister_ties: int = 9
    #: ... within this distance, metres ...
    coregister_radius_m: float = 100.0
    #: ... and is used where at least this many lie there (0: never, the gap alone decides).
    coregister_min_ties: int = 3

    def __post_init__(self) -> None:
        checks = (
            ("tolerance", self.tolerance_m, 0.0 <= self.tolerance_m <= 100.0, "within 0..100 m"),
            ("grown area ratio", self.grown_area_ratio, self.grown_area_ratio > 1.0, "> 1"),
            ("shrunk area ratio", self.shrunk_area_ratio, 0.0 < self.shrunk_area_ratio < 1.0,
             "within 0..1"),
            ("grown dT", self.grown_dt_degc, self.grown_dt_degc > 0.0, "> 0 K"),
            ("shrunk dT", self.shrunk_dt_degc, self.shrunk_dt_degc > 0.0, "> 0 K"),
            ("residual", self.residual_m, 0.0 <= self.residual_m <= 100.0, "within 0..100 m"),
            ("co-registration radius", self.coregister_radius_m,
             0.0 < self.coregister_radius_m <= 100_000.0, "within 0..100000 m"),
            ("co-registration ties", self.coregister_ties, 1 <= self.coregister_ties <= 1000,
             "within 1..1000"),
            ("least co-registration ties", self.coregister_min_ties,
             0 <= self.coregister_min_ties <= self.coregister_ties,
             f"within 0..{self.coregister_ties} (co-registration ties)"),
        )
        for name, value, ok, rule in checks:
            if not (ok and math.isfinite(value)):
                raise InvalidInputError(f"{name} must be {rule}, got {value}")
