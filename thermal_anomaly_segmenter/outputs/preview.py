"""Preview images of labelled frames: what a dataset builder shows for a person to check.
"""

from __future__ import annotations

import numpy as np

#: Longest side of a preview PNG; larger frames (orthomosaics) are shrunk for it.
PREVIEW_MAX_SIDE = 1024


def render_preview(
    data: np.ndarray, corridor: np.ndarray, label: np.ndarray, max_side: int = PREVIEW_MAX_SIDE
) -> np.ndarray:
    """RGB preview of a labelled frame: ``T_u`` in the inferno colour map, the corridor outline
    in cyan and the label outline in green (the colours of the prediction overlay).

    Args:
        data: ``H x W x 3`` frame ``(T_m, T_m, T_u)``.
        corridor: ``H x W`` corridor mask.
        label: ``H x W`` label (nonzero = anomaly).
        max_side: Longest side of the preview; larger frames are shrunk.

    Returns:
        ``h x w x 3`` uint8 RGB image.
    """
    import cv2

    from thermal_anomaly_segmenter.outputs.overlay import ANOMALY_RGB, CORRIDOR_RGB

    height, width = data.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    t_u = np.ascontiguousarray(data[..., 2], dtype=np.float32)
    masks = [np.asarray(m, dtype=bool).view(np.uint8) for m in (corridor, label)]
    if scale < 1.0:
        t_u = cv2.resize(t_u, size, interpolation=cv2.INTER_AREA)
        masks = [cv2.resize(m, size, interpolation=cv2.INTER_NEAREST) for m in masks]
    # Percentiles, not min/max: hot street lamps would squeeze the rest into one colour.
    lo, hi = (float(v) for v in np.percentile(t_u, (1.0, 99.5)))
    if not hi - lo > 1e-6:
        lo, hi = lo - 0.5, lo + 0.5
    levels = np.clip((t_u - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    kernel = np.ones((3, 3), np.uint8)
    for mask, colour in zip(masks, (CORRIDOR_RGB, ANOMALY_RGB), strict=True):
        # Inner border by erosion (the frame edge counts as inside, so no line along it).
        rim = (mask > 0) & (cv2.erode(mask, kernel, borderType=cv2.BORDER_REPLICATE) == 0)
        rgb[rim] = colour
    return rgb
