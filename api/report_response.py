"""The inspector's report through DEEPaaS: ``Accept: text/html`` answers ``report.html``,
and a zip of frames answers the report (``text/html``) or a zip of ``report.html``,
``anomalies.csv`` and ``anomalies.gpkg`` (``application/zip``).

One branch of :func:`api.predict`, on the accept type and the upload's kind; the report
itself is :func:`thermal_anomaly_segmenter.report.inspector.make_report`. Its files are made
in a private temp folder and removed once the answer is in memory: the API keeps no report.
Uploads are bounded by ``TASEG_MAX_UPLOAD_MB`` and the frames of a zip by
``TASEG_MAX_EXTRACT_MB`` and :data:`~thermal_anomaly_segmenter.report.survey.MAX_ZIP_FRAMES`;
larger surveys go through ``taseg report``.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thermal_anomaly_segmenter.config import PredictOptions, Settings

from .responses import ApiError
from .schemas import conditions_from_args

HTML = "text/html"
ZIP = "application/zip"


def wanted(accept: str, input_path: Path) -> bool:
    """Whether this request is answered with the report (else by the per-frame formatters).

    Raises:
        ApiError: 406 for a zip of frames asked for another type than HTML or zip.
    """
    is_zip = zipfile.is_zipfile(input_path)
    if is_zip and accept not in (HTML, ZIP):
        raise ApiError(406, "a zip of frames is answered with the report: accept text/html "
                       "or application/zip")
    return accept == HTML or is_zip


@dataclass(frozen=True)
class UploadPaths:
    """The files of one predict request, once checked: the frame (or orthomosaic, or zip of
    frames) and the optional corridor mask, pipe network and earlier survey."""

    input: Path
    corridor: Path | None = None
    pipes: Path | None = None
    previous: Path | None = None


def answer(args: Mapping[str, Any], accept: str, paths: UploadPaths, *, name: str,
           defaulted: Iterable[str], settings: Settings) -> io.BytesIO:
    """Predict the upload (one frame, an orthomosaic with a pipe network, or a zip of
    frames) and answer ``report.html`` or a zip of the report files."""
    from thermal_anomaly_segmenter.io.frames import frame_stem
    from thermal_anomaly_segmenter.report.inspector import make_report

    size = args.get("tile_size")
    options = PredictOptions(
        threshold=None if "threshold" in set(defaulted) else args["threshold"],
        device=settings.device, tile_size=(size, size) if size else None,
        gsd_m=args.get("gsd"), match_gsd=not args.get("native_scale"),
        conditions=conditions_from_args(args))
    is_zip = zipfile.is_zipfile(paths.input)
    with tempfile.TemporaryDirectory(prefix="taseg-report-") as tmp:
        # The client's file name names a single frame (sanitised); the temp copy has none.
        result = make_report([paths.input], Path(tmp) / "report", model_dir=args["model_dir"],
                             options=options, corridor=paths.corridor, pipes=paths.pipes,
                             corridor_width_m=args.get("corridor_width"),
                             false_alarms=True if args.get("false_alarms") else None,
                             settings=settings, names=None if is_zip else [frame_stem(name)],
                             previous=paths.previous)
        if accept == HTML:
            return io.BytesIO(result.outputs["html"].read_bytes())
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in result.outputs.values():
                archive.write(path, arcname=path.name)
        buffer.seek(0)
        return buffer

