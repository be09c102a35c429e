"""What GDAL, OGR, PROJ and GEOS may be given: one gate every user's GIS file passes.

GEOS and PROJ are C libraries that crash (SIGSEGV) or loop on coordinates such as 1e308,
infinity or NaN, and GDAL follows references inside a file (a VRT names other files and
URLs). So, before any of them touches a user's input:

- paths are plain local files, never ``/vsi*`` or URLs (:func:`local_file`);
- GDAL runs without network and without looking at sibling files (:data:`GDAL_OPTIONS`,
  applied by :func:`raster_env` and :func:`vector_config`);
- a raster opens with the GTiff driver only (:func:`open_raster`), a layer only after its
  content is recognised as GeoJSON, GeoPackage, Shapefile or a zipped Shapefile
  (:func:`layer_target`), never VRT or another driver that follows references;
- a raster's header is checked: finite, orthogonal geotransform, a horizontal CRS,
  bounds inside the CRS's area of use, declared size and block size (:func:`check_raster`);
- a layer's lines are counted and checked: finite coordinates inside the CRS's area of
  use, bounded features and vertices (:func:`check_lines`);
- whatever GEOS/PROJ/GDAL still raise becomes one line naming the file
  (:func:`library_errors`).
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError

if TYPE_CHECKING:
    pass

#: GDAL configuration of every read of a user's file: no network, no sibling lookups
#: (``.aux.xml``, ``.ovr`` beside an upload are not the user's), no external SQLite access.
GDAL_OPTIONS: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_PAM_ENABLED": "NO",
    # /vsicurl/ only opens names with this extension: none does, so it opens nothing
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".taseg-no-network",
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "OGR_SQLITE_ALLOW_EXTERNAL_ACCESS": "NO",
    "GDAL_VRT_ENABLE_PYTHON": "NO",
}
#: The one driver a raster opens with (a COG is a GeoTIFF to GDAL's GTiff driver).
RASTER_DRIVER = "GTiff"
#: Most features and vertices of a pipe layer.
MAX_FEATURES = 100_000
MAX_VERTICES = 200_000
#: Largest pipe layer file (or zipped Shapefile's content): GDAL's GeoJSON driver holds a
#: whole file in memory, several times its size, before a feature can be counted.
#: 200,000 vertices take about 6 MB of GeoJSON.
MAX_LAYER_BYTES = 64 << 20
#: An earlier survey's anomaly GeoPackage (``taseg compare``, ``previous_file``): most bytes,
#: features and vertices read (100,000 anomalies take about 2 million vertices).
MAX_SURVEY_BYTES = 1 << 30
MAX_SURVEY_FEATURES = 1_000_000
MAX_SURVEY_VERTICES = 20_000_000
#: GeoPackage application ids in the SQLite header.
GPKG_IDS = (b"GPKG", b"GP10", b"GP11")
#: Largest TIFF block (tile or strip) GDAL may decode at once, bytes.
MAX_BLOCK_BYTES = 64 << 20
#: Most overview levels a raster may declare (2^30 px per side needs 30).
MAX_OVERVIEWS = 32
#: The blocks along the corridor may hold this fraction of the declared-size limit (the
#: network runs over them; 5e8 pixels by default, a 22000^2 raster covered everywhere).
CORRIDOR_SHARE = 4
#: Slack around a CRS's area of use, degrees: data often spills over its zone's edge.
AREA_SLACK_DEG = 10.0
#: Shapefile parts a zipped Shapefile may hold (anything else is refused, VRT included).
_SHAPEFILE_PARTS = {".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".xml",
                    ".qmd"}
_ZIP_MAX_MEMBERS = 64
_URL = re.compile(r"^[a-z][a-z0-9+.-]*:/", re.IGNORECASE)  # "//" may be collapsed by Path


def local_file(path: str | Path, what: str) -> Path:
    """``path`` when it is a plain local file; never a GDAL virtual path or a URL."""
    text = str(path)
    if text.startswith("/vsi") or _URL.match(text) or "/vsi" in text.replace("\\", "/"):
        raise InvalidInputError(f"{what} must be a local file, not a GDAL virtual path or URL")
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{what} {path.name} does not exist or is not a file")
    return path


@contextlib.contextmanager
def raster_env(**extra: Any) -> Iterator[None]:
    """``rasterio.Env`` with :data:`GDAL_OPTIONS` (and ``extra``)."""
    import rasterio

    with rasterio.Env(**GDAL_OPTIONS, **extra):
        yield


def open_raster(path: Path, source: str):
    """Open ``path`` read-only with the GTiff driver only, inside :func:`raster_env`.

    Raises InvalidInputError for anything else (VRT, other formats, unreadable files)."""
    import rasterio
    from rasterio.errors import RasterioIOError

    local_file(path, "raster")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        raise InvalidInputError(f"{source}: not a GeoTIFF (give a georeferenced GeoTIFF)")
    try:
        return rasterio.open(path, driver=RASTER_DRIVER)
    except RasterioIOError:
        raise InvalidInputError(f"{source}: not a GeoTIFF GDAL can read") from None


def vector_config() -> None:
    """Apply :data:`GDAL_OPTIONS` to pyogrio's GDAL (process-wide; idempotent)."""
    import pyogrio

    pyogrio.set_gdal_config_options(GDAL_OPTIONS)


