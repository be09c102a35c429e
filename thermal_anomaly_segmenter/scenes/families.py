"""Scene families: typed parameter tables, one per kind of night flight.

A :class:`Family` holds every range a scene draws from. ``karlsruhe_winter`` is the original
generator (bit for bit); the others differ in ground sampling distance, ambient, terrain,
clutter, corridor shape, pipe trace, leak shapes and camera. Ranges are ``(low, high)``;
sizes are in pixels at the reference GSD (:data:`REF_GSD_M`) and 512 x 640 frames and scale
with both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from thermal_anomaly_segmenter.errors import InvalidInputError

#: Ground sampling distance (m/px) that the pixel sizes of a family are given at.
REF_GSD_M = 0.10

Range = tuple[float, float]


@dataclass(frozen=True)
class Family:
    """Parameters of one scene family (see the module docstring for units)."""

    name: str
    description: str
    # --- flight and weather
    gsd_m: Range = (REF_GSD_M, REF_GSD_M)
    ambient_centre_degc: float = -1.5
    ambient_span_degc: float = 1.0  # ambient = centre + span * U(-0.5, 0.5)
    # --- terrain
    parcels: tuple[int, int] = (3, 8)
    parcel_dt: Range = (-0.4, 0.4)
    ground_drift_degc: float = 0.35
    ground_texture_degc: float = 0.12
    gravel_degc: float = 0.0  # fine grain texture (gravel, cobbles)
    snow_cover: Range = (0.0, 0.0)  # share of the open ground under snow
    wet_patches: tuple[int, int] = (0, 0)  # cold, low-emissivity puddles
    # --- streets and corridor
    bend_sigma: float = 0.2
    corner_p: float = 0.2
    road_w: Range = (30.0, 50.0)
    walk_w: Range = (6.0, 14.0)
    road_dt: Range = (0.3, 0.8)
    walk_dt: Range = (-0.1, 0.5)
    side_streets: tuple[int, int] = (0, 2)
    corridor_share: Range = (0.15, 0.25)
    branch_p: float = 0.0  # chance of a pipe branch with its own corridor
    # --- pipe trace (never a leak)
    trace_dt: Range = (0.1, 0.4)
    trace_break_p: float = 0.0  # chance that the trace is broken into pieces
    # --- clutter
    buildings: tuple[int, int] = (3, 9)
    roof_dt: Range = (-0.9, 1.6)
    vents: tuple[int, int] = (0, 3)
    vent_dt: Range = (2.0, 6.0)
    windows_p: float = 0.0  # chance a building shows warm windows along an edge
    manholes: tuple[int, int] = (1, 3)
    manhole_pipe_p: float = 0.6
    car_rows: tuple[int, int] = (1, 4)
    engine_p: float = 0.4
    engine_dt: Range = (1.5, 5.0)
    trees: tuple[int, int] = (5, 16)
    tree_dt: Range = (-1.8, -0.8)
    tree_shadow_p: float = 0.0  # chance a crown casts a cold shadow on the ground
    lamp_spacing: Range = (70.0, 130.0)
    extra_lamps: tuple[int, int] = (1, 4)
    lamp_dt: Range = (5.0, 9.0)
    # --- leaks
    leak_count_p: tuple[float, ...] = (0.15, 0.4, 0.3, 0.15)
    leak_peak_dt: Range = (1.5, 5.0)
    leak_size_max: float = 2.6  # log-uniform size factor 1..this
    leak_min_sigma: tuple[float, float] = (3.0, 2.0)  # along, across (px)
    #: Shape weights: plume (several blobs along the pipe), round, elongated, irregular,
    #: merged (two or three leaks touching).
    leak_shapes: tuple[float, float, float, float, float] = (1.0, 0.0, 0.0, 0.0, 0.0)
    faint_p: float = 0.0  # chance a leak is only a few NETD above its surroundings
    halo: Range = (0.0, 0.0)  # faint wide halo, as a share of the peak (never labelled)
    # --- camera
    netd_degc: Range = (0.05, 0.09)
    blur_px: Range = (0.6, 0.6)
    stripes_degc: Range = (0.0, 0.0)  # fixed-pattern column/row offsets
    vignetting_degc: Range = (0.0, 0.0)  # corners darker (positive) or brighter (negative)
    tags: tuple[str, ...] = field(default_factory=tuple)


_BASE = Family("karlsruhe_winter", "the original generator: a Karlsruhe street on a mild "
               "winter night, 10 cm/px, around -1.5 degC")

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        _BASE,
        replace(
            _BASE,
            name="suburb_snow",
            description="snowy suburb on a hard frost: fine GSD, straight streets with "
            "branches, snow and tree shadows, round and merged leaks, many leak-free frames",
            gsd_m=(0.04, 0.07),
            ambient_centre_degc=-11.0,
            ambient_span_degc=8.0,
            snow_cover=(0.4, 0.9),
            ground_texture_degc=0.06,
            bend_sigma=0.05,
            corner_p=0.05,
            road_w=(25.0, 40.0),
            branch_p=0.6,
            corridor_share=(0.12, 0.22),
            trace_dt=(0.2, 0.6),
            buildings=(2, 6),
            roof_dt=(-1.5, 0.5),
            windows_p=0.5,
            trees=(10, 24),
            tree_shadow_p=0.7,
            car_rows=(0, 2),
            engine_p=0.2,
            leak_count_p=(0.45, 0.35, 0.15, 0.05),
            leak_shapes=(0.2, 0.4, 0.1, 0.1, 0.2),
            faint_p=0.15,
            halo=(0.08, 0.2),
            netd_degc=(0.03, 0.045),
            vignetting_degc=(0.0, 0.4),
        ),
        replace(
            _BASE,
            name="city_wet",
            description="wet city centre on a mild night: close-up GSD, dense buildings with "
            "windows and vents, many lamps, running engines and manholes, broken pipe trace, "
            "irregular and elongated leaks",
            gsd_m=(0.03, 0.05),
            ambient_centre_degc=6.0,
            ambient_span_degc=8.0,
            wet_patches=(3, 10),
            parcel_dt=(-0.6, 0.6),
            bend_sigma=0.3,
            corner_p=0.35,
            road_w=(40.0, 60.0),
            corridor_share=(0.18, 0.3),
            trace_dt=(0.15, 0.5),
            trace_break_p=0.6,
            buildings=(6, 14),
            vents=(1, 5),
            windows_p=0.8,
            manholes=(2, 6),
            manhole_pipe_p=0.4,
            car_rows=(2, 6),
            engine_p=0.7,
            engine_dt=(2.0, 8.0),
            trees=(2, 8),
            lamp_spacing=(45.0, 90.0),
            extra_lamps=(2, 6),
            leak_count_p=(0.35, 0.35, 0.2, 0.1),
            leak_peak_dt=(1.0, 4.0),
            leak_shapes=(0.2, 0.1, 0.3, 0.3, 0.1),
            faint_p=0.1,
            halo=(0.1, 0.25),
            netd_degc=(0.05, 0.07),
            blur_px=(0.6, 1.0),
        ),
        replace(
            _BASE,
            name="industrial_gravel",
            description="industrial estate: gravel yards, large halls with chimneys, trucks "
            "with hot engines, an old camera with stripes and blur, a strong pipe trace",
            gsd_m=(0.08, 0.12),
            ambient_centre_degc=0.0,
            ambient_span_degc=10.0,
            gravel_degc=0.2,
            parcels=(4, 10),
            parcel_dt=(-0.7, 0.7),
            bend_sigma=0.1,
            corner_p=0.4,
            road_w=(35.0, 60.0),
            side_streets=(1, 3),
            branch_p=0.4,
            trace_dt=(0.3, 0.8),
            trace_break_p=0.3,
            buildings=(2, 6),
            roof_dt=(-0.5, 2.5),
            vents=(2, 6),
            vent_dt=(3.0, 10.0),
            windows_p=0.3,
            manholes=(1, 4),
            engine_p=0.6,
            engine_dt=(2.0, 9.0),
            trees=(0, 5),
            lamp_spacing=(90.0, 160.0),
            leak_count_p=(0.35, 0.4, 0.2, 0.05),
            leak_shapes=(0.4, 0.1, 0.3, 0.1, 0.1),
            halo=(0.05, 0.15),
            netd_degc=(0.06, 0.08),
            blur_px=(0.9, 1.5),
            stripes_degc=(0.03, 0.08),
        ),
        replace(
            _BASE,
            name="rural_coarse",
            description="village edge seen from high up: coarse GSD (small leaks of a few "
            "pixels), grass and wet fields, a long straight corridor across the frame, few "
            "objects, faint leaks, mostly leak-free frames, strong vignetting",
            gsd_m=(0.12, 0.15),
            ambient_centre_degc=-5.0,
            ambient_span_degc=10.0,
            parcels=(4, 12),
            parcel_dt=(-0.6, 0.3),
            wet_patches=(2, 6),
            ground_texture_degc=0.15,
            bend_sigma=0.03,
            corner_p=0.0,
            road_w=(20.0, 35.0),
            side_streets=(0, 1),
            corridor_share=(0.08, 0.16),
            trace_dt=(0.05, 0.25),
            trace_break_p=0.4,
            buildings=(1, 5),
            manholes=(0, 2),
            car_rows=(0, 1),
            trees=(3, 12),
            tree_shadow_p=0.4,
            lamp_spacing=(120.0, 250.0),
            extra_lamps=(0, 2),
            leak_count_p=(0.5, 0.35, 0.15),
            leak_peak_dt=(0.8, 3.5),
            leak_min_sigma=(1.0, 0.8),
            leak_shapes=(0.4, 0.4, 0.2, 0.0, 0.0),
            faint_p=0.3,
            halo=(0.05, 0.2),
            netd_degc=(0.04, 0.08),
            blur_px=(0.6, 1.1),
            vignetting_degc=(0.2, 0.8),
        ),
        replace(
            _BASE,
            name="campus_mixed",
            description="university campus after rain: mixed GSD, lawns, gravel paths, "
            "puddles, branching pipes, every leak shape, camera with slight stripes",
            gsd_m=(0.05, 0.1),
            ambient_centre_degc=2.0,
            ambient_span_degc=8.0,
            gravel_degc=0.08,
            wet_patches=(1, 5),
            parcels=(5, 12),
            bend_sigma=0.25,
            corner_p=0.25,
            branch_p=0.5,
            trace_dt=(0.1, 0.5),
            trace_break_p=0.3,
            buildings=(3, 8),
            windows_p=0.6,
            manholes=(1, 5),
            manhole_pipe_p=0.5,
            trees=(6, 16),
            tree_shadow_p=0.5,
            leak_count_p=(0.4, 0.35, 0.2, 0.05),
            leak_shapes=(0.3, 0.2, 0.2, 0.15, 0.15),
            faint_p=0.15,
            halo=(0.05, 0.2),
            netd_degc=(0.035, 0.06),
            blur_px=(0.6, 0.9),
            stripes_degc=(0.0, 0.04),
            vignetting_degc=(-0.3, 0.3),
        ),
    )
}

#: The family of the original generator and of every default.
DEFAULT_FAMILY = "karlsruhe_winter"


def get_family(name: str | Family) -> Family:
    """The family called ``name`` (a :class:`Family` passes through)."""
    if isinstance(name, Family):
        return name
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise InvalidInputError(
            f"unknown scene family {name!r}; choose one of {', '.join(FAMILIES)}"
        ) from None


def parse_families(text: str | None) -> tuple[str, ...]:
    """Comma-separated family names (``all`` for every family) as a checked tuple."""
    if text is None or not text.strip():
        return (DEFAULT_FAMILY,)
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names == ("all",):
        return tuple(FAMILIES)
    for n in names:
        get_family(n)
    if len(set(names)) != len(names):
        raise InvalidInputError(f"families must not repeat, got {text!r}")
    return names
