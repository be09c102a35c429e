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

Modules: :mod:`.ortho_tiling` (blocks and tiles), :mod:`.ortho_source` (the raster read
window by window; the corridor median), :mod:`.ortho_anomalies` (traced per block, merged
across block borders), :mod:`.ortho_rasters` (scratch GeoTIFFs and COGs),
:mod:`.ortho_overlay` (the overview PNG); this one runs the passes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.config import PredictOptions, get_settings
from thermal_anomaly_segmenter.errors import InvalidInputError, OutputError
from thermal_anomaly_segmenter.geo.network import PipeNetwork
from thermal_anomaly_segmenter.geo.ortho_anomalies import (
    Fragment,
    add_heat_loss,
    describe,
    merge_fragments,
    trace_fragments,
)
from thermal_anomaly_segmenter.geo.ortho_overlay import OverlayCanvas, write_overlay
from thermal_anomaly_segmenter.geo.ortho_rasters import scratch_paths, scratch_rasters, write_cogs
from thermal_anomaly_segmenter.geo.ortho_source import Source, corridor_statistics
from thermal_anomaly_segmenter.geo.ortho_tiling import (
    Block,
    block_geometry,
    extent,
    stream_overlap,
    windows,
)
from thermal_anomaly_segmenter.geo.vectors import write_anomaly_layers
from thermal_anomaly_segmenter.inference.postprocess import anomaly_mask, extract_anomalies
from thermal_anomaly_segmenter.inference.segmenter import Segmenter
from thermal_anomaly_segmenter.io.frames import MIN_SIDE_PX, Frame, GeoInfo
from thermal_anomaly_segmenter.io.georef import georef, pixel_bounds
from thermal_anomaly_segmenter.io.gis_guard import (
    check_corridor_share,
    check_raster,
    open_raster,
    raster_env,
)
from thermal_anomaly_segmenter.outputs.names import ORTHO_NAMES

log = logging.getLogger(__name__)

#: One window of the raster: ``(row, col, height, width)``.
Window = tuple[int, int, int, int]


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
#: GDAL block cache while streaming: bounded, whatever the raster size.
GDAL_CACHE_BYTES = 256 << 20


@dataclass(frozen=True)
class OrthoOptions:
    """How :func:`predict_ortho` streams an orthomosaic, besides the frames'
    :class:`~thermal_anomaly_segmenter.config.PredictOptions`."""

    #: Full corridor width around the pipe axes, metres.
    corridor_width_m: float
    #: About the side of a processing block, pixels (:func:`.ortho_tiling.block_geometry`).
    block: int = DEFAULT_BLOCK
    #: The model folder the JSON report names.
    model_dir: str | None = None
    #: Output kinds to write (default all of :data:`ORTHO_NAMES`).
    outputs: Collection[str] | None = None


@dataclass
class OrthoResult:
    """What predicting one orthomosaic produced."""

    outputs: dict[str, Path]
    records: list[dict[str, Any]]
    corridor_px: int
    blocks: int
    median_degc: float



@dataclass
class _Run:
    """One orthomosaic being predicted: what its passes share."""

    src: Source
    geo: GeoInfo
    segmenter: Segmenter
    #: The streamed options: tile overlap of :func:`stream_overlap`, the raster's GSD.
    options: PredictOptions
    stem: str
    model_dir: str | None
    tile: tuple[int, int]
    halos: tuple[tuple[int, int], tuple[int, int]]
    #: The blocks the corridor touches.
    active: list[Window]
    median: float
    corridor_px: int


