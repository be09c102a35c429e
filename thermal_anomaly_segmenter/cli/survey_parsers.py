"""Arguments of the survey commands: ``taseg predict``, ``report`` and ``compare``."""

from __future__ import annotations

from thermal_anomaly_segmenter.cli.arguments import (
    add_command,
    add_conditions_arguments,
    add_false_alarm_argument,
    add_native_scale,
    add_pipe_arguments,
    positive_float,
    positive_int,
    unit_float,
)
from thermal_anomaly_segmenter.cli.commands import cmd_compare, cmd_predict, cmd_report
from thermal_anomaly_segmenter.config import DEVICES


def add_predict_parser(sub) -> None:
    p = add_command(
        sub, "predict", cmd_predict,
        help="segment frames and write masks, overlays and reports",
        description="Segment thermal frames (.npy.lz4, .npy, or float TIFF with "
        "--corridor) and write per frame <stem>_mask.png, <stem>_prob.png, "
        "<stem>_overlay.png, <stem>.json and <stem>.geojson. With --pipes NETWORK, "
        "georeferenced rasters of any size stream window by window and give <stem>_prob.tif, "
        "<stem>_mask.tif (COGs), <stem>.gpkg, <stem>.geojson (EPSG:4326), <stem>.json and "
        "<stem>_overlay.png.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="frame files, folders or globs")
    p.add_argument("--model-dir", help="model folder (default: the default model)")
    p.add_argument(
        "--threshold",
        type=unit_float,
        default=None,
        help="probability threshold, 0..1 (default: the model folder's stored threshold, "
        "chosen on validation data; 0.5 if it has none)",
    )
    p.add_argument("--out", help="output folder (default: <model-dir>/predictions)")
    p.add_argument("--batch-size", type=positive_int, default=4, help="frames per forward pass")
    p.add_argument(
        "--device",
        choices=DEVICES,
        default=None,
        help="where the model runs (default: TASEG_DEVICE or auto)",
    )
    p.add_argument("--corridor", help="corridor mask (nonzero = pipeline corridor) for TIFF input")
    add_pipe_arguments(p)
    p.add_argument("--gsd", type=positive_float,
                   help="ground sampling distance of the frames, m/pixel (default: a "
                   "GeoTIFF's own); frames finer than the model's are seen at its GSD")
    add_native_scale(p)
    p.add_argument(
        "--tile-size",
        type=positive_int,
        nargs=2,
        metavar=("H", "W"),
        help="tile size for large frames (default: the model's training size)",
    )
    p.add_argument("--tile-overlap", type=float, default=0.25, help="tile overlap fraction")
    p.add_argument(
        "--min-area",
        type=positive_int,
        default=4,
        help="smallest anomaly kept, pixels (default 4)",
    )
    p.add_argument(
        "--outputs",
        help="comma-separated outputs to write (default all: mask, probability, overlay, "
        "json, geojson; with --pipes also gpkg)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace earlier outputs of the same name instead of adding -2, -3, ...",
    )
    p.add_argument(
        "--pipe-id-field",
        metavar="NAME",
        help="pipe layer field that names each pipe in the anomaly attributes (default: the "
        "first id-like field, else the feature index)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        help="spread the inputs over a local Dask cluster of this many worker processes",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="spread the inputs over a running Dask cluster (tcp://host:8786); see docs",
    )
    add_false_alarm_argument(p)
    add_conditions_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_report_parser(sub) -> None:
    r = add_command(
        sub, "report", cmd_report,
        help="the inspector's report of a survey: ranked places to dig",
        description="Collect the anomalies of a survey (frames, folders, orthomosaics with "
        "--pipes, or folders of earlier predict outputs, which are not predicted again) and "
        "write DIR/report.html (self-contained; severity classes, crops, map, review "
        "buttons), DIR/anomalies.csv and, where georeferenced, DIR/anomalies.gpkg. New "
        "predictions go to DIR/predictions. Nothing existing is overwritten.")
    r.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="frames, folders, globs, orthomosaics or predict output folders")
    r.add_argument("--out", required=True, metavar="DIR", help="report folder")
    r.add_argument("--severity-config", metavar="FILE",
                   help="TOML or JSON file of severity thresholds (tables A and B; see docs)")
    r.add_argument("--model-dir", help="model folder (default: the default model)")
    r.add_argument("--threshold", type=unit_float, default=None,
                   help="probability threshold (default: the model folder's)")
    r.add_argument("--device", choices=DEVICES, default=None)
    r.add_argument("--corridor", help="corridor mask for TIFF input")
    add_pipe_arguments(r)
    r.add_argument("--pipe-id-field", metavar="NAME",
                   help="pipe layer field that names each pipe (default: the first id-like)")
    r.add_argument("--gsd", type=positive_float,
                   help="ground sampling distance of the frames, m/pixel (default: a "
                   "GeoTIFF's own); frames finer than the model's are seen at its GSD")
    add_native_scale(r)
    r.add_argument("--min-area", type=positive_int, default=4,
                   help="smallest anomaly kept, pixels (default 4)")
    add_false_alarm_argument(r)
    add_conditions_arguments(r)
    r.add_argument("--rank-by", choices=("severity", "loss"), default="severity",
                   help="order of the places to dig: severity then mean dT (default), or "
                   "the estimated heat loss (largest first)")
    r.add_argument("--previous", metavar="OLD",
                   help="an earlier survey of the same network (output folder of taseg "
                   "predict --pipes or taseg report, or its GeoPackage): adds each anomaly's "
                   "status since then, the old crop beside the new and totals per status")
    r.add_argument("--tolerance", type=positive_float, default=None, metavar="METRES",
                   help="with --previous: largest gap between the two footprints of one "
                   "anomaly (default 2)")


def add_compare_parser(sub) -> None:
    from thermal_anomaly_segmenter.geo.compare import CompareOptions

    d = CompareOptions()
    c = add_command(
        sub, "compare", cmd_compare,
        help="compare two surveys of one network, leak by leak",
        description="Match the anomalies of an earlier survey (OLD) to a later one (NEW) in "
        "map coordinates and give each a status: new, gone, grown, stable or shrunk (by the "
        "change of area and of mean dT against each flight's own corridor). OLD and NEW are "
        "output folders of 'taseg predict --pipes' or 'taseg report', or their GeoPackages. "
        "Writes DIR/changes.gpkg (with a QGIS style), changes.csv and changes.geojson.")
    c.add_argument("old", metavar="OLD", help="the earlier survey")
    c.add_argument("new", metavar="NEW", help="the later survey")
    c.add_argument("--out", required=True, metavar="DIR", help="output folder")
    c.add_argument("--tolerance", type=positive_float, default=d.tolerance_m,
                   metavar="METRES", help="largest gap between the two footprints of one "
                   f"anomaly, metres (default {d.tolerance_m:g})")
    c.add_argument("--grown-area-ratio", type=positive_float, default=d.grown_area_ratio,
                   help=f"area ratio NEW/OLD from which it has grown (default "
                   f"{d.grown_area_ratio:g})")
    c.add_argument("--shrunk-area-ratio", type=positive_float, default=d.shrunk_area_ratio,
                   help=f"area ratio up to which it has shrunk (default {d.shrunk_area_ratio:g})")
    c.add_argument("--grown-dt", type=positive_float, default=d.grown_dt_degc, metavar="K",
                   help=f"rise of mean dT from which it has grown (default {d.grown_dt_degc:g})")
    c.add_argument("--shrunk-dt", type=positive_float, default=d.shrunk_dt_degc, metavar="K",
                   help=f"fall of mean dT from which it has shrunk (default "
                   f"{d.shrunk_dt_degc:g})")
    c.add_argument("--residual", type=positive_float, default=d.residual_m, metavar="METRES",
                   help="largest move of one anomaly's centre beyond the flights' local "
                   "georeference offset (the median of its nearest matched pairs) and the "
                   f"change of its radius (default {d.residual_m:g})")
    c.add_argument("--overwrite", action="store_true",
                   help="replace changes.* already in DIR (default: refuse)")
