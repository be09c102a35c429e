"""The self-contained ``report.html`` of a survey: every style, script and image inline.

Opened from disk it asks the network for nothing. The table lists the anomalies ranked by
severity then dT with the values of the prediction reports written exactly as they are there
(JSON number text). Review buttons keep the inspector's decisions in the page's
localStorage and export them as ``review.json`` (schema :data:`REVIEW_SCHEMA`), which
``taseg build-dataset --review`` turns into labels.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from html import escape
from typing import Any

from ..false_alarms import CAUSES
from .survey import Item, Survey

REVIEW_SCHEMA = "taseg.review/1"
#: Columns of the ranked table: (row key, heading).
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rank", "#"), ("severity", "severity"), ("frame", "frame"), ("id", "id"),
    ("cause", "cause"), ("mean_dt_degc", "mean dT (degC)"), ("max_t_degc", "peak T (degC)"),
    ("area_px", "area (px)"), ("area_m2", "area (m2)"), ("probability", "confidence"),
)
_MAP_SIDE = 900
#: The page may load nothing but its own inline styles, scripts and data: images.
_CSP = ("default-src 'none'; img-src data: blob:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'")

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ccc;padding:3px 6px;
vertical-align:top}th{background:#eee;text-align:left}td.num{text-align:right}
.sev-A{background:#f8c9c4}.sev-B{background:#fbe3b5}.sev-C{background:#e4ecf5}
.totals td{min-width:4em}.rule{font-family:monospace;font-size:.9em}
.crop img{display:block;image-rendering:pixelated}.loc{font-size:.85em;color:#444}
.review button{margin:1px;font-size:.85em}.review select{font-size:.85em}
tr[data-decision=leak] .review{background:#d5f0d5}
tr[data-decision=false_alarm] .review{background:#eee}
tr[data-decision=unsure] .review{background:#fff3c4}
.decision{font-weight:bold}.map{position:relative;display:inline-block}
.map svg{position:absolute;left:0;top:0}.muted{color:#777}
"""

_JS = r"""
(function(){
const data=JSON.parse(document.getElementById('taseg-data').textContent);
const KEY='taseg-review:'+data.report_id;
let state={};
try{state=JSON.parse(localStorage.getItem(KEY)||'{}')||{};}catch(e){state={};}
function save(){try{localStorage.setItem(KEY,JSON.stringify(state));}catch(e){}}
function show(){
  document.querySelectorAll('#anomalies tr[data-key]').forEach(function(tr){
    const d=state[tr.dataset.key];
    tr.dataset.decision=d?d.decision:'';
    tr.querySelector('.decision').textContent=d?(d.decision+(d.cause?' ('+d.cause+')':'')):'';
  });
  const n=Object.keys(state).length;
  document.getElementById('review-count').textContent=n+' of '+data.anomalies.length+' decided';
}
document.querySelectorAll('#anomalies tr[data-key] button[data-decision]').forEach(function(b){
  b.addEventListener('click',function(){
    const tr=b.closest('tr');const dec=b.dataset.decision;
    const cause=dec==='false_alarm'?tr.querySelector('select.cause').value:
      (dec==='leak'?'leak':null);
    state[tr.dataset.key]={decision:dec,cause:cause};save();show();
  });
});
function review(){
  const byKey={};data.anomalies.forEach(function(a){byKey[a.frame+'/'+a.id]=a;});
  const decisions=[];
  Object.keys(state).sort().forEach(function(k){
    const a=byKey[k];if(!a)return;
    decisions.push({frame:a.frame,id:a.id,decision:state[k].decision,cause:state[k].cause,
      bbox:a.bbox,polygon:a.polygon,severity:a.severity});
  });
  return {schema:data.review_schema,report_id:data.report_id,created:new Date().toISOString(),
    frames:data.frames,decisions:decisions};
}
window.tasegReview=review;
document.getElementById('export').addEventListener('click',function(){
  const blob=new Blob([JSON.stringify(review(),null,1)],{type:'application/json'});
  const a=document.createElement('a');a.href=URL.createObjectURL(blob);a.download='review.json';
  document.body.appendChild(a);a.click();a.remove();
});
document.getElementById('clear').addEventListener('click',function(){state={};save();show();});
show();
})();
"""


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


