"""The report's "since last survey": each listed anomaly's status against an earlier survey
(``taseg report ... --previous OLD``), the old crop beside the new, totals per status and
what is gone.

The survey's anomalies become one layer in the first georeferenced frame's CRS (the
polygons of an orthomosaic's GeoPackage beside its prediction report, else the centroid) and
are compared with OLD by :func:`.geo.compare.compare_surveys`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.geo.compare import CompareOptions
from thermal_anomaly_segmenter.report.severity import SINCE_ORDER, number, severity_order
from thermal_anomaly_segmenter.report.survey import (
    Survey,
    SurveyFrame,
    _OverlayView,
    is_prediction_json,
    load_frames,
)

log = logging.getLogger(__name__)


@dataclass
class SinceLastSurvey:
    """The comparison as the report shows it."""

    previous: str
    counts: dict[str, int]
    tolerance_m: float
    gone: list[dict[str, Any]] = field(default_factory=list)
    #: whether OLD had overlays to crop from
    old_crops: bool = False

    def summary(self) -> str:
        return ", ".join(f"{n} {s}" for s, n in self.counts.items())


def _polygons(frame: SurveyFrame, crs) -> dict[int, Any]:
    """id -> polygon of an orthomosaic's anomalies (its GeoPackage beside the JSON)."""
    gpkg = frame.json_path.with_suffix(".gpkg")
    if not gpkg.is_file():
        return {}
    from thermal_anomaly_segmenter.geo.network import reproject
    from thermal_anomaly_segmenter.geo.survey_layer import read_layer

    try:
        layer = read_layer(gpkg, "NEW")
    except InvalidInputError:
        return {}
    geoms = reproject(layer.geoms, layer.crs, crs) if len(layer) else layer.geoms
    return {int(i.rsplit(":", 1)[1]): g for i, g in zip(layer.ids, geoms, strict=True)}


def survey_layer(survey: Survey):
    """The listed anomalies as a :class:`.geo.survey_layer.SurveyLayer` (item order)."""
    import shapely
    from pyproj import CRS

    from thermal_anomaly_segmenter.geo.network import reproject
    from thermal_anomaly_segmenter.geo.survey_layer import SurveyLayer

    crs_of = {f.name: f.doc.get("frame", {}).get("crs") for f in survey.frames}
    first = next((c for c in crs_of.values() if c), None)
    if first is None:
        raise InvalidInputError("--previous needs georeferenced inputs (orthomosaics or "
                                "GeoTIFFs with a CRS); these frames have no georeference")
    shapes = {f.name: _polygons(f, first) for f in survey.frames}
    geoms = []
    for it in survey.items:
        crs, xy = crs_of[it.frame], it.record.get("centroid_crs")
        if not crs or not xy:
            raise InvalidInputError(f"--previous: frame {it.frame} has no georeference")
        geom = shapes[it.frame].get(it.id)
        if geom is None:
            geom = shapely.Point(*xy)
            if crs != first:
                geom = reproject(np.array([geom]), crs, first)[0]
        geoms.append(geom)

    def column(key: str) -> np.ndarray:
        return np.array([np.nan if it.record.get(key) is None else float(it.record[key])
                         for it in survey.items], np.float64)

    median = {f.name: f.doc.get("frame", {}).get("corridor_median_degc") for f in survey.frames}
    peak = np.array([np.nan if it.record.get("max_t_degc") is None or median[it.frame] is None
                     else float(it.record["max_t_degc"]) - float(median[it.frame])
                     for it in survey.items], np.float64)
    return SurveyLayer(
        geoms=np.array(geoms, dtype=object), ids=[f"{it.frame}:{it.id}" for it in survey.items],
        area_m2=column("area_m2"), mean_dt=column("mean_dt_degc"), peak_dt=peak,
        pipe_id=[None if it.record.get("pipe_id") is None else str(it.record["pipe_id"])
                 for it in survey.items],
        chainage=column("chainage_m"), crs=CRS.from_user_input(first), source="this survey")


def _old_views(folder: Path | None) -> dict[str, tuple[SurveyFrame, _OverlayView]]:
    """Frame name or report stem -> (frame, overlay view) of OLD's prediction reports."""
    if folder is None:
        return {}
    found = []
    for place in (folder, folder / "predictions"):
        if place.is_dir():
            found.extend(sorted(p for p in place.iterdir() if is_prediction_json(p)))
    views = {}
    try:
        frames = load_frames(found)
    except InvalidInputError as exc:
        log.warning("previous survey: %s; no old crops", exc)
        return {}
    for frame in frames:
        view = _OverlayView.open(frame)
        if view is not None:
            views[frame.name] = views[frame.json_path.name[:-5]] = (frame, view)
    return views


