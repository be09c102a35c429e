"""Classical leak segmentation: triangle-histogram thresholding of ``T_u`` inside the corridor.

This is the method behind the labels of the published ``generated_set``: the histogram of the
temperatures inside the pipeline corridor is thresholded with the triangle method of
Zack, Rogers and Latt (1977, "Automatic measurement of sister chromatid exchange frequency",
J. Histochem. Cytochem. 25(7)), and connected warm regions smaller than a few pixels are
dropped. The triangle method draws a line from the histogram peak (the corridor's background
temperature) to the far end of its longer tail (the warmest pixels) and cuts where the
histogram lies farthest below that line, so it suits a large background mode with a thin tail
of anomalies.

Known weakness: it flags every warm spot in the corridor, not only leaks. Street lamps, warm
manholes, car engines, building edges and sunlit asphalt pass the threshold as well, which is
why labels made this way are noisy and why a learned model is trained on top of them. It also
always finds *something* above the threshold, even in a frame without any leak.

It needs no model and no torch, so it serves as the default model, as the generator of
automatic labels for synthetic data and as a baseline in benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError

#: Score given to pixels of removed specks: clearly below 0.5 so no threshold near it keeps them.
_SPECK_SCORE = np.float32(0.1)
#: Smallest float32 above 0.5: kept pixels must stay strictly above 0.5 despite rounding.
_ABOVE_HALF = np.nextafter(np.float32(0.5), np.float32(1.0))


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class ClassicalParams:
    """Parameters of the classical method.

    Attributes:
        bins: Number of histogram bins for the triangle method.
        min_area_px: Warm components (8-connected) with fewer pixels are removed as specks;
            0 or 1 keeps everything.
        softness_degc: Width of the soft score around the threshold, in degC: a pixel one
            ``softness_degc`` above the threshold scores about 0.73.
    """

    bins: int = 256
    min_area_px: int = 20
    softness_degc: float = 0.5

    def __post_init__(self) -> None:
        if not _is_int(self.bins) or self.bins < 2:
            raise InvalidInputError(f"bins must be an integer >= 2, got {self.bins!r}")
        if not _is_int(self.min_area_px) or self.min_area_px < 0:
            raise InvalidInputError(
                f"min_area_px must be an integer >= 0, got {self.min_area_px!r}"
            )
        if not np.isfinite(self.softness_degc) or self.softness_degc <= 0:
            raise InvalidInputError(f"softness_degc must be > 0, got {self.softness_degc!r}")


def triangle_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Threshold a set of values with Zack's triangle method.

    The histogram peak is joined by a line to the far end of the longer tail; the threshold is
    the centre of the bin whose count lies farthest below that line. A peak at the high end is
    handled by flipping the histogram, so the method works for a tail on either side.
    Values above the returned threshold are the foreground (the tail).

    Args:
        values: Values of any shape; NaN and infinities are ignored.
        bins: Number of histogram bins (>= 2).

    Returns:
        The threshold. For constant input, that constant (so nothing lies above it).

    Raises:
        InvalidInputError: If ``bins`` < 2 or there is no finite value.
    """
    if not _is_int(bins) or bins < 2:
        raise InvalidInputError(f"bins must be an integer >= 2, got {bins!r}")
    values = np.asarray(values).ravel()
    if values.dtype.kind not in "biuf":
        raise InvalidInputError(f"values must be numeric, got dtype {values.dtype}")
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    if values.size == 0:
        raise InvalidInputError("triangle_threshold needs at least one finite value")
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return hi
    hist, edges = np.histogram(values, bins=int(bins), range=(lo, hi))
    hist = hist.astype(np.float64)
    centers = 0.5 * (edges[:-1] + edges[1:])

    peak = int(np.argmax(hist))
    nonzero = np.flatnonzero(hist)
    first, last = int(nonzero[0]), int(nonzero[-1])
    # Work on the longer tail; flipping makes that tail always lie left of the peak.
    flip = (peak - first) < (last - peak)
    if flip:
        hist = hist[::-1]
        peak = bins - 1 - peak
        first = bins - 1 - last
    width = peak - first
    if width <= 0:  # pragma: no cover - both tails empty means lo == hi, handled above
        return hi
    # Distance (up to a constant factor) of each tail bin below the line from
    # (first, 0) to (peak, hist[peak]); the best cut maximises it.
    x = np.arange(width, dtype=np.float64)
    distance = hist[peak] * x - width * hist[first : first + width]
    level = first + int(np.argmax(distance))
    if flip:
        level = bins - 1 - level
    return float(centers[level])