def predict_ortho(
    path: str | Path,
    network: PipeNetwork,
    segmenter: Segmenter,
    options: PredictOptions,
    out_dir: Path,
    stem: str,
    ortho: OrthoOptions,
) -> OrthoResult:
    """Predict one georeferenced raster streamed from disk; write ``out_dir/<stem>*``.

    Writes ``ortho.outputs`` (default all of :data:`ORTHO_NAMES`): probability and mask COGs with
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
    ortho = dataclasses.replace(ortho, outputs=ortho_outputs(ortho.outputs))
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
            corridor = network.corridor_for(ds.crs, bounds, ortho.corridor_width_m, source)
            src = Source(ds, corridor, source)
            try:
                return _run(src, geo, segmenter, options, out_dir, stem, ortho)
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



def _plan(src: Source, geo: GeoInfo, segmenter: Segmenter, options: PredictOptions,
          stem: str, ortho: OrthoOptions) -> _Run:
    """The streamed options, the blocks the corridor touches, and the first pass over them:
    the corridor's median temperature."""
    ds, corridor = src.ds, src.corridor
    options = dataclasses.replace(options, tile_overlap=stream_overlap(options.tile_overlap))
    if geo.gsd_m is not None:  # the raster's, for its tiles (frames without a georeference)
        # to be seen at the model's GSD where they are finer (.scale)
        options = dataclasses.replace(options, gsd_m=geo.gsd_m)
    tile = segmenter.tile_size(options)
    sides, halos = block_geometry(tile, options.tile_overlap, ortho.block)
    active = [
        w for w in windows(ds.height, ds.width, sides, halos)
        if corridor.touches(pixel_bounds(ds.transform, *w))
    ]
    check_corridor_share(active, src.source, get_settings().max_ortho_pixels)
    median, corridor_px = corridor_statistics(src, active)
    return _Run(src, geo, segmenter, options, stem, ortho.model_dir, tile, halos, active,
                median, corridor_px)