def layer_target(path: Path, source: str) -> tuple[str, str]:
    """``(GDAL path, driver)`` of a pipe layer, recognised by content before OGR sees it.

    GeoJSON (a JSON object), GeoPackage (SQLite with the GeoPackage application id),
    Shapefile (``.shp`` magic) and a zipped Shapefile (opened member by member through
    ``/vsizip/`` whatever the upload's name). Anything else, a VRT above all, is refused.
    """
    hint = "give GeoJSON, GeoPackage, Shapefile or a zipped Shapefile"
    size = path.stat().st_size
    if size > MAX_LAYER_BYTES:
        raise InvalidInputError(f"{source}: the pipe layer file has {size / 2**20:,.0f} MiB, "
                                f"above the limit of {MAX_LAYER_BYTES >> 20} MiB")
    with path.open("rb") as fh:
        head = fh.read(100)
    if head.startswith(b"PK\x03\x04"):
        return _zipped_shapefile(path, source, hint), "ESRI Shapefile"
    if head.startswith(b"SQLite format 3\x00"):
        if head[68:72] not in GPKG_IDS:
            raise InvalidInputError(f"{source}: an SQLite file but not a GeoPackage; {hint}")
        return str(path), "GPKG"
    if head[:4] == b"\x00\x00\x27\x0a":
        return str(path), "ESRI Shapefile"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return str(path), "GeoJSON"
    raise InvalidInputError(f"{source}: not a readable vector layer; {hint}")


def check_geopackage(path: Path, source: str) -> None:
    """Refuse ``path`` unless it is a local GeoPackage (by content) within
    :data:`MAX_SURVEY_BYTES`: OGR then opens it with its GPKG driver, never a VRT."""
    local_file(path, source)
    size = path.stat().st_size
    if size > MAX_SURVEY_BYTES:
        raise InvalidInputError(f"{source}: {size / 2**20:,.0f} MiB, above the limit of "
                                f"{MAX_SURVEY_BYTES >> 20} MiB")
    with path.open("rb") as fh:
        head = fh.read(100)
    if not head.startswith(b"SQLite format 3\x00") or head[68:72] not in GPKG_IDS:
        raise InvalidInputError(f"{source} is not a GeoPackage; give the .gpkg written by "
                                "taseg predict --pipes or taseg report")


def check_survey_geometries(geoms: np.ndarray, proj, source: str) -> None:
    """Bounded anomaly polygons with finite coordinates inside the CRS's area of use, before
    GEOS or PROJ work on them."""
    import shapely

    vertices = int(shapely.get_num_coordinates(geoms).sum()) if len(geoms) else 0
    if vertices > MAX_SURVEY_VERTICES:
        raise InvalidInputError(f"{source}: its anomalies hold {vertices:,} vertices, above the "
                                f"limit of {MAX_SURVEY_VERTICES:,}")
    if len(geoms):
        check_coordinates(shapely.get_coordinates(geoms), proj, source, "the layer")


