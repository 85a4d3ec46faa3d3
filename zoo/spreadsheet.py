"""CSV cells that a spreadsheet shows as text instead of running them as formulas.

A cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets (``=HYPERLINK(...)`` in a class folder's name would become a link). Such a
cell gets a leading apostrophe, OWASP's advice for CSV injection; numbers (``-0.5``, ``+3``) stay numbers.
Every CSV zoo writes passes its cells through :func:`safe_cell`.
"""

from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value`, or ``"'" + value`` when it is text a spreadsheet would run as a formula."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    try:
        float(value)
        return value  # a signed number
    except ValueError:
        return "'" + value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]


def safe_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {key: safe_cell(value) for key, value in row.items()}
