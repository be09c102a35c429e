"""Argument types and the argument groups that several ``taseg`` commands share.

A bad value is an argparse usage error (one line, exit 2) before any command runs.
"""

from __future__ import annotations

import argparse

from thermal_anomaly_segmenter.errors import TasegError


def add_command(sub, name: str, func, **kwargs) -> argparse.ArgumentParser:
    """The sub-command ``name`` (``kwargs`` as for ``add_parser``) that runs ``func``."""
    parser = sub.add_parser(name, **kwargs)
    parser.set_defaults(func=func)
    return parser


def _checked(parse, kind: str, ok, rule: str):
    """An argparse type: ``parse`` the text, then require ``ok(value)``."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{value} {rule}")
        return value

    return convert


positive_int = _checked(int, "a whole number", lambda v: v >= 1, "must be >= 1")
unit_float = _checked(float, "a number", lambda v: 0.0 <= v <= 1.0, "is not within 0..1")
positive_float = _checked(float, "a number", lambda v: v > 0, "must be > 0")


def zoom_range(text: str) -> tuple[float, float] | str:
    """``LOW,HIGH`` within the zoom bounds, or ``none``."""
    if text.strip().lower() == "none":
        return "none"
    from thermal_anomaly_segmenter.config import check_zoom

    try:
        zoom = check_zoom(tuple(float(v) for v in text.split(",")) if text.count(",") == 1
                          else text)
    except (ValueError, TasegError) as exc:
        raise argparse.ArgumentTypeError(str(exc) if isinstance(exc, TasegError)
                                         else f"{text!r} is not LOW,HIGH") from None
    assert zoom is not None  # nosec B101
    return zoom


def add_native_scale(p: argparse.ArgumentParser) -> None:
    """``--native-scale``: no resampling of frames finer than the model's GSD."""
    p.add_argument(
        "--native-scale", action="store_true",
        help="run the network at the frames' own pixels even where they are finer than the "
        "model's training GSD (default: seen at the model's GSD, then mapped back)")


def add_false_alarm_argument(p: argparse.ArgumentParser) -> None:
    """``--false-alarms [CLASSIFIER]``: the false-alarm stage after segmentation."""
    p.add_argument(
        "--false-alarms", nargs="?", const=True, default=None, metavar="CLASSIFIER",
        help="apply the false-alarm stage: components it rejects leave the mask and are listed "
        "apart with their cause ('rejected' in the JSON). CLASSIFIER: a false_alarms.json; "
        "default the model folder's (trained once from the synthetic families and stored "
        "there when missing, about a minute)")


def add_conditions_arguments(p: argparse.ArgumentParser) -> None:
    """The night's conditions of the heat loss estimate (docs/heat_loss.rst); unchecked
    here: the core validates them (one line, exit 2)."""
    g = p.add_argument_group(
        "heat loss", "conditions of the per-anomaly heat loss estimate (needs the pixel size); "
        "defaults, then a taseg_conditions.toml/.json in the inputs' folder, then "
        "--conditions, then these flags")
    g.add_argument("--conditions", metavar="FILE",
                   help="TOML or JSON file of conditions (field names as in the docs)")
    g.add_argument("--air-temp", type=float, metavar="DEGC", help="air temperature, degC")
    g.add_argument("--wind-speed", type=float, metavar="M_PER_S",
                   help="wind speed, m/s (default 1)")
    g.add_argument("--emissivity", type=float, help="surface emissivity (default 0.95)")
    g.add_argument("--season-hours", type=float, metavar="HOURS",
                   help="heating season length, hours a year (default 5000)")
    g.add_argument("--heat-price", type=float, metavar="PRICE_PER_MWH",
                   help="price of heat per MWh: gives cost_per_year")
    g.add_argument("--currency", help="currency of --heat-price (default EUR)")
    g.add_argument("--co2-factor", type=float, metavar="T_PER_MWH",
                   help="emission factor, t CO2 per MWh of heat: gives co2_t_per_year")


def add_pipe_arguments(p: argparse.ArgumentParser) -> None:
    """``--pipes NETWORK`` and ``--corridor-width``: corridors buffered from pipe lines."""
    p.add_argument(
        "--pipes",
        metavar="NETWORK",
        help="pipe network layer (GeoJSON, GeoPackage, Shapefile or zipped Shapefile, any "
        "CRS): the corridor of every georeferenced input is buffered from its lines",
    )
    p.add_argument(
        "--corridor-width",
        type=positive_float,
        default=None,
        metavar="METRES",
        help="full corridor width around the pipe axes with --pipes (default 8)",
    )
