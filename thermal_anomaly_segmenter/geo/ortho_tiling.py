"""Blocks and tiles of a streamed orthomosaic (:mod:`.ortho`).

The raster is cut into blocks of whole tile steps, each read with a halo of context; in a
block, tiles are placed along the corridor (:meth:`Block.tiles`) rather than on a fixed
grid, and their probabilities blend over the core's corridor extent only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from itertools import pairwise

import numpy as np

from thermal_anomaly_segmenter.config import PredictOptions
from thermal_anomaly_segmenter.inference.segmenter import Segmenter, blend_window
from thermal_anomaly_segmenter.io.frames import FILL_OFFSET_DEGC, T_MAX_DEGC, T_MIN_DEGC, Frame


def stream_overlap(overlap: float) -> float:
    """Tile overlap of the streamed path: half the frames' ``overlap``.

    Tiles are placed along the corridor (:meth:`Block.tiles`) so that every corridor pixel
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


def windows(
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
    one tile of the block's length with its halo, :meth:`Block.tiles`), and the halos,
    summing to the tile overlap ``t - s``, give a corridor pixel at a block border the same
    context as inside: half the overlap on each side.
    """
    steps = [max(1, int(t * (1.0 - overlap))) for t in tile]
    halos = [((t - s) // 2, t - s - (t - s) // 2) for t, s in zip(tile, steps, strict=True)]
    sides = [max(1, round(block / s)) * s for s in steps]
    return (sides[0], sides[1]), (halos[0], halos[1])


def extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)`` of the true pixels of a mask that has some."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def cover(occupied: np.ndarray, length: int, tile: int, margin: tuple[int, int]
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


def cover_long(occupied: np.ndarray, length: int, min_len: int, max_len: int,
                margin: tuple[int, int], stride: int) -> list[tuple[int, int]]:
    """Cover the occupied positions (sorted) of an axis by few long tiles ``(start, size)``.

    Like :func:`cover`, but each tile grows from ``min_len`` up to ``max_len`` (in steps
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



class Block:
    """One block read with its halo: chooses the tiles its core's corridor needs, builds
    their inputs tile by tile and blends their probabilities over the core's corridor
    extent only (a block often holds one thin pipe)."""

    def __init__(self, t_u: np.ndarray, valid: np.ndarray, corr: np.ndarray,
                 core: tuple[int, int, int, int], median: float) -> None:
        self.t_u, self.valid, self.corr, self.median = t_u, valid, corr, median
        y0, y1, x0, x1 = core
        ey0, ey1, ex0, ex1 = extent(corr[y0:y1, x0:x1])
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
        for r, first, end in cover(rows, height, th, margins[0]):
            band = sub[first - box_y.start:end - box_y.start]
            cols = np.flatnonzero(band.any(axis=0)) + box_x.start
            tiles += [(r, c, th, w) for c, w in
                      cover_long(cols, width, tile[1], max(tile[1], max_len), margins[1],
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
