"""The self-contained ``report.html`` of a survey: every style, script and image inline.

Opened from disk it asks the network for nothing. The table lists the anomalies ranked by
severity then dT with the values of the prediction reports written exactly as they are there
(JSON number text). Review buttons keep the inspector's decisions in the page's
localStorage and export them as ``review.json`` (schema :data:`REVIEW_SCHEMA`), which
``taseg build-dataset --review`` turns into labels and ``taseg adapt`` into a model folder; a
"review next" queue lists the undecided anomalies in :mod:`.review_order`. *outline* lets the
inspector click a leak's extent on its crop; through the crop's ``crop_frame`` mapping the
export writes it as that decision's ``outline`` in frame pixels (its ``polygon`` stays the
network's footprint). The Frames section shows every frame whole (its overlay, see
:attr:`.survey.SurveyFrame.view_jpeg`): *add missed leak* outlines a leak the report did not
list, exported as a decision with ``added: true`` and an ``added-<n>`` id. The page's style and
script are in :mod:`.page_assets`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections import Counter
from html import escape
from typing import Any

from thermal_anomaly_segmenter.false_alarms.classifier import CAUSES
from thermal_anomaly_segmenter.report.page_assets import CSS, JS
from thermal_anomaly_segmenter.report.survey import Item, Survey

REVIEW_SCHEMA = "taseg.review/1"
#: Columns of the ranked table: (row key, heading).
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rank", "#"), ("severity", "severity"), ("frame", "frame"), ("id", "id"),
    ("cause", "cause"), ("mean_dt_degc", "mean dT (degC)"), ("max_t_degc", "peak T (degC)"),
    ("area_px", "area (px)"), ("area_m2", "area (m2)"), ("probability", "confidence"),
    ("heat_loss_w", "heat loss (W)"), ("heat_loss_range_w", "range (W)"),
    ("heat_loss_mwh_per_year", "MWh/year"), ("cost_per_year", "cost/year"),
    ("co2_t_per_year", "t CO2/year"),
)
_RANKING = {"severity": "severity then mean dT", "loss": "estimated heat loss"}
_MAP_SIDE = 900
#: The page may load nothing but its own inline styles, scripts and data: images.
_CSP = ("default-src 'none'; img-src data: blob:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'")

def _num(value: Any) -> str:
    """A value as the prediction report writes it (JSON number text), HTML-escaped; empty
    for null."""
    if value is None:
        return ""
    return escape(value if isinstance(value, str) else json.dumps(value))


def script_json(value: Any) -> str:
    """``value`` as JSON that is inert inside ``<script>``: ``<``, ``>`` and ``&`` as
    ``\\u003c`` ..., so neither ``</script>`` nor ``<!--`` in a value ends or bends the
    script element (JSON.parse reads them back unchanged)."""
    text = json.dumps(value, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return '<span class="muted">no crop</span>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _crop_box(png: bytes | None, alt: str) -> str:
    """A row's crop with an empty SVG over it in the crop's pixels (the page draws the
    inspector's outline there)."""
    if not png:
        return _img(png, alt)
    width, height = struct.unpack(">II", png[16:24])  # the PNG's IHDR
    return (f'<div class="crop-box">{_img(png, alt)}<svg viewBox="0 0 {width} {height}" '
            f'aria-hidden="true"></svg></div>')


def _location(item: Item) -> str:
    r = item.record
    parts = []
    if item.x is not None:
        parts.append(f"pixel x {item.x:.1f}, y {item.y:.1f}")
    if r.get("centroid_crs"):
        parts.append(f"map {r['centroid_crs'][0]}, {r['centroid_crs'][1]}")
    if r.get("pipe_id") is not None:
        parts.append(f"pipe {r['pipe_id']}, chainage {r.get('chainage_m')} m, "
                     f"offset {r.get('offset_m')} m")
    return "<br>".join(escape(p) for p in parts)


def _row(item: Item, since: bool = False) -> str:
    row = item.row()
    cells = []
    low, high = row["heat_loss_w_low"], row["heat_loss_w_high"]
    row["heat_loss_range_w"] = None if low is None else f"{_num(low)} .. {_num(high)}"
    for key, _ in TABLE_COLUMNS:
        value = row[key]
        text = _num(value) if key not in ("cause",) else escape(value or "not screened")
        cls = ' class="num"' if key not in ("severity", "frame", "cause") else ""
        cells.append(f'<td data-col="{key}"{cls}>{text}</td>')
    options = "".join(f'<option value="{c}">{c}</option>' for c in CAUSES if c != "leak")
    off = "" if item.crop_png and item.crop_frame else " disabled"  # nothing to click on
    review = (f'<td class="review"><button data-decision="leak">confirm leak</button>'
              f'<button data-decision="false_alarm">false alarm</button>'
              f'<select class="cause" aria-label="cause">{options}</select>'
              f'<button data-decision="unsure">unsure</button><br>'
              f'<button data-outline="start"{off}>outline</button>'
              f'<button data-outline="done" hidden>done</button>'
              f'<button data-outline="clear"{off}>clear outline</button>'
              f'<div class="decision"></div></td>')
    key = escape(f"{item.frame}/{item.id}")
    loss = _num(row["heat_loss_w"])
    extra = attr = ""
    if since:  # taseg report --previous
        from thermal_anomaly_segmenter.report.since import row_cells

        extra, attr = row_cells(item, _img), f' data-since="{escape(item.since or "new")}"'
    return (f'<tr class="sev-{item.severity}" data-key="{key}" data-rank="{item.rank}" '
            f'data-loss="{loss}"{attr}>{"".join(cells)}'
            f'{extra}<td class="crop">{_crop_box(item.crop_png, key)}'
            f'<span class="loc">{escape(item.scale_bar or "")}</span></td>'
            f'<td class="loc">{_location(item)}</td>{review}</tr>')


def _totals(survey: Survey) -> str:
    sev = Counter(it.severity for it in survey.items)
    causes = Counter(it.cause or "not screened" for it in survey.items)
    rejected = Counter(it.cause or "other" for it in survey.rejected)
    head = "".join(f"<th>{s}</th>" for s in ("A", "B", "C"))
    cells = "".join(f'<td class="num" data-severity="{s}">{sev.get(s, 0)}</td>'
                    for s in ("A", "B", "C"))
    cause_rows = "".join(
        f'<tr><td>{escape(c)}</td><td class="num">{causes.get(c, 0)}</td>'
        f'<td class="num">{rejected.get(c, 0)}</td></tr>'
        for c in sorted(set(causes) | set(rejected)))
    return (f'<table class="totals" id="totals-severity"><tr>{head}<th>total</th></tr>'
            f'<tr>{cells}<td class="num">{len(survey.items)}</td></tr></table>'
            f'<h2>Per cause</h2><table class="totals" id="totals-cause"><tr><th>cause</th>'
            f'<th>listed</th><th>rejected</th></tr>{cause_rows}</table>')


def _heat_loss(survey: Survey) -> str:
    """The survey's total heat loss with its range, and the conditions it was estimated with
    (and which of them were defaults)."""
    heat = survey.heat_loss()
    cells = "".join(
        f'<td class="num" data-total="{name}">{escape(_num(heat[f"total_{name}"]))}</td>'
        for name in ("heat_loss_w", "heat_loss_w_low", "heat_loss_w_high",
                     "heat_loss_mwh_per_year", "cost_per_year", "co2_t_per_year"))
    table = ('<table class="totals" id="totals-heat-loss"><tr><th>heat loss (W)</th>'
             '<th>low (W)</th><th>high (W)</th><th>MWh/year</th><th>cost/year</th>'
             f'<th>t CO2/year</th></tr><tr>{cells}</tr></table>')
    lines = []
    for c in heat["conditions"]:
        defaults = ", ".join(c.get("defaults_used", [])) or "none"
        lines.append(
            f"wind {_num(c.get('wind_speed_m_s'))} m/s, emissivity {_num(c.get('emissivity'))} "
            f"({_num(c.get('emissivity_low'))}-{_num(c.get('emissivity_high'))}), air "
            f"{_num(c.get('air_temp_degc')) or 'not given'} degC, season "
            f"{_num(c.get('season_hours'))} h/year, price "
            f"{_num(c.get('price_per_mwh')) or 'not given'} {c.get('currency', '')}/MWh, CO2 "
            f"{_num(c.get('co2_t_per_mwh')) or 'not given'} t/MWh; uncertainty: wind "
            f"+-{_num(c.get('wind_uncertainty_m_s'))} m/s, background "
            f"+-{_num(c.get('background_uncertainty_k'))} K; source {c.get('source')}; "
            f"defaults used: {defaults}")
    lines += [f"no estimate for {u}" for u in heat["unavailable"]]
    items = "".join(f'<li class="rule">{escape(line)}</li>' for line in lines)
    return (f"{table}<p>Excess heat flux of each anomaly over the corridor background "
            "(longwave radiation plus convection by McAdams' h_c = 5.7 + 3.8 v W/m2K): the "
            "surface loss of one night's snapshot, not the pipe's loss; the range covers the "
            "stated input uncertainties only (see the TASeg docs, Heat loss). Conditions:</p>"
            f'<ul id="heat-loss-conditions">{items}</ul>')


def _frames(survey: Survey) -> str:
    """Each frame whole, with buttons to outline a leak the report did not list on it."""
    parts, ortho = [], 0
    for frame in survey.frames:
        if frame.ortho:
            ortho += 1
            continue
        name = escape(frame.name)
        if frame.view_jpeg is None or frame.view_frame is None:
            parts.append(f'<div class="frame"><h3>{name}</h3><span class="muted">no overlay'
                         '</span></div>')
            continue
        width, height = _jpeg_size(frame.view_jpeg)
        shown = min(2.0, 640 / max(width, height))  # small frames drawn larger to click on
        data = base64.b64encode(frame.view_jpeg).decode("ascii")
        parts.append(
            f'<div class="frame" data-frame="{name}"><h3>{name}</h3><div class="frame-box">'
            f'<img alt="{name}" width="{round(width * shown)}" '
            f'height="{round(height * shown)}" src="data:image/jpeg;base64,{data}">'
            f'<svg viewBox="0 0 {width} {height}" aria-hidden="true"></svg></div><br>'
            '<button data-add="start">add missed leak</button><button data-add="done" '
            'hidden>done</button> <span class="hint muted"></span><ul class="added"></ul>'
            '</div>')
    note = (f'<p class="muted">{ortho} orthomosaic(s) not shown here (too big to show '
            'whole): see the Map.</p>' if ortho else "")
    return (f'<p>Every frame whole, the listed anomalies outlined in green. A leak the '
            'report did not list: press <i>add missed leak</i>, click around it on the '
            'frame (three points or more), then <i>done</i>; it is exported with the '
            'decisions (the only way the network learns the leaks it misses).</p>'
            f'{note}<div id="frames">{"".join(parts)}</div>')


def _jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """``(width, height)`` of a frame's view (JPEG)."""
    import cv2
    import numpy as np

    height, width = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE).shape
    return width, height


