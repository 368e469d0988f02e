"""CSV cells a spreadsheet opens as text: a cell that starts with one of `FORMULA_START` (a
username, an expert's name may) would run as a formula, so it gets a leading quote."""

from __future__ import annotations

from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """The value as a CSV download writes it: None empty, a formula-looking text quoted."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value
