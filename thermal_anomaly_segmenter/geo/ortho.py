"""Streamed inference of a georeferenced orthomosaic of any size.

The raster is read from disk window by window with rasterio, and only the blocks that touch
the pipe corridor are read at all. Each block, with a halo of context around it, runs
through :meth:`Segmenter.probabilities` (the same overlap-blended tiling as large frames);
its core is written straight into tiled GeoTIFFs of probability and mask, then converted to
Cloud-Optimised GeoTIFFs (GDAL's COG driver streams, with overviews). Anomalies are traced
per block with ``rasterio.features.shapes`` and merged across block borders, so memory
stays bounded by the block size whatever the raster size.

Two streaming passes: the first reads only the corridor's extent in each block and gathers
the corridor's median temperature (the reference of relative inputs and of dT, as for a
frame; exact to 0.01 degC through a histogram), the second predicts. Each tile is built
like a frame: T_m outside the corridor is the tile's coldest pixel minus the frames' offset.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import warnings
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.config import PredictOptions, get_settings
from thermal_anomaly_segmenter.errors import InvalidInputError, OutputError
from thermal_anomaly_segmenter.geo.network import Corridor, PipeNetwork, reproject
from thermal_anomaly_segmenter.geo.vectors import write_anomaly_layers
from thermal_anomaly_segmenter.inference.postprocess import (
    Anomaly,
    Prediction,
    anomaly_mask,
    extract_anomalies,
)
from thermal_anomaly_segmenter.inference.segmenter import Segmenter, blend_window
from thermal_anomaly_segmenter.io.atomic import owned_name
from thermal_anomaly_segmenter.io.frames import (
    FILL_OFFSET_DEGC,
    MIN_SIDE_PX,
    T_MAX_DEGC,
    T_MIN_DEGC,
    Frame,
    GeoInfo,
)
from thermal_anomaly_segmenter.io.georef import georef, pixel_bounds
from thermal_anomaly_segmenter.io.gis_guard import (
    check_corridor_share,
    check_raster,
    open_raster,
    raster_env,
)

log = logging.getLogger(__name__)

#: Output kinds of an orthomosaic and their file-name suffixes.
ORTHO_NAMES: dict[str, str] = {
    "probability": "_prob.tif",
    "mask": "_mask.tif",
    "overlay": "_overlay.png",
    "gpkg": ".gpkg",
    "geojson": ".geojson",
    "json": ".json",
}


def ortho_outputs(outputs: Collection[str] | None) -> tuple[str, ...]:
    """``outputs`` in :data:`ORTHO_NAMES` order (all when None); a clear error for others."""
    if outputs is None:
        return tuple(ORTHO_NAMES)
    unknown = sorted(set(outputs) - set(ORTHO_NAMES))
    if unknown or not outputs:
        raise InvalidInputError(
            f"outputs with --pipes must be a non-empty subset of {', '.join(ORTHO_NAMES)}"
            + (f"; got {', '.join(unknown)}" if unknown else "")
        )
    return tuple(k for k in ORTHO_NAMES if k in outputs)


#: About the side of a processing block, pixels (rounded to whole tile steps by
#: :func:`block_geometry`; a block and its halo are ~50 MB of float32 inputs).
DEFAULT_BLOCK = 2048
#: Largest side of the downsampled overlay PNG.
OVERLAY_MAX_SIDE = 2048
#: GDAL block cache while streaming: bounded, whatever the raster size.
GDAL_CACHE_BYTES = 256 << 20
_HIST_STEP = 0.01  # degC per histogram bin of the corridor median


@dataclass
class OrthoResult:
    """What predicting one orthomosaic produced."""

    outputs: dict[str, Path]
    records: list[dict[str, Any]]
    corridor_px: int
    blocks: int
    median_degc: float


@dataclass
class _Fragment:
    geom: Any  # shapely polygon in raster pixel coordinates (col, row)
    n: int
    sum_t: float
    max_t: float
    sum_p: float
    #: Moments of (T_u - corridor median) of its pixels, for the heat loss (they add up).
    moments: np.ndarray


def stream_overlap(overlap: float) -> float:
    """Tile overlap of the streamed path: half the frames' ``overlap``.

    Tiles are placed along the corridor (:meth:`_Block.tiles`) so that every corridor pixel
    keeps at least half of this overlap, a quarter of ``overlap``, as context on every side
    (32 rows, 40 columns of a 512 x 640 tile at the default 0.25), and overlapping tiles blend
    with the ramp of this overlap. Along a pipe one tile runs the block's length (the block
    halos overlap by this overlap), which brings the network's input pixels per corridor
    pixel near those of disjoint frames.
    """
    return overlap / 2


def _edges(length: int, side: int, first: int) -> list[int]:
    # a remainder under half a side joins the last block rather than run as a thin strip
    return [0, *range(first, length - side // 2, side), length]


def _windows(
    height: int, width: int, sides: tuple[int, int], halos: tuple[tuple[int, int], ...]
) -> Iterator[tuple[int, int, int, int]]:
    """Blocks; the first of each axis is longer by the leading halo (see
    :func:`block_geometry`)."""
    rows = _edges(height, sides[0], sides[0] + halos[0][0])
    cols = _edges(width, sides[1], sides[1] + halos[1][0])
    for r, r1 in pairwise(rows):
        for c, c1 in pairwise(cols):
            yield r, c, r1 - r, c1 - c


def block_geometry(
    tile: tuple[int, int], overlap: float, block: int
) -> tuple[tuple[int, int], tuple[tuple[int, int], tuple[int, int]]]:
    """Block sides (about ``block``) and the halo (before, after) per axis.

    With the tile step ``s``, a block is ``k * s`` long (a pipe that crosses it runs in
    one tile of the block's length with its halo, :meth:`_Block.tiles`), and the halos,
    summing to the tile overlap ``t - s``, give a corridor pixel at a block border the same
    context as inside: half the overlap on each side.
    """
    steps = [max(1, int(t * (1.0 - overlap))) for t in tile]
    halos = [((t - s) // 2, t - s - (t - s) // 2) for t, s in zip(tile, steps, strict=True)]
    sides = [max(1, round(block / s)) * s for s in steps]
    return (sides[0], sides[1]), (halos[0], halos[1])


class _Source:
    """The orthomosaic opened with rasterio: the T_u band, its validity, the corridor."""

    def __init__(self, dataset, corridor: Corridor, source: str) -> None:
        self.ds, self.corridor, self.source = dataset, corridor, source
        if dataset.count not in (1, 3):
            raise InvalidInputError(
                f"{source}: orthomosaic has {dataset.count} bands; give one band (T_u) or "
                "three (T_m, T_m, T_u)"
            )
        self.band = dataset.count  # T_u is the last band
        self.nodata = dataset.nodatavals[self.band - 1]

    def corridor_mask(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        """The corridor rasterised on a window (before pixel validity)."""
        from rasterio.windows import Window
        from rasterio.windows import transform as window_transform

        return self.corridor.mask(window_transform(Window(col, row, w, h), self.ds.transform),
                                  (h, w))

    def read(self, row: int, col: int, h: int, w: int, corridor: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(T_u float32, valid, corridor)`` of a window (``corridor``: already rasterised)."""
        from rasterio.windows import Window

        t_u = self.ds.read(self.band, window=Window(col, row, w, h), out_dtype="float32")
        valid = np.isfinite(t_u)
        if self.nodata is not None and not math.isnan(self.nodata):
            valid &= t_u != np.float32(self.nodata)
        if corridor is None:
            corridor = self.corridor_mask(row, col, h, w)
        corridor &= valid
        return t_u, valid, corridor


def _extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)`` of the true pixels of a mask that has some."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _check_plausible(values: np.ndarray, source: str) -> None:
    lo, hi = float(values.min()), float(values.max())
    if lo < T_MIN_DEGC or hi > T_MAX_DEGC:
        raise InvalidInputError(
            f"{source}: corridor temperatures {lo:.1f}..{hi:.1f} lie outside "
            f"{T_MIN_DEGC:g}..{T_MAX_DEGC:g} degC; convert raw counts or Kelvin to degC first"
        )