def _map(survey: Survey) -> str:
    """An orthomosaic's downsampled overlay with numbered marks, else a frame index of the
    georeferenced anomalies in map coordinates; empty without a georeference."""
    import cv2

    from thermal_anomaly_segmenter.outputs.write import encode_png

    parts = []
    by_frame: dict[str, list[Item]] = {}
    for it in survey.items:
        by_frame.setdefault(it.frame, []).append(it)
    for frame in survey.frames:
        if not frame.ortho or frame.overlay is None:
            continue
        from thermal_anomaly_segmenter.report.survey import _OverlayView

        view = _OverlayView.open(frame)  # decoded only if its header fits the orthomosaic
        if view is None:
            continue
        image = view.image
        zoom = min(1.0, _MAP_SIDE / max(image.shape[:2]))
        small = cv2.resize(image, (round(image.shape[1] * zoom), round(image.shape[0] * zoom)),
                           interpolation=cv2.INTER_AREA)
        marks = []
        for it in by_frame.get(frame.name, []):
            if it.x is None:
                continue
            px, py = it.x * view.sx * zoom, (view.top + it.y * view.sy) * zoom
            marks.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="7" fill="none" '
                         f'stroke="#fff" stroke-width="2"/><text x="{px + 9:.1f}" '
                         f'y="{py + 4:.1f}" fill="#fff" font-size="12">{it.rank}</text>')
        parts.append(f'<h3>{escape(frame.name)}</h3><div class="map">'
                     f'{_img(encode_png(small), frame.name)}<svg width="{small.shape[1]}" '
                     f'height="{small.shape[0]}">{"".join(marks)}</svg></div>')
    located = [it for it in survey.items if it.record.get("centroid_crs")
               and not any(f.ortho and f.name == it.frame for f in survey.frames)]
    if located:
        xs = [it.record["centroid_crs"][0] for it in located]
        ys = [it.record["centroid_crs"][1] for it in located]
        span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-9)
        size, pad = 600, 30
        k = (size - 2 * pad) / span
        dots = []
        colours = {"A": "#c0392b", "B": "#e67e22", "C": "#2e86c1"}
        for it, x, y in zip(located, xs, ys, strict=True):
            px, py = pad + (x - min(xs)) * k, size - pad - (y - min(ys)) * k
            dots.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="5" '
                        f'fill="{colours[it.severity or "C"]}"><title>{escape(it.frame)} '
                        f'#{_num(it.id)}</title></circle><text x="{px + 7:.1f}" y="{py + 4:.1f}" '
                        f'font-size="11">{it.rank}</text>')
        parts.append(f'<h3>Frame index (map coordinates, {span:.4g} across)</h3>'
                     f'<svg width="{size}" height="{size}" style="background:#fff;'
                     f'border:1px solid #ccc">{"".join(dots)}</svg>')
    return "".join(parts)