def _zipped_shapefile(path: Path, source: str, hint: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InvalidInputError(f"{source}: a corrupt zip file; {hint}") from None
    names = [m.filename for m in members if not m.is_dir()]
    bad = [n for n in names if Path(n).suffix.lower() not in _SHAPEFILE_PARTS
           or n.startswith(("/", "\\")) or ".." in Path(n).parts]
    shp = [n for n in names if n.lower().endswith(".shp")]
    if bad or len(shp) != 1 or len(names) > _ZIP_MAX_MEMBERS:
        raise InvalidInputError(
            f"{source}: a zip must hold exactly one Shapefile (.shp, .shx, .dbf, .prj ...) "
            f"and nothing else; {hint}"
        )
    declared = sum(m.file_size for m in members)
    if declared > MAX_LAYER_BYTES:
        raise InvalidInputError(f"{source}: the zipped Shapefile inflates to "
                                f"{declared / 2**20:,.0f} MiB, above the limit of "
                                f"{MAX_LAYER_BYTES >> 20} MiB")
    if "{" in str(path) or "}" in str(path):
        raise InvalidInputError(f"{source}: rename the zip file without braces in its path")
    # braces delimit the archive: an upload's temp name has no .zip suffix to split on
    return f"/vsizip/{{{path}}}/{shp[0]}"


def horizontal_crs(crs: Any, source: str):
    """The pyproj CRS of ``crs`` when it is geographic or projected (2-D horizontal).

    Vertical-only, engineering (LOCAL_CS), geocentric and unparsable CRSs are refused."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        proj = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
        if proj.is_compound:  # a horizontal CRS with heights: its horizontal part
            proj = proj.sub_crs_list[0]
        usable = (proj.is_geographic or proj.is_projected) and not proj.is_geocentric
    except (CRSError, ValueError, TypeError, IndexError):
        usable = False
    if not usable:
        raise InvalidInputError(
            f"{source}: its coordinate system is not a horizontal geographic or projected "
            "CRS (vertical-only, local/engineering or unknown); save it in a CRS such as "
            "EPSG:25832 or EPSG:4326"
        )
    return proj


def _area(proj) -> tuple[float, float, float, float]:
    """The CRS's area of use (west, south, east, north) in degrees, with slack; the world
    when PROJ does not know it."""
    area = proj.area_of_use
    if area is None:
        return -180.0, -90.0, 180.0, 90.0
    w, s, e, n = area.bounds
    if e < w:  # crosses the antimeridian
        w, e = -180.0, 180.0
    return (max(-180.0, w - AREA_SLACK_DEG), max(-90.0, s - AREA_SLACK_DEG),
            min(180.0, e + AREA_SLACK_DEG), min(90.0, n + AREA_SLACK_DEG))


def check_coordinates(xy: np.ndarray, proj, source: str, what: str) -> None:
    """Refuse coordinates (``N x 2``, x = easting/longitude) that are not finite, beyond
    :data:`GEO_MAX`, or outside the CRS's area of use (with :data:`AREA_SLACK_DEG`)."""
    from pyproj import Transformer

    if not len(xy):
        return
    if not np.isfinite(xy).all():
        raise InvalidInputError(f"{source}: {what} has infinite or NaN coordinates")
    if float(np.abs(xy).max()) > GEO_MAX:
        raise InvalidInputError(f"{source}: {what} has coordinates beyond {GEO_MAX:g} "
                                "(no coordinate system reaches that far)")
    w, s, e, n = _area(proj)
    if proj.is_geographic:
        lon, lat = xy[:, 0], xy[:, 1]  # TASeg keeps x = longitude (always_xy) throughout
    else:
        to_geo = Transformer.from_crs(proj, proj.geodetic_crs, always_xy=True)
        with np.errstate(all="ignore"):
            lon, lat = to_geo.transform(xy[:, 0], xy[:, 1], errcheck=False)
        lon, lat = np.asarray(lon), np.asarray(lat)
    inside = (np.isfinite(lon) & np.isfinite(lat) & (lon >= w) & (lon <= e)
              & (lat >= s) & (lat <= n))
    if not inside.all():
        raise InvalidInputError(
            f"{source}: {what} lies outside the area where its coordinate system is defined "
            f"({proj.name}: lon {w:g}..{e:g}, lat {s:g}..{n:g}); check its CRS"
        )


def check_lines(geoms: np.ndarray, proj, source: str) -> None:
    """Bounded features and vertices, finite coordinates inside the CRS's area of use."""
    import shapely

    if len(geoms) > MAX_FEATURES:
        raise InvalidInputError(f"{source}: the pipe layer holds {len(geoms):,} features, "
                                f"above the limit of {MAX_FEATURES:,}")
    vertices = int(shapely.get_num_coordinates(geoms).sum())
    if vertices > MAX_VERTICES:
        raise InvalidInputError(f"{source}: the pipe layer holds {vertices:,} vertices, above "
                                f"the limit of {MAX_VERTICES:,}; simplify it")
    check_coordinates(shapely.get_coordinates(geoms), proj, source, "the pipe layer")


def check_raster(dataset, source: str, max_pixels: int) -> None:
    """Refuse a raster whose header GDAL should not act on: its declared size (above
    ``max_pixels``), block size, overview count, geotransform (non-finite, degenerate, beyond
    :data:`GEO_MAX`, sheared) and CRS (see :func:`horizontal_crs`; bounds in its area)."""
    h, w = dataset.height, dataset.width
    if h * w > max_pixels:
        raise InvalidInputError(f"{source}: raster declares {h:,} x {w:,} pixels, above the "
                                f"limit of {max_pixels:,} (TASEG_MAX_ORTHO_PIXELS)")
    for band, (bh, bw) in enumerate(dataset.block_shapes, start=1):
        itemsize = np.dtype(dataset.dtypes[band - 1]).itemsize
        if bh * bw * itemsize > MAX_BLOCK_BYTES:
            raise InvalidInputError(
                f"{source}: its TIFF blocks are {bh:,} x {bw:,} pixels, above "
                f"{MAX_BLOCK_BYTES >> 20} MiB each; re-save it tiled (e.g. COG, 512 x 512)")
        if len(dataset.overviews(band)) > MAX_OVERVIEWS:
            raise InvalidInputError(f"{source}: declares more than {MAX_OVERVIEWS} overviews")
    t = dataset.transform
    values = [float(v) for v in t[:6]]
    if not all(map(math.isfinite, values)) or max(map(abs, values)) > GEO_MAX:
        raise InvalidInputError(f"{source}: its geotransform holds infinite, NaN or "
                                "out-of-range values")
    a, b, _, d, e, _ = values
    det = a * e - b * d
    if det == 0 or not math.isfinite(det):
        raise InvalidInputError(f"{source}: its geotransform is degenerate (zero pixel area)")
    proj = horizontal_crs(dataset.crs, source)
    # Rotation is supported; shear (pixel axes not at right angles on the ground) is not.
    # In degrees a rotated grid is only at right angles once longitude is scaled by
    # cos(latitude), and that scale varies across the raster: allow a small skew there.
    tol = 1e-9
    if proj.is_geographic:
        lat = (t @ (w / 2, h / 2))[1]
        k = math.cos(math.radians(min(max(lat, -89.0), 89.0)))
        a, b, tol = a * k, b * k, 1e-3
    if abs(a * b + d * e) > tol * math.hypot(a, d) * math.hypot(b, e):
        raise InvalidInputError(f"{source}: its geotransform is sheared (pixel axes not at "
                                "right angles); resample it to a north-up grid")
    corners = np.array([t @ (x, y) for x, y in ((0, 0), (w, 0), (0, h), (w, h))], float)
    check_coordinates(corners, proj, source, "the raster")


@contextlib.contextmanager
def library_errors(source: str) -> Iterator[None]:
    """Turn what GEOS, PROJ or GDAL raise about ``source`` into one InvalidInputError line."""
    from pyproj.exceptions import CRSError, ProjError
    from rasterio.errors import CRSError as RioCRSError
    from rasterio.errors import RasterioError
    from shapely.errors import GEOSException, ShapelyError

    try:
        with warnings.catch_warnings(), np.errstate(invalid="ignore", over="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            yield
    except (GEOSException, ShapelyError, ProjError, CRSError, RioCRSError,
            RasterioError) as exc:
        reason = " ".join(str(exc).split())
        reason = re.sub(r"(/[^\s:]+)+/", "", reason)[:160]  # no server paths
        raise InvalidInputError(
            f"{source}: its geometry or georeference cannot be processed ({reason})"
        ) from None


def check_corridor_share(blocks: list[tuple[int, int, int, int]], source: str,
                         max_pixels: int) -> None:
    """Refuse a raster whose blocks along the corridor (``(row, col, h, w)``) hold more than
    ``max_pixels / CORRIDOR_SHARE``: the network's work grows with them, and a corridor of
    absurdly fine pixels (1 um) covers the whole raster."""
    pixels = sum(h * w for *_, h, w in blocks)
    if pixels > max_pixels // CORRIDOR_SHARE:
        raise InvalidInputError(
            f"{source}: the pipe corridor covers {pixels:,} pixels of the raster, above the "
            f"limit of {max_pixels // CORRIDOR_SHARE:,} (a quarter of TASEG_MAX_ORTHO_PIXELS);"
            " check the pixel size or crop the raster"
        )


#: Largest coordinate or pixel size (CRS units) a georeference may hold: 1e9 m is 25 times
#: the Earth's circumference, and its square stays far inside float range.
GEO_MAX = 1e9
