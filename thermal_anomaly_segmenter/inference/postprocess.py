"""Post-processing: probability map -> binary mask -> connected components -> anomaly records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from thermal_anomaly_segmenter.heat_loss import Conditions, component_moments, estimate

if TYPE_CHECKING:
    from thermal_anomaly_segmenter.io.frames import Frame


@dataclass
class Anomaly:
    """One connected warm region inside the corridor. Pixel coordinates are (x=col, y=row)."""

    id: int  # 1-based, ordered by descending area
    area_px: int
    area_m2: float | None
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (inclusive-exclusive, pixels)
    centroid: tuple[float, float]  # x, y in pixels
    max_t_degc: float
    mean_t_degc: float
    mean_dt_degc: float  # mean T_u of the region minus the corridor median
    mean_probability: float
    centroid_crs: tuple[float, float] | None = None  # x, y in the GeoTIFF's CRS
    #: Excess heat loss over the corridor background (:mod:`.heat_loss`); None without a
    #: pixel size or conditions.
    heat_loss_w: float | None = None
    heat_loss_w_low: float | None = None
    heat_loss_w_high: float | None = None
    heat_loss_mwh_per_year: float | None = None
    cost_per_year: float | None = None  # in the conditions' currency
    co2_t_per_year: float | None = None
    #: Moments of (T_u - background) over the pixels (:func:`.heat_loss.component_moments`),
    #: kept so regions cut by block borders can be summed; not reported.
    dt_moments: tuple[float, ...] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("dt_moments")
        return d


@dataclass
class Prediction:
    """Everything inference knows about one frame; reporting writes files from this."""

    frame: Frame
    probability: np.ndarray  # H x W float32 in 0..1
    mask: np.ndarray  # H x W uint8, 1 = anomaly (inside the corridor only)
    labels: np.ndarray  # H x W int32, component id per pixel (0 = none); ids match Anomaly.id
    anomalies: list[Anomaly]
    corridor_median_degc: float
    threshold: float
    model_name: str  # model type, e.g. "segformer_b0" or "classical"
    gsd_m: float | None = None  # metres per pixel used for area_m2, when known
    #: The GSD (m/px) the network saw the frame at when that was coarser than the frame's
    #: own (:mod:`~thermal_anomaly_segmenter.io.gsd`); None: at the frame's own pixels.
    network_gsd_m: float | None = None
    #: With the false-alarm stage (:mod:`~thermal_anomaly_segmenter.false_alarms.apply`): the
    #: components it rejected (their
    #: ids follow the accepted ones in ``labels``; ``mask`` holds the accepted only) ...
    rejected: list[Anomaly] = field(default_factory=list)
    #: ... and per id of both lists ``{"cause", "leak_score"}``; empty without the stage.
    verdicts: dict[int, dict] = field(default_factory=dict)
    #: The stage's classifier and keep threshold; None without the stage.
    screening: dict | None = None
    #: The night's conditions of the heat loss estimate (:mod:`.heat_loss`).
    conditions: Conditions | None = None


def anomaly_mask(probability: np.ndarray, corridor: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels whose probability exceeds ``threshold``, inside the corridor only (uint8 0/1)."""
    mask = np.greater(probability, np.float32(threshold))
    mask &= corridor
    return mask.view(np.uint8)


def extract_anomalies(
    frame: Frame,
    probability: np.ndarray,
    threshold: float,
    *,
    corridor_median: float,
    min_area_px: int = 1,
    gsd_m: float | None = None,
    conditions: Conditions | None = None,
) -> tuple[np.ndarray, np.ndarray, list[Anomaly]]:
    """Threshold, drop specks, and describe each remaining 8-connected component.

    Returns ``(mask, labels, anomalies)``; component ids are 1-based in order of descending
    area, and ``labels`` uses the same ids. With ``conditions`` and a known pixel size each
    record carries its heat loss over the corridor median (:mod:`.heat_loss`).
    """
    import cv2
    from scipy import ndimage

    mask = anomaly_mask(probability, frame.corridor, threshold)
    count, raw, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= min_area_px) + 1
    keep = keep[np.argsort(-stats[keep, cv2.CC_STAT_AREA], kind="stable")]
    lut = np.zeros(count, dtype=np.int32)
    lut[keep] = np.arange(1, len(keep) + 1, dtype=np.int32)
    labels = np.take(lut, raw, out=raw)  # in place: no second full-size int32 array
    if len(keep) < count - 1:
        mask = (labels > 0).view(np.uint8)
    if not len(keep):
        return mask, labels, []

    # Statistics over the anomaly pixels only: cheap even for huge frames with few anomalies.
    ys, xs = np.nonzero(labels)
    ids = labels[ys, xs]
    n = len(keep) + 1
    px = np.bincount(ids, minlength=n).astype(np.float64)
    t_u = frame.t_u[ys, xs].astype(np.float64)
    sum_t = np.bincount(ids, weights=t_u, minlength=n)
    sum_p = np.bincount(ids, weights=probability[ys, xs].astype(np.float64), minlength=n)
    sum_x = np.bincount(ids, weights=xs, minlength=n)
    sum_y = np.bincount(ids, weights=ys, minlength=n)
    max_t = ndimage.maximum(t_u, ids, index=np.arange(1, n))
    moments = component_moments(t_u - corridor_median, ids, n)

    pixel_area = None
    if frame.geo is not None and frame.geo.metric:
        pixel_area = frame.geo.pixel_area
    elif gsd_m is not None:
        pixel_area = gsd_m * gsd_m
    loss = None
    if conditions is not None and pixel_area is not None:
        loss = estimate(moments, corridor_median, pixel_area, conditions)
    anomalies = []
    for new_id, old_id in enumerate(keep, start=1):
        x0, y0, w, h = (int(v) for v in stats[old_id, :4])
        mean_t = sum_t[new_id] / px[new_id]
        cx, cy = sum_x[new_id] / px[new_id], sum_y[new_id] / px[new_id]
        centroid_crs = None
        if frame.geo is not None:
            gx, gy = frame.geo.pixel_to_crs(cx + 0.5, cy + 0.5)
            centroid_crs = (float(gx), float(gy))
        anomalies.append(
            Anomaly(
                id=new_id,
                area_px=int(px[new_id]),
                area_m2=None if pixel_area is None else float(px[new_id] * pixel_area),
                bbox=(x0, y0, x0 + w, y0 + h),
                centroid=(float(cx), float(cy)),
                max_t_degc=float(max_t[new_id - 1]),
                mean_t_degc=float(mean_t),
                mean_dt_degc=float(mean_t - corridor_median),
                mean_probability=float(sum_p[new_id] / px[new_id]),
                centroid_crs=centroid_crs,
                **({} if loss is None else loss.record(new_id)),
                dt_moments=tuple(float(v) for v in moments[new_id]),
            )
        )
    return mask, labels, anomalies