def _rejected(survey: Survey) -> str:
    if not survey.screened:
        return ('<p class="muted">The false-alarm stage was off for these predictions '
                '(taseg report --false-alarms turns it on): nothing was rejected.</p>')
    if not survey.rejected:
        return "<p>The false-alarm stage rejected no component.</p>"
    rows = "".join(
        f'<tr data-key="{escape(f"{it.frame}/{it.id}")}"><td>{escape(it.frame)}</td>'
        f'<td class="num">{_num(it.id)}</td><td>{escape(it.cause or "")}</td>'
        f'<td class="num">{_num(it.leak_score)}</td>'
        f'<td class="num">{_num(it.record.get("mean_dt_degc"))}</td>'
        f'<td class="num">{_num(it.record.get("area_px"))}</td>'
        f'<td class="crop">{_img(it.crop_png, it.frame)}</td><td class="loc">{_location(it)}'
        f'</td></tr>' for it in survey.rejected)
    return ('<table id="rejected"><tr><th>frame</th><th>id</th><th>cause</th>'
            '<th>leak score</th><th>mean dT (degC)</th><th>area (px)</th><th>crop</th>'
            f'<th>location</th></tr>{rows}</table>')


def page_data(survey: Survey) -> dict[str, Any]:
    """What the page's script needs (and the test compares): one entry per listed anomaly."""
    anomalies = []
    for it in survey.items:
        entry = it.row()
        entry.update(bbox=it.record.get("bbox"), polygon=it.polygon, crop_frame=it.crop_frame)
        if survey.since is not None:
            entry.update(since=it.since, old_id=it.old_id)
        anomalies.append(entry)
    frames = {f.name: {"height": f.doc.get("frame", {}).get("height"),
                       "width": f.doc.get("frame", {}).get("width"),
                       "anomalies": len(f.doc.get("anomalies", [])),
                       "report": f.json_path.name} for f in survey.frames}
    for f in survey.frames:  # what taseg adapt checks a frame against, and its GSD
        frames[f.name].update(
            corridor_median_degc=f.doc.get("frame", {}).get("corridor_median_degc"),
            gsd_m=f.doc.get("frame", {}).get("gsd_m"))
    digest = hashlib.sha256(json.dumps([frames, [(a["frame"], a["id"]) for a in anomalies]],
                                       sort_keys=True).encode()).hexdigest()[:16]
    from thermal_anomaly_segmenter.report.review_order import review_order

    thresholds = {f.name: f.doc.get("threshold") for f in survey.frames}
    order = review_order([{**a, "threshold": thresholds.get(a["frame"])} for a in anomalies])
    views = {f.name: f.view_frame for f in survey.frames if f.view_frame is not None}
    return {"report_id": digest, "review_schema": REVIEW_SCHEMA, "frames": frames,
            "anomalies": anomalies, "review_order": order, "frame_views": views,
            "rejected": [{**it.row(), "status": "rejected"} for it in survey.rejected]}


