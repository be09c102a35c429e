"""The canvas that scene layers paint on, and the classes of distractor objects."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from thermal_anomaly_segmenter.scenes.families import REF_GSD_M, Family

#: Classes of the distractor instance map (objects that look warm but are never a leak).
DISTRACTOR_CLASSES: tuple[str, ...] = (
    "lamp", "manhole", "vehicle", "pipe_trace", "building", "other",
)

_REF_AREA = 512 * 640  # frame size the feature sizes are tuned for


@dataclass
class Canvas:
    """Everything the layers share while one scene is painted.

    ``rng`` is the stream of the original generator (its draw order must not change, so the
    ``karlsruhe_winter`` family stays bit-identical); ``extra`` feeds the layers only other
    families use, and ``leak_rng`` the leak shapes beyond the original plume, so that a
    scene with other leaks keeps the same background.
    """

    family: Family
    rng: np.random.Generator
    extra: np.random.Generator
    leak_rng: np.random.Generator
    height: int
    width: int
    gsd_m: float
    scale: float = field(init=False)
    density: float = field(init=False)
    surface: np.ndarray = field(init=False)  # painted temperatures relative to ambient
    glow: np.ndarray = field(init=False)  # additive heat: halos, leaks
    bait: np.ndarray = field(init=False)  # objects that fool the classical method
    blocked: np.ndarray = field(init=False)  # no new building here
    roofs: np.ndarray = field(init=False)
    instances: np.ndarray = field(init=False)  # distractor instance ids, 0 = none
    classes: list[str] = field(default_factory=list)  # class of instance id k at k - 1
    leak: np.ndarray = field(init=False)
    # Set by the corridor layer.
    route: np.ndarray | None = None
    tangent: np.ndarray | None = None
    normal: np.ndarray | None = None
    pipe: np.ndarray | None = None
    inside: np.ndarray | None = None
    profile: np.ndarray | None = None
    road_w: float = 0.0
    walk_w: float = 0.0
    road_dt: float = 0.0
    r0: float = 0.0
    corridor: np.ndarray | None = None
    trace: np.ndarray | None = None
    # Extra leak sites (a branch pipe): points, tangents and corridor half-widths.
    branch_sites: tuple[np.ndarray, np.ndarray, float] | None = None
    # Set by the ground and camera layers.
    ground: np.ndarray | None = None
    noise: np.ndarray | None = None
    netd: float = 0.0
    blur_px: float = 0.6
    pattern: np.ndarray | None = None  # fixed-pattern stripes and vignetting

    def __post_init__(self) -> None:
        shape = (self.height, self.width)
        gsd_factor = REF_GSD_M / self.gsd_m
        self.scale = math.sqrt(self.height * self.width / _REF_AREA) * gsd_factor
        self.density = self.height * self.width / _REF_AREA / (gsd_factor * gsd_factor)
        self.surface = np.zeros(shape, np.float32)
        self.glow = np.zeros(shape, np.float32)
        self.bait = np.zeros(shape, np.uint8)
        self.blocked = np.zeros(shape, np.uint8)
        self.roofs = np.zeros(shape, np.uint8)
        self.instances = np.zeros(shape, np.int32)
        self.leak = np.zeros(shape, np.uint8)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def count(self, lo: int, hi: int) -> int:
        """An object count in ``lo..hi`` per reference frame, following the ground covered."""
        return int(self.rng.integers(lo, hi + 1) * self.density + self.rng.random())

    def new_instance(self, cls: str) -> int:
        """A fresh distractor instance id of class ``cls``."""
        self.classes.append(cls)
        return len(self.classes)