def _statistics(src: _Source, blocks) -> tuple[float, int]:
    """Corridor median (histogram, 0.01 degC) and corridor pixel count. Each block is read
    only over its corridor's extent (a block often holds one thin pipe)."""
    bins = int((T_MAX_DEGC - T_MIN_DEGC) / _HIST_STEP) + 1
    hist = np.zeros(bins, np.int64)
    for row, col, h, w in blocks:
        corridor = src.corridor_mask(row, col, h, w)
        if not corridor.any():
            continue
        y0, y1, x0, x1 = _extent(corridor)
        t_u, _, corridor = src.read(row + y0, col + x0, y1 - y0, x1 - x0,
                                    corridor[y0:y1, x0:x1])
        values = t_u[corridor]
        if values.size:
            _check_plausible(values, src.source)
            idx = np.rint((values - T_MIN_DEGC) / _HIST_STEP).astype(np.int64)
            hist += np.bincount(idx, minlength=bins)
    total = int(hist.sum())
    if not total:
        raise InvalidInputError(
            f"{src.source}: the pipe corridor covers no valid pixel of the orthomosaic"
        )
    median_bin = int(np.searchsorted(np.cumsum(hist), (total + 1) / 2))
    return T_MIN_DEGC + median_bin * _HIST_STEP, total