def render_html(survey: Survey, title: str = "TASeg inspection report") -> str:
    """The whole page as one string."""
    rules = survey.rules
    data = script_json(page_data(survey))
    since = survey.since is not None
    head = "".join(f"<th>{escape(h)}</th>" for _, h in TABLE_COLUMNS)
    since_html = ""
    if since:  # taseg report --previous
        from thermal_anomaly_segmenter.report.since import head_cells, section

        head, since_html = head + head_cells(), section(survey)
    rows = "".join(_row(it, since) for it in survey.items)
    rule_lines = "".join(f'<li class="rule">{escape(line)}</li>'
                         for line in (rules.describe(since) if rules else []))
    failures = "".join(f"<li>{escape(f)}</li>" for f in survey.failures)
    n_frames = len(survey.frames)
    order = "since the last survey, then " if since else ""
    ranking = (_RANKING["loss"] if survey.rank_by == "loss"
               else f"severity then {order}mean dT")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<title>{escape(title)}</title><style>{CSS}</style></head><body>
<h1>{escape(title)}</h1>
<p>{n_frames} frame(s), {len(survey.items)} anomalies listed, {len(survey.rejected)} rejected
as false alarms.</p>
<h2>Totals per severity</h2>{_totals(survey)}
<h2>Severity rule</h2><p>An anomaly gets the first class whose every minimum it meets
(dT against the corridor median; source: {escape(rules.source if rules else "")}):</p>
<ul>{rule_lines}</ul>{since_html}
<h2>Heat loss</h2>{_heat_loss(survey)}
<h2>Places to dig, ranked by {ranking}</h2>
<p><button id="export">export review.json</button> <button id="clear">clear decisions</button>
<button id="sort-loss">sort by heat loss</button> <button id="sort-rank">sort by rank</button>
<span id="review-count"></span> (decisions are kept in this browser)</p>
<div id="review-next"><b>Review next</b> <span class="muted">(what a decision would teach the
model most: the least certain first, spread across frames and causes; then run
<code>taseg adapt review.json FRAMES --out NEW_MODEL</code>)</span><ol></ol></div>
<table id="anomalies"><thead><tr>{head}<th>crop</th><th>location</th><th>review</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2 id="frames-heading">Frames</h2>{_frames(survey)}
<h2>Map</h2>{_map(survey) or '<p class="muted">No georeferenced anomaly.</p>'}
<h2>Rejected false alarms</h2>{_rejected(survey)}
{f"<h2>Inputs that failed</h2><ul>{failures}</ul>" if failures else ""}
<script type="application/json" id="taseg-data">{data}</script>
<script>{JS}</script>
</body></html>
"""
