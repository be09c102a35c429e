"""Synthetic night-flight scenes in named families, painted as a sequence of named layers.

Layers (in painting order): :mod:`.terrain` (parcels, snow, wet patches, ground, gravel),
:mod:`.corridor` (streets, pipe and corridor with optional branch, the pipe's heat trace),
:mod:`.clutter` (buildings with vents and windows, manholes, cars with engines, trees with
shadows, lamps), :mod:`.camera` (NETD noise, blur, stripes, vignetting) and :mod:`.leaks`.
Families (:data:`FAMILIES`) are typed parameter tables (:class:`Family`);
:mod:`~thermal_anomaly_segmenter.scenes.synthetic` writes seeded datasets of them in the TASeg
layout.

Label convention, applied in every family: a leak label covers the area the leak makes
clearly warmer than its local surroundings -- where the leak's own excess heat is at least
30 % of its peak (and at least two NETD) -- in one piece per leak, inside the corridor. The
faint halo around a leak is not labelled; the pipe's heat trace, lamps, manholes, engines and
building heat are never labelled. Those distractors are recorded instead, per scene, in an
instance map with one class per instance (:data:`DISTRACTOR_CLASSES`).
"""

from __future__ import annotations

from thermal_anomaly_segmenter.scenes.canvas import DISTRACTOR_CLASSES
from thermal_anomaly_segmenter.scenes.families import (
    DEFAULT_FAMILY,
    FAMILIES,
    REF_GSD_M,
    Family,
    get_family,
    parse_families,
)
from thermal_anomaly_segmenter.scenes.leaks import LEAK_MASK_FRACTION
from thermal_anomaly_segmenter.scenes.render import Scene, render_scene

__all__ = [
    "DEFAULT_FAMILY",
    "DISTRACTOR_CLASSES",
    "FAMILIES",
    "LEAK_MASK_FRACTION",
    "REF_GSD_M",
    "Family",
    "Scene",
    "get_family",
    "parse_families",
    "render_scene",
]
