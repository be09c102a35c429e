"""The night's conditions a heat loss estimate needs, validated, from flags, files or the API.

Where they come from, latest wins: the defaults of :class:`Conditions`, a conditions file
found in the survey folder (:data:`SURVEY_FILE_NAMES`), a ``--conditions FILE``, then single
values (``--air-temp``, ``--wind-speed``, ... or API fields). Every output that used them
states them, and which were left at their defaults.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from thermal_anomaly_segmenter.errors import InvalidInputError

#: Names of a conditions file picked up from the folder of the surveyed frames.
SURVEY_FILE_NAMES: tuple[str, ...] = ("taseg_conditions.toml", "taseg_conditions.json")

#: Limits of plausible values: outside them a value is a typo or a unit mistake.
_AIR_TEMP_DEGC = (-60.0, 50.0)
_MAX_WIND_M_S = 40.0
_MAX_SEASON_H = 8784.0  # a leap year
_MAX_UNCERTAINTY_K = 5.0


@dataclass(frozen=True)
class Conditions:
    """The night of the survey and the economics of the heat; all SI except as named."""

    #: Air temperature, degC. The excess flux over the local background does not depend on
    #: it (it cancels in the difference); it is recorded and checked for plausibility.
    air_temp_degc: float | None = None
    #: Wind speed at the surface, m/s; sets the convective coefficient (McAdams).
    wind_speed_m_s: float = 1.0
    #: Thermal emissivity of the surface (asphalt, soil, grass: 0.90-0.98).
    emissivity: float = 0.95
    #: Effective sky temperature, degC; cancels in the excess flux like the air temperature.
    sky_temp_degc: float | None = None
    #: Hours a year the leak loses heat as on the survey night (heating season).
    season_hours: float = 5000.0
    #: Price of heat per MWh, in ``currency``; ``None``: no cost figure.
    price_per_mwh: float | None = None
    currency: str = "EUR"
    #: Emission factor of the heat, tonnes CO2 per MWh; ``None``: no CO2 figure.
    co2_t_per_mwh: float | None = None
    #: Uncertainty of the inputs, giving ``heat_loss_w_low`` / ``_high``.
    wind_uncertainty_m_s: float = 1.0
    emissivity_low: float = 0.90
    emissivity_high: float = 0.98
    background_uncertainty_k: float = 0.2
    #: Where the values came from ("defaults", file paths, "flags", "api").
    source: str = "defaults"
    #: Names of the fields set by the user (the others are the defaults).
    given: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """The values as stated in outputs, with ``defaults_used``: fields nobody set."""
        values = {k: v for k, v in asdict(self).items() if k not in ("source", "given")}
        return {**values, "source": self.source,
                "defaults_used": sorted(k for k in values if k not in self.given)}

    def updated(self, values: dict[str, Any], source: str) -> Conditions:
        """These conditions with ``values`` over them (``None`` values are ignored)."""
        values = {k: v for k, v in values.items() if v is not None}
        unknown = set(values) - _FIELDS
        if unknown:
            raise InvalidInputError(f"conditions from {source}: unknown field(s) "
                                    f"{', '.join(sorted(unknown))}; known: "
                                    f"{', '.join(sorted(_FIELDS))}")
        if not values:
            return self
        where = source if self.source == "defaults" else f"{self.source} + {source}"
        return replace(self, **values, source=where, given=self.given | set(values))


_FIELDS = {f.name for f in fields(Conditions)} - {"source", "given"}
_OPTIONAL = {"air_temp_degc", "sky_temp_degc", "price_per_mwh", "co2_t_per_mwh"}


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number, got {value}")
    return float(value)


def _validate(c: Conditions) -> None:
    for f in fields(Conditions):
        value = getattr(c, f.name)
        if f.name in ("source", "given", "currency") or (value is None and f.name in _OPTIONAL):
            continue
        _number(f.name, value)
    for name in ("air_temp_degc", "sky_temp_degc"):
        value = getattr(c, name)
        lo, hi = (-100.0, 50.0) if name == "sky_temp_degc" else _AIR_TEMP_DEGC
        if value is not None and not lo <= value <= hi:
            raise InvalidInputError(f"{name} must be within {lo:g}..{hi:g} degC, got {value:g}")
    if not 0.0 <= c.wind_speed_m_s <= _MAX_WIND_M_S:
        raise InvalidInputError(f"wind speed must be within 0..{_MAX_WIND_M_S:g} m/s, got "
                                f"{c.wind_speed_m_s:g}")
    for name in ("emissivity", "emissivity_low", "emissivity_high"):
        if not 0.0 < getattr(c, name) <= 1.0:
            raise InvalidInputError(f"{name} must be within (0, 1], got {getattr(c, name):g}")
    if c.emissivity_low > c.emissivity_high:
        raise InvalidInputError("emissivity_low must not exceed emissivity_high")
    if not 0.0 < c.season_hours <= _MAX_SEASON_H:
        raise InvalidInputError(f"season_hours must be within (0, {_MAX_SEASON_H:g}] h, got "
                                f"{c.season_hours:g}")
    for name in ("price_per_mwh", "co2_t_per_mwh", "wind_uncertainty_m_s"):
        value = getattr(c, name)
        if value is not None and value < 0:
            raise InvalidInputError(f"{name} must be >= 0, got {value:g}")
    if not 0.0 <= c.background_uncertainty_k <= _MAX_UNCERTAINTY_K:
        raise InvalidInputError(f"background_uncertainty_k must be within "
                                f"0..{_MAX_UNCERTAINTY_K:g} K, got {c.background_uncertainty_k:g}")
    if not isinstance(c.currency, str) or not 0 < len(c.currency) <= 8:
        raise InvalidInputError(f"currency must be a short text such as EUR, got {c.currency!r}")


def read_conditions_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The values of a TOML (``.toml``) or JSON conditions file (field names of
    :class:`Conditions`), unchecked: :meth:`Conditions.updated` checks them."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise InvalidInputError(f"cannot read conditions file {path}: {reason}") from None
    toml = path.suffix.lower() == ".toml"
    try:
        if toml:
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"conditions file {path} is not valid "
                                f"{'TOML' if toml else 'JSON'}: {' '.join(str(exc).split())}"
                                ) from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"conditions file {path} must hold a table of values")
    return data


def survey_conditions_file(inputs: list[str | os.PathLike[str]]) -> Path | None:
    """The conditions file of the survey: :data:`SURVEY_FILE_NAMES` in the first input folder
    (or the folder of the first input file) that has one."""
    for item in inputs:
        path = Path(item).expanduser()
        folder = path if path.is_dir() else path.parent
        for name in SURVEY_FILE_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


#: Option names of the CLI (``--air-temp`` ...) and the API -> :class:`Conditions` fields.
OPTION_FIELDS: dict[str, str] = {
    "air_temp": "air_temp_degc", "wind_speed": "wind_speed_m_s", "emissivity": "emissivity",
    "season_hours": "season_hours", "heat_price": "price_per_mwh", "currency": "currency",
    "co2_factor": "co2_t_per_mwh",
}


def resolve_conditions(
    inputs: list[str | os.PathLike[str]] | tuple = (),
    file: str | os.PathLike[str] | None = None,
    options: dict[str, Any] | None = None,
    source: str = "flags",
) -> Conditions:
    """Defaults, then the survey folder's file, then ``file``, then ``options`` (named as in
    :data:`OPTION_FIELDS`; ``None`` values are not given)."""
    conditions = Conditions()
    found = survey_conditions_file(list(inputs))
    if found is not None:
        conditions = conditions.updated(read_conditions_file(found), str(found))
    if file is not None:
        conditions = conditions.updated(read_conditions_file(file), str(file))
    values = {OPTION_FIELDS[k]: v for k, v in (options or {}).items() if k in OPTION_FIELDS}
    return conditions.updated(values, source)
