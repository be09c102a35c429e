"""CSV files a spreadsheet may open: text cells cannot become formulas.

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run
as a formula by spreadsheet programs (CSV injection); as OWASP advises, such a text cell is
written with a leading ``'``. Numbers, and text that is a plain number ("-1.5", "+3e2"), are
left as they are. Every CSV the product writes goes through :class:`SafeDictWriter`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from typing import Any

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def neutralise(value: Any) -> Any:
    """``value`` with a ``'`` in front when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


class SafeDictWriter(csv.DictWriter):
    """:class:`csv.DictWriter` whose header and text cells are neutralised."""

    def writeheader(self) -> Any:
        return self.writer.writerow([neutralise(str(name)) for name in self.fieldnames])

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({k: neutralise(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for row in rowdicts:
            self.writerow(row)