def apply_previous(survey: Survey, previous: str | Path,
                   options: CompareOptions | None = None) -> SinceLastSurvey:
    """Give each listed item its status since ``previous``, its old crop where OLD has
    overlays, re-rank (:data:`.severity.SINCE_ORDER`) and return the totals."""
    from thermal_anomaly_segmenter.geo.compare import compare_surveys
    from thermal_anomaly_segmenter.geo.survey_layer import read_survey

    old = read_survey(previous, "previous survey")
    comparison = compare_surveys(old, survey_layer(survey), options)
    folder = Path(previous).expanduser()
    views = _old_views(folder if folder.is_dir() else None)
    for change in comparison.changes:
        if change.new is None:
            continue
        item = survey.items[change.new]
        item.since = change.status
        if change.old is not None:
            item.old_id = old.ids[change.old]
            stem, _, raw = item.old_id.rpartition(":")
            frame_view = views.get(stem)
            if frame_view is not None and raw.isdigit():
                frame, view = frame_view
                rec = next((r for r in frame.doc.get("anomalies", [])
                            if int(r["id"]) == int(raw)), None)
                if rec is not None:
                    from thermal_anomaly_segmenter.report.survey import _pixel_centroid

                    x, y = _pixel_centroid(rec, frame.doc)
                    item.old_crop_png = view.crop(rec, x, y)[0]
    survey.items.sort(key=lambda it: (severity_order(it.severity), SINCE_ORDER[it.since],
                                      -_dt(it), it.frame, it.id))
    if survey.rank_by == "loss":  # --rank-by loss still orders the list, stably
        survey.items.sort(key=lambda it: -number(it.record.get("heat_loss_w")))
    for rank, item in enumerate(survey.items, start=1):
        item.rank = rank
    gone = [comparison.record(c) for c in comparison.changes if c.status == "gone"]
    since = SinceLastSurvey(str(folder.name or previous), dict(comparison.counts),
                            comparison.options.tolerance_m, gone, bool(views))
    survey.since = since
    return since


def _dt(item) -> float:
    from thermal_anomaly_segmenter.report.severity import number

    return number(item.record.get("mean_dt_degc"))


# --------------------------------------------------------------------------- the page

_FILTER_JS = r"""
(function(){
const pick=document.getElementById('since-filter');
pick.addEventListener('change',function(){
  document.querySelectorAll('#anomalies tr[data-key]').forEach(function(tr){
    tr.hidden=!!pick.value&&tr.dataset.since!==pick.value;
  });
});
})();
"""


def head_cells() -> str:
    """The table's extra headings."""
    return "<th>since last survey</th><th>old crop</th>"


def row_cells(item, img) -> str:
    """The status and the old crop of one row (``img`` renders a PNG or says none)."""
    from html import escape

    status = item.since or "new"
    title = f' title="in the previous survey: {escape(item.old_id)}"' if item.old_id else ""
    if item.old_id is None:
        old = '<span class="muted">new: not in the previous survey</span>'
    elif item.old_crop_png is None:
        old = '<span class="muted">none (the previous survey has no overlay)</span>'
    else:
        old = img(item.old_crop_png, f"previous {item.old_id}")
    return (f'<td data-col="since" class="since-{escape(status)}"{title}>{escape(status)}</td>'
            f'<td class="crop old-crop">{old}</td>')


def section(survey: Survey) -> str:
    """Totals per status, the status filter, what is gone, and the filter's script."""
    from html import escape

    from thermal_anomaly_segmenter.geo.compare import STATUSES

    since: SinceLastSurvey = survey.since
    head = "".join(f"<th>{s}</th>" for s in STATUSES)
    cells = "".join(f'<td class="num" data-status="{s}">{since.counts.get(s, 0)}</td>'
                    for s in STATUSES)
    options = "".join(f'<option value="{s}">{s}</option>' for s in STATUSES if s != "gone")
    gone = "".join(
        f"<tr><td>{escape(str(g['old_id']))}</td><td class=\"num\">{_fmt(g['area_m2_old'])}"
        f"</td><td class=\"num\">{_fmt(g['mean_dt_old'])}</td><td>"
        f"{escape(str(g['pipe_id'] or ''))}</td><td class=\"num\">{_fmt(g['chainage'])}</td>"
        "</tr>" for g in since.gone)
    gone_table = (f'<table id="gone"><tr><th>previous id</th><th>area (m2)</th>'
                  f'<th>mean dT (degC)</th><th>pipe</th><th>chainage (m)</th></tr>{gone}'
                  "</table>" if since.gone else "<p>Nothing of the previous survey is gone.</p>")
    crops = ("" if since.old_crops else
             '<p class="muted">The previous survey has no overlays: no old crops.</p>')
    return (f'<h2>Since the last survey ({escape(since.previous)})</h2>'
            f'<p>Matched within {since.tolerance_m:g} m (statuses: docs/compare.rst). '
            f'Old crops come from the previous survey\'s overlays.</p>{crops}'
            f'<table class="totals" id="totals-since"><tr>{head}</tr><tr>{cells}</tr></table>'
            f'<p><label>show <select id="since-filter"><option value="">all</option>{options}'
            f'</select></label></p><h3>Gone (in the previous survey only)</h3>{gone_table}'
            f'<script>{_FILTER_JS}</script>')


def _fmt(value) -> str:
    return "" if value is None else f"{value:.3g}"
