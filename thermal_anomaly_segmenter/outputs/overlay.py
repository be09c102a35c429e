"""The overlay image: ``T_u`` in a thermal colour map, corridor, numbered anomalies, colour bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from thermal_anomaly_segmenter.inference.postprocess import Anomaly, Prediction

# Overlay colours, RGB. Neither occurs in COLORMAP_INFERNO (its green never exceeds its red),
# so outlines stay distinguishable from the thermal image everywhere.
ANOMALY_RGB = (0, 255, 0)
#: Components the false-alarm stage rejected: a dimmed outline, no id.
REJECTED_RGB = (128, 128, 136)
CORRIDOR_RGB = (0, 255, 255)
_BACKGROUND_RGB = (22, 22, 26)
_TEXT_RGB = (235, 235, 235)
_MUTED_RGB = (170, 170, 178)
_FONT = cv2.FONT_HERSHEY_SIMPLEX

#: Percentiles of T_u mapped to the ends of the colour map (robust to hot lamps and fill).
COLOUR_RANGE_PERCENTILES = (1.0, 99.5)
_MIN_SIDE = 64  # below this the decorations cannot fit
_MAX_PERCENTILE_SAMPLES = 1 << 20  # a strided subsample this large gives stable percentiles


# Overlay


@dataclass(frozen=True)
class _Layout:
    """Sizes of the overlay canvas, all in output pixels."""

    scale: float  # output pixels per frame pixel
    h: int  # image area
    w: int
    font: float  # cv2 font scale of labels and ticks
    thick: int  # text stroke
    text_h: int  # height of a digit at ``font``
    line: int  # anomaly outline width
    corridor_line: int
    pad: int
    title_h: int
    panel_w: int
    body_h: int  # image area height, raised where the colour bar needs more room

    @property
    def canvas(self) -> tuple[int, int]:
        return self.title_h + self.body_h, self.w + self.panel_w


def _layout_for(height: int, width: int, scale: float) -> _Layout:
    h = max(1, round(height * scale))
    w = max(1, round(width * scale))
    # Text and lines follow the geometric mean side so long thin frames are not tiny-lettered.
    ref = math.sqrt(h * w)
    font = float(np.clip(ref / 900.0, 0.35, 3.5))
    thick = max(1, round(font * 1.7))
    (_, text_h), _ = cv2.getTextSize("0", _FONT, font, thick)
    line = max(2, round(ref / 300.0))
    pad = max(3, round(text_h * 0.6))
    title_h = text_h + 2 * pad + max(2, text_h // 3)
    bar_w = max(8, round(text_h * 1.2))
    # The panel is sized for labels up to "-000.0" so the layout never depends on the data.
    (label_w, _), _ = cv2.getTextSize("-000.0", _FONT, font, thick)
    panel_w = pad + bar_w + _tick_len(text_h) + pad + label_w + pad
    min_body = 3 * pad + text_h + 5 * text_h  # caption plus room for two ticks
    return _Layout(
        scale=scale,
        h=h,
        w=w,
        font=font,
        thick=thick,
        text_h=text_h,
        line=line,
        corridor_line=max(1, line // 2),
        pad=pad,
        title_h=title_h,
        panel_w=panel_w,
        body_h=max(h, min_body),
    )


def _tick_len(text_h: int) -> int:
    return max(3, text_h // 2)


def _fit_layout(height: int, width: int, max_side: int) -> _Layout:
    """Pick the largest scale <= 1 whose canvas, decorations included, fits ``max_side``."""
    scale = min(1.0, max_side / max(height, width))
    layout = _layout_for(height, width, scale)
    for _ in range(20):
        over = max(layout.canvas)
        if over <= max_side:
            break
        # Decorations shrink with the image, so this converges in a step or two.
        scale *= max(0.5, (max_side - 1) / over)
        layout = _layout_for(height, width, scale)
    return layout


def render_overlay(pred: Prediction, *, max_side: int = 4096) -> np.ndarray:
    """Render the frame's T_u with outlines, ids, a colour bar and a title as an RGB image.

    T_u is drawn in ``COLORMAP_INFERNO`` between its 1st and 99.5th percentiles over the whole
    frame; the corridor border is outlined in cyan and every anomaly in green, its id printed
    beside its bounding box. Frames whose overlay would exceed ``max_side`` are downscaled with
    ``INTER_AREA`` first; outlines and text are drawn at output resolution, so they stay sharp
    and no anomaly vanishes, however small.

    Args:
        pred: The prediction to draw.
        max_side: Upper bound of the overlay's height and width, decorations included.

    Returns:
        ``H' x W' x 3`` uint8 RGB image.

    Raises:
        ValueError: If ``max_side`` is too small to hold the decorations.
    """
    if max_side < _MIN_SIDE:
        raise ValueError(f"max_side must be at least {_MIN_SIDE}, got {max_side}")
    frame = pred.frame
    height, width = frame.data.shape[:2]
    lay = _fit_layout(height, width, max_side)

    t_u = _scaled_t_u(frame.data, lay)
    lo, hi = _colour_range(t_u)
    image = _colourise(t_u, lo, hi)
    del t_u

    _draw_corridor(image, np.asarray(frame.corridor, dtype=bool), lay)
    if pred.rejected:
        _draw_anomalies(image, pred, lay, pred.rejected, REJECTED_RGB)
    boxes = _draw_anomalies(image, pred, lay)

    canvas = np.empty((*lay.canvas, 3), dtype=np.uint8)
    canvas[:] = _BACKGROUND_RGB
    canvas[lay.title_h : lay.title_h + lay.h, : lay.w] = image
    _draw_labels(canvas, boxes, lay)
    _draw_colour_bar(canvas, lo, hi, lay)
    _draw_title(canvas, pred, lay)
    return canvas


def _scaled_t_u(data: np.ndarray, lay: _Layout) -> np.ndarray:
    """Return T_u at output size as a private float32 array (callers modify it in place)."""
    if (lay.h, lay.w) == data.shape[:2]:
        return np.array(data[..., 2], dtype=np.float32, order="C")
    t_u = data[..., 2]
    if t_u.flags.c_contiguous:  # the channels are a broadcast view of T_u
        return cv2.resize(np.asarray(t_u, np.float32), (lay.w, lay.h),
                          interpolation=cv2.INTER_AREA)
    # Resizing all three channels avoids a full-resolution copy of the strided T_u channel;
    # the only temporary is the small three-channel result.
    small = cv2.resize(data, (lay.w, lay.h), interpolation=cv2.INTER_AREA)
    return np.array(small[..., 2], dtype=np.float32, order="C")


def _colour_range(t_u: np.ndarray) -> tuple[float, float]:
    step = max(1, math.ceil(math.sqrt(t_u.size / _MAX_PERCENTILE_SAMPLES)))
    sample = t_u[::step, ::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, COLOUR_RANGE_PERCENTILES))
    if not hi - lo > 1e-6:  # flat frame: centre a 1 degC window on it
        lo, hi = lo - 0.5, lo + 0.5
    return lo, hi


def _colourise(t_u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    # In place: t_u is already the one float temporary of the overlay.
    t_u -= lo
    t_u *= 255.0 / (hi - lo)
    np.nan_to_num(t_u, copy=False, nan=0.0)
    np.clip(t_u, 0.0, 255.0, out=t_u)
    levels = t_u.astype(np.uint8)
    bgr = cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _to_output(mask: np.ndarray, lay: _Layout) -> np.ndarray:
    """Resample a bool mask to output size; any covered pixel counts, so thin parts survive."""
    m = mask.view(np.uint8) if mask.dtype == bool else (mask != 0).view(np.uint8)
    if (lay.h, lay.w) == m.shape:
        return m
    return (cv2.resize(m, (lay.w, lay.h), interpolation=cv2.INTER_AREA) > 0).view(np.uint8)


def _draw_corridor(image: np.ndarray, corridor: np.ndarray, lay: _Layout) -> None:
    corridor_out = _to_output(corridor, lay)
    if not corridor_out.any():
        return
    # A morphological inner border rather than traced contours: erosion treats the frame edge
    # as corridor, so no line is drawn along the frame border where the corridor leaves the
    # picture.
    k = 2 * lay.corridor_line + 1
    inner = cv2.erode(corridor_out, np.ones((k, k), np.uint8))
    image[(corridor_out > 0) & (inner == 0)] = CORRIDOR_RGB


def _clip_bbox(a: Anomaly, height: int, width: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (int(v) for v in a.bbox)
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def _draw_anomalies(image: np.ndarray, pred: Prediction, lay: _Layout,
                    anomalies: list[Anomaly] | None = None,
                    colour: tuple[int, int, int] = ANOMALY_RGB) -> list[tuple]:
    """Outline every anomaly just outside its pixels; return ``(id, box)`` in output pixels."""
    anomalies = pred.anomalies if anomalies is None else anomalies
    if not anomalies:
        return []
    labels = np.asarray(pred.labels)
    height, width = labels.shape
    same_size = (lay.h, lay.w) == (height, width)
    sx, sy = lay.w / width, lay.h / height  # exact per-axis ratios after rounding the size
    blobs = np.zeros((lay.h, lay.w), dtype=np.uint8)
    boxes = []
    for a in anomalies:
        x0, y0, x1, y1 = _clip_bbox(a, height, width)
        if x1 <= x0 or y1 <= y0:
            continue
        crop = labels[y0:y1, x0:x1] == a.id
        ox0, oy0 = min(lay.w - 1, int(x0 * sx)), min(lay.h - 1, int(y0 * sy))
        ox1 = min(lay.w, max(ox0 + 1, math.ceil(x1 * sx)))
        oy1 = min(lay.h, max(oy0 + 1, math.ceil(y1 * sy)))
        if same_size:
            small = crop.view(np.uint8)
        else:
            small = cv2.resize(
                crop.view(np.uint8) * np.uint8(255),
                (ox1 - ox0, oy1 - oy0),
                interpolation=cv2.INTER_AREA,
            )
            if not small.any():  # far below one output pixel: still show where it is
                small[small.shape[0] // 2, small.shape[1] // 2] = 1
        blobs[oy0:oy1, ox0:ox1] |= small > 0
        boxes.append((a.id, (ox0, oy0, ox1, oy1)))
    # Draw the ring outside the blobs so the warm pixels themselves stay visible.
    k = 2 * lay.line + 1
    ring = cv2.dilate(blobs, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    image[(ring > 0) & (blobs == 0)] = colour
    return boxes


def _put_text(
    img: np.ndarray, text: str, org: tuple[int, int], font: float, thick: int, rgb: tuple
) -> None:
    """Draw text with a dark halo so it reads on any colour of the map.

    The halo is the dilated text mask rather than a second, thicker putText: OpenCV 5 draws
    the Hershey font names with a built-in outline font whose thickness only picks a weight.
    """
    (tw, th), base = cv2.getTextSize(text, _FONT, font, thick)
    r = max(1, round(th / 7))
    x0, y0 = max(0, org[0] - r - 2), max(0, org[1] - th - r - 2)
    x1, y1 = min(img.shape[1], org[0] + tw + r + 2), min(img.shape[0], org[1] + base + r + 2)
    if x1 <= x0 or y1 <= y0:
        return
    ink = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.putText(ink, text, (org[0] - x0, org[1] - y0), _FONT, font, 255, thick, cv2.LINE_AA)
    halo = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    roi = img[y0:y1, x0:x1]
    alpha = ink[..., None] / 255.0
    shade = 1.0 - halo[..., None] / 255.0  # black halo under the glyphs
    out = roi * shade * (1.0 - alpha) + np.asarray(rgb, dtype=np.float64) * alpha
    roi[:] = np.rint(out).astype(np.uint8)


def _draw_labels(canvas: np.ndarray, boxes: list[tuple], lay: _Layout) -> None:
    # Labels go on a view of the image area so a label can never spill onto the colour bar.
    area = canvas[lay.title_h : lay.title_h + lay.h, : lay.w]
    font, thick = lay.font * 1.15, lay.thick + 1
    gap = lay.line + 2
    taken: list[tuple[int, int, int, int]] = []
    for anomaly_id, (x0, y0, x1, y1) in boxes:
        text = str(anomaly_id)
        (tw, th), _ = cv2.getTextSize(text, _FONT, font, thick)
        # Right of the box, then left, then above, then below: the first spot that neither
        # leaves the image nor covers an earlier label wins (else the first that fits).
        spots = [
            (x1 + gap, y0 + th),
            (x1 + gap, y1),
            (x0 - gap - tw, y0 + th),
            (x0 - gap - tw, y1),
            (x0, y0 - gap),
            (x0, y1 + gap + th),
        ]
        chosen = None
        for x, y in spots:
            x = int(np.clip(x, 1, max(1, lay.w - tw - 1)))
            y = int(np.clip(y, th + 1, max(th + 1, lay.h - 2)))
            rect = (x - 1, y - th - 1, x + tw + 1, y + 2)
            if chosen is None:
                chosen = (x, y, rect)
            if not any(_overlaps(rect, other) for other in taken):
                chosen = (x, y, rect)
                break
        x, y, rect = chosen
        taken.append(rect)
        _put_text(area, text, (x, y), font, thick, ANOMALY_RGB)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _nice_ticks(lo: float, hi: float, fit: int) -> np.ndarray:
    """Round tick values inside ``[lo, hi]`` on a 1/2/2.5/5 x 10^k step.

    Aims at 4 to 6 ticks: the finest step giving at most 6 (and at most ``fit``, the number
    the bar has room for); when that leaves fewer than 4, one more tick (7) is allowed.
    """
    span = hi - lo
    exponent = math.floor(math.log10(span / 8.0)) - 1
    previous: np.ndarray | None = None
    for e in range(exponent, exponent + 5):
        for m in (1.0, 2.0, 2.5, 5.0):
            step = m * 10.0**e
            ticks = np.arange(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1) * step
            if len(ticks) <= min(6, fit):
                if len(ticks) < 4 and previous is not None and len(previous) <= min(7, fit):
                    return previous
                return ticks
            previous = ticks
    return np.array([lo, hi])  # pragma: no cover - the loop always finds a step


def _tick_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if not math.isclose(round(step, decimals), step, rel_tol=1e-6):
        decimals += 1  # steps like 2.5 or 0.25 need one more digit
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text  # no "-0.0"


def _draw_colour_bar(canvas: np.ndarray, lo: float, hi: float, lay: _Layout) -> None:
    pad, text_h = lay.pad, lay.text_h
    x = lay.w + pad
    bar_w = max(8, round(text_h * 1.2))
    cap_y = lay.title_h + pad + text_h
    _put_text(canvas, "degC", (x, cap_y), lay.font, lay.thick, _TEXT_RGB)
    top = cap_y + pad + text_h // 2 + 2
    bottom = lay.title_h + lay.body_h - pad - text_h // 2 - 1
    bar_h = bottom - top + 1
    if bar_h < 2:  # pragma: no cover - _layout_for reserves room for the bar
        return
    levels = np.linspace(255, 0, bar_h).round().astype(np.uint8).reshape(-1, 1)
    colours = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    canvas[top : bottom + 1, x : x + bar_w] = colours
    cv2.rectangle(canvas, (x - 1, top - 1), (x + bar_w, bottom + 1), _MUTED_RGB, 1)

    ticks = _nice_ticks(lo, hi, fit=max(2, bar_h // max(1, round(text_h * 2.0))))
    step = float(ticks[1] - ticks[0]) if len(ticks) > 1 else max(hi - lo, 1e-6)
    tick_len = _tick_len(text_h)
    label_x = x + bar_w + tick_len + pad // 2 + 1
    room = canvas.shape[1] - label_x - 2
    for value in ticks:
        y = round(top + (hi - value) / (hi - lo) * (bar_h - 1))
        cv2.line(canvas, (x + bar_w, y), (x + bar_w + tick_len, y), _TEXT_RGB, 1, cv2.LINE_AA)
        text = _tick_label(float(value), step)
        font = lay.font
        (tw, _), _ = cv2.getTextSize(text, _FONT, font, lay.thick)
        if tw > room:  # wider than the "-000.0" the panel was sized for
            font *= room / tw
        _put_text(canvas, text, (label_x, y + text_h // 2), font, lay.thick, _TEXT_RGB)


def overlay_geometry(height: int, width: int, max_side: int = 4096
                     ) -> tuple[float, float, int, tuple[int, int]]:
    """Where a ``height x width`` frame lies in its overlay: ``(x scale, y scale, top,
    canvas shape)``; frame pixel ``(x, y)`` is at ``(x * sx, top + y * sy)``."""
    lay = _fit_layout(height, width, max_side)
    return lay.w / width, lay.h / height, lay.title_h, lay.canvas


def _draw_title(canvas: np.ndarray, pred: Prediction, lay: _Layout) -> None:
    n = len(pred.anomalies)
    tail = (
        f"  |  {pred.model_name}  |  threshold {float(pred.threshold):.2f}"
        f"  |  {n} {'anomaly' if n == 1 else 'anomalies'}"
    )
    name = str(pred.frame.name)
    avail = canvas.shape[1] - 2 * lay.pad
    font, thick = lay.font, lay.thick
    text = _ascii(name + tail)
    (tw, _), _ = cv2.getTextSize(text, _FONT, font, thick)
    if tw > avail:  # shrink a little, then shorten the name
        font = max(0.3, font * avail / tw)
        while tw > avail and len(name) > 4:
            name = name[: max(4, len(name) - 4)]
            text = _ascii(name + "..." + tail)
            (tw, _), _ = cv2.getTextSize(text, _FONT, font, thick)
    (_, th), _ = cv2.getTextSize(text, _FONT, font, thick)
    y = (lay.title_h + th) // 2
    cv2.putText(canvas, text, (lay.pad, y), _FONT, font, _TEXT_RGB, thick, cv2.LINE_AA)
    cv2.line(canvas, (0, lay.title_h - 1), (canvas.shape[1], lay.title_h - 1), _MUTED_RGB, 1)


def _ascii(text: str) -> str:
    # Hershey fonts draw only ASCII; anything else would come out as '?' glyph soup.
    return text.encode("ascii", "replace").decode("ascii")
