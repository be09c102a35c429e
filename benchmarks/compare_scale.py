"""``taseg compare`` on large surveys: N x N anomalies, time and peak RSS.

    .venv/bin/python benchmarks/compare_scale.py --count 100000

Writes two GeoPackages of ``count`` anomaly polygons each (layer ``anomalies``, written by
the writer ``taseg predict --pipes`` uses), spread along a grid of pipes over a city-sized
area (EPSG:25832, one anomaly every ~10 m of pipe on 100 pipes). NEW is OLD shifted by
1.2 m with 5 % of the anomalies repaired (gone), 5 % new, 10 % grown; OLD is written in
EPSG:3857 so the comparison reprojects it. Then times, in one process, reading both
(``read_survey``), matching (``compare_surveys``) and writing the three output files
(``write_changes``), and prints the peak RSS (``ru_maxrss``) and the status counts (which
must equal the planted ones).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

ORIGIN = (450000.0, 5420000.0)


def write_survey(path: Path, xy: np.ndarray, radius: np.ndarray, dt: np.ndarray,
                 pipe: np.ndarray, chainage: np.ndarray, crs: str) -> None:
    import shapely

    from thermal_anomaly_segmenter.geo.network import reproject
    from thermal_anomaly_segmenter.geo.vectors import write_anomaly_layers

    polys = shapely.buffer(shapely.points(xy), radius, quad_segs=2)
    if crs != "EPSG:25832":
        polys = reproject(polys, "EPSG:25832", crs)
    records = [{"id": i + 1, "area_px": int(a / 0.01), "area_m2": float(a),
                "max_t_degc": -2.0 + 2 * d, "mean_t_degc": -2.0 + d, "mean_dt_degc": float(d),
                "mean_probability": 0.9, "pipe_id": f"P-{p}", "chainage_m": float(c),
                "offset_m": 0.0}
               for i, (a, d, p, c) in enumerate(zip(np.pi * radius ** 2, dt, pipe, chainage,
                                                    strict=True))]
    write_anomaly_layers(polys, records, crs, path, None)


def make_surveys(folder: Path, count: int, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    pipes = 100
    per_pipe = -(-count // pipes)
    spacing = 10.0
    pipe = np.repeat(np.arange(pipes), per_pipe)[:count]
    chainage = np.tile(np.arange(per_pipe) * spacing + 5.0, pipes)[:count]
    xy = np.column_stack([ORIGIN[0] + chainage, ORIGIN[1] + pipe * 200.0])
    radius = rng.uniform(0.4, 0.9, count)
    dt = rng.uniform(1.5, 5.0, count)
    fate = rng.random(count)
    gone, grown = fate < 0.05, (fate >= 0.05) & (fate < 0.15)
    n_new = int(0.05 * count)
    write_survey(folder / "old.gpkg", xy, radius, dt, pipe, chainage, "EPSG:3857")
    keep = ~gone
    new_xy = xy[keep] + [1.2, 0.0]
    new_r = np.where(grown[keep], radius[keep] * 1.6, radius[keep] * rng.uniform(0.95, 1.05,
                                                                                  keep.sum()))
    new_dt = dt[keep] + rng.normal(0, 0.2, keep.sum())
    extra = rng.integers(0, count, n_new)  # a new leak halfway to the next one
    write_survey(folder / "new.gpkg",
                 np.concatenate([new_xy, xy[extra] + [spacing / 2, 0.0]]),
                 np.concatenate([new_r, radius[extra]]), np.concatenate([new_dt, dt[extra]]),
                 np.concatenate([pipe[keep], pipe[extra]]),
                 np.concatenate([chainage[keep], chainage[extra] + spacing / 2]),
                 "EPSG:25832")
    return {"gone": int(gone.sum()), "grown": int(grown.sum()), "new": n_new}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args(argv)
    from thermal_anomaly_segmenter.geo.compare import compare_surveys
    from thermal_anomaly_segmenter.geo.compare_outputs import write_changes
    from thermal_anomaly_segmenter.geo.survey_layer import read_survey

    with tempfile.TemporaryDirectory(prefix="compare-scale-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        planted = make_surveys(folder, args.count)
        t1 = time.perf_counter()
        old = read_survey(folder / "old.gpkg", "OLD")
        new = read_survey(folder / "new.gpkg", "NEW")
        t2 = time.perf_counter()
        comparison = compare_surveys(old, new)
        t3 = time.perf_counter()
        write_changes(comparison, folder / "out")
        t4 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(old)} x {len(new)} anomalies (inputs written in {t1 - t0:.1f} s)")
    print(f"read {t2 - t1:.2f} s, match + status {t3 - t2:.2f} s, write "
          f"{t4 - t3:.2f} s, total {t4 - t1:.2f} s; peak RSS {peak:.0f} MiB")
    print(f"statuses: {comparison.summary()}; planted: {planted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