def _fragments(labels: np.ndarray, anomalies: list[Anomaly], row: int, col: int) -> list:
    import shapely
    from affine import Affine
    from rasterio.features import shapes

    parts: dict[int, list] = {}
    offset = Affine.translation(col, row)  # pixel coordinates: exact, shared by neighbours
    for geom, value in shapes(labels, mask=labels > 0, connectivity=8, transform=offset):
        parts.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    out = []
    for a in anomalies:
        geom = shapely.union_all(parts[a.id]) if len(parts[a.id]) > 1 else parts[a.id][0]
        n = a.area_px
        out.append(_Fragment(geom, n, a.mean_t_degc * n, a.max_t_degc, a.mean_probability * n,
                             np.asarray(a.dt_moments, np.float64)))
    return out


def _merge(fragments: list[_Fragment]) -> list[_Fragment]:
    """Join fragments that touch across block borders (8-connectivity: corners count)."""
    import shapely

    if len(fragments) < 2:
        return fragments
    geoms = np.array([f.geom for f in fragments], dtype=object)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    parent = list(range(len(fragments)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[_Fragment]] = {}
    for i, frag in enumerate(fragments):
        groups.setdefault(find(i), []).append(frag)
    merged = []
    for group in groups.values():
        if len(group) == 1:
            merged.append(group[0])
            continue
        merged.append(_Fragment(
            shapely.union_all([f.geom for f in group]),
            sum(f.n for f in group),
            sum(f.sum_t for f in group),
            max(f.max_t for f in group),
            sum(f.sum_p for f in group),
            np.sum([f.moments for f in group], axis=0),
        ))
    return merged


def _cover(occupied: np.ndarray, length: int, tile: int, margin: tuple[int, int]
           ) -> list[tuple[int, int, int]]:
    """Greedy cover of the occupied positions (sorted) of an axis of ``length`` by tiles.

    Each tile starts ``margin[0]`` before the first position not yet covered and covers
    the positions that keep at least ``margin`` context inside it on both sides (or reach
    the end of the axis), so a corridor band runs in one row of tiles wherever it lies,
    not in two when it crosses a boundary of a fixed grid. Returns ``(start, first, end)``
    per tile: the positions ``first <= p < end`` are the tile's.
    """
    before, after = margin
    tiles = []
    i = 0
    while i < len(occupied):
        first = int(occupied[i])
        start = min(max(0, first - before), length - tile)
        end = length if start + tile >= length else start + tile - after
        tiles.append((start, first, end))
        i = int(np.searchsorted(occupied, end))
    return tiles


def _cover_long(occupied: np.ndarray, length: int, min_len: int, max_len: int,
                margin: tuple[int, int], stride: int) -> list[tuple[int, int]]:
    """Cover the occupied positions (sorted) of an axis by few long tiles ``(start, size)``.

    Like :func:`_cover`, but each tile grows from ``min_len`` up to ``max_len`` (in steps
    of ``stride``, the network's) to take in the positions that follow, until a gap longer
    than ``min_len`` (a new tile would cost less than bridging it); every position keeps
    ``margin`` context inside its tile, or lies at the axis's end.
    """
    before, after = margin
    gaps = np.diff(occupied)
    tiles = []
    i = 0
    while i < len(occupied):
        first = int(occupied[i])
        start = max(0, first - before)
        # the positions this tile could hold with context, up to the first long gap
        last_i = int(np.searchsorted(occupied, start + max_len - after)) - 1
        breaks = np.flatnonzero(gaps[i:last_i] > min_len)
        last = int(occupied[i + int(breaks[0]) if len(breaks) else max(i, last_i)])
        size = max(min_len, last + 1 + after - start)
        size = min(-(-size // stride) * stride, max(max_len, min_len), length)
        start = min(start, length - size)
        end = length if start + size >= length else start + size - after
        tiles.append((start, size))
        i = int(np.searchsorted(occupied, end))
    return tiles


class _Block:
    """One block read with its halo: chooses the tiles its core's corridor needs, builds
    their inputs tile by tile and blends their probabilities over the core's corridor
    extent only (a block often holds one thin pipe)."""

    def __init__(self, t_u: np.ndarray, valid: np.ndarray, corr: np.ndarray,
                 core: tuple[int, int, int, int], median: float) -> None:
        self.t_u, self.valid, self.corr, self.median = t_u, valid, corr, median
        y0, y1, x0, x1 = core
        ey0, ey1, ex0, ex1 = _extent(corr[y0:y1, x0:x1])
        self.box = (slice(y0 + ey0, y0 + ey1), slice(x0 + ex0, x0 + ex1))

    def inputs(self, window: tuple[slice, slice]) -> np.ndarray:
        """``(T_m, T_m, T_u)`` of a window, composed as a frame is (T_m outside the corridor
        is the window's coldest pixel minus the fill offset); unusable T_u (nodata,
        implausible) gets the corridor median: context only, as the corridor excludes it."""
        t_u = self.t_u[window]
        lo, hi = float(t_u.min()), float(t_u.max())  # NaN fails both tests below
        if not (lo >= T_MIN_DEGC and hi <= T_MAX_DEGC and self.valid[window].all()):
            usable = self.valid[window] & (t_u >= T_MIN_DEGC) & (t_u <= T_MAX_DEGC)
            t_u = np.where(usable, t_u, np.float32(self.median))
            lo = float(t_u.min())
        t_m = np.where(self.corr[window], t_u, np.float32(lo - FILL_OFFSET_DEGC))
        out = np.empty((*t_u.shape, 3), np.float32)
        out[..., 0] = t_m  # contiguous sources: writing the interleaved channels is cheap
        out[..., 1] = t_m
        out[..., 2] = t_u
        return out

    def tiles(self, tile: tuple[int, int], margins, max_len: tuple[int, int] | None = None,
              stride: int = 32) -> list[tuple[int, int, int, int]]:
        """Tiles ``(row, col, height, width)`` (block coordinates) such that every corridor
        pixel of the core lies in some tile with at least ``margins`` (rows, columns; (before,
        after)) of context around it, or the raster's edge.

        Bands of ``tile`` rows cover the corridor's rows greedily; in each band, one tile
        runs along the corridor's columns, as long as they need (a multiple of ``stride``,
        at least ``tile[1]``, at most ``max_len[1]``) instead of a row of overlapping
        tiles: along a pipe, the network then sees each pixel about once. The same plan
        with bands of columns is taken instead where it forwards fewer pixels (a pipe that
        runs down the block).
        """
        max_len = max_len or tile
        across = self._plan(self.corr, self.box, tile, margins, max_len[1], stride)
        down = self._plan(self.corr.T, self.box[::-1], tile[::-1], margins[::-1],
                          max_len[0], stride)
        if sum(h * w for *_, h, w in down) < sum(h * w for *_, h, w in across):
            return [(r, c, h, w) for c, r, w, h in down]
        return across

    @staticmethod
    def _plan(corr: np.ndarray, box: tuple[slice, slice], tile: tuple[int, int], margins,
              max_len: int, stride: int) -> list[tuple[int, int, int, int]]:
        box_y, box_x = box
        sub = corr[box]
        height, width = corr.shape
        th = min(tile[0], height)
        rows = np.flatnonzero(sub.any(axis=1)) + box_y.start
        tiles = []
        for r, first, end in _cover(rows, height, th, margins[0]):
            band = sub[first - box_y.start:end - box_y.start]
            cols = np.flatnonzero(band.any(axis=0)) + box_x.start
            tiles += [(r, c, th, w) for c, w in
                      _cover_long(cols, width, tile[1], max(tile[1], max_len), margins[1],
                                  stride)]
        return tiles

    def probability(self, segmenter: Segmenter, options: PredictOptions,
                    tile: tuple[int, int], margins) -> tuple[tuple[slice, slice], np.ndarray]:
        """The blended probability over the core's corridor extent (0 off the corridor).

        A forward pass holds at most ``options.batch_size`` tiles' pixels, or one tile as
        long as the block (with its halo) where that is more."""
        box_y, box_x = self.box
        acc = np.zeros((box_y.stop - box_y.start, box_x.stop - box_x.start), np.float32)
        total = np.zeros_like(acc)
        th, tw = min(tile[0], self.corr.shape[0]), min(tile[1], self.corr.shape[1])
        budget = options.batch_size * th * tw
        # the ramp of the frames' blending, in pixels, on every tile whatever its length
        ramps = (max(1, int(th * options.tile_overlap)), max(1, int(tw * options.tile_overlap)))
        height, width = self.corr.shape
        tiles = self.tiles((th, tw), margins,
                           (max(budget // tw, height), max(budget // th, width)))
        budget = max(budget, height * tw, th * width)
        chunks: list[list[tuple[int, int, int, int]]] = [[]]
        for t in tiles:
            if chunks[-1] and sum(h * w for *_, h, w in chunks[-1]) + t[2] * t[3] > budget:
                chunks.append([])
            chunks[-1].append(t)
        for chunk in filter(None, chunks):
            frames = [Frame(self.inputs((slice(r, r + h), slice(c, c + w))),
                            self.corr[r:r + h, c:c + w], "tile") for r, c, h, w in chunk]
            run = dataclasses.replace(options, batch_size=len(chunk),
                                      tile_size=(max(h for *_, h, _ in chunk),
                                                 max(w for *_, w in chunk)))
            probs = segmenter.probabilities(frames, run, [self.median] * len(frames))
            for (r, c, h, w), prob in zip(chunk, probs, strict=True):
                # the tile's part of the box, in tile and in box coordinates
                ty0, ty1 = max(r, box_y.start), min(r + h, box_y.stop)
                tx0, tx1 = max(c, box_x.start), min(c + w, box_x.stop)
                if ty0 >= ty1 or tx0 >= tx1:
                    continue
                weight = (blend_window(h, ramps[0])[ty0 - r:ty1 - r, None]
                          * blend_window(w, ramps[1])[None, tx0 - c:tx1 - c])
                dst = (slice(ty0 - box_y.start, ty1 - box_y.start),
                       slice(tx0 - box_x.start, tx1 - box_x.start))
                acc[dst] += prob[ty0 - r:ty1 - r, tx0 - c:tx1 - c] * weight
                total[dst] += weight
        np.divide(acc, total, out=acc, where=total > 0)
        np.clip(acc, 0.0, 1.0, out=acc)
        return self.box, np.where(self.corr[self.box], acc, np.float32(0))


def _tiff_profile(dataset, dtype: str) -> dict[str, Any]:
    return {
        "driver": "GTiff", "width": dataset.width, "height": dataset.height, "count": 1,
        "dtype": dtype, "crs": dataset.crs, "transform": dataset.transform, "tiled": True,
        # fast deflate: a scratch file, compressed again by the COG conversion
        "blockxsize": 512, "blockysize": 512, "compress": "deflate", "zlevel": 1,
        "sparse_ok": True,
        "bigtiff": "if_safer",
    }


def _to_cog(tmp: Path, final: Path, resampling: str) -> None:
    """Convert a tiled GeoTIFF into a COG (GDAL streams it and adds overviews)."""
    from rasterio.shutil import copy

    from thermal_anomaly_segmenter.io.atomic import atomic_path

    staged = None
    try:
        # GDAL's own scratch file (<staged>.ovr.tmp) carries the staged name's mark too.
        with atomic_path(final, swept=True) as staged:
            # SPARSE_OK: tiles outside the corridor stay empty on disk (read as 0) and GDAL
            # skips them instead of compressing zeros: half the conversion time at 16000^2.
            # NUM_THREADS: GDAL compresses the tiles and overviews on all cores (the network
            # is done by now); 1.45 -> 0.82 s for a 16000^2 probability COG on 2 cores.
            copy(tmp, staged, driver="COG", compress="deflate", blocksize=512,
                 overview_resampling=resampling, bigtiff="if_safer", sparse_ok=True,
                 num_threads="ALL_CPUS")
    finally:
        tmp.unlink(missing_ok=True)
        if staged is not None:
            Path(f"{staged}.ovr.tmp").unlink(missing_ok=True)


def predict_ortho(
    path: str | Path,
    network: PipeNetwork,
    segmenter: Segmenter,
    options: PredictOptions,
    out_dir: Path,
    stem: str,
    *,
    corridor_width_m: float,
    block: int = DEFAULT_BLOCK,
    model_dir: str | None = None,
    outputs: Collection[str] | None = None,
) -> OrthoResult:
    """Predict one georeferenced raster streamed from disk; write ``out_dir/<stem>*``.

    Writes ``outputs`` (default all of :data:`ORTHO_NAMES`): probability and mask COGs with
    the input's CRS and transform (0 outside the processed corridor), the GeoPackage and
    GeoJSON of anomaly polygons, a JSON report with the same attributes and a downsampled
    overlay PNG. :attr:`OrthoResult.records` holds the anomalies whatever is written.

    Raises:
        InvalidInputError: the raster has no georeference, bad bands or implausible values,
            or the pipe layer does not overlap it.
    """
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    path, out_dir = Path(path), Path(out_dir)
    source = path.name
    wanted = ortho_outputs(outputs)
    if options.threshold is None:  # not given: the model folder's stored threshold
        options = dataclasses.replace(options, threshold=segmenter.config.threshold)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with raster_env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), _open(path, source) as ds:
            geo = georef(ds)
            if geo is None or ds.crs is None:
                raise InvalidInputError(
                    f"{source}: has no georeference (CRS and transform); --pipes needs a "
                    "GeoTIFF, or give a corridor mask instead"
                )
            check_raster(ds, source, get_settings().max_ortho_pixels)
            if min(ds.height, ds.width) < MIN_SIDE_PX:
                raise InvalidInputError(f"{source}: raster {ds.height} x {ds.width} is too small")
            if np.dtype(ds.dtypes[-1]).itemsize == 1:
                raise InvalidInputError(
                    f"{source}: 8-bit pixels hold colours, not temperatures; give float degC"
                )
            bounds = pixel_bounds(ds.transform, 0, 0, ds.height, ds.width)
            corridor = network.corridor_for(ds.crs, bounds, corridor_width_m, source)
            src = _Source(ds, corridor, source)
            try:
                return _run(src, geo, segmenter, options, out_dir, stem, block, model_dir,
                            wanted)
            except RasterioIOError as exc:  # a truncated or corrupt block surfaces mid-stream
                reason = " ".join(str(exc.__cause__ or exc).split())[:200]
                raise InvalidInputError(
                    f"{source}: pixel data cannot be read, the file is truncated or corrupt "
                    f"({reason})"
                ) from None


def _open(path: Path, source: str):
    if not path.is_file():
        raise FileNotFoundError(2, "no such file", str(path))
    try:
        return open_raster(path, source)
    except InvalidInputError:
        raise InvalidInputError(
            f"{source}: not a raster GDAL can read as GeoTIFF; --pipes needs a georeferenced "
            "GeoTIFF "
            "(orthomosaic or frame)"
        ) from None


def _run(src: _Source, geo: GeoInfo, segmenter: Segmenter, options: PredictOptions,
         out_dir: Path, stem: str, block: int, model_dir: str | None,
         outputs: tuple[str, ...]) -> OrthoResult:
    import contextlib

    import rasterio
    from rasterio.windows import Window

    ds, corridor = src.ds, src.corridor
    options = dataclasses.replace(options, tile_overlap=stream_overlap(options.tile_overlap))
    if geo.gsd_m is not None:  # the raster's, for its tiles (frames without a georeference)
        # to be seen at the model's GSD where they are finer (.scale)
        options = dataclasses.replace(options, gsd_m=geo.gsd_m)
    tile = segmenter.tile_size(options)
    sides, halos = block_geometry(tile, options.tile_overlap, block)
    (before_y, after_y), (before_x, after_x) = halos
    active = [
        w for w in _windows(ds.height, ds.width, sides, halos)
        if corridor.touches(pixel_bounds(ds.transform, *w))
    ]
    check_corridor_share(active, src.source, get_settings().max_ortho_pixels)
    median, corridor_px = _statistics(src, active)
    canvas = _Canvas(ds.height, ds.width) if "overlay" in outputs else None
    out_dir.mkdir(parents=True, exist_ok=True)
    final = {k: out_dir / f"{stem}{ORTHO_NAMES[k]}" for k in outputs}
    tmp = {k: out_dir / f"{owned_name(f'{stem}_{k}')}part.tif"
           for k in ("probability", "mask") if k in final}
    fragments: list[_Fragment] = []
    try:
        with contextlib.ExitStack() as stack:
            prob_out, mask_out = (
                stack.enter_context(rasterio.open(tmp[k], "w", **_tiff_profile(ds, dtype)))
                if k in tmp else None
                for k, dtype in (("probability", "float32"), ("mask", "uint8"))
            )
            for row, col, h, w in active:
                r0, c0 = max(0, row - before_y), max(0, col - before_x)
                r1, c1 = min(ds.height, row + h + after_y), min(ds.width, col + w + after_x)
                t_u, valid, corr = src.read(r0, c0, r1 - r0, c1 - c0)
                core = (row - r0, row - r0 + h, col - c0, col - c0 + w)
                if canvas is not None:
                    canvas.add(row, col, t_u[core[0]:core[1], core[2]:core[3]],
                               valid[core[0]:core[1], core[2]:core[3]])
                if not corr[core[0]:core[1], core[2]:core[3]].any():
                    continue
                block_in = _Block(t_u, valid, corr, core, median)
                box, prob_box = block_in.probability(segmenter, options, tile, halos)
                # Post-process only the core's corridor extent: outside it everything is 0
                # (a sparse GeoTIFF block reads as 0), and a block often holds one thin pipe.
                mask = anomaly_mask(prob_box, corr[box], options.threshold)
                y0, x0 = r0 + box[0].start, c0 + box[1].start
                win = Window(x0, y0, prob_box.shape[1], prob_box.shape[0])
                if prob_out is not None:
                    prob_out.write(prob_box, 1, window=win)
                if mask_out is not None:
                    mask_out.write(mask, 1, window=win)
                if mask.any():  # components only over the anomalies' extent: they are rare
                    ey0, ey1, ex0, ex1 = _extent(mask)
                    sub = (slice(box[0].start + ey0, box[0].start + ey1),
                           slice(box[1].start + ex0, box[1].start + ex1))
                    # Anomalies lie in the corridor (valid, plausible T_u) and their
                    # statistics read T_u only: a broadcast view stands for the channels.
                    _, labels, anomalies = extract_anomalies(
                        Frame(np.broadcast_to(t_u[sub][..., None], (ey1 - ey0, ex1 - ex0, 3)),
                              corr[sub], "block", None),
                        prob_box[ey0:ey1, ex0:ex1], options.threshold,
                        corridor_median=median, min_area_px=1,
                    )
                    fragments += _fragments(labels, anomalies, y0 + ey0, x0 + ex0)
        merged = [f for f in _merge(fragments) if f.n >= options.min_area_px]
        merged.sort(key=lambda f: (-f.n, f.geom.bounds[1], f.geom.bounds[0]))
        polygons, records = _describe(merged, ds.transform, corridor, median, geo)
        _add_heat_loss(records, merged, median, options)
        crs = geo.crs or ds.crs.to_wkt()
        write_anomaly_layers(polygons, records, crs, final.get("gpkg"), final.get("geojson"),
                             conditions=options.conditions)
        if "overlay" in final:
            _write_overlay(src, canvas, merged, median, segmenter, options, final["overlay"],
                           stem)
        for kind, resampling in (("probability", "average"), ("mask", "nearest")):
            if kind in tmp:
                _to_cog(tmp[kind], final[kind], resampling)
    except OSError as exc:
        raise OutputError(f"cannot write outputs to {out_dir}: {exc}") from exc
    finally:
        for part in tmp.values():
            part.unlink(missing_ok=True)
    if "json" in final:
        from thermal_anomaly_segmenter.io.atomic import atomic_write

        doc = _report(src, records, median, corridor_px, len(active), segmenter, options, geo,
                      model_dir, stem)
        atomic_write(final["json"],
                     (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode())
    return OrthoResult(final, records, corridor_px, len(active), median)


def _describe(merged: list[_Fragment], transform, corridor: Corridor, median: float,
              geo: GeoInfo) -> tuple[list, list[dict[str, Any]]]:
    import shapely

    matrix = [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f]
    polygons = [shapely.affinity.affine_transform(f.geom, matrix) for f in merged]
    metric = reproject(np.asarray(polygons, dtype=object), corridor.crs, corridor.metric)
    located = corridor.locate(metric)
    decimals = 3 if geo.metric else 9
    records = []
    for i, (frag, poly, poly_m, (pipe, chainage, offset)) in enumerate(
        zip(merged, polygons, metric, located, strict=True), start=1
    ):
        mean_t = frag.sum_t / frag.n
        centroid = poly.centroid
        records.append({
            "id": i,
            "area_px": int(frag.n),
            "area_m2": round(float(poly_m.area), 4),
            "max_t_degc": round(float(frag.max_t), 3),
            "mean_t_degc": round(float(mean_t), 3),
            "mean_dt_degc": round(float(mean_t - median), 3),
            "mean_probability": round(float(frag.sum_p / frag.n), 4),
            "centroid_crs": [round(centroid.x, decimals), round(centroid.y, decimals)],
            "pipe_id": pipe,
            "chainage_m": round(chainage, 3),
            "offset_m": round(offset, 3),
        })
    return polygons, records


def _add_heat_loss(records: list[dict[str, Any]], merged: list[_Fragment], median: float,
                   options: PredictOptions) -> None:
    """Each record's heat loss over the corridor median, with the pixel area of its metric
    footprint (the raster's CRS may be angular)."""
    from thermal_anomaly_segmenter.heat_loss import estimate

    if not records:
        return
    moments = np.stack([f.moments for f in merged])
    areas = np.array([r["area_m2"] / r["area_px"] for r in records])
    loss = estimate(moments, median, areas, options.conditions)
    for i, record in enumerate(records):
        record.update(loss.record(i))


def _report(src: _Source, records, median: float, corridor_px: int, blocks: int,
            segmenter: Segmenter, options: PredictOptions, geo: GeoInfo,
            model_dir: str | None, stem: str) -> dict[str, Any]:
    from thermal_anomaly_segmenter.heat_loss import heat_loss_summary
    from thermal_anomaly_segmenter.io.gsd import scale_factor
    from thermal_anomaly_segmenter.outputs.document import SCHEMA

    ds = src.ds
    dts = [r["mean_dt_degc"] for r in records]
    rescaled = options.match_gsd and scale_factor(
        segmenter.tile_size(options), options.gsd_m, segmenter.config.gsd_m) is not None
    return {
        "schema": SCHEMA,
        "frame": {
            "name": stem,
            "height": ds.height,
            "width": ds.width,
            "corridor_px": corridor_px,
            "corridor_fraction": round(corridor_px / (ds.height * ds.width), 6),
            "corridor_median_degc": round(median, 3),
            "gsd_m": None if options.gsd_m is None else round(options.gsd_m, 6),
            "network_gsd_m": segmenter.config.gsd_m if rescaled else None,
            "crs": geo.crs,
            "transform": list(geo.transform),
            "pipes": src.corridor.source,
            "corridor_width_m": src.corridor.width_m,
            "blocks": blocks,
        },
        "model": {"type": segmenter.model_type, "dir": model_dir},
        "threshold": round(options.threshold, 4),
        "summary": {
            "count": len(records),
            "total_area_px": sum(r["area_px"] for r in records),
            "total_area_m2": round(sum(r["area_m2"] for r in records), 4),
            "max_dt_degc": max(dts) if dts else None,
            "max_t_degc": max((r["max_t_degc"] for r in records), default=None),
        },
        "anomalies": records,
        "heat_loss": heat_loss_summary(records, options.conditions, True),
    }


class _Canvas:
    """The overlay's background, T_u every ``k``-th pixel, sampled from the blocks the stream
    reads anyway, so the overlay costs no read of its own."""

    def __init__(self, height: int, width: int) -> None:
        self.k = max(1, math.ceil(max(height, width) / OVERLAY_MAX_SIDE))
        self.shape = (math.ceil(height / self.k), math.ceil(width / self.k))
        self.image = np.full(self.shape, np.nan, np.float32)

    def add(self, row: int, col: int, t_u: np.ndarray, valid: np.ndarray) -> None:
        k = self.k
        fy, fx = -row % k, -col % k  # the window's first rows / columns on the k-grid
        sample = t_u[fy::k, fx::k]
        usable = valid[fy::k, fx::k] & (sample >= T_MIN_DEGC) & (sample <= T_MAX_DEGC)
        y, x = (row + fy) // k, (col + fx) // k
        self.image[y:y + sample.shape[0], x:x + sample.shape[1]] = np.where(usable, sample,
                                                                           np.nan)

    def t_u(self, median: float) -> np.ndarray:
        """T_u per cell; cells of blocks never read (away from the pipes) and unusable
        pixels get the corridor median."""
        return np.where(np.isnan(self.image), np.float32(median), self.image)


def _write_overlay(src: _Source, canvas: _Canvas, merged: list[_Fragment], median: float,
                   segmenter: Segmenter, options: PredictOptions, target: Path,
                   stem: str) -> None:
    """A downsampled overview PNG drawn by :func:`reporting.render_overlay`.

    The background is the input's own overviews when it has some (one cheap decimated
    read), else T_u sampled from the blocks while streaming (:class:`_Canvas`).
    """
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.features import rasterize

    from thermal_anomaly_segmenter.io.atomic import atomic_write
    from thermal_anomaly_segmenter.outputs.overlay import render_overlay
    from thermal_anomaly_segmenter.outputs.write import encode_png

    ds = src.ds
    h, w = canvas.shape
    if ds.overviews(src.band):
        t_u = ds.read(src.band, out_shape=(h, w), out_dtype="float32",
                      resampling=Resampling.average, boundless=False)
        bad = ~np.isfinite(t_u) | (t_u < T_MIN_DEGC) | (t_u > T_MAX_DEGC)
        if src.nodata is not None and not math.isnan(src.nodata):
            bad |= t_u == np.float32(src.nodata)
        t_u[bad] = median
    else:
        t_u = canvas.t_u(median)
    small = ds.transform @ Affine.scale(canvas.k)
    corr = src.corridor.mask(small, (h, w))
    to_small = Affine.scale(1 / canvas.k)
    labels = np.zeros((h, w), np.int32)
    anomalies = []
    if merged:
        import shapely

        m = [to_small.a, to_small.b, to_small.d, to_small.e, to_small.c, to_small.f]
        scaled = [shapely.affinity.affine_transform(f.geom, m) for f in merged]
        labels = rasterize(((g, i) for i, g in enumerate(scaled, 1)), out_shape=(h, w),
                           all_touched=True, dtype="int32")
        for i, (frag, g) in enumerate(zip(merged, scaled, strict=True), start=1):
            x0, y0, x1, y1 = g.bounds
            mean_t = frag.sum_t / frag.n
            anomalies.append(Anomaly(
                id=i, area_px=frag.n, area_m2=None,
                bbox=(int(x0), int(y0), max(int(x0) + 1, math.ceil(x1)),
                      max(int(y0) + 1, math.ceil(y1))),
                centroid=(g.centroid.x, g.centroid.y), max_t_degc=frag.max_t,
                mean_t_degc=mean_t, mean_dt_degc=mean_t - median,
                mean_probability=frag.sum_p / frag.n,
            ))
    # render_overlay draws T_u only: a broadcast view stands for the three channels (two
    # three-channel copies of the canvas cost 0.2 s at 16000^2)
    data = np.broadcast_to(t_u.astype(np.float32, copy=False)[..., None], (h, w, 3))
    pred = Prediction(
        frame=Frame(data, corr, stem, None), probability=np.zeros((h, w), np.float32),
        mask=(labels > 0).view(np.uint8) if merged else np.zeros((h, w), np.uint8),
        labels=labels, anomalies=anomalies, corridor_median_degc=median,
        threshold=options.threshold, model_name=segmenter.model_type,
    )
    atomic_write(target, encode_png(render_overlay(pred, max_side=OVERLAY_MAX_SIDE + 256)))
