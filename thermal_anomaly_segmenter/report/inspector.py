"""The inspector's report of a survey: ``report.html``, ``anomalies.csv`` and, where
georeferenced, ``anomalies.gpkg`` (:func:`write_report`).

Nothing existing is replaced: the three names are claimed in ``out_dir`` exclusively before
anything is written, and predictions made for the report go to ``out_dir/predictions`` under
names no earlier file has (:func:`.predict.reserve_stem`).
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from thermal_anomaly_segmenter.errors import InvalidInputError, OutputError
from thermal_anomaly_segmenter.io.atomic import atomic_write, move_into_place
from thermal_anomaly_segmenter.io.csv_safe import SafeDictWriter
from thermal_anomaly_segmenter.report.severity import SeverityRules, load_rules
from thermal_anomaly_segmenter.report.survey import (
    HEAT_LOSS_FIELDS,
    Survey,
    build_survey,
    load_frames,
    predict_inputs,
    split_inputs,
    unpack_frames,
)

log = logging.getLogger(__name__)

REPORT_NAMES: dict[str, str] = {"html": "report.html", "csv": "anomalies.csv",
                                "gpkg": "anomalies.gpkg"}
#: Columns of anomalies.csv, in order.
CSV_COLUMNS: tuple[str, ...] = (
    "rank", "frame", "id", "severity", "cause", "area_px", "area_m2", "max_t_degc",
    "mean_dt_degc", "probability", "x", "y", "crs_x", "crs_y", "pipe_id", "chainage_m",
    "offset_m", "leak_score", *HEAT_LOSS_FIELDS,
)

SINCE_COLUMNS: tuple[str, ...] = ("since_last_survey", "old_id")


@dataclass
class ReportResult:
    survey: Survey
    outputs: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        from collections import Counter

        sev = Counter(it.severity for it in self.survey.items)
        return (f"{len(self.survey.items)} anomalies (A {sev.get('A', 0)}, B {sev.get('B', 0)}"
                f", C {sev.get('C', 0)}), {len(self.survey.rejected)} rejected, "
                f"{len(self.survey.failures)} input(s) failed"
                + (f"; since the last survey: {self.survey.since.summary()}"
                   if self.survey.since is not None else "")
                + f" -> {self.outputs['html']}")


def _predict_frames(frames: Sequence[str | Path], out_dir: Path,
                    predict_kwargs: dict) -> tuple[list[Path], list[str]]:
    """:func:`.survey.predict_inputs` with :func:`make_report`'s ``predict_kwargs``: the
    fields of a :class:`.predict.files.PredictRequest`, ``settings`` and ``segmenter``."""
    from thermal_anomaly_segmenter.predict.files import PredictRequest

    fields = dict(predict_kwargs)
    settings, segmenter = fields.pop("settings", None), fields.pop("segmenter", None)
    return predict_inputs(frames, out_dir, PredictRequest(**fields),
                          settings=settings, segmenter=segmenter)


def make_report(inputs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str], *,
                severity_config: str | os.PathLike[str] | None = None,
                rules: SeverityRules | None = None, rank_by: str = "severity",
                previous: str | os.PathLike[str] | None = None, compare_options=None,
                **predict_kwargs) -> ReportResult:
    """Predict what is not predicted yet, collect every anomaly and write the report files.

    ``rank_by``: ``"severity"`` (then mean dT) or ``"loss"`` (estimated heat loss).
    ``predict_kwargs`` go to :func:`.survey.predict_inputs` (model_dir, options (with the
    heat loss conditions), corridor, pipes, corridor_width_m, false_alarms, settings,
    segmenter, names); earlier predictions keep the estimates they were written with. With
    ``previous`` (an earlier survey, see :func:`.since.apply_previous`) each anomaly gets its
    status since then (``compare_options``: a :class:`.config.CompareOptions`).
    """
    if not inputs:
        raise InvalidInputError("no input given")
    if previous is not None:  # a bad earlier survey is refused before any prediction
        from thermal_anomaly_segmenter.geo.survey_layer import read_survey

        read_survey(previous, "previous survey")
    rules = rules or load_rules(severity_config)
    out = Path(out_dir).expanduser()
    claimed = _claim(out)
    try:
        done, todo = split_inputs(inputs)
        failures: list[str] = []
        if todo:
            with tempfile.TemporaryDirectory(prefix=".frames-", dir=out) as unpacked:
                frames: list[str | Path] = []
                for item in todo:  # a zip of frames is unpacked (flat, bounded) first
                    path = Path(item)
                    if path.is_file() and zipfile.is_zipfile(path):
                        frames.extend(unpack_frames(path, Path(unpacked) / str(len(frames))))
                    else:
                        frames.append(item)
                jsons, failures = _predict_frames(frames, out / "predictions", predict_kwargs)
            done.extend(jsons)
        if not done:
            raise InvalidInputError("no input could be predicted: " + "; ".join(failures[:3]))
        survey = build_survey(load_frames(done), rules, failures, rank_by)
        if previous is not None:
            from thermal_anomaly_segmenter.report.since import apply_previous

            apply_previous(survey, previous, compare_options)
        return ReportResult(survey, write_report(survey, out, claimed))
    except BaseException:
        for path in claimed.values():  # created by this run (O_EXCL): give the names back
            path.unlink(missing_ok=True)
        raise


def _claim(out: Path) -> dict[str, Path]:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    claimed: dict[str, Path] = {}
    for kind, name in REPORT_NAMES.items():
        path = out / name
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            for p in claimed.values():
                p.unlink(missing_ok=True)
            raise InvalidInputError(f"{path} already exists; choose another --out (nothing "
                                    "is overwritten)") from None
        except OSError as exc:
            raise OutputError(f"cannot write to {out}: {exc.strerror or exc}") from None
        os.close(fd)
        claimed[kind] = path
    return claimed


def csv_text(survey: Survey) -> str:
    buffer = io.StringIO()
    # with --previous: the status since then and the anomaly's id in that survey
    columns = CSV_COLUMNS + (SINCE_COLUMNS if survey.since is not None else ())
    # Frame names, pipe ids and causes come from users' files: no cell may run as a formula.
    writer = SafeDictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for item in survey.items:
        row = {**item.row(), "since_last_survey": item.since, "old_id": item.old_id}
        writer.writerow({k: "" if row[k] is None else row[k] for k in columns})
    return buffer.getvalue()


def write_report(survey: Survey, out: Path, claimed: dict[str, Path]) -> dict[str, Path]:
    from thermal_anomaly_segmenter.report.html import render_html

    written = {}
    atomic_write(claimed["csv"], csv_text(survey))
    written["csv"] = claimed["csv"]
    if _write_gpkg(survey, claimed["gpkg"]):
        written["gpkg"] = claimed["gpkg"]
    else:
        claimed["gpkg"].unlink(missing_ok=True)
    atomic_write(claimed["html"], render_html(survey))  # last: it marks a complete report
    written["html"] = claimed["html"]
    return {k: written[k] for k in REPORT_NAMES if k in written}


def _write_gpkg(survey: Survey, path: Path) -> bool:
    """Points at the anomalies' map coordinates, in the first georeferenced frame's CRS
    (frames of another CRS are left out, with a warning); False when none is georeferenced."""
    crs_of = {f.name: f.doc.get("frame", {}).get("crs") for f in survey.frames}
    located = [it for it in survey.items if it.record.get("centroid_crs") and crs_of[it.frame]]
    if not located:
        return False
    crs = crs_of[located[0].frame]
    other = [it for it in located if crs_of[it.frame] != crs]
    if other:
        log.warning("anomalies.gpkg: %d anomalies in another CRS than %s left out", len(other),
                    crs)
    located = [it for it in located if crs_of[it.frame] == crs]
    import numpy as np
    import pyogrio.raw
    import shapely

    rows = [it.row() for it in located]
    columns, names = [], []
    for name in CSV_COLUMNS:
        if name in ("crs_x", "crs_y"):
            continue
        values = [r[name] for r in rows]
        if name in ("rank", "id", "area_px"):
            columns.append(np.asarray(values, dtype=np.int64))
        elif name in ("frame", "severity", "cause", "pipe_id"):
            columns.append(np.asarray(["" if v is None else str(v) for v in values],
                                      dtype=object))
        else:
            columns.append(np.asarray([np.nan if v is None else float(v) for v in values]))
        names.append(name)
    points = shapely.points([it.record["centroid_crs"] for it in located])
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        heat = survey.heat_loss()
        metadata = {"taseg_heat_loss": json.dumps(
            {k: heat[k] for k in ("total_heat_loss_w", "conditions", "unavailable")})}
        pyogrio.raw.write(tmp, shapely.to_wkb(points), field_data=columns, fields=names,
                          crs=crs, geometry_type="Point", driver="GPKG", layer="anomalies",
                          layer_metadata=metadata)
        move_into_place(tmp, path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path.name}: {' '.join(str(exc).split())}") from exc
    return True