def _check_inputs(frame_data: np.ndarray, corridor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(frame_data)
    if data.ndim != 3 or data.shape[2] != 3:
        raise InvalidInputError(
            f"frame_data must be H x W x 3 (T_m, T_m, T_u), got shape {data.shape}"
        )
    if data.dtype.kind not in "biuf":
        raise InvalidInputError(f"frame_data must be numeric, got dtype {data.dtype}")
    mask = np.asarray(corridor)
    if mask.shape != data.shape[:2]:
        raise InvalidInputError(
            f"corridor shape {mask.shape} does not match the frame's {data.shape[:2]}"
        )
    if mask.dtype != bool:
        mask = mask != 0
    return data, mask


def classical_probability(
    frame_data: np.ndarray,
    corridor: np.ndarray,
    params: ClassicalParams = ClassicalParams(),  # noqa: B008 - frozen, so sharing is safe
) -> np.ndarray:
    """Soft leak score of every pixel by triangle thresholding inside the corridor.

    The score is ``sigmoid((T_u - thr) / softness)`` inside the corridor and 0 outside, where
    ``thr`` is the triangle threshold of the corridor's ``T_u``. Pixels of warm components
    (8-connected pixels with ``T_u > thr`` inside the corridor) smaller than
    ``params.min_area_px`` get a low score, so ``score > 0.5`` is exactly the triangle label.

    Args:
        frame_data: ``H x W x 3`` frame ``(T_m, T_m, T_u)`` in degC.
        corridor: ``H x W`` mask of the pipeline corridor (bool or 0/1).
        params: Method parameters.

    Returns:
        ``H x W`` float32 scores in [0, 1].

    Raises:
        InvalidInputError: If the shapes or dtypes are wrong.
    """
    import cv2

    data, mask = _check_inputs(frame_data, corridor)
    t_u = data[..., 2]
    height, width = mask.shape
    prob = np.zeros((height, width), dtype=np.float32)
    values = t_u[mask]
    if values.size == 0 or not np.isfinite(values).any():
        return prob  # no corridor: nothing can be a leak
    # A float32 threshold makes "T_u > thr" and "T_u - thr > 0" agree bit for bit below.
    thr = np.float32(triangle_threshold(values, params.bins))
    del values

    np.subtract(t_u, thr, out=prob, dtype=np.float32)
    hot = np.greater(prob, 0, out=np.empty((height, width), dtype=bool))
    hot &= mask
    # sigmoid(z) = (1 + tanh(z / 2)) / 2 cannot overflow, unlike 1 / (1 + exp(-z)).
    prob *= np.float32(0.5 / params.softness_degc)
    np.tanh(prob, out=prob)
    prob += 1.0
    prob *= 0.5
    np.nan_to_num(prob, copy=False, nan=0.0)
    prob *= mask
    # Rounding can give exactly 0.5 just above the threshold; keep the label exact.
    np.maximum(prob, _ABOVE_HALF, out=prob, where=hot)

    if params.min_area_px > 1:
        hot_u8 = hot.view(np.uint8)
        # Label only the bounding box of the warm pixels: the int32 label image is the
        # largest temporary, and the corridor is usually a small part of a big frame.
        x, y, w, h = cv2.boundingRect(hot_u8)
        if w > 0 and h > 0:
            n, labels, stats, _ = cv2.connectedComponentsWithStats(
                hot_u8[y : y + h, x : x + w], connectivity=8, ltype=cv2.CV_32S
            )
            small = stats[:, cv2.CC_STAT_AREA] < params.min_area_px
            small[0] = False  # label 0 is the background
            if small.any():
                speck = small[labels]
                del labels
                prob[y : y + h, x : x + w][speck] = _SPECK_SCORE
    return prob


def classical_label(
    frame_data: np.ndarray,
    corridor: np.ndarray,
    params: ClassicalParams = ClassicalParams(),  # noqa: B008 - frozen, so sharing is safe
) -> np.ndarray:
    """Binary triangle label: 1 where :func:`classical_probability` is above 0.5.

    Args:
        frame_data: ``H x W x 3`` frame ``(T_m, T_m, T_u)`` in degC.
        corridor: ``H x W`` mask of the pipeline corridor (bool or 0/1).
        params: Method parameters.

    Returns:
        ``H x W`` uint8 mask of 0 and 1, 0 everywhere outside the corridor.
    """
    prob = classical_probability(frame_data, corridor, params)
    return np.greater(prob, 0.5, out=np.empty(prob.shape, dtype=bool)).view(np.uint8)
