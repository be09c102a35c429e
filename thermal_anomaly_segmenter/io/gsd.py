"""Scale matching: a frame finer than the model's training GSD is seen at that GSD.

A network learns what a leak, a lamp or the pipe's heat trace looks like at the ground
sampling distance (GSD) of its training frames. A frame flown lower shows the same objects
larger in pixels: the shipped default (trained at 0.10 m/px) then outlined only the core of
3-5 cm/px leaks and marked the pipe trace's texture as anomalies (benchmarks/RESULTS.md
D11). So when both GSDs are known -- the frame's from ``--gsd`` / the API's
``gsd`` or its georeference, the model's from ``gsd_m`` in ``train_config.json`` -- and the
frame is finer, the network sees it area-averaged down to the model's GSD and its
probabilities are interpolated back onto the frame's pixels; masks, components and outputs
stay at the frame's resolution.

Frames coarser than the model are never enlarged: interpolation adds no detail, and on the
one held-out family coarser than the shipped default it halved object precision.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from thermal_anomaly_segmenter.io.frames import Frame, compose_frame

#: Frames within this share of the model's GSD are used as they are (no resampling blur).
TOLERANCE = 0.1
#: A resampled frame keeps at least this many pixels on its shorter side.
MIN_SIDE_PX = 64


def frame_gsd(frame: Frame, gsd_m: float | None) -> float | None:
    """The frame's GSD in m/px: its metric georeference's, else ``gsd_m`` (as for areas)."""
    if frame.geo is not None and frame.geo.gsd_m is not None:
        return frame.geo.gsd_m
    return None if gsd_m is None else float(gsd_m)


def scale_factor(shape: tuple[int, int], frame_gsd_m: float | None,
                 model_gsd_m: float | None) -> float | None:
    """The factor (< 1) a frame of ``shape`` is shrunk by, or ``None`` to use it as it is."""
    if frame_gsd_m is None or model_gsd_m is None:
        return None
    k = frame_gsd_m / model_gsd_m
    k = max(k, min(1.0, MIN_SIDE_PX / max(1, min(shape))))
    return k if k < 1.0 - TOLERANCE else None


def shrink(frame: Frame, k: float) -> Frame:
    """The frame area-averaged by ``k`` (T_u averaged, the corridor a majority vote)."""
    import cv2

    h, w = frame.shape
    size = (max(1, round(w * k)), max(1, round(h * k)))
    t_u = cv2.resize(np.ascontiguousarray(frame.t_u), size, interpolation=cv2.INTER_AREA)
    share = cv2.resize(np.ascontiguousarray(frame.corridor, dtype=np.float32), size,
                       interpolation=cv2.INTER_AREA)
    corridor = share >= 0.5
    if not corridor.any():  # a corridor thinner than one coarse pixel keeps its trace
        corridor = share > 0
    return replace(frame, data=compose_frame(t_u, corridor), corridor=corridor, geo=None)


def enlarge(probability: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A probability map interpolated back to ``shape`` (bilinear, float32)."""
    import cv2

    out = cv2.resize(probability, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)
