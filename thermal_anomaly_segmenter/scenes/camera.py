"""Camera layer: optics blur, NETD noise, fixed-pattern stripes and vignetting."""

from __future__ import annotations

import numpy as np

from thermal_anomaly_segmenter.scenes.canvas import Canvas


def sensor(c: Canvas) -> None:
    """Draw the frame's temporal noise (NETD), blur and fixed pattern."""
    f, rng, ex = c.family, c.rng, c.extra
    c.netd = float(rng.uniform(*f.netd_degc))
    c.noise = rng.normal(0.0, c.netd, size=c.shape).astype(np.float32)
    c.blur_px = float(ex.uniform(*f.blur_px))
    pattern = np.zeros(c.shape, np.float32)
    if f.stripes_degc[1] > 0:
        amp = ex.uniform(*f.stripes_degc)
        pattern += ex.normal(0, amp, c.width).astype(np.float32)[None, :]
        pattern += ex.normal(0, amp / 2, c.height).astype(np.float32)[:, None]
    if f.vignetting_degc != (0.0, 0.0):
        amp = ex.uniform(*f.vignetting_degc)
        yy, xx = np.mgrid[0 : c.height, 0 : c.width].astype(np.float32)
        r2 = ((xx - c.width / 2) / (c.width / 2)) ** 2 + ((yy - c.height / 2) / (c.height / 2)) ** 2
        pattern -= np.float32(amp / 2) * r2
    c.pattern = pattern if pattern.any() else None


def compose(c: Canvas, ambient: float) -> np.ndarray:
    """The ``T_u`` image in degC: ground, painted surface, trace and glow through the optics."""
    import cv2

    t_u = c.ground
    t_u += cv2.GaussianBlur(c.surface, (0, 0), max(0.8 * c.scale, 0.5))
    t_u += c.trace
    t_u += c.glow
    t_u = cv2.GaussianBlur(t_u, (0, 0), c.blur_px)  # optics
    t_u += c.noise
    if c.pattern is not None:
        t_u += c.pattern
    t_u += np.float32(ambient)
    return t_u
