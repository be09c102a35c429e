"""A survey's anomalies, collected from predict's outputs for the inspector's report.

Inputs are frames, folders of frames and orthomosaics (predicted now, outputs under
``<out>/predictions``) or folders / files of earlier predict outputs (``<stem>.json`` of schema
``taseg.anomalies/1`` with ``<stem>_overlay.png`` and ``<stem>_mask.png`` beside it), so a
survey is never predicted twice. Everything here is read from those files: crops come from
the overlay PNG (thermal colour map with outlines), review footprints from the mask PNG.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from thermal_anomaly_segmenter.config import get_settings
from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.outputs.document import SCHEMA
from thermal_anomaly_segmenter.report.severity import SeverityRules, number

if TYPE_CHECKING:
    from thermal_anomaly_segmenter.predict.files import PredictRequest

#: The heat loss fields of a prediction's anomaly records (:mod:`..heat_loss`), in order.
HEAT_LOSS_FIELDS: tuple[str, ...] = ("heat_loss_w", "heat_loss_w_low", "heat_loss_w_high",
                                     "heat_loss_mwh_per_year", "cost_per_year",
                                     "co2_t_per_year")
#: Orders of the places to dig: severity then mean dT, or estimated heat loss.
RANK_BY: tuple[str, ...] = ("severity", "loss")

log = logging.getLogger(__name__)

#: Side of a crop in the report, pixels of the page.
CROP_SIDE = 160
#: Longest side of a whole frame's view in the report's Frames section, image pixels.
VIEW_SIDE = 640
#: JPEG quality of a frame's view: a 320 x 256 frame's is ~20 KB, so 200 frames stay small.
VIEW_QUALITY = 85
#: Most frames taken from one zip of frames.
MAX_ZIP_FRAMES = 2000
_SEVERITY_ORDER = {"A": 0, "B": 1, "C": 2}


@dataclass
class Item:
    """One anomaly (or rejected component) of the survey, as the report shows it."""

    frame: str
    id: int
    record: dict[str, Any]
    status: str  # "accepted" or "rejected"
    severity: str | None = None
    cause: str | None = None
    leak_score: float | None = None
    x: float | None = None  # pixel centroid in the frame
    y: float | None = None
    crop_png: bytes | None = None
    scale_bar: str | None = None
    polygon: list | None = None  # pixel-corner rings of the footprint (review labels)
    #: crop pixel -> frame pixel (corners): ``[x0, y0, kx, ky]``, frame x = x0 + u * kx
    crop_frame: list[float] | None = None
    rank: int | None = None
    #: status since the previous survey (``--previous``), its id there and its old crop
    since: str | None = None
    old_id: str | None = None
    old_crop_png: bytes | None = None

    def row(self) -> dict[str, Any]:
        """The fields of ``anomalies.csv`` (and of the report's table)."""
        r = self.record
        crs = r.get("centroid_crs") or [None, None]
        return {
            "rank": self.rank, "frame": self.frame, "id": self.id, "severity": self.severity,
            "cause": self.cause, "area_px": r.get("area_px"), "area_m2": r.get("area_m2"),
            "max_t_degc": r.get("max_t_degc"), "mean_dt_degc": r.get("mean_dt_degc"),
            "probability": r.get("mean_probability"),
            "x": None if self.x is None else round(self.x, 2),
            "y": None if self.y is None else round(self.y, 2),
            "crs_x": crs[0], "crs_y": crs[1], "pipe_id": r.get("pipe_id"),
            "chainage_m": r.get("chainage_m"), "offset_m": r.get("offset_m"),
            "leak_score": self.leak_score,
            **{name: r.get(name) for name in HEAT_LOSS_FIELDS},
        }


@dataclass
class SurveyFrame:
    """One predicted frame or orthomosaic and its files."""

    name: str
    doc: dict[str, Any]
    json_path: Path
    overlay: Path | None
    mask: Path | None
    #: The whole frame's overlay as JPEG (no legend, at most :data:`VIEW_SIDE` px and never
    #: above the frame's own size) and its image pixel -> frame pixel ``[x0, y0, kx, ky]``
    #: (as an anomaly's ``crop_frame``); None for an orthomosaic or without an overlay.
    view_jpeg: bytes | None = None
    view_frame: list[float] | None = None

    @property
    def ortho(self) -> bool:
        return "transform" in self.doc.get("frame", {})


@dataclass
class Survey:
    frames: list[SurveyFrame] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    rejected: list[Item] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    rules: SeverityRules | None = None
    screened: bool = False
    rank_by: str = "severity"
    since: Any = None  # report.since.SinceLastSurvey with --previous

    def heat_loss(self) -> dict[str, Any]:
        """Totals of the listed anomalies' heat loss fields (None where any is unknown), the
        distinct conditions the frames were estimated with, and the frames without one."""
        totals: dict[str, Any] = {}
        for name in HEAT_LOSS_FIELDS:
            values = [it.record.get(name) for it in self.items]
            known = bool(values) and all(v is not None for v in values)
            totals[f"total_{name}"] = round(sum(values), 6) if known else None
        conditions: list[dict[str, Any]] = []
        missing = []
        for frame in self.frames:
            member = frame.doc.get("heat_loss") or {}
            if member.get("conditions") and member["conditions"] not in conditions:
                conditions.append(member["conditions"])
            if not member or member.get("unavailable"):
                missing.append(f"{frame.name}: {member.get('unavailable') or 'not estimated'}")
        return {**totals, "conditions": conditions, "unavailable": missing}


# --------------------------------------------------------------------------- inputs


def is_prediction_json(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return f'"schema": "{SCHEMA}"' in head or f'"schema":"{SCHEMA}"' in head


def split_inputs(inputs: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[str]]:
    """``(earlier prediction JSONs, inputs to predict)``."""
    done: list[Path] = []
    todo: list[str] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if is_prediction_json(p))
            if found:
                done.extend(found)
                continue
        elif is_prediction_json(path):
            done.append(path)
            continue
        todo.append(os.fspath(item))
    return done, todo


def unpack_frames(archive: Path, dest: Path, max_frames: int = MAX_ZIP_FRAMES) -> list[Path]:
    """Extract the frame files of a zip (any folder, by suffix) flat into ``dest``.

    Member names become sanitised stems (:func:`.io.frames.frame_stem`), so no path of the
    archive is ever used; other members (folders, ``__MACOSX`` ...) are skipped. The declared
    sizes are bounded like every archive TASeg extracts (:func:`.limits.check_archive_bytes`).
    """
    import zipfile

    from thermal_anomaly_segmenter import limits
    from thermal_anomaly_segmenter.io.frames import FRAME_SUFFIXES, frame_stem

    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()
                       and not m.filename.startswith("__MACOSX/")
                       and any(m.filename.lower().endswith(sfx) for sfx in FRAME_SUFFIXES)]
            if not members:
                raise InvalidInputError(f"{archive.name} holds no frame "
                                        f"({', '.join(FRAME_SUFFIXES)})")
            if len(members) > max_frames:
                raise InvalidInputError(f"{archive.name} holds {len(members)} frames, more "
                                        f"than {max_frames}; use taseg report on a folder")
            limits.check_archive_bytes(sum(m.file_size for m in members), archive.name,
                                       sum(m.compress_size for m in members),
                                           limit=get_settings().max_extract_bytes)
            dest.mkdir(parents=True, exist_ok=True)
            paths, seen = [], set()
            for m in members:
                name = m.filename.replace("\\", "/").rsplit("/", 1)[-1]
                stem = frame_stem(name)
                suffix = next(s for s in FRAME_SUFFIXES if name.lower().endswith(s))
                if stem in seen:
                    raise InvalidInputError(f"{archive.name}: two frames named {stem}")
                seen.add(stem)
                target = dest / f"{stem}{suffix}"
                with zf.open(m) as src, target.open("xb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                paths.append(target)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise InvalidInputError(f"cannot read the zip {archive.name}: {exc}") from None
    return paths


def predict_inputs(inputs: Sequence[str | Path], out_dir: Path,
                   request: PredictRequest | None = None, *, settings=None, segmenter=None,
                   ) -> tuple[list[Path], list[str]]:
    """Run predict on ``inputs`` into ``out_dir`` with ``request`` (a
    :class:`.predict.files.PredictRequest`; its ``out_dir`` and ``outputs`` are the report's);
    ``(JSON reports, failure lines)``."""
    from thermal_anomaly_segmenter.predict.files import PredictRequest, predict_paths

    request = replace(request or PredictRequest(), out_dir=out_dir,
                      outputs=("mask", "overlay", "json", "geojson"))
    jsons, failures = [], []
    for result in predict_paths(inputs, request, settings=settings, segmenter=segmenter):
        if result.ok and "json" in result.outputs:
            jsons.append(result.outputs["json"])
        else:
            failures.append(result.summary())
    return jsons, failures


def load_frames(paths: Iterable[Path]) -> list[SurveyFrame]:
    frames = []
    from thermal_anomaly_segmenter.io.json_input import load_json
    from thermal_anomaly_segmenter.report.prediction_doc import check_prediction

    for path in paths:
        doc = load_json(path, "prediction report")
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise InvalidInputError(f"{path.name} is not a TASeg prediction report ({SCHEMA})")
        check_prediction(doc, path.name)  # typed on the way in: nothing else reaches a page
        stem = path.name[: -len(".json")]
        overlay = path.with_name(f"{stem}_overlay.png")
        mask = path.with_name(f"{stem}_mask.png")
        frames.append(SurveyFrame(str(doc.get("frame", {}).get("name") or stem), doc, path,
                                  overlay if overlay.is_file() else None,
                                  mask if mask.is_file() else None))
    return frames


# --------------------------------------------------------------------------- the survey


def build_survey(frames: list[SurveyFrame], rules: SeverityRules,
                 failures: Sequence[str] = (), rank_by: str = "severity") -> Survey:
    """Classify, rank and crop every anomaly of ``frames``; ``rank_by`` (:data:`RANK_BY`):
    severity then mean dT, or the estimated heat loss (unknown last), largest first."""
    if rank_by not in RANK_BY:
        raise InvalidInputError(f"rank_by must be one of {', '.join(RANK_BY)}, got {rank_by!r}")
    survey = Survey(frames=frames, failures=list(failures), rules=rules, rank_by=rank_by)
    names: dict[str, int] = {}
    for frame in frames:  # two frames of one name (two folders): keep rows apart
        n = names[frame.name] = names.get(frame.name, 0) + 1
        if n > 1:
            frame.name = f"{frame.name}#{n}"
    for frame in frames:
        doc = frame.doc
        median = doc.get("frame", {}).get("corridor_median_degc")
        stage = doc.get("false_alarm_stage")
        survey.screened |= stage is not None
        verdicts = {v["id"]: v for v in (stage or {}).get("verdicts", [])}
        view = _OverlayView.open(frame)
        if view is not None and not frame.ortho:  # an orthomosaic is too big to show whole
            frame.view_jpeg, frame.view_frame = view.whole(doc["frame"])
        polygons = _footprints(frame)
        for status, records in (("accepted", doc.get("anomalies", [])),
                                ("rejected", doc.get("rejected", []))):
            for rec in records:
                v = rec if status == "rejected" else verdicts.get(rec["id"], {})
                item = Item(frame=frame.name, id=int(rec["id"]), record=rec, status=status,
                            cause=v.get("cause"), leak_score=v.get("leak_score"))
                item.severity = rules.classify(rec, median)
                item.x, item.y = _pixel_centroid(rec, doc)
                if view is not None:
                    item.crop_png, item.scale_bar, item.crop_frame = view.crop(
                        rec, item.x, item.y)
                if status == "accepted":
                    item.polygon = polygons.get(item.id)
                    survey.items.append(item)
                else:
                    survey.rejected.append(item)
    survey.items.sort(key=lambda it: (_SEVERITY_ORDER[it.severity or "C"],
                                      -number(it.record.get("mean_dt_degc")), it.frame, it.id))
    if rank_by == "loss":  # stable: equal or unknown losses keep the severity order
        survey.items.sort(key=lambda it: -number(it.record.get("heat_loss_w")))
    for rank, item in enumerate(survey.items, start=1):
        item.rank = rank
    survey.rejected.sort(key=lambda it: (it.frame, it.id))
    return survey


def _pixel_centroid(rec: dict[str, Any], doc: dict[str, Any]) -> tuple[float | None, ...]:
    if rec.get("centroid"):
        return float(rec["centroid"][0]), float(rec["centroid"][1])
    transform = doc.get("frame", {}).get("transform")
    crs_xy = rec.get("centroid_crs")
    if transform and crs_xy:  # an orthomosaic: invert the GDAL transform
        a, b, c, d, e, f = (float(v) for v in transform)
        det = a * e - b * d
        if det:
            dx, dy = crs_xy[0] - c, crs_xy[1] - f
            return (e * dx - b * dy) / det - 0.5, (a * dy - d * dx) / det - 0.5
    return None, None


def _footprints(frame: SurveyFrame) -> dict[int, list]:
    """Pixel-corner rings of each accepted anomaly, traced from the mask PNG (ids follow
    predict's order: descending area, then scan order), checked against the report."""
    if frame.mask is None or frame.ortho:
        return {}
    import cv2

    from thermal_anomaly_segmenter.outputs.geojson import _component_polygons

    info = frame.doc.get("frame", {})
    mask = _read_png(frame.mask, (info.get("height"), info.get("width")),
                     cv2.IMREAD_UNCHANGED)
    records = frame.doc.get("anomalies", [])
    if mask is None or mask.ndim != 2:
        return {}
    count, raw, stats, _ = cv2.connectedComponentsWithStats((mask > 0).view(np.uint8),
                                                            connectivity=8)
    order = np.argsort(-stats[1:, cv2.CC_STAT_AREA], kind="stable") + 1
    out: dict[int, list] = {}
    for rec, comp in zip(records, order, strict=False):
        x0, y0, w, h = (int(v) for v in stats[comp, :4])
        if stats[comp, cv2.CC_STAT_AREA] != rec.get("area_px") or \
                list(rec.get("bbox", [])) != [x0, y0, x0 + w, y0 + h]:
            log.warning("%s: mask does not match anomaly %s; no footprint", frame.mask,
                        rec.get("id"))
            continue
        rings = []
        for exterior, holes in _component_polygons(raw[y0:y0 + h, x0:x0 + w] == comp):
            rings.append([(ring + (x0, y0)).tolist() for ring in (exterior, *holes)])
        out[int(rec["id"])] = rings
    return out


def _read_png(path: Path, shape: tuple[Any, Any], flags: int) -> np.ndarray | None:
    """The PNG at ``path`` decoded, only if its header declares ``shape`` (height, width)."""
    import cv2

    from thermal_anomaly_segmenter.limits import png_size

    try:
        if png_size(path) != tuple(shape):
            return None
    except OSError:
        return None
    return cv2.imread(str(path), flags)


class _OverlayView:
    """Crops of a frame's overlay PNG around its anomalies."""

    def __init__(self, image: np.ndarray, sx: float, sy: float, top: int, gsd: float | None):
        self.image, self.sx, self.sy, self.top, self.gsd = image, sx, sy, top, gsd

    @classmethod
    def open(cls, frame: SurveyFrame) -> _OverlayView | None:
        import cv2

        from thermal_anomaly_segmenter.outputs.overlay import overlay_geometry

        if frame.overlay is None:
            return None
        info = frame.doc.get("frame", {})
        height, width = int(info.get("height", 0)), int(info.get("width", 0))
        if not height or not width:
            return None
        gsd = info.get("gsd_m")
        if frame.ortho:
            from thermal_anomaly_segmenter.geo.ortho_overlay import OVERLAY_MAX_SIDE

            a, b, _, d, e, _ = info["transform"]
            gsd = math.sqrt(abs(a * e - b * d))
            scale = max(1.0, max(height, width) / OVERLAY_MAX_SIDE)
            h, w = max(1, round(height / scale)), max(1, round(width / scale))
            sx, sy, top, canvas = overlay_geometry(h, w, OVERLAY_MAX_SIDE + 256)
            sx, sy = sx * w / width, sy * h / height
        else:
            sx, sy, top, canvas = overlay_geometry(height, width)
            if gsd is None and frame.doc.get("anomalies"):
                a0 = frame.doc["anomalies"][0]
                if a0.get("area_m2"):
                    gsd = math.sqrt(a0["area_m2"] / a0["area_px"])
        # The header first: a small PNG declaring a huge canvas is never decoded.
        image = _read_png(frame.overlay, tuple(canvas), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("%s is not the overlay of a %d x %d frame; no crops",
                        frame.overlay.name, height, width)
            return None
        return cls(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), sx, sy, top, gsd)

    def crop(self, rec: dict[str, Any], x: float | None, y: float | None
             ) -> tuple[bytes | None, str | None, list[float] | None]:
        """The crop around an anomaly as PNG, its scale bar's label, and where it lies in the
        frame: ``[x0, y0, kx, ky]`` with frame pixel-corner ``(x0 + u * kx, y0 + v * ky)`` at
        crop pixel-corner ``(u, v)`` (an inspector's outline is clicked on the crop)."""
        import cv2

        from thermal_anomaly_segmenter.outputs.write import encode_png

        if x is None or y is None:
            return None, None, None
        if rec.get("bbox"):
            x0, y0, x1, y1 = rec["bbox"]
        else:
            r = math.sqrt(float(rec.get("area_px") or 1))
            x0, y0, x1, y1 = x - r, y - r, x + r, y + r
        side = max(x1 - x0, y1 - y0) * 2.0 + 24  # context around the anomaly, frame pixels
        ox, oy = x * self.sx, self.top + y * self.sy
        half_w, half_h = side * self.sx / 2, side * self.sy / 2
        h_img, w_img = self.image.shape[:2]
        cx0, cx1 = int(max(0, ox - half_w)), int(min(w_img, math.ceil(ox + half_w)))
        cy0, cy1 = int(max(self.top, oy - half_h)), int(min(h_img, math.ceil(oy + half_h)))
        if cx1 - cx0 < 2 or cy1 - cy0 < 2:
            return None, None, None
        piece = self.image[cy0:cy1, cx0:cx1]
        zoom = CROP_SIDE / max(piece.shape[:2])
        crop = cv2.resize(piece, (max(1, round(piece.shape[1] * zoom)),
                                  max(1, round(piece.shape[0] * zoom))),
                          interpolation=cv2.INTER_NEAREST if zoom >= 1 else cv2.INTER_AREA)
        per_px = 1.0 / (self.sx * zoom)  # frame pixels per crop pixel
        label = _draw_scale_bar(crop, per_px, self.gsd)
        # The resize's own ratios (rounded sides), not zoom: corners map onto corners.
        kx = piece.shape[1] / (crop.shape[1] * self.sx)
        ky = piece.shape[0] / (crop.shape[0] * self.sy)
        to_frame = [cx0 / self.sx, (cy0 - self.top) / self.sy, kx, ky]
        return encode_png(crop), label, [round(v, 4) for v in to_frame]

    def whole(self, info: dict[str, Any]) -> tuple[bytes, list[float]]:
        """The frame's part of the overlay (no title) as JPEG, downscaled to at most
        :data:`VIEW_SIDE` px and the frame's own pixels; its ``[x0, y0, kx, ky]`` mapping."""
        import cv2

        height, width = int(info["height"]), int(info["width"])
        piece = self.image[self.top:self.top + round(height * self.sy),
                           :round(width * self.sx)]
        zoom = min(1.0, VIEW_SIDE / max(piece.shape[:2]), 1.0 / max(self.sx, self.sy))
        small = cv2.resize(piece, (max(1, round(piece.shape[1] * zoom)),
                                   max(1, round(piece.shape[0] * zoom))),
                           interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, VIEW_QUALITY])
        if not ok:
            raise ValueError("cannot encode a frame's view as JPEG")
        kx = piece.shape[1] / (small.shape[1] * self.sx)
        ky = piece.shape[0] / (small.shape[0] * self.sy)
        return jpeg.tobytes(), [0.0, 0.0, round(kx, 6), round(ky, 6)]


def _nice(value: float) -> float:
    exp = math.floor(math.log10(value))
    for m in (5, 2, 1):
        if m * 10**exp <= value:
            return m * 10**exp
    return 10**exp


def _draw_scale_bar(crop: np.ndarray, frame_px_per_crop_px: float, gsd: float | None) -> str:
    """Draw a bar of a round length (metres with a GSD, else frame pixels); its label."""
    import cv2

    unit_per_crop_px = frame_px_per_crop_px * (gsd or 1.0)
    length = _nice(unit_per_crop_px * crop.shape[1] * 0.35)
    bar = max(2, round(length / unit_per_crop_px))
    label = f"{length:g} m" if gsd else f"{length:g} px"
    h = crop.shape[0]
    x0, y = 6, h - 8
    cv2.rectangle(crop, (x0 - 2, y - 14), (x0 + bar + 2, y + 4), (0, 0, 0), -1)
    cv2.line(crop, (x0, y), (x0 + bar, y), (255, 255, 255), 2)
    cv2.putText(crop, label, (x0, y - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                cv2.LINE_AA)
    return label