def _row(item: Item) -> str:
    row = item.row()
    cells = []
    for key, _ in TABLE_COLUMNS:
        value = row[key]
        text = _num(value) if key not in ("cause",) else escape(value or "not screened")
        cls = ' class="num"' if key not in ("severity", "frame", "cause") else ""
        cells.append(f'<td data-col="{key}"{cls}>{text}</td>')
    options = "".join(f'<option value="{c}">{c}</option>' for c in CAUSES if c != "leak")
    review = (f'<td class="review"><button data-decision="leak">confirm leak</button>'
              f'<button data-decision="false_alarm">false alarm</button>'
              f'<select class="cause" aria-label="cause">{options}</select>'
              f'<button data-decision="unsure">unsure</button>'
              f'<div class="decision"></div></td>')
    key = escape(f"{item.frame}/{item.id}")
    return (f'<tr class="sev-{item.severity}" data-key="{key}">{"".join(cells)}'
            f'<td class="crop">{_img(item.crop_png, key)}'
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


def _map(survey: Survey) -> str:
    """An orthomosaic's downsampled overlay with numbered marks, else a frame index of the
    georeferenced anomalies in map coordinates; empty without a georeference."""
    import cv2

    from .outputs import encode_png

    parts = []
    by_frame: dict[str, list[Item]] = {}
    for it in survey.items:
        by_frame.setdefault(it.frame, []).append(it)
    for frame in survey.frames:
        if not frame.ortho or frame.overlay is None:
            continue
        from .survey import _OverlayView

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
        entry.update(bbox=it.record.get("bbox"), polygon=it.polygon)
        anomalies.append(entry)
    frames = {f.name: {"height": f.doc.get("frame", {}).get("height"),
                       "width": f.doc.get("frame", {}).get("width"),
                       "anomalies": len(f.doc.get("anomalies", [])),
                       "report": f.json_path.name} for f in survey.frames}
    digest = hashlib.sha256(json.dumps([frames, [(a["frame"], a["id"]) for a in anomalies]],
                                       sort_keys=True).encode()).hexdigest()[:16]
    return {"report_id": digest, "review_schema": REVIEW_SCHEMA, "frames": frames,
            "anomalies": anomalies,
            "rejected": [{**it.row(), "status": "rejected"} for it in survey.rejected]}


def render_html(survey: Survey, title: str = "TASeg inspection report") -> str:
    """The whole page as one string."""
    rules = survey.rules
    data = script_json(page_data(survey))
    head = "".join(f"<th>{escape(h)}</th>" for _, h in TABLE_COLUMNS)
    rows = "".join(_row(it) for it in survey.items)
    rule_lines = "".join(f'<li class="rule">{escape(line)}</li>'
                         for line in (rules.describe() if rules else []))
    failures = "".join(f"<li>{escape(f)}</li>" for f in survey.failures)
    n_frames = len(survey.frames)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<title>{escape(title)}</title><style>{_CSS}</style></head><body>
<h1>{escape(title)}</h1>
<p>{n_frames} frame(s), {len(survey.items)} anomalies listed, {len(survey.rejected)} rejected
as false alarms.</p>
<h2>Totals per severity</h2>{_totals(survey)}
<h2>Severity rule</h2><p>An anomaly gets the first class whose every minimum it meets
(dT against the corridor median; source: {escape(rules.source if rules else "")}):</p>
<ul>{rule_lines}</ul>
<h2>Places to dig, ranked by severity then mean dT</h2>
<p><button id="export">export review.json</button> <button id="clear">clear decisions</button>
<span id="review-count"></span> (decisions are kept in this browser)</p>
<table id="anomalies"><thead><tr>{head}<th>crop</th><th>location</th><th>review</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Map</h2>{_map(survey) or '<p class="muted">No georeferenced anomaly.</p>'}
<h2>Rejected false alarms</h2>{_rejected(survey)}
{f"<h2>Inputs that failed</h2><ul>{failures}</ul>" if failures else ""}
<script type="application/json" id="taseg-data">{data}</script>
<script>{_JS}</script>
</body></html>
"""