def _run(src: Source, geo: GeoInfo, segmenter: Segmenter, options: PredictOptions,
         out_dir: Path, stem: str, ortho: OrthoOptions) -> OrthoResult:
    """Both passes and every output of ``ortho.outputs`` (already checked)."""
    run = _plan(src, geo, segmenter, options, stem, ortho)
    canvas = (OverlayCanvas(src.ds.height, src.ds.width) if "overlay" in ortho.outputs
              else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = {k: out_dir / f"{stem}{ORTHO_NAMES[k]}" for k in ortho.outputs}
    tmp = scratch_paths(out_dir, stem, final)
    try:
        with scratch_rasters(src.ds, tmp) as rasters:
            fragments = [f for window in run.active
                         for f in _predict_block(run, window, rasters, canvas)]
        merged, polygons, records = _anomalies(run, fragments)
        crs = geo.crs or src.ds.crs.to_wkt()
        write_anomaly_layers(polygons, records, crs, final.get("gpkg"), final.get("geojson"),
                             conditions=run.options.conditions)
        if "overlay" in final:
            write_overlay(src, canvas, merged, run.median, segmenter, run.options,
                          final["overlay"], stem)
        write_cogs(tmp, final)
    except OSError as exc:
        raise OutputError(f"cannot write outputs to {out_dir}: {exc}") from exc
    finally:
        for part in tmp.values():
            part.unlink(missing_ok=True)
    if "json" in final:
        from thermal_anomaly_segmenter.io.atomic import atomic_write

        atomic_write(final["json"],
                     (json.dumps(_report(run, records), indent=2, allow_nan=False)
                      + "\n").encode())
    return OrthoResult(final, records, run.corridor_px, len(run.active), run.median)


def _predict_block(run: _Run, window: Window, rasters: dict[str, Any],
                   canvas: OverlayCanvas | None) -> list[Fragment]:
    """The second pass over one block: its probability and mask written into the scratch
    ``rasters``, its core sampled into the overlay's ``canvas``; returns its anomalies."""
    from rasterio.windows import Window as RasterWindow

    src, options = run.src, run.options
    row, col, h, w = window
    (before_y, after_y), (before_x, after_x) = run.halos
    r0, c0 = max(0, row - before_y), max(0, col - before_x)
    r1, c1 = min(src.ds.height, row + h + after_y), min(src.ds.width, col + w + after_x)
    t_u, valid, corr = src.read(r0, c0, r1 - r0, c1 - c0)
    core = (row - r0, row - r0 + h, col - c0, col - c0 + w)
    if canvas is not None:
        canvas.add(row, col, t_u[core[0]:core[1], core[2]:core[3]],
                   valid[core[0]:core[1], core[2]:core[3]])
    if not corr[core[0]:core[1], core[2]:core[3]].any():
        return []
    block_in = Block(t_u, valid, corr, core, run.median)
    box, prob_box = block_in.probability(run.segmenter, options, run.tile, run.halos)
    # Post-process only the core's corridor extent: outside it everything is 0
    # (a sparse GeoTIFF block reads as 0), and a block often holds one thin pipe.
    mask = anomaly_mask(prob_box, corr[box], options.threshold)
    y0, x0 = r0 + box[0].start, c0 + box[1].start
    win = RasterWindow(x0, y0, prob_box.shape[1], prob_box.shape[0])
    for kind, data in (("probability", prob_box), ("mask", mask)):
        if kind in rasters:
            rasters[kind].write(data, 1, window=win)
    if not mask.any():
        return []
    return _trace(run, t_u, corr, box, prob_box, mask, (y0, x0))


def _trace(run: _Run, t_u: np.ndarray, corr: np.ndarray, box: tuple[slice, slice],
           prob_box: np.ndarray, mask: np.ndarray, origin: tuple[int, int]) -> list[Fragment]:
    """A block's anomalies, found over their extent only (they are rare); ``origin`` is the
    raster pixel of ``prob_box[0, 0]``."""
    ey0, ey1, ex0, ex1 = extent(mask)
    sub = (slice(box[0].start + ey0, box[0].start + ey1),
           slice(box[1].start + ex0, box[1].start + ex1))
    # Anomalies lie in the corridor (valid, plausible T_u) and their
    # statistics read T_u only: a broadcast view stands for the channels.
    _, labels, anomalies = extract_anomalies(
        Frame(np.broadcast_to(t_u[sub][..., None], (ey1 - ey0, ex1 - ex0, 3)),
              corr[sub], "block", None),
        prob_box[ey0:ey1, ex0:ex1], run.options.threshold,
        corridor_median=run.median, min_area_px=1,
    )
    return trace_fragments(labels, anomalies, origin[0] + ey0, origin[1] + ex0)


def _anomalies(run: _Run, fragments: list[Fragment]
               ) -> tuple[list[Fragment], list, list[dict[str, Any]]]:
    """The fragments merged across block borders, the small ones dropped, largest first;
    their polygons in the raster's CRS and their records."""
    merged = [f for f in merge_fragments(fragments) if f.n >= run.options.min_area_px]
    merged.sort(key=lambda f: (-f.n, f.geom.bounds[1], f.geom.bounds[0]))
    polygons, records = describe(merged, run.src.ds.transform, run.src.corridor, run.median,
                                 run.geo)
    add_heat_loss(records, merged, run.median, run.options)
    return merged, polygons, records


def _report(run: _Run, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON report: the frames' schema, with the raster's grid, pipes and blocks."""
    from thermal_anomaly_segmenter.heat_loss import heat_loss_summary
    from thermal_anomaly_segmenter.io.gsd import scale_factor
    from thermal_anomaly_segmenter.outputs.document import SCHEMA

    src, segmenter, options, geo = run.src, run.segmenter, run.options, run.geo
    ds, median, corridor_px = src.ds, run.median, run.corridor_px
    dts = [r["mean_dt_degc"] for r in records]
    rescaled = options.match_gsd and scale_factor(
        segmenter.tile_size(options), options.gsd_m, segmenter.config.gsd_m) is not None
    return {
        "schema": SCHEMA,
        "frame": {
            "name": run.stem,
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
            "blocks": len(run.active),
        },
        "model": {"type": segmenter.model_type, "dir": run.model_dir},
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
