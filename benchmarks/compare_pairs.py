"""Status accuracy of ``taseg compare`` on pairs of generated flights of the same scenes.

    .venv/bin/python benchmarks/compare_pairs.py --pairs 20 [--model-dir models/classical]
        [--first-seed 100] [--only 2,8] [--keep DIR]

Each pair is one scene of a family (``thermal_anomaly_segmenter.scenes``) flown on two
nights: the second night is 3-6 degC colder, has fresh sensor noise and another wind (each
leak's plume stretched and drifted downwind), its cars have moved along the street, and its
georeference is off by a shift of up to 1.5 m and a rotation of up to 0.5 degree. Leaks are
planted on the pipe: one unchanged (stable), one grown (wider and hotter), one repaired (only
the first night: gone), one new (only the second night), each more than the 2 m tolerance
(3 m; 1.5 m where the pipe leaves no room) from a lamp, manhole or engine (and from the
pipe's own heat trace where the pipe leaves room) and 8 m from the next (6 m where the pipe
is short); lamps and the rest of the scene are unchanged, and no car parks within 3 m of a
planted leak. Both nights are written as GeoTIFFs with the scene's pipe as a GeoPackage and
run through ``taseg predict --pipes`` (the real model), and the two output folders through
``taseg compare``. A planted leak's status is right when the change nearest its position (in
its flight's own georeference, within 1 m of the footprint) has the planted status. Prints
one line per pair and the totals.

:func:`make_pair` is also used by ``tests/geo/test_compare_flights.py``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

ORIGIN = (456000.0, 5430000.0)  # EPSG:25832
#: Planted leaks, in order along the pipe: name, status, present on night 1 / night 2.
PLANTED: tuple[tuple[str, bool, bool], ...] = (
    ("stable", True, True), ("grown", True, True), ("gone", True, False),
    ("new", False, True),
)
EXTENT_M = (36.0, 48.0)  # ground covered by a frame (rows, columns)


@dataclass
class FlightPair:
    folder: Path
    family: str
    pipes: Path
    old: Path  # orthomosaic of night 1
    new: Path  # orthomosaic of night 2
    #: planted status -> pixel position (x, y) of that leak (the same in both nights)
    truth: dict[str, tuple[float, float]] = field(default_factory=dict)
    lamps: list[tuple[float, float]] = field(default_factory=list)  # pixels
    new_crs: str = "EPSG:25832"
    true: object = None  # pixel -> EPSG:25832 of night 1 (right)
    wrong: object = None  # pixel -> EPSG:25832 of night 2 (shifted, rotated)

    def where(self, status: str) -> tuple[float, float]:
        """Where a planted leak lies in its flight's own georeference (EPSG:25832): night
        1's for ``gone``, night 2's for the others."""
        transform = self.true if status == "gone" else self.wrong
        return tuple(transform @ self.truth[status])


def _sites(pipe: np.ndarray, shape: tuple[int, int], gsd: float, n: int,
           busy: np.ndarray) -> list[int]:
    """``n`` indices of pipe points inside the frame and off ``busy`` pixels (lamps,
    manholes, engines: a planted leak is a leak, not a lamp that got warmer), spread along
    the pipe 8 m apart (at least 5 m)."""
    h, w = shape
    margin = 2.5 / gsd
    inside = np.flatnonzero((pipe[:, 0] > margin) & (pipe[:, 0] < w - margin)
                            & (pipe[:, 1] > margin) & (pipe[:, 1] < h - margin))
    px = np.clip(pipe[inside].astype(int), 0, [w - 1, h - 1])
    free = inside[~busy[px[:, 1], px[:, 0]]]
    if free.size < n:
        raise ValueError("pipe too short inside the frame")
    for gap_m in (8.0, 6.0):  # as far apart as the pipe allows
        chosen: list[int] = []
        for target in np.linspace(free[0], free[-1], n + 2)[1:-1]:
            order = free[np.argsort(np.abs(free - target), kind="stable")]
            pick = next((int(i) for i in order  # apart on the ground: a route may turn back
                         if all(np.hypot(*(pipe[i] - pipe[j])) >= gap_m / gsd
                                for j in chosen)), None)
            if pick is None:
                break
            chosen.append(pick)
        if len(chosen) == n:
            return sorted(chosen)
    raise ValueError("no room for the planted leaks on this pipe")


def _paint_leak(t_u: np.ndarray, centre, tangent, sigma_px: float, peak: float,
                stretch: float = 1.0, drift=(0.0, 0.0)) -> None:
    """An anisotropic warm plume (excess heat ``peak`` degC) around ``centre``."""
    h, w = t_u.shape
    cx, cy = centre[0] + drift[0], centre[1] + drift[1]
    r = int(4 * sigma_px * stretch) + 2
    y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 1, h)
    x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 1, w)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    along = dx * tangent[0] + dy * tangent[1]
    across = -dx * tangent[1] + dy * tangent[0]
    heat = np.exp(-0.5 * ((along / (sigma_px * 1.6 * stretch)) ** 2
                          + (across / sigma_px) ** 2))
    t_u[y0:y1, x0:x1] += np.float32(peak) * heat.astype(np.float32)


def _move_cars(t_u: np.ndarray, scene, rng, gsd: float, avoid: np.ndarray) -> None:
    """Cars of night 1 leave their place (filled with the road around them) and park
    3-8 m further along the street, not on ``avoid`` (the planted leaks: a car parked on a
    repaired leak is another test)."""
    from scipy import ndimage

    vehicle = [k + 1 for k, c in enumerate(scene.instance_classes) if c == "vehicle"]
    if not vehicle:
        return
    patches = []
    for k in vehicle:
        mask = scene.instances == k
        ring = ndimage.binary_dilation(mask, iterations=3) & ~mask & (scene.instances == 0)
        ys, xs = np.nonzero(mask)
        if not ys.size:  # painted over by a later object
            continue
        patches.append((ys, xs, t_u[ys, xs].copy()))
        if ring.any():
            t_u[mask] = np.median(t_u[ring])
    h, w = t_u.shape
    for ys, xs, values in patches:
        d = np.hypot(scene.pipe[:, 0] - xs.mean(), scene.pipe[:, 1] - ys.mean())
        i = int(np.argmin(d))
        j = min(i + 1, len(scene.pipe) - 1)
        tangent = scene.pipe[j] - scene.pipe[max(j - 1, 0)]
        tangent = tangent / max(np.hypot(*tangent), 1e-9)
        step = rng.uniform(3.0, 8.0) / gsd * rng.choice([-1.0, 1.0])
        for sign in (1.0, -1.0):  # the other way along the street where a leak is
            ny = np.round(ys + tangent[1] * step * sign).astype(int)
            nx = np.round(xs + tangent[0] * step * sign).astype(int)
            ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
            if not avoid[ny[ok], nx[ok]].any():
                t_u[ny[ok], nx[ok]] = values[ok]
                break


def _affine_in(transform, crs: str):
    """``transform`` (pixel -> EPSG:25832) as an affine transform into ``crs``, fitted on
    three corners (exact to well under a centimetre over a frame)."""
    from affine import Affine
    from pyproj import Transformer

    if crs == "EPSG:25832":
        return transform
    to = Transformer.from_crs("EPSG:25832", crs, always_xy=True)
    (x0, y0), (x1, y1), (x2, y2) = (to.transform(*(transform @ p))
                                    for p in ((0, 0), (1000, 0), (0, 1000)))
    return Affine((x1 - x0) / 1000, (x2 - x0) / 1000, x0, (y1 - y0) / 1000,
                  (y2 - y0) / 1000, y0)


def _write_tif(path: Path, t_u: np.ndarray, transform, crs: str) -> Path:
    import rasterio

    with rasterio.open(path, "w", driver="GTiff", width=t_u.shape[1], height=t_u.shape[0],
                       count=1, dtype="float32", crs=crs,
                       transform=_affine_in(transform, crs)) as ds:
        ds.write(t_u.astype(np.float32), 1)
    return path


def _choose_sites(scene, shape: tuple[int, int], gsd: float) -> list[int]:
    """Four leak sites on the pipe, off warm objects by more than the tolerance (and off
    the pipe's own broken heat trace), as far as the pipe leaves room."""
    from scipy import ndimage

    trace = np.isin(scene.instances, [k + 1 for k, c in enumerate(scene.instance_classes)
                                      if c == "pipe_trace"])
    for clear_m, warm in ((3.0, (scene.bait_mask > 0) | trace), (3.0, scene.bait_mask > 0),
                          (1.5, scene.bait_mask > 0)):
        busy = ndimage.distance_transform_edt(~warm) < clear_m / gsd
        try:
            return _sites(scene.pipe, shape, gsd, len(PLANTED), busy)
        except ValueError:
            continue
    raise ValueError(f"no room for the planted leaks in a scene of {scene.family}")


def make_pair(folder: Path, family: str, seed: int, *, shift_m: float = 1.5,
              rotation_deg: float = 0.5, new_crs: str = "EPSG:25832",
              gsd_m: float | None = None) -> FlightPair:
    """Two nights of one scene (see the module doc), written into ``folder``."""
    import pyogrio.raw
    import shapely
    from affine import Affine
    from rasterio.transform import from_origin

    from thermal_anomaly_segmenter.scenes import get_family, render_scene

    fam = get_family(family)
    rng = np.random.default_rng(seed + 7919)
    gsd = gsd_m or float(np.mean(fam.gsd_m))
    shape = (int(EXTENT_M[0] / gsd) // 8 * 8, int(EXTENT_M[1] / gsd) // 8 * 8)
    cold = fam.ambient_centre_degc
    scene = render_scene(seed, *shape, n_leaks=0, ambient_degc=cold, family=fam)
    gsd = scene.gsd_m
    night1 = scene.t_u.copy()
    night2 = night1 - np.float32(rng.uniform(3.0, 6.0))  # another, colder night
    night2 += rng.normal(0.0, 0.05, night2.shape).astype(np.float32)
    from scipy import ndimage

    sites = _choose_sites(scene, shape, gsd)
    near = np.zeros(shape, bool)
    for i in sites:
        x, y = np.clip(scene.pipe[i].astype(int), 0, [shape[1] - 1, shape[0] - 1])
        near[y, x] = True
    _move_cars(night2, scene, rng, gsd, ndimage.distance_transform_edt(~near) < 3.0 / gsd)
    wind = rng.uniform(0, 2 * math.pi)
    drift = (math.cos(wind) * 0.15 / gsd, math.sin(wind) * 0.15 / gsd)
    true = from_origin(*ORIGIN, gsd, gsd)
    pair_truth = {}
    for (status, first, second), i in zip(PLANTED, sites, strict=True):
        centre = scene.pipe[i]
        tangent = scene.pipe[min(i + 1, len(scene.pipe) - 1)] - scene.pipe[max(i - 1, 0)]
        tangent = tangent / max(np.hypot(*tangent), 1e-9)
        sigma = rng.uniform(0.45, 0.6) / gsd
        peak = rng.uniform(3.5, 5.0)
        if first:
            _paint_leak(night1, centre, tangent, sigma, peak)
        if second:
            grow = (1.5, 1.5) if status == "grown" else (1.0, 0.0)
            _paint_leak(night2, centre, tangent, sigma * grow[0], peak + grow[1],
                        stretch=1.15, drift=drift)
        pair_truth[status] = (float(centre[0]) + 0.5, float(centre[1]) + 0.5)
    angle = rng.uniform(-rotation_deg, rotation_deg)
    direction = rng.uniform(0, 2 * math.pi)
    offset = rng.uniform(0.6, 1.0) * shift_m
    centre_px = (shape[1] / 2, shape[0] / 2)
    wrong = (Affine.translation(offset * math.cos(direction), offset * math.sin(direction))
             * true * Affine.rotation(angle, pivot=centre_px))
    folder.mkdir(parents=True, exist_ok=True)
    line = shapely.LineString([true @ tuple(p) for p in scene.pipe])
    pipes = folder / "pipes.gpkg"
    pyogrio.raw.write(pipes, shapely.to_wkb(np.array([line], dtype=object)),
                      field_data=[np.array(["DH-1"], dtype=object)], fields=["pipe_id"],
                      crs="EPSG:25832", geometry_type="LineString", driver="GPKG")
    lamps = [k + 1 for k, c in enumerate(scene.instance_classes) if c == "lamp"]
    lamp_xy = []
    for k in lamps:
        ys, xs = np.nonzero(scene.instances == k)
        if ys.size:
            lamp_xy.append((xs.mean() + 0.5, ys.mean() + 0.5))
    return FlightPair(folder, fam.name, pipes,
                      _write_tif(folder / "night1.tif", night1, true, "EPSG:25832"),
                      _write_tif(folder / "night2.tif", night2, wrong, new_crs),
                      pair_truth, lamp_xy, new_crs, true, wrong)


def predict_night(ortho: Path, pipes: Path, out: Path, model_dir: Path | None) -> Path:
    """``taseg predict ORTHO --pipes`` (GeoPackage only) into ``out``."""
    from thermal_anomaly_segmenter.cli.parser import main

    args = ["predict", str(ortho), "--pipes", str(pipes), "--out", str(out), "--outputs",
            "gpkg,json", "-q"]
    if model_dir is not None:
        args += ["--model-dir", str(model_dir)]
    if main(args) != 0:
        raise RuntimeError(f"taseg predict {ortho} failed")
    return out


def statuses_of(pair: FlightPair, changes_gpkg: Path, reach_m: float = 1.0) -> dict:
    """Planted status -> the status of the change whose footprint lies within ``reach_m``
    of that leak (the nearest one), or ``"missed"``."""
    import pyogrio.raw
    import shapely

    from thermal_anomaly_segmenter.geo.network import reproject

    meta, _, wkb, cols = pyogrio.raw.read(changes_gpkg, layer="changes")
    geoms = shapely.from_wkb(wkb)
    if len(geoms):
        geoms = reproject(geoms, meta["crs"], "EPSG:25832")
    status = list(cols[list(meta["fields"]).index("status")])
    got = {}
    for planted in pair.truth:
        where = shapely.Point(pair.where(planted))
        dist = shapely.distance(geoms, where) if len(geoms) else np.array([])
        k = int(np.argmin(dist)) if len(dist) else -1
        got[planted] = status[k] if k >= 0 and dist[k] <= reach_m else "missed"
    return got


def run_pair(pair: FlightPair, model_dir: Path | None) -> dict:
    from thermal_anomaly_segmenter.cli.parser import main

    old = predict_night(pair.old, pair.pipes, pair.folder / "old", model_dir)
    new = predict_night(pair.new, pair.pipes, pair.folder / "new", model_dir)
    if main(["compare", str(old), str(new), "--out", str(pair.folder / "cmp")]) != 0:
        raise RuntimeError("taseg compare failed")
    return statuses_of(pair, pair.folder / "cmp" / "changes.gpkg")


def main(argv: list[str] | None = None) -> int:
    from thermal_anomaly_segmenter.scenes import FAMILIES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "classical")
    parser.add_argument("--shift", type=float, default=1.5, help="largest georeference "
                        "error of night 2, metres")
    parser.add_argument("--first-seed", type=int, default=100, help="scene seed of pair 0 "
                        "(pair k uses FIRST_SEED + k)")
    parser.add_argument("--only", type=lambda v: {int(k) for k in v.split(",")},
                        help="run only these pair indices (comma-separated), e.g. 2,8")
    parser.add_argument("--keep", type=Path, help="write the pairs (both nights' outputs "
                        "and the comparison) into this folder instead of a temporary one")
    args = parser.parse_args(argv)
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep} is not empty (a run would mix with it)")
    families = list(FAMILIES)
    right = total = ran = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="compare-pairs-") as tmp:
        for k in range(args.pairs):
            if args.only is not None and k not in args.only:
                continue
            family = families[k % len(families)]
            crs = "EPSG:4326" if k % 4 == 3 else "EPSG:25832"
            seed = args.first_seed + k
            try:
                pair = make_pair((args.keep or Path(tmp)) / f"p{k}", family, seed,
                                 shift_m=args.shift, new_crs=crs)
            except ValueError as exc:  # a scene whose pipe leaves no room: not a pair
                print(f"pair {k:2d} {family:18s} seed {seed} skipped: {exc}", flush=True)
                continue
            ran += 1
            got = run_pair(pair, args.model_dir)
            ok = sum(got[s] == s for s in got)
            right, total = right + ok, total + len(got)
            print(f"pair {k:2d} {family:18s} {crs:10s} {ok}/{len(got)} "
                  + " ".join(f"{s}->{g}" for s, g in got.items()), flush=True)
    print(f"planted leaks with the right status: {right}/{total} ({right / max(total, 1):.1%}) "
          f"over {ran} pairs (seeds from {args.first_seed}), georeference error up to "
          f"{args.shift} m; {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
