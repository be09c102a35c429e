"""The inspector's report of a survey: many frames' anomalies ranked for a person to decide.

* :mod:`.severity`: classes A/B/C and the rule that gives them;
* :mod:`.survey`: the anomalies collected from predict's files (or predicted first);
* :mod:`.html`: the self-contained page with its review buttons;
* :mod:`.inspector`: :func:`make_report`, which writes ``report.html``, ``anomalies.csv``
  and ``anomalies.gpkg``.

Importing the package is cheap; the modules load on first use.
"""

from __future__ import annotations

from thermal_anomaly_segmenter._lazy import lazy_getattr

_LAZY = {
    "make_report": "inspector",
    "SeverityRules": "severity",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
