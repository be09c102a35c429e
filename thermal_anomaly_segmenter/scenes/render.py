"""A scene as a sequence of named layers painted on one :class:`.Canvas`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.io.frames import compose_frame
from thermal_anomaly_segmenter.scenes import camera, clutter, corridor, leaks, terrain
from thermal_anomaly_segmenter.scenes.canvas import Canvas
from thermal_anomaly_segmenter.scenes.families import DEFAULT_FAMILY, Family, get_family

MIN_SIDE = 32
MAX_SIDE = 8192
MAX_LEAKS = 10


@dataclass
class Scene:
    """One synthetic frame with its ground truth.

    Attributes:
        data: ``H x W x 3`` float32 frame ``(T_m, T_m, T_u)`` in degC, from ``compose_frame``.
        corridor: ``H x W`` bool mask of the pipeline corridor.
        leak_mask: ``H x W`` uint8 0/1, the leak labels (see :mod:`.scenes.leaks`).
        bait_mask: ``H x W`` uint8 0/1, false-alarm objects (lamps, manholes, engines, vents).
        n_leaks: Number of leaks placed in the scene.
        instances: ``H x W`` int32 distractor instance ids (0: none; never on a leak label).
        instance_classes: Class of instance id ``k`` at index ``k - 1`` (one of
            :data:`.DISTRACTOR_CLASSES`).
        family: Name of the scene family.
        gsd_m: Ground sampling distance in metres per pixel.
        pipe: ``N x 2`` float pixel coordinates ``(x, y)`` of the main pipe's axis, in
            order along it (it may run beyond the frame).
    """

    data: np.ndarray
    corridor: np.ndarray
    leak_mask: np.ndarray
    bait_mask: np.ndarray
    n_leaks: int
    instances: np.ndarray | None = None
    instance_classes: tuple[str, ...] = field(default_factory=tuple)
    family: str = DEFAULT_FAMILY
    gsd_m: float = 0.1
    pipe: np.ndarray | None = None

    @property
    def t_u(self) -> np.ndarray:
        """``H x W`` temperature image (channel 2 of ``data``)."""
        return self.data[..., 2]


def check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise InvalidInputError(f"{name} must be {bound}, got {value}")
    return value


def _stream(seed: int, key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(key,))))


def render_scene(
    seed: int,
    height: int = 512,
    width: int = 640,
    n_leaks: int | None = None,
    *,
    ambient_degc: float | None = None,
    family: str | Family = DEFAULT_FAMILY,
) -> Scene:
    """Render one seeded synthetic night-flight scene.

    Args:
        seed: Non-negative integer; the same seed gives a bit-identical scene.
        height: Frame height in pixels (32..8192).
        width: Frame width in pixels (32..8192).
        n_leaks: Number of leaks (0..10); by default drawn from the family's distribution
            (``karlsruhe_winter``: 0..3, mostly 1 or 2).
        ambient_degc: Ground temperature in degC. The default draws it from the family
            (``karlsruhe_winter``: :data:`.synthetic.DEFAULT_AMBIENT_DEGC` +-0.5). Changing
            it shifts the whole scene by the same amount and leaves everything else unchanged.
        family: Scene family name (see :data:`.scenes.FAMILIES`) or a :class:`.scenes.Family`.

    Returns:
        The :class:`Scene`.

    Raises:
        InvalidInputError: If an argument is out of range or the family is unknown.
    """
    fam = get_family(family)
    seed = check_int("seed", seed, 0)
    height = check_int("height", height, MIN_SIDE, MAX_SIDE)
    width = check_int("width", width, MIN_SIDE, MAX_SIDE)
    if n_leaks is not None:
        n_leaks = check_int("n_leaks", n_leaks, 0, MAX_LEAKS)
    if ambient_degc is not None:
        ambient_degc = _check_ambient(ambient_degc)

    extra = _stream(seed, 1)
    c = Canvas(
        family=fam,
        rng=np.random.Generator(np.random.PCG64(seed)),
        extra=extra,
        leak_rng=_stream(seed, 2),
        height=height,
        width=width,
        gsd_m=float(extra.uniform(*fam.gsd_m)),
    )
    # Drawn even when the caller fixes them, so the rest of the scene stays the same.
    jitter = c.rng.uniform(-0.5, 0.5)
    ambient = (fam.ambient_centre_degc + jitter * fam.ambient_span_degc
               if ambient_degc is None else ambient_degc)
    if n_leaks is None:
        p = fam.leak_count_p
        n_leaks = int(c.rng.choice(len(p), p=p))
    else:
        c.rng.random()

    _paint_layers(c, n_leaks)
    t_u = camera.compose(c, ambient)
    c.instances[c.leak.astype(bool)] = 0
    return Scene(
        data=compose_frame(t_u, c.corridor),
        corridor=c.corridor,
        leak_mask=c.leak,
        bait_mask=c.bait,
        n_leaks=n_leaks,
        instances=c.instances,
        instance_classes=tuple(c.classes),
        family=fam.name,
        gsd_m=c.gsd_m,
        pipe=c.pipe,
    )


def _check_ambient(value: object) -> float:
    try:
        ambient_degc = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInputError(f"ambient_degc must be a number, got {value!r}") from None
    if not math.isfinite(ambient_degc) or abs(ambient_degc) > 100:
        raise InvalidInputError(f"ambient_degc must be within -100..100, got {ambient_degc}")
    return ambient_degc


def _paint_layers(c: Canvas, n_leaks: int) -> None:
    """The scene's layers, painted in order (later objects cover earlier ones)."""
    terrain.parcels(c)
    terrain.snow(c)
    corridor.streets(c)
    terrain.wet_patches(c)
    corridor.corridor(c)
    corridor.pipe_trace(c)
    clutter.buildings(c)
    clutter.manholes(c)
    clutter.cars(c)
    clutter.trees(c)
    clutter.lamps(c)
    # Ground and sensor noise come before the leaks, so that the same seed with another
    # n_leaks gives the same scene apart from the leaks.
    terrain.ground(c)
    camera.sensor(c)
    terrain.gravel(c)
    leaks.leaks(c, n_leaks)
