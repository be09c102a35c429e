"""Pipe network layer -> corridor on a raster grid, and where an anomaly lies along a pipe.

A :class:`PipeNetwork` is read once (GeoJSON, GeoPackage, Shapefile or zipped Shapefile,
any CRS) with pyogrio. :meth:`PipeNetwork.corridor_for` places it on one raster: the lines
are reprojected to a metric CRS (the raster's own when it is in metres, else the local UTM
zone), buffered by half the corridor width and reprojected to the raster's CRS, where
:meth:`Corridor.mask` rasterises them window by window (``rasterio.features.rasterize``,
pixel centres inside the buffer).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError

log = logging.getLogger(__name__)

#: Default full width of the corridor around the pipe axis, metres.
DEFAULT_CORRIDOR_WIDTH_M = 8.0
#: Widest corridor accepted, metres (a wider one is surely a unit mistake).
MAX_CORRIDOR_WIDTH_M = 1000.0
_ID_LIKE = re.compile(r"^(id|fid|gid|objectid|uuid|pipe_?id|.*[_-]id)$", re.IGNORECASE)
_LINE_TYPES = {"LineString", "MultiLineString", "LinearRing"}


@dataclass
class PipeNetwork:
    """Pipe lines of a GIS layer with their CRS and one id per feature."""

    lines: np.ndarray  # shapely geometries, (Multi)LineString
    ids: list[Any]
    crs: Any  # pyproj.CRS
    source: str
    id_field: str | None = None

    @classmethod
    def read(cls, path: str | Path, id_field: str | None = None) -> PipeNetwork:
        """Read a line layer; InvalidInputError names what is wrong with it."""
        import pyogrio
        import shapely

        from thermal_anomaly_segmenter.io.gis_guard import (
            MAX_FEATURES,
            check_lines,
            horizontal_crs,
            layer_target,
            local_file,
            vector_config,
        )

        path = Path(path)
        source = path.name
        local_file(path, "pipe network")
        target, driver = layer_target(path, source)
        vector_config()
        try:
            info = pyogrio.read_info(target)
            if info.get("driver") != driver:  # recognised by content: OGR must agree
                raise InvalidInputError(f"{source}: read as {info.get('driver')}, not {driver}")
            if int(info.get("features") or 0) > MAX_FEATURES:
                raise InvalidInputError(f"{source}: the pipe layer holds {info['features']:,} "
                                        f"features, above the limit of {MAX_FEATURES:,}")
            meta, _, wkb, field_data = pyogrio.raw.read(target, max_features=MAX_FEATURES + 1)
        except InvalidInputError:
            raise
        except Exception as exc:  # pyogrio/GDAL raise DataSourceError, DataLayerError, ...
            reason = re.sub(r"(/[^\s:]+)+/", "", " ".join(str(exc).split()))[:200]
            raise InvalidInputError(
                f"{source}: not a readable vector layer ({reason}); give GeoJSON, GeoPackage, "
                "Shapefile or a zipped Shapefile"
            ) from None
        if meta.get("crs") is None:
            raise InvalidInputError(
                f"{source}: the pipe layer has no CRS; save it with its coordinate system "
                "(e.g. EPSG:25832)"
            )
        crs = horizontal_crs(meta["crs"], source)
        with np.errstate(invalid="ignore"):  # NaN coordinates are refused just below
            geoms = shapely.from_wkb(wkb) if wkb is not None else np.empty(0, object)
        present = np.flatnonzero(~shapely.is_missing(geoms) & ~shapely.is_empty(geoms))
        if not len(present):
            raise InvalidInputError(f"{source}: the pipe layer holds no line features")
        kinds = {shapely.get_type_id(g) for g in geoms[present]}
        bad = sorted({shapely.geometry.base.GEOMETRY_TYPES[k] for k in kinds} - _LINE_TYPES)
        if bad:
            raise InvalidInputError(
                f"{source}: the pipe layer holds {', '.join(bad)} geometries; pipes must be "
                "LineString or MultiLineString (the pipe axes)"
            )
        check_lines(geoms[present], crs, source)
        names = list(meta.get("fields", []))
        if id_field is not None and id_field not in names:
            raise InvalidInputError(
                f"{source}: no field {id_field!r} for pipe ids; fields: {', '.join(names) or '-'}"
            )
        if id_field is None:
            id_field = next((n for n in names if _ID_LIKE.match(n)), None)
        if id_field is None:
            ids = [int(i) for i in present]
        else:
            column = field_data[names.index(id_field)]
            ids = [_plain(column[i]) for i in present]
        return cls(geoms[present], ids, crs, source, id_field)

    def raster_corridor(self, path: str | Path, width_m: float) -> np.ndarray:
        """The bool corridor of a whole georeferenced raster file (a frame-sized one)."""
        import warnings

        from rasterio.errors import NotGeoreferencedWarning

        from thermal_anomaly_segmenter.io.georef import georef, pixel_bounds
        from thermal_anomaly_segmenter.io.gis_guard import check_raster, open_raster, raster_env

        path = Path(path)
        with warnings.catch_warnings(), raster_env():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with open_raster(path, path.name) as ds:
                geo = georef(ds) if ds.crs is not None else None
                if geo is not None:
                    from thermal_anomaly_segmenter.config import get_settings

                    check_raster(ds, path.name, get_settings().max_ortho_pixels)
                shape, transform, crs = (ds.height, ds.width), ds.transform, ds.crs
        if geo is None:
            raise InvalidInputError(
                f"{path.name}: has no georeference (CRS and transform); the pipe network "
                "needs GeoTIFFs"
            )
        corridor = self.corridor_for(crs, pixel_bounds(transform, 0, 0, *shape), width_m,
                                     path.name)
        return corridor.mask(transform, shape)

    def corridor_for(
        self, crs: Any, bounds: tuple[float, float, float, float], width_m: float, source: str
    ) -> Corridor:
        """The corridor of this network on a raster with ``crs`` and ``bounds``.

        Raises:
            InvalidInputError: no pipe comes within the corridor of the raster.
        """
        from thermal_anomaly_segmenter.io.gis_guard import library_errors

        if not 0 < width_m <= MAX_CORRIDOR_WIDTH_M:
            raise InvalidInputError(
                f"corridor width must be within 0..{MAX_CORRIDOR_WIDTH_M:g} m, got {width_m}"
            )
        with library_errors(source):
            return self._corridor(crs, bounds, width_m, source)

    def _corridor(self, crs: Any, bounds: tuple[float, float, float, float], width_m: float,
                  source: str) -> Corridor:
        import shapely
        from pyproj import Transformer

        from thermal_anomaly_segmenter.io.georef import metric_crs
        from thermal_anomaly_segmenter.io.gis_guard import horizontal_crs

        target = horizontal_crs(crs, source)
        to_geo = Transformer.from_crs(target, target.geodetic_crs, always_xy=True)
        lon, lat = to_geo.transform((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
        metric = metric_crs(target, lon, lat)
        lines_m = reproject(self.lines, self.crs, metric)
        # Far from the raster's CRS, PROJ may give inf, which GEOS must never see: such
        # pipes are far from the raster, hence out of its corridor anyway.
        usable = np.flatnonzero(_finite(lines_m))
        pieces, owner = chunk_lines(lines_m[usable])
        owner = usable[owner]
        buffers_r = reproject(shapely.buffer(pieces, width_m / 2.0), metric, target)
        finite = np.flatnonzero(_finite(buffers_r))
        box = shapely.box(*bounds)
        near = finite[shapely.intersects(buffers_r[finite], box)]
        keep = np.unique(owner[near])
        if not len(keep):
            raise InvalidInputError(
                f"pipe network {self.source} does not overlap {source}: no pipe lies within "
                f"{width_m:g} m of the raster (check that both cover the same area)"
            )
        return Corridor(
            lines=reproject(lines_m[keep], metric, target),
            lines_m=lines_m[keep],
            buffers=buffers_r[near],
            ids=[self.ids[i] for i in keep],
            crs=target,
            metric=metric,
            width_m=width_m,
            source=self.source,
        )


#: Most vertices of one buffered piece of a pipe. GEOS's buffer costs more than linearly in
#: a line's vertices where it folds on itself (a zig-zag of 10,000 vertices took 6 GB and
#: 65 s), so each line is buffered in pieces of bounded size whose union, burnt by
#: rasterisation, is the corridor: linear in the vertices. Measured on a 10,000-vertex
#: zig-zag / smooth line: pieces of 4 take 0.19 / 0.05 s, of 32 8.4 / 0.01 s.
PIECE_VERTICES = 4


def chunk_lines(lines: np.ndarray, size: int = PIECE_VERTICES) -> tuple[np.ndarray, np.ndarray]:
    """Lines cut into pieces of at most ``size`` vertices (consecutive pieces share one);
    returns the pieces and the index of the line each came from."""
    import shapely

    parts, part_of = shapely.get_parts(lines, return_index=True)
    coords, vertex_part = shapely.get_coordinates(parts, return_index=True)
    counts = np.bincount(vertex_part, minlength=len(parts))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    step = size - 1
    n_pieces = np.maximum(1, -(-(counts - 1) // step))
    piece_part = np.repeat(np.arange(len(parts)), n_pieces)
    first = np.arange(len(piece_part)) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
    lo = starts[piece_part] + first * step
    hi = np.minimum(lo + size, starts[piece_part] + counts[piece_part])
    lengths = hi - lo
    index = np.repeat(lo - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    index += np.arange(int(lengths.sum()))
    pieces = shapely.linestrings(coords[index], indices=np.repeat(
        np.arange(len(lengths)), lengths))
    return pieces, part_of[piece_part]


def _finite(geoms: np.ndarray) -> np.ndarray:
    """Per geometry: whether all its coordinates are finite."""
    import shapely

    coords, index = shapely.get_coordinates(geoms, return_index=True)
    bad = np.zeros(len(geoms), bool)
    bad[index[~np.isfinite(coords).all(axis=1)]] = True
    return ~bad


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def reproject(geoms: np.ndarray, src: Any, dst: Any) -> np.ndarray:
    """Shapely geometries from CRS ``src`` to ``dst`` (x = easting/longitude first)."""
    import shapely
    from pyproj import Transformer

    if src == dst:
        return geoms
    transformer = Transformer.from_crs(src, dst, always_xy=True)
    return shapely.transform(
        geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
    )


@dataclass
class Corridor:
    """Buffered pipes placed on one raster's CRS, ready to rasterise and to locate anomalies."""

    lines: np.ndarray  # pipe axes in the raster CRS
    lines_m: np.ndarray  # the same in ``metric``
    buffers: np.ndarray  # corridor polygons in the raster CRS
    ids: list[Any]
    crs: Any
    metric: Any
    width_m: float
    source: str = ""
    _tree: Any = field(default=None, repr=False)

    @property
    def tree(self):
        import shapely

        if self._tree is None:
            self._tree = shapely.STRtree(self.buffers)
        return self._tree

    def touches(self, bounds: tuple[float, float, float, float]) -> bool:
        """Whether any corridor polygon intersects the box ``bounds`` (raster CRS)."""
        import shapely

        return len(self.tree.query(shapely.box(*bounds), predicate="intersects")) > 0

    def mask(self, transform: Any, shape: tuple[int, int]) -> np.ndarray:
        """Bool corridor of a window with affine ``transform`` and ``shape`` (pixel centres)."""
        import shapely
        from rasterio.features import rasterize

        from thermal_anomaly_segmenter.io.georef import pixel_bounds

        box = shapely.box(*pixel_bounds(transform, 0, 0, *shape))
        hits = self.tree.query(box, predicate="intersects")
        if not len(hits):
            return np.zeros(shape, bool)
        burnt = rasterize(
            ((g, 1) for g in self.buffers[hits]), out_shape=shape, transform=transform,
            fill=0, dtype="uint8",
        )
        return burnt.view(bool)

    def locate(self, polygons_m: np.ndarray) -> list[tuple[Any, float, float]]:
        """``(pipe id, chainage m, offset m)`` of each polygon (in the metric CRS).

        The nearest pipe is the one closest to the polygon; chainage is the distance along
        that pipe from its first vertex to the point nearest the polygon, and offset the
        distance from the pipe axis to the polygon (0 when the anomaly covers the axis).
        """
        import shapely

        if not len(polygons_m):
            return []
        tree = shapely.STRtree(self.lines_m)
        pairs = tree.query_nearest(polygons_m, all_matches=False)
        nearest = np.empty(len(polygons_m), np.int64)
        nearest[pairs[0]] = pairs[1]
        lines = self.lines_m[nearest]
        points = shapely.get_point(shapely.shortest_line(lines, polygons_m), 0)
        chainage = shapely.line_locate_point(lines, points)
        offset = shapely.distance(lines, polygons_m)
        return [
            (self.ids[i], float(c), float(o))
            for i, c, o in zip(nearest, chainage, offset, strict=True)
        ]
